// `npm run bench -- snapshot`: leakwatch's heap snapshot capture, end to end, against the target's
// own v8.writeHeapSnapshot(), on targets holding about 100 MiB and 400 MiB of JS heap, each in a
// pod-shaped memory cgroup sized to fit and in its own network namespace (the pod case: the
// agent reaches the inspector through nsenter). leakwatch runs as in production: `leakwatch
// collector` and `leakwatch agent` as two separate processes of the compiled CLI. Per target, in
// the same run: (a) the in-process writeHeapSnapshot() time, the floor; (b) leakwatch from the
// trigger (POST /api/v1/snapshots) to the API's answer that the snapshot is stored and its sha256
// verified at the collector, with the part up to the agent's spool as a breakdown; (c) the
// target's longest event-loop stall during (b); (d) the peak RSS growth of the agent process and
// of the collector process during (b) (VmHWM reset just before). Writes bench/results/snapshot.json.
import { type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SNAPSHOT_TARGET_SOURCE } from './support/snapshot-target.js';
import { createSnapshotBenchPod, POD_NAMES_RESCAN_MS } from './support/snapshot-pod.js';
import { startSnapshotPipeline, type SnapshotPipeline } from './support/snapshot-pipeline.js';
import { buildForBench, killAndWait, readProcCpuMs } from './support/collector-process.js';
import { collectLines, createNetns, netnsAvailability } from '../test/support/capture-targets.js';
import { snapshotFilePath, snapshotDir } from '../server/store/snapshot-files.js';
import type { FakePod } from '../demo/fake-pod.js';

const here = dirname(fileURLToPath(import.meta.url));
const resultsFile = join(here, 'results', 'snapshot.json');
const MiB = 1024 * 1024;
const targets = { ratioMax: 1.25, agentRssGrowthMiBMax: 64, collectorRssGrowthMiBMax: 64 };
const sizesMiB = (process.env.LEAKWATCH_BENCH_SNAPSHOT_MIB ?? '100,400').split(',').map(Number);

interface RoundResult {
  loadAverage: number;
  /** (a) v8.writeHeapSnapshot() inside the target. */
  inProcessMs: number;
  /** (b) leakwatch: POST /api/v1/snapshots → answered with the snapshot stored and verified at the collector. */
  leakwatchMs: number;
  /** Within (b): trigger → the agent logged the file accepted by its spool (hashed, fsynced). */
  toAgentSpoolMs: number;
  /** Within (b): the HeapProfiler.takeHeapSnapshot round trip, as the agent measured it. */
  leakwatchSnapshotMs: number;
  /** Within (b): spooled → answered (upload, verify, store, the API's answer). */
  spoolToStoredMs: number;
  /** (c) longest event-loop stall of the target during (b). */
  targetPauseMs: number;
  /** (d) VmHWM during (b) (reset just before) minus VmRSS just before, per process. */
  agentRssGrowthMiB: number;
  agentBaselineRssMiB: number;
  collectorRssGrowthMiB: number;
  collectorBaselineRssMiB: number;
  /** The agent's netns relay helper (a separate process, nsenter + node -e): its peak RSS, sampled every 20 ms. */
  relayPeakRssMiB: number;
  /** CPU time spent during (b) (on 2 CPUs, it competes with the target). */
  agentCpuMs: number;
  collectorCpuMs: number;
  relayCpuMs: number;
  snapshotBytes: number;
  ownSnapshotBytes: number;
  /** The collector's file re-hashed after (b) (not timed) equals the sha256 the agent computed and the API returned. */
  sha256Verified: boolean;
  /** What a snapshot costs the target: its peak RSS during (a) and during (b). */
  targetPeakRssDuringOwnMiB: number;
  targetPeakRssDuringCaptureMiB: number;
}

interface SizeResult {
  heapTargetMiB: number;
  heapUsedMiB: number;
  cgroupLimitMiB: number;
  snapshotBytes: number;
  /** Medians over the rounds. */
  inProcessMs: number;
  leakwatchMs: number;
  toAgentSpoolMs: number;
  ratio: number;
  spoolRatio: number;
  targetPauseMs: number;
  /** Worst round. */
  agentRssGrowthMiB: number;
  collectorRssGrowthMiB: number;
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

function statusMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

function resetHwm(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        out.push(...readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
      } catch {
        // thread gone
      }
    }
  } catch {
    // process gone
  }
  return out;
}

/** The agent's helpers (the netns relay): peak RSS and CPU time, sampled every 20 ms. */
function watchHelpers(agentPid: number): { stop(): { peakRssMiB: number; cpuMs: number } } {
  let peakKiB = 0;
  const cpuMsByPid = new Map<number, number>();
  const timer = setInterval(() => {
    for (const c of childPids(agentPid)) {
      try {
        const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${c}/status`, 'utf8'));
        if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
      } catch {
        // exited
      }
      const cpu = readProcCpuMs(c);
      if (cpu !== null) cpuMsByPid.set(c, cpu);
    }
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      return { peakRssMiB: peakKiB / 1024, cpuMs: [...cpuMsByPid.values()].reduce((a, b) => a + b, 0) };
    },
  };
}

interface TakeAnswer {
  capture?: { outcome: string; reason: string | null; snapshotIds: string[] };
  snapshots?: Array<{ snapshotId: string; kind: 'heapsnapshot'; bytes: number; sha256: string; durationMs: number }>;
  message?: string;
}

/** Until the collector lists the pod's target (from the agent's finding about it): the API needs it to route. */
async function waitUntilKnown(pipeline: SnapshotPipeline, pod: FakePod): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    const r = await pipeline.api('GET', `/api/v1/targets?namespace=${pod.namespace}&pod=${pod.name}`);
    const list = (r.json as { targets?: unknown[] }).targets;
    if (r.status === 200 && Array.isArray(list) && list.length > 0) return;
    if (Date.now() > until) {
      const findings = await pipeline.api('GET', '/api/v1/findings?limit=1000');
      if (process.env.LEAKWATCH_BENCH_DEBUG_DIR) {
        writeFileSync(join(process.env.LEAKWATCH_BENCH_DEBUG_DIR, 'findings.json'), JSON.stringify(findings.json, null, 1));
        writeFileSync(join(process.env.LEAKWATCH_BENCH_DEBUG_DIR, 'agent-log.jsonl'), pipeline.agentLog.map((l) => JSON.stringify(l.line)).join('\n'));
      }
      throw new Error(`the collector does not know pod ${pod.namespace}/${pod.name} after 60 s: ${r.status} ${JSON.stringify(r.json).slice(0, 300)}; findings: ${JSON.stringify(findings.json).slice(0, 1000)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function measure(heapMiB: number, work: string, netnsName: string | null, pipeline: SnapshotPipeline, logRoot: string): Promise<SizeResult> {
  // Room for the heap and the snapshot's own working memory in the target: for this object-dense
  // heap, writeHeapSnapshot() peaked at about 12× the heap in use (1.3 GB RSS for 100 MiB). That
  // also leaves the agent's headroom gate (default factor 2 × heap in use) satisfied.
  const limit = Math.ceil(heapMiB * 14 + 512) * MiB;
  const pod = createSnapshotBenchPod(`snap-${heapMiB}`, limit, logRoot);
  // The agent judges a new process once, at first sight, with the pod names it has then: past one
  // rescan of the pod-log directory, the new pod has its name.
  await new Promise((r) => setTimeout(r, POD_NAMES_RESCAN_MS + 1_000));
  // One script per size, differing in content: the agent keys a suspicious spawn by parent and the
  // script's sha256, so a second identical one would only update the first (and its pod).
  const scriptPath = join(work, `target-${heapMiB}.cjs`);
  writeFileSync(scriptPath, `// bench target, ${heapMiB} MiB\n${SNAPSHOT_TARGET_SOURCE}`);
  const nodeArgs = ['--max-old-space-size=4096', scriptPath, String(heapMiB)];
  const target: ChildProcess = netnsName
    ? pod.spawnIn('app', 'ip', ['netns', 'exec', netnsName, process.execPath, ...nodeArgs], { stdio: ['pipe', 'pipe', 'inherit'] })
    : pod.spawnIn('app', process.execPath, nodeArgs, { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const out = collectLines(target);
    const ready = await out.waitFor(/^ready /, 300_000);
    const heapUsed = Number(ready.split(' ')[2]);
    const rssBeforeMiB = statusMiB(target.pid!, 'VmHWM');
    await waitUntilKnown(pipeline, pod);
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
      const targetPeakRssOwnMiB = statusMiB(target.pid!, 'VmHWM');
      resetHwm(target.pid!);

      await send(target, out, 'lag-reset', /^lag-reset$/, 10_000);
      const agentPid = pipeline.agent.pid!;
      const collectorPid = pipeline.collector.pid;
      resetHwm(agentPid);
      resetHwm(collectorPid);
      const agentBefore = statusMiB(agentPid, 'VmRSS');
      const collectorBefore = statusMiB(collectorPid, 'VmRSS');
      const agentCpu0 = readProcCpuMs(agentPid)!;
      const collectorCpu0 = readProcCpuMs(collectorPid)!;
      const helpers = watchHelpers(agentPid);
      const t0 = performance.now();
      const answer = await pipeline.api('POST', '/api/v1/snapshots?timeoutMs=900000', { namespace: pod.namespace, pod: pod.name, container: 'app', pid: target.pid!, kind: 'heapsnapshot' });
      const leakwatchMs = performance.now() - t0;
      const helper = helpers.stop();
      const agentCpuMs = readProcCpuMs(agentPid)! - agentCpu0;
      const collectorCpuMs = readProcCpuMs(collectorPid)! - collectorCpu0;
      const agentPeak = statusMiB(agentPid, 'VmHWM');
      const collectorPeak = statusMiB(collectorPid, 'VmHWM');
      const body = answer.json as TakeAnswer;
      if (answer.status !== 200 || body.capture?.outcome !== 'captured' || body.snapshots?.length !== 1) {
        throw new Error(`snapshots take answered ${answer.status} after ${Math.round(leakwatchMs)} ms: ${JSON.stringify(answer.json).slice(0, 600)}`);
      }
      const lag = await send(target, out, 'lag-report', /^lag /, 60_000);
      const targetPeakRssCaptureMiB = statusMiB(target.pid!, 'VmHWM');
      const row = body.snapshots[0]!;
      const spooled = await pipeline.waitForAgentLog((l) => l.msg === 'snapshot spooled' && l.snapshotId === row.snapshotId, t0, 5_000);
      const stored = snapshotFilePath(snapshotDir(join(work, 'collector-data')), row.snapshotId, row.kind);
      const verified = (await sha256File(stored)) === row.sha256 && statSync(stored).size === row.bytes;
      // Not needed any more, and 0.2-0.8 GB each.
      rmSync(stored);
      const r: RoundResult = {
        loadAverage,
        inProcessMs,
        leakwatchMs,
        toAgentSpoolMs: spooled.atMs - t0,
        leakwatchSnapshotMs: row.durationMs,
        spoolToStoredMs: leakwatchMs - (spooled.atMs - t0),
        targetPauseMs: Number(lag.split(' ')[1]),
        agentRssGrowthMiB: agentPeak - agentBefore,
        agentBaselineRssMiB: agentBefore,
        collectorRssGrowthMiB: collectorPeak - collectorBefore,
        collectorBaselineRssMiB: collectorBefore,
        relayPeakRssMiB: helper.peakRssMiB,
        agentCpuMs,
        collectorCpuMs,
        relayCpuMs: helper.cpuMs,
        snapshotBytes: row.bytes,
        ownSnapshotBytes: ownBytes,
        sha256Verified: verified,
        targetPeakRssDuringOwnMiB: targetPeakRssOwnMiB,
        targetPeakRssDuringCaptureMiB: targetPeakRssCaptureMiB,
      };
      rounds.push(r);
      console.log(
        `  ${heapMiB} MiB round ${round + 1}: (a) ${(r.inProcessMs / 1000).toFixed(1)} s, (b) ${(r.leakwatchMs / 1000).toFixed(1)} s (to the agent's spool ${(r.toAgentSpoolMs / 1000).toFixed(1)} s), ` +
          `agent +${r.agentRssGrowthMiB.toFixed(1)} MiB, collector +${r.collectorRssGrowthMiB.toFixed(1)} MiB, load ${loadAverage.toFixed(1)}`,
      );
    }
    const a = median(rounds.map((r) => r.inProcessMs));
    const bMs = median(rounds.map((r) => r.leakwatchMs));
    const spoolMs = median(rounds.map((r) => r.toAgentSpoolMs));
    return {
      heapTargetMiB: heapMiB,
      heapUsedMiB: heapUsed / MiB,
      cgroupLimitMiB: limit / MiB,
      snapshotBytes: rounds[0]!.snapshotBytes,
      inProcessMs: a,
      leakwatchMs: bMs,
      toAgentSpoolMs: spoolMs,
      ratio: bMs / a,
      spoolRatio: spoolMs / a,
      targetPauseMs: median(rounds.map((r) => r.targetPauseMs)),
      agentRssGrowthMiB: Math.max(...rounds.map((r) => r.agentRssGrowthMiB)),
      collectorRssGrowthMiB: Math.max(...rounds.map((r) => r.collectorRssGrowthMiB)),
      relayPeakRssMiB: Math.max(...rounds.map((r) => r.relayPeakRssMiB)),
      sha256Verified: rounds.every((r) => r.sha256Verified),
      targetRssBeforeMiB: rssBeforeMiB,
      targetPeakRssDuringCaptureMiB: Math.max(...rounds.map((r) => r.targetPeakRssDuringCaptureMiB)),
      rounds,
    };
  } finally {
    await killAndWait(target);
    await pod.destroy();
  }
}

export async function run(): Promise<unknown> {
  const loadAverageAtStart = os.loadavg();
  const ns = netnsAvailability();
  const work = mkdtempSync(join(os.tmpdir(), 'leakwatch-bench-snapshot-'));
  const logRoot = join(work, 'node-logs');
  // Both before the agent starts: it reads pod names from <logRoot>/pods and warns once if it is missing.
  mkdirSync(join(logRoot, 'containers'), { recursive: true });
  mkdirSync(join(logRoot, 'pods'), { recursive: true });
  const netns = ns.ok ? createNetns() : null;
  if (!ns.ok) console.log(`  no network namespace (${ns.reason}): targets share the agent's, no relay`);
  const build = buildForBench();
  const results: SizeResult[] = [];
  let pipeline: SnapshotPipeline | null = null;
  try {
    pipeline = await startSnapshotPipeline({ build, root: work, podLogRoot: join(logRoot, 'pods') });
    await pipeline.waitForAgentLog((l) => l.msg === 'connected to the collector', 0, 60_000);
    for (const size of sizesMiB) results.push(await measure(size, work, netns?.name ?? null, pipeline, logRoot));
  } finally {
    await pipeline?.stop();
    netns?.remove();
    build.cleanup();
    rmSync(work, { recursive: true, force: true });
  }
  const row = (r: SizeResult): string =>
    `  heap ${r.heapUsedMiB.toFixed(0).padStart(4)} MiB  file ${(r.snapshotBytes / MiB).toFixed(0).padStart(4)} MiB  (a) ${(r.inProcessMs / 1000).toFixed(1)} s  (b) ${(r.leakwatchMs / 1000).toFixed(1)} s  (b)/(a) ${r.ratio.toFixed(2)}` +
    ` (to the spool ${(r.toAgentSpoolMs / 1000).toFixed(1)} s, ${r.spoolRatio.toFixed(2)})  (c) pause ${(r.targetPauseMs / 1000).toFixed(1)} s` +
    `  (d) agent +${r.agentRssGrowthMiB.toFixed(1)} MiB, collector +${r.collectorRssGrowthMiB.toFixed(1)} MiB, relay ${r.relayPeakRssMiB.toFixed(0)} MiB; target RSS ${r.targetRssBeforeMiB.toFixed(0)} → peak ${r.targetPeakRssDuringCaptureMiB.toFixed(0)} MiB`;
  for (const r of results) console.log(row(r));
  console.log('  (a), (b), (c): medians over the rounds; (d): the worst round');
  const summary = {
    bench: 'snapshot',
    atMs: Date.now(),
    node: process.version,
    cpus: os.cpus().length,
    loadAverageAtStart,
    viaNetnsRelay: netns !== null,
    leakwatch: `leakwatch collector and leakwatch agent as two processes (${build.how})`,
    targets,
    results,
    met: {
      ratio: results.every((r) => r.ratio <= targets.ratioMax),
      agentRss: results.every((r) => r.agentRssGrowthMiB <= targets.agentRssGrowthMiBMax),
      collectorRss: results.every((r) => r.collectorRssGrowthMiB <= targets.collectorRssGrowthMiBMax),
      sha256: results.every((r) => r.sha256Verified),
    },
    notes: [
      '(a) and (b) alternate round by round on the same target; inProcessMs, leakwatchMs, toAgentSpoolMs, ratio and targetPauseMs are medians over the rounds, the RSS growths the worst round.',
      '(b) is end to end: POST /api/v1/snapshots (engineer token, snapshots scope) → the collector routes a snapshot command to the agent → SIGUSR1, nsenter relay, inspector, HeapProfiler.takeHeapSnapshot streamed to the spool (sha256, fsync) → upload over the agent WebSocket → the collector verifies the sha256, fsyncs, stores the row → the API answers 200 with the stored row. The target sits in a pod-shaped cgroup (kubepods/burstable/pod<uid>/<id>) the agent names from the pod-log directory.',
      'toAgentSpoolMs: from the trigger to when the bench read the agent\'s "snapshot spooled" log line (stderr pipe); the former (b), before the upload.',
      '(d): VmHWM of the agent and of the collector process reset (clear_refs 5) just before (b); growth = VmHWM after (b) − VmRSS just before. Both run the compiled CLI (plain node, no tsx).',
      'The netns relay is a child process of the agent (nsenter + node -e); its peak RSS is sampled every 20 ms and listed apart.',
      'sha256Verified: the collector\'s stored file read back after (b) (not timed) hashes to the sha256 the agent computed and the API returned.',
      'The collector routes a take to the node it has seen the pod on, which it learns from the agent\'s findings (a pod with no finding is unknown to it: 404 unknown-pod). Here the finding is the suspicious-spawn one the agent raises because the target runs a script just written to /tmp (tmp-script, fresh-script); the pod is created one pod-log rescan (10 s) before the target starts so that finding carries the pod\'s name. The take names container app and the target\'s pid.',
      'The cgroup limits (heap × 14 + 512 MiB) are above the 256 MiB the tests use: a full snapshot of this object-dense heap costs the target about 12 × its heap; the target bounds itself (a fixed heap, nothing else allocated).',
    ],
  };
  mkdirSync(dirname(resultsFile), { recursive: true });
  writeFileSync(resultsFile, JSON.stringify(summary, null, 2) + '\n');
  return summary;
}
