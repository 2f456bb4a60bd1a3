// `npm run bench -- snapshot`: leakwatch's heap snapshot capture against the target's own
// v8.writeHeapSnapshot(), on targets holding about 100 MiB and 400 MiB of JS heap, each in a
// memory cgroup sized to fit and in its own network namespace (the pod case: through nsenter).
// Per target, in the same run: (a) the in-process writeHeapSnapshot() time, the floor; (b) the
// agent's capture from trigger to a hashed, fsynced file accepted by the spool; (c) the target's
// longest event-loop stall during (b); (d) the agent's peak RSS growth during (b), and its relay's.
// Writes bench/results/snapshot.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMemoryCgroup, killAndWait, type MemoryCgroup } from './support/sampler-fleet.js';
import { SNAPSHOT_TARGET_SOURCE } from './support/snapshot-target.js';
import { collectLines, createNetns, netnsAvailability, tempDir } from '../test/support/capture-targets.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');
const resultsFile = join(here, 'results', 'snapshot.json');
const MiB = 1024 * 1024;
const targets = { ratioMax: 1.25, agentRssGrowthMiBMax: 64 };
const sizesMiB = (process.env.LEAKWATCH_BENCH_SNAPSHOT_MIB ?? '100,400').split(',').map(Number);

interface RoundResult {
  loadAverage: number;
  /** (a) v8.writeHeapSnapshot() inside the target. */
  inProcessMs: number;
  /** (b) leakwatch: trigger → file in the spool (sha256 on the way, fsynced). */
  leakwatchMs: number;
  /** The HeapProfiler.takeHeapSnapshot round trip within (b). */
  leakwatchSnapshotMs: number;
  /** (c) longest event-loop stall of the target during (b). */
  targetPauseMs: number;
  /** (d) peak RSS of the agent process during (b) minus its RSS just before. */
  agentRssGrowthMiB: number;
  agentBaselineRssMiB: number;
  /** The netns relay helper (a separate process): its peak RSS. */
  relayPeakRssMiB: number;
  /** CPU time the agent and the relay spent during (b) (on 2 CPUs, it competes with the target). */
  agentCpuMs: number;
  relayCpuMs: number;
  snapshotBytes: number;
  ownSnapshotBytes: number;
  sha256Verified: boolean;
  /** What a snapshot costs the target: its peak RSS during (a) and during (b). */
  targetPeakRssDuringOwnMiB: number;
  targetPeakRssDuringCaptureMiB: number;
}

interface SizeResult {
  heapTargetMiB: number;
  heapUsedMiB: number;
  snapshotBytes: number;
  /** Medians over the rounds. */
  inProcessMs: number;
  leakwatchMs: number;
  ratio: number;
  targetPauseMs: number;
  /** Worst round. */
  agentRssGrowthMiB: number;
  relayPeakRssMiB: number;
  sha256Verified: boolean;
  targetRssBeforeMiB: number;
  targetPeakRssDuringCaptureMiB: number;
  rounds: RoundResult[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Rounds per size: a 400 MiB heap takes minutes per snapshot on this machine. */
function roundsFor(heapMiB: number): number {
  const fixed = Number(process.env.LEAKWATCH_BENCH_SNAPSHOT_ROUNDS);
  if (Number.isInteger(fixed) && fixed > 0) return fixed;
  return heapMiB <= 150 ? 3 : 1;
}

function sha256File(path: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (d) => h.update(d)).on('end', () => res(h.digest('hex'))).on('error', rej);
  });
}

async function send(child: ChildProcess, out: ReturnType<typeof collectLines>, command: string, reply: RegExp, timeoutMs: number): Promise<string> {
  const before = out.lines.length;
  child.stdin!.write(command + '\n');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = out.lines.slice(before).find((l) => reply.test(l));
    if (hit) return hit;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the target exited (${child.signalCode ?? child.exitCode}) before answering ${command}: OOM-killed in its cgroup?`);
    if (Date.now() > deadline) throw new Error(`target did not answer ${command} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function targetHwmMiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

function resetHwm(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

async function runAgent(pid: number, spoolDir: string): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', join(here, 'support', 'snapshot-agent.ts'), String(pid), spoolDir], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`the agent side exited with ${code}: ${out}`);
  return JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

async function measure(heapMiB: number, work: string, netnsName: string | null): Promise<SizeResult> {
  // Room for the heap and the snapshot's own working memory in the target: for this object-dense
  // heap, writeHeapSnapshot() peaked at about 12× the heap in use (1.3 GB RSS for 100 MiB).
  const limit = Math.ceil(heapMiB * 14 + 512) * MiB;
  const cgroup = createMemoryCgroup(`leakwatch-bench-snapshot-${process.pid}-${heapMiB}`, limit);
  if (typeof cgroup === 'string') throw new Error(cgroup);
  const scriptPath = join(work, 'target.cjs');
  writeFileSync(scriptPath, SNAPSHOT_TARGET_SOURCE);
  const cmd = netnsName ? ['ip', 'netns', 'exec', netnsName, process.execPath] : [process.execPath];
  const target = spawn('/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', join(cgroup.dir, 'cgroup.procs'), ...cmd, '--max-old-space-size=4096', scriptPath, String(heapMiB)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const out = collectLines(target);
    const ready = await out.waitFor(/^ready /, 300_000);
    const heapUsed = Number(ready.split(' ')[2]);
    const rssBeforeMiB = targetHwmMiB(target.pid!);
    const rounds: RoundResult[] = [];
    // (a) and (b) alternate round by round on the same target, so a noisy neighbour hits both alike.
    for (let round = 0; round < roundsFor(heapMiB); round++) {
      const loadAverage = os.loadavg()[0]!;
      const ownFile = join(work, `own-${heapMiB}.heapsnapshot`);
      resetHwm(target.pid!);
      const wrote = await send(target, out, `write ${ownFile}`, /^wrote /, 900_000);
      const inProcessMs = Number(wrote.split(' ')[1]);
      const ownBytes = statSync(ownFile).size;
      rmSync(ownFile);
      const targetPeakRssOwnMiB = targetHwmMiB(target.pid!);
      resetHwm(target.pid!);

      await send(target, out, 'lag-reset', /^lag-reset$/, 10_000);
      const spool = join(work, `spool-${heapMiB}-${round}`);
      mkdirSync(spool);
      const agent = await runAgent(target.pid!, spool);
      const lag = await send(target, out, 'lag-report', /^lag /, 10_000);
      const targetPeakRssCaptureMiB = targetHwmMiB(target.pid!);
      if (agent.outcome !== 'captured') throw new Error(`capture ${String(agent.outcome)}: ${String(agent.reason)}`);
      const path = agent.path as string;
      const verified = (await sha256File(path)) === agent.sha256 && statSync(path).size === agent.bytes;
      rmSync(spool, { recursive: true, force: true });
      const r: RoundResult = {
        loadAverage,
        inProcessMs,
        leakwatchMs: agent.totalMs as number,
        leakwatchSnapshotMs: agent.snapshotMs as number,
        targetPauseMs: Number(lag.split(' ')[1]),
        agentRssGrowthMiB: ((agent.agentPeakRssBytes as number) - (agent.agentBaselineRssBytes as number)) / MiB,
        agentBaselineRssMiB: (agent.agentBaselineRssBytes as number) / MiB,
        relayPeakRssMiB: (agent.relayPeakRssBytes as number) / MiB,
        agentCpuMs: agent.agentCpuMs as number,
        relayCpuMs: agent.relayCpuMs as number,
        snapshotBytes: agent.bytes as number,
        ownSnapshotBytes: ownBytes,
        sha256Verified: verified,
        targetPeakRssDuringOwnMiB: targetPeakRssOwnMiB,
        targetPeakRssDuringCaptureMiB: targetPeakRssCaptureMiB,
      };
      rounds.push(r);
      console.log(`  ${heapMiB} MiB round ${round + 1}: (a) ${(r.inProcessMs / 1000).toFixed(1)} s, (b) ${(r.leakwatchMs / 1000).toFixed(1)} s (agent CPU ${(r.agentCpuMs / 1000).toFixed(1)} s, relay CPU ${(r.relayCpuMs / 1000).toFixed(1)} s), load ${loadAverage.toFixed(1)}`);
    }
    const a = median(rounds.map((r) => r.inProcessMs));
    const bMs = median(rounds.map((r) => r.leakwatchMs));
    return {
      heapTargetMiB: heapMiB,
      heapUsedMiB: heapUsed / MiB,
      snapshotBytes: rounds[0]!.snapshotBytes,
      inProcessMs: a,
      leakwatchMs: bMs,
      ratio: bMs / a,
      targetPauseMs: median(rounds.map((r) => r.targetPauseMs)),
      agentRssGrowthMiB: Math.max(...rounds.map((r) => r.agentRssGrowthMiB)),
      relayPeakRssMiB: Math.max(...rounds.map((r) => r.relayPeakRssMiB)),
      sha256Verified: rounds.every((r) => r.sha256Verified),
      targetRssBeforeMiB: rssBeforeMiB,
      targetPeakRssDuringCaptureMiB: Math.max(...rounds.map((r) => r.targetPeakRssDuringCaptureMiB)),
      rounds,
    };
  } finally {
    await killAndWait(target);
    await (cgroup as MemoryCgroup).remove();
  }
}

export async function run(): Promise<unknown> {
  const loadAverageAtStart = os.loadavg();
  const ns = netnsAvailability();
  const work = tempDir('leakwatch-bench-snapshot-');
  const netns = ns.ok ? createNetns() : null;
  if (!ns.ok) console.log(`  no network namespace (${ns.reason}): targets share the agent's, no relay`);
  const results: SizeResult[] = [];
  try {
    for (const size of sizesMiB) results.push(await measure(size, work.path, netns?.name ?? null));
  } finally {
    netns?.remove();
    work.remove();
  }
  const row = (r: SizeResult): string =>
    `  heap ${r.heapUsedMiB.toFixed(0).padStart(4)} MiB  file ${(r.snapshotBytes / MiB).toFixed(0).padStart(4)} MiB  (a) ${(r.inProcessMs / 1000).toFixed(1)} s  (b) ${(r.leakwatchMs / 1000).toFixed(1)} s  (b)/(a) ${r.ratio.toFixed(2)}  (c) pause ${(r.targetPauseMs / 1000).toFixed(1)} s  (d) agent +${r.agentRssGrowthMiB.toFixed(1)} MiB, relay ${r.relayPeakRssMiB.toFixed(0)} MiB; target RSS ${r.targetRssBeforeMiB.toFixed(0)} → peak ${r.targetPeakRssDuringCaptureMiB.toFixed(0)} MiB`;
  for (const r of results) console.log(row(r));
  console.log('  (a), (b), (c): medians over the rounds; (d): the worst round');
  const summary = {
    bench: 'snapshot',
    atMs: Date.now(),
    node: process.version,
    cpus: os.cpus().length,
    loadAverageAtStart,
    viaNetnsRelay: netns !== null,
    targets,
    results,
    met: {
      ratio: results.every((r) => r.ratio <= targets.ratioMax),
      agentRss: results.every((r) => r.agentRssGrowthMiB <= targets.agentRssGrowthMiBMax),
      sha256: results.every((r) => r.sha256Verified),
    },
    notes: [
      '(a) and (b) alternate round by round on the same target; inProcessMs, leakwatchMs, ratio and targetPauseMs are medians over the rounds, agentRssGrowthMiB the worst round.',
      '(b) runs in its own process (bench/support/snapshot-agent.ts) so its RSS is the agent side alone; its peak is VmHWM reset just before the capture.',
      'The netns relay is a separate process (node -e, under nsenter); its peak RSS is listed apart from the agent.',
      '(b) ends when the spool accepted the file: written, sha256 computed on the way, fsynced; the sha256 is re-checked by reading the file back afterwards (not timed).',
      'Upload to the collector is not included yet (the lead extends (b) to the collector).',
    ],
  };
  mkdirSync(dirname(resultsFile), { recursive: true });
  writeFileSync(resultsFile, JSON.stringify(summary, null, 2) + '\n');
  return summary;
}
