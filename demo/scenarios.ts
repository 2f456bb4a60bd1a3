// The users' incidents (/work/shared/seeds) as workloads that run in a fake pod on this machine,
// and the controls that must not produce findings. `leakwatch demo <scenario>` runs one for a
// newcomer to watch; the real-kernel tests run them to check what leakwatch finds. Workloads
// are the Python programs in demo/workloads/; each scenario says how to drive its pod.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFakePod, fakeNodeAvailability, type FakeNodeAvailability, type FakePod } from './fake-pod.js';
import {
  scaledKubeletBackoff,
  superviseContainer,
  type ContainerEvent,
  type ContainerProcessSpec,
  type RestartPolicy,
  type SupervisedContainer,
} from './container-supervisor.js';

export type { ContainerEvent, ExitReason } from './container-supervisor.js';

const MiB = 1024 * 1024;

/** What leakwatch should report for a scenario; controls and fixes expect nothing. */
export type ExpectedFinding = 'growth' | 'fan-out' | 'suspicious-spawn' | 'oom-kill';

export type ScenarioEvent =
  | ContainerEvent
  /** One request of a scenario's load driver (metrics-app's curl loop). */
  | { kind: 'request'; atMs: number; index: number; path: string; status: number | null; body: string; error: string | null; durationMs: number }
  | { kind: 'note'; atMs: number; text: string };

export interface ScenarioContext {
  /** Absolute directory holding the workload programs. */
  workloadsDir: string;
  /** Aborted when the scenario is stopped; drivers return promptly once it is. */
  signal: AbortSignal;
  emit(event: ScenarioEvent): void;
  /** A human-readable line about what the driver does. */
  onLog(text: string): void;
  /** Calls the listener with every event from now on; returns the unsubscribe function. */
  subscribe(listener: (event: ScenarioEvent) => void): () => void;
  /** Resolves with the first event (past or future) that matches; rejects on timeout or stop. */
  waitFor(match: (event: ScenarioEvent) => boolean, timeoutMs: number): Promise<ScenarioEvent>;
  /** Run a Python workload as a container's main process, restarted like kubelet would. */
  runPython(container: string, script: string, args?: string[], readyPattern?: RegExp): SupervisedContainer;
  /** Runs after the pod is destroyed (files the workload left outside the pod). */
  onCleanup(fn: () => void): void;
}

export interface ScenarioContainer {
  name: string;
  limitBytes: number;
}

export interface Scenario {
  name: string;
  description: string;
  /** The incident write-up it comes from (/work/shared/seeds/<id>_*), null for a plain control. */
  seed: '000/001' | '002' | '003' | '004' | null;
  kind: 'incident' | 'fix' | 'control';
  expects: ExpectedFinding[];
  namespace: string;
  podName: string;
  containers: ScenarioContainer[];
  /** Restarts after OOM kills (or any exit) before the container is left in CrashLoopBackOff. */
  maxRestarts: number;
  /** What happens, roughly when, measured on the development machine. */
  timeline: string;
  /** Drives the pod; resolves when the scenario has played out (controls: only when stopped). */
  run(pod: FakePod, ctx: ScenarioContext): Promise<void>;
}

const scenarioList: Scenario[] = [
  {
    name: 'metrics-app',
    description:
      'GET /counter starts a "metrics collector" decoded from resources.dat into /tmp and run with python3; each one keeps another 10 MiB block every 12 s, forever. After 20 s of serving, 21 requests, one per 1.5 s, like the seed\'s curl loop: every request adds a leaking process, and together they fill the container.',
    seed: '000/001',
    kind: 'incident',
    expects: ['suspicious-spawn', 'fan-out', 'growth', 'oom-kill'],
    namespace: 'default',
    podName: 'metrics-app-5c9d7b8f6d-x2k4p',
    containers: [{ name: 'metrics-app', limitBytes: 192 * MiB }],
    maxRestarts: 3,
    timeline:
      "20 s of serving at ~11 MiB; from the first request the container climbs (~5 MiB/s, faster as collectors pile up) to its 192 MiB limit, and the first OOM kill comes ~22 s later, then one every 1.5-4 s: the kernel kills a collector, the server keeps answering (cgroup v1). leakwatch: the suspicious spawn at once, the fan-out ~9 s and the container's growth with an ETA ~14 s after the first request. Ends 20 s after the 21st request (~75 s)",
    run: runMetricsApp,
  },
  {
    name: 'data-processor',
    description: 'Appends every event (a dict with a 10 kB payload) to a list that is never cleared: ~1.5 MiB/s until the 128 MiB limit.',
    seed: '003',
    kind: 'incident',
    expects: ['growth', 'oom-kill'],
    namespace: 'default',
    podName: 'data-processor-6b7f9c8d5-q8w2n',
    containers: [{ name: 'data-processor', limitBytes: 128 * MiB }],
    maxRestarts: 3,
    timeline: 'OOMKilled ~75 s after start, restarted after 1 s, 2 s, 4 s; ends in CrashLoopBackOff after ~5 min',
    run: (_pod, ctx) => runUntilCrashLoop(ctx, 'data-processor', 'data-processor/app.py'),
  },
  {
    name: 'payment-processor',
    description:
      'A payment-method cache with no eviction grows ~1 MiB/s under steady load on a ~60 MiB working set, with a GC-like 16 MiB sawtooth every 4 s on top; the OOM kill comes on a sawtooth peak.',
    seed: '002',
    kind: 'incident',
    expects: ['growth', 'oom-kill'],
    namespace: 'payments',
    podName: 'payment-processor-7d8f9c4b2f-abc12',
    containers: [{ name: 'payment-processor', limitBytes: 160 * MiB }],
    maxRestarts: 3,
    timeline: '5 s warm-up to ~60 MiB, then the floor rises ~1 MiB/s; OOMKilled ~90 s after start; restarts after 1 s, 2 s, 4 s',
    run: (_pod, ctx) => runUntilCrashLoop(ctx, 'payment-processor', 'payment-processor/app.py'),
  },
  {
    name: 'stress-test',
    description: 'Allocates past its 50 MiB limit right at start (a list of bytearrays, 2 MiB every 50 ms); restarted three times with back-off, then CrashLoopBackOff.',
    seed: '004',
    kind: 'incident',
    expects: ['oom-kill'],
    namespace: 'default',
    podName: 'oom-example-pod',
    containers: [{ name: 'oom-container', limitBytes: 50 * MiB }],
    maxRestarts: 3,
    timeline: 'OOMKilled ~1 s after each start; restarts after 1 s, 2 s, 4 s; 4 OOM kills and CrashLoopBackOff within ~12 s',
    run: (_pod, ctx) => runUntilCrashLoop(ctx, 'oom-container', 'stress-test/app.py'),
  },
  {
    name: 'data-processor-fixed',
    description: "Seed 003's fix: the same event stream, keeping only the last 100 events.",
    seed: '003',
    kind: 'fix',
    expects: [],
    namespace: 'default',
    podName: 'data-processor-7f8c6d9b4-m3v7t',
    containers: [{ name: 'data-processor', limitBytes: 128 * MiB }],
    maxRestarts: 3,
    timeline: 'flat at ~10 MiB from the first second; runs until stopped',
    run: (_pod, ctx) => runUntilCrashLoop(ctx, 'data-processor', 'data-processor/fixed.py'),
  },
  {
    name: 'payment-processor-fixed',
    description: "Seed 002's fix: the cache is an LRU of 20,000 entries, so memory grows while it fills, then plateaus; same sawtooth.",
    seed: '002',
    kind: 'fix',
    expects: [],
    namespace: 'payments',
    podName: 'payment-processor-7d8f9c4b2f-def34',
    containers: [{ name: 'payment-processor', limitBytes: 160 * MiB }],
    maxRestarts: 3,
    timeline: '5 s warm-up to ~60 MiB, cache fills for ~25 s, then a flat floor near ~85 MiB under the sawtooth; runs until stopped',
    run: (_pod, ctx) => runUntilCrashLoop(ctx, 'payment-processor', 'payment-processor/fixed.py'),
  },
  {
    name: 'control-sawtooth',
    description: 'Maps 2 MiB every 250 ms up to 20 MiB, releases it all, repeats: a steady sawtooth with a flat floor.',
    seed: null,
    kind: 'control',
    expects: [],
    namespace: 'leakwatch-controls',
    podName: 'sawtooth-6d5f8c7b9-p4r8s',
    containers: [{ name: 'sawtooth', limitBytes: 128 * MiB }],
    maxRestarts: 3,
    timeline: '5 s period between ~8 and ~28 MiB; runs until stopped',
    run: (_pod, ctx) => runUntilCrashLoop(ctx, 'sawtooth', 'controls/sawtooth.py'),
  },
  {
    name: 'control-warmup-plateau',
    description: 'Grows 40 MiB over its first 20 s (a warm-up), then stays flat while doing light work.',
    seed: null,
    kind: 'control',
    expects: [],
    namespace: 'leakwatch-controls',
    podName: 'warmup-plateau-7b9d6c5f8-h6j2k',
    containers: [{ name: 'warmup-plateau', limitBytes: 128 * MiB }],
    maxRestarts: 3,
    timeline: 'grows ~2 MiB/s for 20 s to ~48 MiB, then flat; runs until stopped',
    run: (_pod, ctx) => runUntilCrashLoop(ctx, 'warmup-plateau', 'controls/warmup-plateau.py'),
  },
  {
    name: 'control-prefork-pool',
    description: 'A pre-fork server: the parent forks 4 workers at start (os.fork), each loads 8 MiB and then serves light requests with flat memory.',
    seed: null,
    kind: 'control',
    expects: [],
    namespace: 'leakwatch-controls',
    podName: 'prefork-pool-5b8c7d6f9-w9x3z',
    containers: [{ name: 'prefork-pool', limitBytes: 128 * MiB }],
    maxRestarts: 3,
    timeline: '5 processes at start, flat from then on; runs until stopped',
    run: (_pod, ctx) => runUntilCrashLoop(ctx, 'prefork-pool', 'controls/prefork-pool.py'),
  },
  {
    name: 'control-bounded-buffer',
    description: "Seed 001's fix: the collector still allocates a 10 MiB block every 0.5 s but keeps them in deque(maxlen=3).",
    seed: '000/001',
    kind: 'fix',
    expects: [],
    namespace: 'leakwatch-controls',
    podName: 'bounded-buffer-8c6d9f7b5-t5y7u',
    containers: [{ name: 'bounded-buffer', limitBytes: 128 * MiB }],
    maxRestarts: 3,
    timeline: 'flat at ~45 MiB (3-4 blocks) after 2 s; runs until stopped',
    run: (_pod, ctx) => runUntilCrashLoop(ctx, 'bounded-buffer', 'controls/bounded-buffer.py'),
  },
  {
    name: 'control-normal-script',
    description: 'An app that runs its own helper `python3 worker.py` (an installed file, not /tmp) every 2 s; each run takes about a second and exits.',
    seed: null,
    kind: 'control',
    expects: [],
    namespace: 'leakwatch-controls',
    podName: 'normal-script-9d7b5c8f6-a1s2d',
    containers: [{ name: 'normal-script', limitBytes: 128 * MiB }],
    maxRestarts: 3,
    timeline: 'a short-lived python3 worker.py child every 2 s; runs until stopped',
    run: runNormalScript,
  },
];

export const scenarios: ReadonlyMap<string, Scenario> = new Map(scenarioList.map((s) => [s.name, s]));
export const scenarioNames: readonly string[] = scenarioList.map((s) => s.name);

export interface RunScenarioOptions {
  /** Every event as it happens (container output, starts, exits, OOM kills, requests). */
  onEvent?: (event: ScenarioEvent) => void;
  /** The same, as one human-readable line each. */
  onLog?: (line: string) => void;
  /** Parent of the fake `pods/` and `containers/` log directories; default: a temp directory. */
  logRoot?: string;
  /** Override the scenario's restart budget (tests that only need the first OOM kill). */
  maxRestarts?: number;
  /** Where the workload programs are; default: found next to this module. */
  workloadsDir?: string;
}

export type ScenarioOutcome = { reason: 'completed' } | { reason: 'stopped' } | { reason: 'failed'; error: string };

export interface ScenarioHandle {
  readonly scenario: Scenario;
  readonly pod: FakePod;
  /** The private copy of the workloads the scenario runs (removed by stop()). */
  readonly workloadsDir: string;
  /** Events so far (the oldest container output is dropped past a bound). */
  readonly events: readonly ScenarioEvent[];
  /** Settles (never rejects) when the scenario has played out, failed or been stopped. */
  readonly finished: Promise<ScenarioOutcome>;
  waitFor(match: (event: ScenarioEvent) => boolean, timeoutMs: number): Promise<ScenarioEvent>;
  /** Stop the drivers, kill every process, remove the pod's cgroups and log directories. Safe to call twice. */
  stop(): Promise<void>;
}

const MAX_KEPT_EVENTS = 20_000;
const STOP_DRIVER_TIMEOUT_MS = 10_000;

/** Root, a writable cgroup v1 memory controller, and python3 on PATH. */
export function demoAvailability(): FakeNodeAvailability {
  const node = fakeNodeAvailability();
  if (!node.ok) return node;
  if (resolvePython() === null) return { ok: false, reason: 'python3 not found on PATH (the demo workloads are Python programs)' };
  return { ok: true };
}

/** Starts the scenario in a new fake pod. Rejects (with nothing left behind) when it cannot. */
export async function runScenario(name: string, options: RunScenarioOptions = {}): Promise<ScenarioHandle> {
  const scenario = scenarios.get(name);
  if (!scenario) throw new Error(`unknown scenario "${name}" (one of: ${scenarioNames.join(', ')})`);
  const availability = demoAvailability();
  if (!availability.ok) throw new Error(availability.reason);
  const python = resolvePython();
  if (python === null) throw new Error('python3 not found on PATH');
  // createFakePod makes the cgroups before the log directories; failing on the latter would
  // leave the cgroups behind, so the log root is checked first.
  if (options.logRoot !== undefined) checkLogRoot(options.logRoot);
  // The workloads run from a private copy, as an app runs from its image's /app: a checkout under
  // /tmp would otherwise make every workload "a script in a world-writable place".
  const workloadsDir = installWorkloads(options.workloadsDir ?? findWorkloadsDir());

  let pod: FakePod;
  try {
    pod = createFakePod({
      namespace: scenario.namespace,
      name: scenario.podName,
      containers: scenario.containers,
      ...(options.logRoot === undefined ? {} : { logRoot: options.logRoot }),
    });
  } catch (err) {
    rmSync(workloadsDir, { recursive: true, force: true });
    throw err;
  }

  const events: ScenarioEvent[] = [];
  const listeners = new Set<(event: ScenarioEvent) => void>();
  const cleanups: Array<() => void> = [() => rmSync(workloadsDir, { recursive: true, force: true })];
  const aborter = new AbortController();
  const supervised: SupervisedContainer[] = [];

  const emit = (event: ScenarioEvent): void => {
    events.push(event);
    if (events.length > MAX_KEPT_EVENTS) {
      const oldestLog = events.findIndex((e) => e.kind === 'log');
      events.splice(oldestLog >= 0 ? oldestLog : 0, 1);
    }
    for (const listener of listeners) listener(event);
    options.onEvent?.(event);
    const line = formatScenarioEvent(event, pod);
    if (line !== null) options.onLog?.(line);
  };

  const waitFor = (match: (event: ScenarioEvent) => boolean, timeoutMs: number): Promise<ScenarioEvent> => {
    const past = events.find(match);
    if (past) return Promise.resolve(past);
    if (aborter.signal.aborted) return Promise.reject(new Error(`scenario ${name} is stopped`));
    return new Promise((resolve, reject) => {
      const finish = (outcome: () => void): void => {
        clearTimeout(timer);
        listeners.delete(listener);
        aborter.signal.removeEventListener('abort', onAbort);
        outcome();
      };
      const listener = (event: ScenarioEvent): void => {
        if (match(event)) finish(() => resolve(event));
      };
      const onAbort = (): void => finish(() => reject(new Error(`scenario ${name} stopped while waiting`)));
      const timer = setTimeout(() => finish(() => reject(new Error(`scenario ${name}: timed out after ${timeoutMs} ms waiting for an event`))), timeoutMs);
      listeners.add(listener);
      aborter.signal.addEventListener('abort', onAbort, { once: true });
    });
  };

  const policy: RestartPolicy = { maxRestarts: options.maxRestarts ?? scenario.maxRestarts, backoffMs: scaledKubeletBackoff };
  const env = workloadEnv(python);
  const ctx: ScenarioContext = {
    workloadsDir,
    signal: aborter.signal,
    emit,
    onLog: (text) => emit({ kind: 'note', atMs: Date.now(), text }),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    waitFor,
    runPython(container, script, args = [], readyPattern = /^(ready|listening on)\b/) {
      const path = join(workloadsDir, script);
      const spec: ContainerProcessSpec = { container, command: 'python3', args: [path, ...args], cwd: dirname(path), env, readyPattern };
      const handle = superviseContainer(pod, spec, policy, { emit, signal: aborter.signal });
      supervised.push(handle);
      return handle;
    },
    onCleanup: (fn) => cleanups.push(fn),
  };

  const finished: Promise<ScenarioOutcome> = scenario.run(pod, ctx).then(
    (): ScenarioOutcome => (aborter.signal.aborted ? { reason: 'stopped' } : { reason: 'completed' }),
    (err: unknown): ScenarioOutcome => (aborter.signal.aborted ? { reason: 'stopped' } : { reason: 'failed', error: err instanceof Error ? err.message : String(err) }),
  );

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      aborter.abort();
      // A driver that does not return in time must not keep the pod alive: destroy kills anyway.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_DRIVER_TIMEOUT_MS)));
      await Promise.race([Promise.all(supervised.map((s) => s.stop())).then(() => finished), timeout]);
      clearTimeout(timer);
      try {
        await pod.destroy();
      } finally {
        for (const fn of cleanups) {
          try {
            fn();
          } catch {
            // best effort: a leftover temp file is not worth failing the cleanup for
          }
        }
      }
    })();
    return stopping;
  };

  return { scenario, pod, workloadsDir, events, finished, waitFor, stop };
}

/** One line for the demo's terminal; null for events that say nothing new (readiness). */
export function formatScenarioEvent(event: ScenarioEvent, pod: Pick<FakePod, 'namespace' | 'name'>): string | null {
  switch (event.kind) {
    case 'log':
      return `${event.container} | ${event.line}`;
    case 'ready':
      return null;
    case 'started':
      return `kubelet: started container ${event.container} (pid ${event.pid}${event.restartCount ? `, restart ${event.restartCount}` : ''})`;
    case 'exited':
      if (event.reason === 'Stopped') return `kubelet: stopped container ${event.container} (exit ${event.exitCode})`;
      return `kubelet: container ${event.container} ${event.reason} (exit ${event.exitCode})`;
    case 'oom-kill':
      return event.mainProcessAlive
        ? `kernel: OOM kill in container ${event.container} (oom_kill ${event.oomKillsTotal}); its main process lives on, so Kubernetes reports nothing`
        : `kernel: OOM kill in container ${event.container} (oom_kill ${event.oomKillsTotal})`;
    case 'backoff':
      return `kubelet: Back-off restarting failed container ${event.container} in pod ${pod.namespace}/${pod.name}: restart ${event.restartCount} in ${event.delayMs / 1000}s`;
    case 'crash-loop':
      return `kubelet: container ${event.container} is in CrashLoopBackOff after ${event.restartCount} restarts; the demo stops restarting it`;
    case 'request':
      return event.status === null
        ? `curl ${event.path} #${event.index} → failed: ${event.error ?? 'no answer'} (behind nginx: 502 Bad Gateway)`
        : `curl ${event.path} #${event.index} → ${event.status} ${event.body.trim()} (${event.durationMs} ms)`;
    case 'note':
      return event.text;
  }
}

// ---- drivers -------------------------------------------------------------------------------

/** Run the workload, restart it like kubelet after every exit, end when it stays down. */
async function runUntilCrashLoop(ctx: ScenarioContext, container: string, script: string): Promise<void> {
  await ctx.runPython(container, script).done;
}

const COUNTER_REQUESTS = 21;
const COUNTER_INTERVAL_MS = 1500;
const SERVING_BEFORE_LOAD_MS = 20_000;
const REQUEST_TIMEOUT_MS = 5000;
const READY_TIMEOUT_MS = 15_000;
const COLLECTOR_DRAIN_MS = 20_000;
/** Only files the app logged as its collectors, in the shape tempfile gives them, are removed. */
const collectorLine = /^collector: started pid \d+ running (\/tmp\/tmp[A-Za-z0-9_]+\.py)$/;

async function runMetricsApp(pod: FakePod, ctx: ScenarioContext): Promise<void> {
  const port = await freeLocalPort();
  const off = watchCollectorFiles(ctx);
  try {
    const app = ctx.runPython('metrics-app', 'metrics-app/app.py', [String(port)]);
    try {
      await ctx.waitFor((e) => e.kind === 'ready' && e.container === 'metrics-app', READY_TIMEOUT_MS);
    } catch (err) {
      if (ctx.signal.aborted) return;
      ctx.onLog(`metrics-app did not say it was listening (${(err as Error).message}); sending requests anyway`);
    }
    // The seed's app had been serving for a while when the curl loop began. A server's first
    // seconds are when pre-fork pools start their workers, which leakwatch does not count as
    // fan-out, and a container's first 15 s are its start-up, which leakwatch does not trend: the
    // load comes after both, so the climb to the limit is watched from its flat beginning.
    ctx.onLog(`app up; the curl loop starts in ${SERVING_BEFORE_LOAD_MS / 1000}s`);
    await sleep(SERVING_BEFORE_LOAD_MS, ctx.signal);
    ctx.onLog(`driver: ${COUNTER_REQUESTS} × GET http://127.0.0.1:${port}/counter, one every ${COUNTER_INTERVAL_MS / 1000}s (the seed's curl loop)`);
    const startedAt = Date.now();
    for (let index = 1; index <= COUNTER_REQUESTS; index++) {
      if (ctx.signal.aborted) return;
      const t0 = Date.now();
      const answer = await httpGet(port, '/counter', ctx.signal);
      ctx.emit({ kind: 'request', atMs: Date.now(), index, path: '/counter', durationMs: Date.now() - t0, ...answer });
      if (index < COUNTER_REQUESTS) await sleep(Math.max(0, startedAt + index * COUNTER_INTERVAL_MS - Date.now()), ctx.signal);
    }
    // The collectors started by the last requests are still growing: let them play out.
    const drainUntil = Date.now() + COLLECTOR_DRAIN_MS;
    while (!ctx.signal.aborted && Date.now() < drainUntil && pod.pids('metrics-app').length > 1) await sleep(250, ctx.signal);
    if (!ctx.signal.aborted) ctx.onLog(`driver: done; metrics-app restarted ${app.restartCount()} times`);
  } finally {
    off();
  }
}

/** Remember the scripts metrics-app writes to /tmp, to remove them when the pod is gone. */
function watchCollectorFiles(ctx: ScenarioContext): () => void {
  const seen = new Set<string>();
  ctx.onCleanup(() => {
    for (const file of seen) rmSync(file, { force: true });
  });
  return ctx.subscribe((event) => {
    if (event.kind !== 'log') return;
    const file = collectorLine.exec(event.line)?.[1];
    if (file) seen.add(file);
  });
}

async function runNormalScript(_pod: FakePod, ctx: ScenarioContext): Promise<void> {
  const dir = join(ctx.workloadsDir, 'controls', 'normal-script');
  // The control stands for an installed helper, not a script written moments before it runs;
  // a fresh checkout gives the files a recent mtime, so they are dated back.
  for (const file of ['runner.py', 'worker.py']) {
    const error = backdate(join(dir, file), 24 * 3600 * 1000);
    if (error) ctx.onLog(`note: could not date back ${file}: ${error}`);
  }
  await ctx.runPython('normal-script', 'controls/normal-script/runner.py').done;
}

function backdate(file: string, ageMs: number): string | null {
  try {
    if (Date.now() - statSync(file).mtimeMs >= ageMs / 2) return null;
    const when = new Date(Date.now() - ageMs);
    utimesSync(file, when, when);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

// ---- helpers -------------------------------------------------------------------------------

let pythonPath: string | null | undefined;

/** The real interpreter behind `python3` (not a pyenv-style shim), or null without one. */
export function resolvePython(): string | null {
  if (pythonPath !== undefined) return pythonPath;
  const probe = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8', timeout: 15_000 });
  const path = probe.status === 0 ? probe.stdout.trim() : '';
  pythonPath = path.startsWith('/') ? path : null;
  return pythonPath;
}

function workloadEnv(python: string): NodeJS.ProcessEnv {
  // The interpreter's own directory comes first so `python3` in the pod (and in metrics-app's
  // collector spawns) is the interpreter itself rather than a wrapper script around it.
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(python)}:${process.env.PATH ?? '/usr/bin:/bin'}`, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' };
  // metrics-app's collector scripts belong in /tmp, as in the seed.
  delete env.TMPDIR;
  return env;
}

function checkLogRoot(logRoot: string): void {
  for (const dir of [join(logRoot, 'pods'), join(logRoot, 'containers')]) {
    try {
      mkdirSync(dir, { recursive: true });
      accessSync(dir, constants.W_OK);
    } catch (err) {
      throw new Error(`cannot write pod logs under ${logRoot}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/** demo/workloads next to this module, or in the source tree when running from dist/. */
/** Root-only directory for the demo's app copies (the demo needs root for its cgroups anyway). */
const INSTALL_ROOT = existsSync('/run') ? '/run/leakwatch-demo' : '/var/lib/leakwatch-demo';

function installWorkloads(source: string): string {
  mkdirSync(INSTALL_ROOT, { recursive: true, mode: 0o700 });
  const target = mkdtempSync(join(INSTALL_ROOT, 'app-'));
  cpSync(source, target, { recursive: true, preserveTimestamps: true });
  return target;
}

export function findWorkloadsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'workloads'), join(here, '..', '..', 'demo', 'workloads')];
  const found = candidates.find((dir) => existsSync(join(dir, 'metrics-app', 'app.py')));
  if (!found) throw new Error(`demo workloads not found (looked in ${candidates.join(', ')})`);
  return found;
}

function freeLocalPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port on 127.0.0.1'))));
    });
  });
}

const MAX_BODY_BYTES = 4096;

function httpGet(port: number, path: string, signal: AbortSignal): Promise<{ status: number | null; body: string; error: string | null }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: REQUEST_TIMEOUT_MS, signal }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size < MAX_BODY_BYTES) chunks.push(chunk);
        size += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? null, body: Buffer.concat(chunks).toString('utf8').slice(0, MAX_BODY_BYTES), error: null }));
      res.on('error', (err) => resolve({ status: null, body: '', error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: null, body: '', error: err.code ? `${err.code} ${err.message}` : err.message }));
    req.end();
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** One line naming a scenario, its kind, pod and limits (`leakwatch demo --list`). */
export function scenarioSummary(s: Scenario): string {
  const limits = s.containers.map((c) => `${c.name} ${c.limitBytes / MiB} MiB`).join(', ');
  return `${s.name} [${s.kind}${s.seed ? `, seed ${s.seed}` : ''}] ${s.namespace}/${s.podName} (${limits})`;
}

