// The agent as the DaemonSet runs it, on this machine: the node's trees bind-mounted read-only
// under <root>/host/..., the manifest's own command (tini, nsenter into a cgroup namespace, the
// CLI) and args (with only the places rewritten), uid 0 holding exactly the capabilities of
// deploy/capabilities.json (setpriv: bounding set, no inheritable, no_new_privs), a real collector
// on loopback. It must find the fake-node pod, serve its probes and register with the collector.
// And SYS_PTRACE is shown to be needed: without it the pod process's executable is unreadable.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot } from '../support/cli.js';
import { startTestCollector, type TestCollector } from '../support/collector-harness.js';
import { createFakePod, fakeNodeAvailability, type FakePod } from '../support/fake-node.js';
import { createHostLayout, hostLayoutUnavailable, type HostLayout } from '../support/host-layout.js';
import { documentedCapabilities, expandArgs, find, loadManifest, podSpec, withFlag } from '../support/manifest.js';
import { freePort } from '../support/net.js';

const cliEntry = join(repoRoot, 'cli/main.ts');
const agentContainer = podSpec(find(loadManifest(), 'DaemonSet', 'leakwatch-agent')).containers[0]!;

function missing(): string | null {
  const node = fakeNodeAvailability();
  if (!node.ok) return node.reason;
  const layout = hostLayoutUnavailable();
  if (layout) return layout;
  for (const tool of ['setpriv', 'nsenter', 'tini']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `no ${tool} (.ci/run installs util-linux and tini)`;
  }
  return null;
}
const skipReason = missing();

/** setpriv arguments that leave uid 0 with exactly the given capabilities, as the pod spec does. */
function capabilityPrefix(names: string[]): string[] {
  const bounding = ['-all', ...names.map((n) => `+${n.toLowerCase()}`)].join(',');
  return ['setpriv', `--bounding-set=${bounding}`, '--inh-caps=-all', '--no-new-privs', '--'];
}

/**
 * The manifest's command for this machine: the CLI from source instead of /app/dist, and the
 * cgroup namespace of this test process instead of the node's pid 1 (here pid 1 is the sandbox's
 * init, whose namespaces even root cannot open); the path still goes through the mounted host /proc.
 */
function localCommand(command: string[], root: string): string[] {
  return command.flatMap((part) => {
    if (part === 'node') return [process.execPath, '--import', 'tsx'];
    if (part === '/app/dist/cli/main.js') return [cliEntry];
    if (part.startsWith('--cgroup=/host/proc/1/')) return [`--cgroup=${root}/host/proc/${process.pid}/ns/cgroup`];
    if (part === '/usr/bin/tini' || part === '/usr/bin/nsenter') return [spawnSync('sh', ['-c', `command -v ${part.split('/').pop()}`], { encoding: 'utf8' }).stdout.trim()];
    return [part];
  });
}

/** The environment without a developer's LEAKWATCH_* settings. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LEAKWATCH_')) env[k] = v;
  return { ...env, ...extra };
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  return { status: res.status, body: await res.text() };
}

async function until<T>(what: string, probe: () => Promise<T | null>, timeoutMs: number, log: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; agent stderr:\n${log().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('the agent in the DaemonSet mount layout', { skip: skipReason ? `SKIP: ${skipReason}` : false }, () => {
  let pod: FakePod;
  let layout: HostLayout;
  let collector: TestCollector;
  let work: string;
  let podPid: number;
  const children: ChildProcess[] = [];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'leakwatch-layout-work-'));
    pod = createFakePod({ namespace: 'shop', name: 'checkout-7d9f', containers: [{ name: 'web', limitBytes: 64 * 1024 * 1024 }] });
    // The workload runs as another user (65534), as pods usually do: reading its /proc entries
    // is what needs the agent's ptrace capability.
    const child = pod.spawnIn('web', 'setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', 'sleep', '120']);
    children.push(child);
    podPid = child.pid!;
    layout = createHostLayout({ podLogRoot: pod.podLogRoot, containerLogRoot: pod.containerLogRoot });
    collector = await startTestCollector();
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    try {
      layout?.cleanup();
    } finally {
      await pod?.destroy();
      await collector?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    }
  });

  it("finds the fake-node pod, serves /healthz and /readyz, and reports to the collector, with only the documented capabilities", async () => {
    const port = await freePort();
    const tokenFile = join(work, 'token');
    writeFileSync(tokenFile, `${collector.tokens.agent}\n`, { mode: 0o600 });
    let args = expandArgs(agentContainer, { 'spec.nodeName': 'node-layout', 'status.podIP': '127.0.0.1' })
      // The host trees: the same paths, under the layout's root.
      .map((a) => a.replace(/=\/host\//, `=${layout.root}/host/`));
    args = withFlag(args, '--collector', collector.collector.url);
    args = withFlag(args, '--token-file', tokenFile);
    args = withFlag(args, '--spool-dir', join(work, 'spool'));
    args = withFlag(args, '--metrics-listen', `127.0.0.1:${port}`);
    args = withFlag(args, '--interval', '0.5');
    const argv = [...capabilityPrefix(documentedCapabilities().map((c) => c.name)), ...localCommand(agentContainer.command!, layout.root), ...args];
    const agent = spawn(argv[0]!, argv.slice(1), { cwd: repoRoot, env: cleanEnv({ NODE_NAME: 'node-layout' }), stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(agent);
    let stderr = '';
    agent.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => agent.on('exit', (code) => resolve(code)));
    const log = () => stderr;

    const base = `http://127.0.0.1:${port}`;
    await until('/readyz 200', async () => ((await get(`${base}${agentContainer.readinessProbe!.httpGet!.path}`)).status === 200 ? true : null), 30_000, log);
    assert.equal((await get(`${base}${agentContainer.livenessProbe!.httpGet!.path}`)).status, 200);

    // The pod, named from the mounted /var/log/pods and measured through the mounted cgroup tree.
    const series = 'leakwatch_container_memory_anon_bytes{namespace="shop",pod="checkout-7d9f",container="web",node="node-layout"}';
    let lastMetrics = '';
    await until(`${series} in /metrics`, async () => ((lastMetrics = (await get(`${base}/metrics`)).body).includes(series) ? true : null), 15_000, () => `${log()}\n/metrics:\n${lastMetrics.split('\n').filter((l) => l.startsWith('leakwatch_container_memory_anon')).join('\n')}`);
    await until('the agent registered with the collector', async () => (collector.store.listAgents().some((a) => a.node === 'node-layout') ? true : null), 15_000, log);

    // It ran with exactly the documented capabilities (bounding set of the agent process).
    const agentPid = await until('the agent process', async () => findDescendant(agent.pid!, cliEntry), 5_000, log);
    const status = spawnSync('grep', ['-E', '^Cap(Eff|Bnd)', `/proc/${agentPid}/status`], { encoding: 'utf8' }).stdout;
    assert.match(status, new RegExp(`CapEff:\\s+${capabilityMask(documentedCapabilities().map((c) => c.name))}`), status);

    agent.kill('SIGTERM');
    assert.equal(await exited, 0, stderr.slice(-2000));
    assert.doesNotMatch(stderr, /"level":"error"/);
    assert.ok(!stderr.includes(collector.tokens.agent), 'the token is never logged');
  });

  it('SYS_PTRACE is what lets it read a pod process run by another user (leakwatch ps, same root flags)', () => {
    const roots = ['--proc-root', `${layout.root}/host/proc`, '--cgroup-root', `${layout.root}/host/sys/fs/cgroup`, '--pod-log-root', `${layout.root}/host/var/log/pods`];
    const ps = (caps: string[]) => {
      const argv = [...capabilityPrefix(caps), process.execPath, '--import', 'tsx', cliEntry, 'ps', '--json', '--pods-only', ...roots];
      const r = spawnSync(argv[0]!, argv.slice(1), { cwd: repoRoot, env: cleanEnv({}), encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 0, r.stderr);
      const rows = JSON.parse(r.stdout) as Array<{ pid: number; exe: string | null; pod: string | null; uid: number }>;
      const row = rows.find((x) => x.pid === podPid);
      assert.ok(row, `pid ${podPid} listed`);
      assert.equal(row.pod, 'checkout-7d9f');
      assert.equal(row.uid, 65534);
      return row;
    };
    const all = documentedCapabilities().map((c) => c.name);
    assert.match(ps(all).exe ?? '', /\/sleep$/);
    assert.equal(ps(all.filter((c) => c !== 'SYS_PTRACE')).exe, null);
  });
});

/** The pid of the process under `root` (inclusive) whose command line mentions `needle`. */
async function findDescendant(root: number, needle: string): Promise<number | null> {
  const r = spawnSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' });
  const rows = r.stdout.split('\n').map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l)).filter((m): m is RegExpExecArray => m !== null);
  const children = new Map<number, number[]>();
  for (const m of rows) children.set(Number(m[2]), [...(children.get(Number(m[2])) ?? []), Number(m[1])]);
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    const row = rows.find((m) => Number(m[1]) === pid);
    if (row && row[3]!.includes(needle) && !row[3]!.startsWith('setpriv') && !/\b(tini|nsenter)\b/.test(row[3]!.split(' ')[0]!)) return pid;
    queue.push(...(children.get(pid) ?? []));
  }
  return null;
}

const CAPABILITY_BITS: Record<string, number> = { DAC_READ_SEARCH: 2, KILL: 5, SYS_PTRACE: 19, SYS_ADMIN: 21, SYSLOG: 34 };

/** The /proc/<pid>/status CapEff hex of a set of capabilities. */
function capabilityMask(names: string[]): string {
  let mask = 0n;
  for (const n of names) {
    const bit = CAPABILITY_BITS[n];
    if (bit === undefined) throw new Error(`no bit known for ${n}: add it to CAPABILITY_BITS`);
    mask |= 1n << BigInt(bit);
  }
  return mask.toString(16).padStart(16, '0');
}
