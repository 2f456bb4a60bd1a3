// `leakwatch demo <scenario>`: one of the users' incidents, run in a fake pod on this machine (a
// real memory cgroup with a limit, kubelet-style log directories) so that `leakwatch watch` in
// another terminal has something real to find. Everything it creates is removed on the way out.
import type { Command } from 'commander';
import { demoAvailability, runScenario, scenarioNames, scenarios, scenarioSummary, type ScenarioHandle, type ScenarioOutcome } from '../../demo/scenarios.js';
import { printable } from '../format.js';
import { parsePositiveNumber } from '../parse.js';

interface DemoOptions {
  list?: boolean;
  duration?: number;
  logRoot: string;
}

const DEFAULT_LOG_ROOT = '/var/log';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run one of the users\' incidents in a fake pod on this machine, for `leakwatch watch` to find (root, cgroup v1)')
    .argument('[scenario]', 'the scenario to run (see --list)')
    .option('--list', 'list the scenarios and exit')
    .option('--duration <seconds>', 'stop after this many seconds (default: when the scenario has played out, or Ctrl-C)', parsePositiveNumber)
    .option(
      '--log-root <dir>',
      'where the fake pod\'s kubelet logs go: <dir>/pods/<namespace>_<pod>_<uid>/, where `leakwatch watch` and `ps` look by default (env LEAKWATCH_DEMO_LOG_ROOT)',
      process.env.LEAKWATCH_DEMO_LOG_ROOT ?? DEFAULT_LOG_ROOT,
    )
    .addHelpText(
      'after',
      `
The pod is a real memory cgroup (/sys/fs/cgroup/memory/kubepods/burstable/pod<uid>/<id>) with the
scenario's limit, so the kernel really OOM-kills in it. Its names come from the log directory
<log-root>/pods/<namespace>_<pod>_<uid>/<container>/, as on a Kubernetes node. With a --log-root
other than ${DEFAULT_LOG_ROOT}, point the other commands at it: leakwatch watch --pod-log-root <dir>/pods.
On exit, Ctrl-C or SIGTERM the demo kills its processes and removes the cgroups and log directories.

Scenarios: ${scenarioNames.join(', ')}`,
    )
    .action(async (name: string | undefined, options: DemoOptions) => {
      if (options.list) {
        process.stdout.write(`${listScenarios()}\n`);
        return;
      }
      if (name === undefined) return fail(`name a scenario (one of: ${scenarioNames.join(', ')}) or use --list`);
      if (!scenarios.has(name)) return fail(`unknown scenario "${name}" (one of: ${scenarioNames.join(', ')})`);
      const availability = demoAvailability();
      if (!availability.ok) return fail(`${availability.reason}; the demo builds a real memory cgroup, run it as root on a node with cgroup v1 memory`);
      await runDemo(name, options);
    });
}

function listScenarios(): string {
  return scenarioNames
    .map((n) => scenarios.get(n))
    .filter((s) => s !== undefined)
    .map((s) => `${scenarioSummary(s)}\n    ${s.description}\n    ${s.timeline}`)
    .join('\n');
}

async function runDemo(name: string, options: DemoOptions): Promise<void> {
  const startedAt = Date.now();
  // The pod starts before its description can be printed (the uid is not known until then):
  // its first lines wait for the header.
  let held: string[] | null = [];
  const say = (line: string): void => {
    const elapsed = ((Date.now() - startedAt) / 1000).toFixed(1).padStart(6);
    const text = `[+${elapsed}s] ${printable(line, 400)}\n`;
    if (held) held.push(text);
    else process.stdout.write(text);
  };

  // Caught before the pod exists: a Ctrl-C while it is being built must still lead to cleanup.
  const stopSignal = catchStopSignals();
  let handle: ScenarioHandle;
  try {
    handle = await runScenario(name, { logRoot: options.logRoot, onLog: say });
  } catch (err) {
    stopSignal.release();
    return fail(err instanceof Error ? err.message : String(err));
  }
  const { scenario, pod } = handle;
  process.stdout.write(
    [
      `leakwatch demo ${scenario.name}${scenario.seed ? ` (seed ${scenario.seed})` : ''}: ${scenario.description}`,
      `  pod ${pod.namespace}/${pod.name} uid ${pod.uid}, cgroup ${pod.podCgroupDir}`,
      ...pod.containers.map((c) => `  container ${c.name}: limit ${c.limitBytes / (1024 * 1024)} MiB, cgroup …/${c.id.slice(0, 12)}`),
      `  logs ${pod.podLogRoot}/${pod.namespace}_${pod.name}_${pod.uid}/`,
      `  expect: ${scenario.timeline}`,
      `Run \`leakwatch watch${options.logRoot === DEFAULT_LOG_ROOT ? '' : ` --pod-log-root ${pod.podLogRoot}`}\` in another terminal to see what leakwatch finds.`,
      `Ctrl-C stops the demo and removes the pod${options.duration ? `; it stops by itself after ${options.duration}s` : ''}.`,
      '',
    ].join('\n'),
  );
  process.stdout.write(held.join(''));
  held = null;

  const ended = await waitForEnd(handle, options.duration, stopSignal.first);
  say(endMessage(ended));
  try {
    await handle.stop();
  } catch (err) {
    return fail(`cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    stopSignal.release();
  }
  say(`cleaned up: pod ${pod.namespace}/${pod.name} removed (processes, cgroups, log directories)`);
  if (ended.kind === 'finished' && ended.outcome.reason === 'failed') process.exitCode = 1;
}

type DemoEnd = { kind: 'finished'; outcome: ScenarioOutcome } | { kind: 'duration'; seconds: number } | { kind: 'signal'; signal: NodeJS.Signals };

const stopSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * The first stop signal resolves `first`; later ones only say that cleanup is under way, since
 * leaving before it ends would leave cgroups and processes behind.
 */
function catchStopSignals(): { first: Promise<NodeJS.Signals>; release(): void } {
  let seen = false;
  let resolveFirst: (signal: NodeJS.Signals) => void = () => undefined;
  const first = new Promise<NodeJS.Signals>((resolve) => (resolveFirst = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (seen) {
      process.stderr.write('leakwatch demo: cleaning up, please wait\n');
      return;
    }
    seen = true;
    resolveFirst(signal);
  };
  for (const s of stopSignals) process.on(s, onSignal);
  return { first, release: () => stopSignals.forEach((s) => process.off(s, onSignal)) };
}

/** The first of: the scenario plays out, --duration passes, a stop signal arrives. */
function waitForEnd(handle: ScenarioHandle, durationSeconds: number | undefined, signal: Promise<NodeJS.Signals>): Promise<DemoEnd> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (end: DemoEnd): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      resolve(end);
    };
    if (durationSeconds !== undefined) timer = setTimeout(() => settle({ kind: 'duration', seconds: durationSeconds }), durationSeconds * 1000);
    void signal.then((sig) => settle({ kind: 'signal', signal: sig }));
    void handle.finished.then((outcome) => settle({ kind: 'finished', outcome }));
  });
}

function endMessage(end: DemoEnd): string {
  switch (end.kind) {
    case 'signal':
      return `${end.signal}: stopping`;
    case 'duration':
      return `--duration ${end.seconds}s reached: stopping`;
    case 'finished':
      if (end.outcome.reason === 'failed') return `scenario failed: ${end.outcome.error}`;
      return 'scenario played out: stopping';
  }
}

function fail(reason: string): void {
  process.stderr.write(`leakwatch demo: ${reason}\n`);
  process.exitCode = 1;
}
