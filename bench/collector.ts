// `npm run bench -- collector`: the collector under a simulated fleet. `leakwatch collector` runs
// as its own process (compiled, as shipped) with its data on this machine's disk; 200 agents
// (real `ws` clients, in a second process) send findings of every kind — opened, updated under the
// same id, resolved; spawns with a few KiB of script — plus series and heartbeats, and count only
// what the collector acknowledged (it acks after the fsynced commit). Meanwhile four API clients
// read findings, one finding, targets and agents (10 requests/s each), and the collector's RSS,
// CPU and disk writes are read from /proc every second.
//   1. saturation: every agent keeps 4 batches of 25 events in flight, sending on each ack;
//   2. the collector is restarted on the same data (SIGTERM, start, agents reconnect);
//   3. a 2-minute run at 5,000 findings/s offered (or the saturation rate if lower).
// Prints Markdown tables and writes bench/results/collector.json.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { generateToken, hashToken, writeTokensFile } from '../server/auth.js';
import { ApiLoad, TARGETS_PATH, type ApiPhaseResult } from './support/collector-api-load.js';
import type { FleetDrained, FleetTick } from './support/collector-agents.js';
import { Fleet } from './support/collector-fleet.js';
import { buildForBench, killAndWait, startCollectorProcess, type BenchBuild, type CollectorProcess } from './support/collector-process.js';
import { Sampler, type MemorySample } from './support/collector-sampler.js';
import { trend } from './support/collector-stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const resultsFile = join(here, 'results', 'collector.json');

const AGENTS = 200;
const API_CONCURRENCY = 4;
/** Each API client starts a request this often: 4 × 10 req/s, a busy team's dashboards and CLIs. */
const API_INTERVAL_MS = 100;
// LEAKWATCH_BENCH_QUICK=1 shortens every phase to check the harness itself; it writes no results.
const QUICK = process.env.LEAKWATCH_BENCH_QUICK === '1';
const SATURATION = { seconds: QUICK ? 8 : 25, skipSeconds: QUICK ? 2 : 5, batchEvents: 25, maxInFlight: 4 };
const RUN = { seconds: QUICK ? 20 : 120, offeredPerSec: 5000, slopeWindowSeconds: QUICK ? 15 : 90, skipSeconds: 5, maxInFlight: 4 };
const IDLE_SECONDS = 5;
const TARGETS = { findingsPerSec: 5000, apiP99Ms: 50, rssSlopeMiBPerMin: 2 };
/** The bench stops if the collector grows past this: a leak must not take the machine with it. */
const RSS_GUARD_BYTES = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

/** Sleeps, but gives up at once if the fleet failed or the memory guard tripped. */
async function hold(seconds: number, fleet: Fleet, sampler: Sampler, collector: CollectorProcess): Promise<void> {
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    if (fleet.fatal) throw fleet.fatal;
    if (sampler.guardTripped) throw new Error(`stopped: ${sampler.guardTripped}`);
    if (collector.child.exitCode !== null || collector.child.signalCode !== null) throw new Error(`the collector exited (${collector.child.exitCode ?? collector.child.signalCode}); last problems: ${collector.logs.lastProblems.join(' | ')}`);
    await new Promise((r) => setTimeout(r, Math.min(250, Math.max(1, end - performance.now()))));
  }
}

/** Acked findings per second over a phase's ticks, after the first `skip` of them. */
function tickRate(ticks: FleetTick[], phase: string, skip: number): { perSec: number; minPerSec: number; maxPerSec: number; seconds: number } {
  const ts = ticks.filter((t) => t.phase === phase);
  const window = ts.slice(skip);
  if (window.length < 2) return { perSec: Number.NaN, minPerSec: Number.NaN, maxPerSec: Number.NaN, seconds: 0 };
  // The first tick of the window only marks its start: rates are over the intervals after it.
  const seconds = (window.at(-1)!.atMs - window[0]!.atMs) / 1000;
  const acked = window.slice(1).reduce((n, t) => n + t.ackedFindings, 0);
  const perTick = window.slice(1).map((t) => t.ackedFindings);
  return { perSec: acked / seconds, minPerSec: Math.min(...perTick), maxPerSec: Math.max(...perTick), seconds };
}

/** Growth of a cumulative counter per second of the samples' span. */
function perSecond(samples: MemorySample[], key: 'collectorWriteBytes'): number {
  const first = samples[0];
  const last = samples.at(-1);
  if (!first || !last || first[key] === null || last[key] === null || last.t === first.t) return Number.NaN;
  return (last[key]! - first[key]!) / (last.t - first.t);
}

function cpuShare(samples: MemorySample[], key: 'collectorCpuMs' | 'fleetCpuMs' | 'benchCpuMs'): number {
  const first = samples[0];
  const last = samples.at(-1);
  if (!first || !last || first[key] === null || last[key] === null || last.t === first.t) return Number.NaN;
  return (last[key]! - first[key]!) / ((last.t - first.t) * 1000);
}

function nearest(samples: MemorySample[], t: number): MemorySample | undefined {
  let best: MemorySample | undefined;
  for (const s of samples) if (!best || Math.abs(s.t - t) < Math.abs(best.t - t)) best = s;
  return best;
}

const n0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const mib = (b: number | undefined) => (b === undefined || !Number.isFinite(b) ? 'n/a' : (b / MiB).toFixed(1));
const pct = (x: number) => (Number.isFinite(x) ? `${Math.round(x * 100)} %` : 'n/a');

function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

/** /proc/pressure/cpu "some avg60" (percent), or null where PSI is not available. */
function cpuPressure(): number | null {
  try {
    const m = /^some avg10=[\d.]+ avg60=([\d.]+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    total += statSync(join(entry.parentPath ?? entry.path, entry.name), { throwIfNoEntry: false })?.size ?? 0;
  }
  return total;
}

/** "ext4 /dev/vda on /" for the mount holding `path`, from /proc/mounts. */
function mountOf(path: string): string {
  try {
    let best: string[] | null = null;
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const f = line.split(' ');
      const at = f[1];
      if (!at || !(path === at || path.startsWith(at.endsWith('/') ? at : `${at}/`))) continue;
      if (!best || at.length >= best[1]!.length) best = f;
    }
    return best ? `${best[2]} ${best[0]} on ${best[1]} (${path})` : path;
  } catch {
    return path;
  }
}

export async function run(): Promise<unknown> {
  const startedAt = Date.now();
  // Other work on this machine competes for its CPUs: the load when the run began says how quiet it was.
  const loadAvgAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const cpuPressureAtStart = cpuPressure();
  let build: BenchBuild | null = null;
  let tmp: string | null = null;
  let collector: CollectorProcess | null = null;
  let fleetChild: ChildProcess | null = null;
  let api: ApiLoad | null = null;
  let sampler: Sampler | null = null;

  const teardown = async () => {
    sampler?.stop();
    // Processes first: API requests to a killed collector then fail at once instead of timing out.
    if (fleetChild) await killAndWait(fleetChild);
    fleetChild = null;
    if (collector) await killAndWait(collector.child);
    collector = null;
    await api?.stop().catch(() => {});
    api = null;
    // LEAKWATCH_BENCH_KEEP_DATA=1 keeps the data directory to look into (its path is printed).
    if (tmp && process.env.LEAKWATCH_BENCH_KEEP_DATA === '1') console.log(`kept ${tmp}`);
    else if (tmp) rmSync(tmp, { recursive: true, force: true });
    tmp = null;
    build?.cleanup();
    build = null;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    void teardown().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  // A bench that dies any other way still must not leave processes behind.
  const onExit = () => {
    for (const c of [fleetChild, collector?.child]) if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', onExit);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });

  try {
    build = buildForBench();
    console.log(`collector and agents: ${build.how}`);
    tmp = mkdtempSync(join(os.tmpdir(), 'leakwatch-collector-bench-'));
    const dataDir = join(tmp, 'data');
    const tokensFile = join(tmp, 'tokens.json');
    const agentToken = generateToken();
    const readToken = generateToken();
    writeTokensFile(tokensFile, [
      { name: 'bench-agents', sha256: hashToken(agentToken), scopes: ['agent'] },
      { name: 'bench-reader', sha256: hashToken(readToken), scopes: ['read'] },
    ]);

    collector = await startCollectorProcess(build, dataDir, tokensFile);
    const firstStartMs = collector.startMs;
    console.log(`collector pid ${collector.pid} at ${collector.url} (started in ${firstStartMs} ms), data in ${dataDir}`);

    fleetChild = fork(build.agentsScript, [String(AGENTS)], { execArgv: build.nodeArgs, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const fleet = new Fleet(fleetChild);
    const connect1 = await fleet.request<{ ms: number; connected: number; failures: string[] }>({ cmd: 'connect', url: collector.agentUrl, token: agentToken }, 'connected', 60_000);
    if (connect1.connected !== AGENTS) throw new Error(`only ${connect1.connected} of ${AGENTS} agents connected: ${connect1.failures.join('; ')}`);
    console.log(`${AGENTS} agents connected in ${connect1.ms} ms`);

    sampler = new Sampler(collector.pid, fleetChild.pid!, RSS_GUARD_BYTES);
    loopDelay.enable();

    // ---- 1. saturation
    console.log(`saturation: ${SATURATION.seconds} s, every agent ${SATURATION.maxInFlight} × ${SATURATION.batchEvents} events in flight, ${API_CONCURRENCY} API clients ...`);
    api = new ApiLoad(collector.url, readToken, API_CONCURRENCY, API_INTERVAL_MS);
    sampler.begin('saturation');
    api.start('saturation');
    fleet.mode('saturation', { kind: 'unpaced', batchEvents: SATURATION.batchEvents, maxInFlight: SATURATION.maxInFlight });
    await hold(SATURATION.seconds, fleet, sampler, collector);
    api.beginPhase('saturation-drain');
    const drain1 = await fleet.request<FleetDrained>({ cmd: 'drain', timeoutMs: 60_000 }, 'drained', 70_000);
    await api.stop();
    const apiSaturation = api.results();
    api = null;
    const saturation = tickRate(fleet.ticks, 'saturation', SATURATION.skipSeconds);
    const saturationSamples = sampler.of('saturation');
    console.log(`  ${n0(saturation.perSec)} findings/s acked (per second ${n0(saturation.minPerSec)}–${n0(saturation.maxPerSec)}); drained ${drain1.clean ? 'clean' : `NOT clean (${drain1.inFlightEvents} in flight)`}`);

    // ---- restart on the same data
    const stop1 = await collector.stop();
    const logs1 = collector.logs;
    collector = null;
    const dbBytesAfterSaturation = dirBytes(dataDir);
    await fleet.request({ cmd: 'disconnect' }, 'disconnected', 10_000);
    collector = await startCollectorProcess(build, dataDir, tokensFile);
    const restartStartMs = collector.startMs;
    console.log(`collector stopped in ${stop1.ms} ms (exit ${stop1.code ?? stop1.signal}); restarted on ${mib(dbBytesAfterSaturation)} MiB of data in ${collector.startMs} ms`);
    const connect2 = await fleet.request<{ ms: number; connected: number; failures: string[] }>({ cmd: 'connect', url: collector.agentUrl, token: agentToken }, 'connected', 60_000);
    if (connect2.connected !== AGENTS) throw new Error(`only ${connect2.connected} of ${AGENTS} agents reconnected: ${connect2.failures.join('; ')}`);
    sampler.begin('idle', collector.pid);
    fleet.mode('idle', { kind: 'idle' });
    await hold(IDLE_SECONDS, fleet, sampler, collector);

    // ---- 2. the 2-minute run
    const offered = saturation.perSec >= RUN.offeredPerSec ? RUN.offeredPerSec : Math.max(100, Math.floor(saturation.perSec / 100) * 100);
    console.log(`run: ${RUN.seconds} s at ${n0(offered)} findings/s offered, ${API_CONCURRENCY} API clients ...`);
    loopDelay.reset();
    api = new ApiLoad(collector.url, readToken, API_CONCURRENCY, API_INTERVAL_MS);
    sampler.begin('run');
    api.start('run');
    fleet.mode('run', { kind: 'paced', ratePerSec: offered, maxInFlight: RUN.maxInFlight });
    await hold(RUN.seconds, fleet, sampler, collector);
    const runTicks = fleet.ticks.filter((t) => t.phase === 'run');
    const lastRunTick = runTicks.at(-1);
    api.beginPhase('run-drain');
    sampler.begin('drain');
    const benchLoopP99Ms = loopDelay.percentile(99) / 1e6;
    loopDelay.disable();
    const drain2 = await fleet.request<FleetDrained>({ cmd: 'drain', timeoutMs: 45_000 }, 'drained', 55_000);
    await api.stop();
    const apiRun = api.results();
    api = null;
    sampler.stop();
    await fleet.request({ cmd: 'disconnect' }, 'disconnected', 10_000);
    const stop2 = await collector.stop();
    const logs2 = collector.logs;
    collector = null;
    fleet.send({ cmd: 'exit' });

    // Everything acknowledged is in the database: one row per finding id whose open was acked.
    const db = new Database(join(dataDir, 'leakwatch.db'), { readonly: true });
    const count = (sql: string) => (db.prepare(sql).pluck().get() as number) ?? 0;
    const findingById = db.prepare('SELECT 1 FROM findings WHERE id = ?').pluck();
    const missingAcked = drain2.ackedOpenIds.filter((id) => findingById.get(id) === undefined);
    const stored = {
      findings: count('SELECT count(*) FROM findings'),
      findingEvents: count('SELECT count(*) FROM finding_events'),
      spawnFindings: count(`SELECT count(*) FROM findings WHERE kind = 'suspicious-spawn'`),
      blobs: count('SELECT count(DISTINCT sha256) FROM finding_blobs'),
      seriesRows: count('SELECT count(*) FROM series'),
      targets: count('SELECT count(*) FROM targets'),
      agents: count('SELECT count(*) FROM agents'),
      auditRows: count('SELECT count(*) FROM audit'),
    };
    db.close();
    const dataBytes = dirBytes(dataDir);

    // ---- figures
    const run = tickRate(fleet.ticks, 'run', RUN.skipSeconds);
    const runPhase = drain2.phases.find((p) => p.phase === 'run');
    const satPhase = drain1.phases.find((p) => p.phase === 'saturation');
    const runSamples = sampler.of('run');
    const idleSamples = sampler.of('idle');
    const rssStart = runSamples[0];
    const rss30 = nearest(runSamples, 30);
    const rssEnd = runSamples.at(-1);
    const windowSamples = runSamples.filter((s) => s.t >= RUN.seconds - RUN.slopeWindowSeconds - 0.5);
    const toMin = (s: MemorySample) => s.t / 60;
    const rssTrend = trend(windowSamples.map(toMin), windowSamples.map((s) => s.rssBytes / MiB));
    const anonTrend = trend(windowSamples.map(toMin), windowSamples.map((s) => s.anonBytes / MiB));
    const apiRunAll = apiRun.find((p) => p.phase === 'run')!;
    const apiSatAll = apiSaturation.find((p) => p.phase === 'saturation')!;
    const sustainedShare = run.perSec / offered;

    const verdicts = {
      [`≥ ${n0(TARGETS.findingsPerSec)} findings/s durable with ${AGENTS} agents (saturation)`]: saturation.perSec >= TARGETS.findingsPerSec,
      [`${n0(offered)}/s offered for ${RUN.seconds} s sustained (acked ≥ 99 % of offered, no backlog left)`]:
        sustainedShare >= 0.99 && (lastRunTick ? lastRunTick.backlogEvents <= offered : false) && drain2.clean,
      [`API p99 < ${TARGETS.apiP99Ms} ms under the run's load`]: apiRunAll.all.p99Ms < TARGETS.apiP99Ms,
      [`collector RSS flat over the run (Theil–Sen slope of the last ${RUN.slopeWindowSeconds} s < ${TARGETS.rssSlopeMiBPerMin} MiB/min)`]: rssTrend.theilSen < TARGETS.rssSlopeMiBPerMin,
      'every acknowledged finding is in the database': missingAcked.length === 0 && drain2.ackedOpenIds.length > 0,
      'no errors from the collector': Object.keys(drain2.errors).length === 0 && logs1.error + logs2.error === 0,
    };

    const cpuCount = os.cpus().length;
    const result = {
      benchmark: 'collector',
      date: new Date(startedAt).toISOString(),
      durationSec: Math.round((Date.now() - startedAt) / 1000),
      machine: {
        node: process.version,
        kernel: `${os.type()} ${os.release()}`,
        cpus: cpuCount,
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        memTotalBytes: os.totalmem(),
        loadAvgAtStart,
        loadAvgAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
        // Share of the last 60 s in which some runnable task waited for a CPU (PSI): the plainest
        // sign that other work took CPU from this run.
        cpuPressureSomeAvg60AtStart: cpuPressureAtStart,
        cpuPressureSomeAvg60AtEnd: cpuPressure(),
        dataDisk: mountOf(dataDir),
      },
      method: {
        collector: `leakwatch collector --listen 127.0.0.1:0 (${build.how}), its own process; SQLite WAL, synchronous=FULL, data on the local disk`,
        agents: `${AGENTS} ws clients in one separate process; hello, then findings: each agent holds 150 live findings on 30 targets, each event picks one and opens it (empty slot), resolves it (3 %) or updates it under the same id with a later updatedAt; new findings are growth 50 %, fanout 20 %, suspicious-spawn 15 % (a distinct 2-6 KiB script each), oom-kill 15 %; series every 5 s (30 targets, a point per second each), heartbeats every 15 s; at most 4 messages unacknowledged per agent; a finding counts when its batch is acked`,
        saturation: `${SATURATION.seconds} s, each agent ${SATURATION.maxInFlight} batches × ${SATURATION.batchEvents} events in flight, next batch on each ack; rate over the last ${SATURATION.seconds - SATURATION.skipSeconds} s`,
        run: `collector restarted on the saturation phase's data, agents reconnected, ${IDLE_SECONDS} s idle, then ${RUN.seconds} s at the offered rate: each agent makes its share once a second and sends it like the uplink (batches ≤ 500 events, ≤ ${RUN.maxInFlight} in flight)`,
        api: `${API_CONCURRENCY} clients, each starting a request every ${API_INTERVAL_MS} ms (at once if the previous took longer), keep-alive, cycling GET /api/v1/findings?limit=100, /api/v1/findings/<id from the last list> (spawn reads write an audit row), ${TARGETS_PATH}, /api/v1/agents; latency = request start to last byte`,
        targetsPath: TARGETS_PATH,
        rss: `VmRSS from /proc/<pid>/status each second; slope over the run's last ${RUN.slopeWindowSeconds} s, Theil–Sen (verdict) and least squares`,
      },
      saturation: {
        ackedFindingsPerSec: Math.round(saturation.perSec),
        perSecondMin: saturation.minPerSec,
        perSecondMax: saturation.maxPerSec,
        seconds: Math.round(saturation.seconds),
        agentAckLatencyMs: satPhase?.ackLatencyMs ?? null,
        seriesPointsAcked: satPhase?.ackedSeriesPoints ?? null,
        api: apiSatAll,
        collectorCpuShare: cpuShare(saturationSamples, 'collectorCpuMs'),
        fleetCpuShare: cpuShare(saturationSamples, 'fleetCpuMs'),
        benchCpuShare: cpuShare(saturationSamples, 'benchCpuMs'),
        collectorRssPeakBytes: Math.max(...saturationSamples.map((s) => s.rssBytes)),
        collectorDiskWriteBytesPerSec: Math.round(perSecond(saturationSamples, 'collectorWriteBytes')),
        drain: { clean: drain1.clean, inFlightEvents: drain1.inFlightEvents },
      },
      restart: {
        firstStartMs,
        stopMs: stop1.ms,
        stopExit: stop1.code ?? stop1.signal,
        dataBytesAtRestart: dbBytesAfterSaturation,
        startOnExistingDataMs: restartStartMs,
        agentsReconnectMs: connect2.ms,
      },
      run: {
        offeredFindingsPerSec: offered,
        seconds: RUN.seconds,
        ackedFindingsPerSec: Math.round(run.perSec),
        ackedShareOfOffered: Math.round(sustainedShare * 10000) / 10000,
        perSecondMin: run.minPerSec,
        perSecondMax: run.maxPerSec,
        backlogAtEnd: lastRunTick ? { queuedEvents: lastRunTick.backlogEvents, inFlightEvents: lastRunTick.inFlightEvents } : null,
        madeFindings: runPhase?.madeFindings ?? null,
        ackedFindings: runPhase?.ackedFindings ?? null,
        droppedFromAgentQueues: runPhase?.droppedFromBacklog ?? null,
        seriesPointsAcked: runPhase?.ackedSeriesPoints ?? null,
        agentAckLatencyMs: runPhase?.ackLatencyMs ?? null,
        seriesAckLatencyMs: runPhase?.seriesAckLatencyMs ?? null,
        wireMiBPerSec: runPhase ? Math.round((runPhase.bytesSent / MiB / RUN.seconds) * 100) / 100 : null,
        api: apiRunAll,
        benchEventLoopP99Ms: Math.round(benchLoopP99Ms * 10) / 10,
        collectorCpuShare: cpuShare(runSamples, 'collectorCpuMs'),
        fleetCpuShare: cpuShare(runSamples, 'fleetCpuMs'),
        benchCpuShare: cpuShare(runSamples, 'benchCpuMs'),
        collectorDiskWriteBytesPerSec: Math.round(perSecond(runSamples, 'collectorWriteBytes')),
        rss: {
          idleBeforeBytes: idleSamples.at(-1)?.rssBytes ?? null,
          startBytes: rssStart?.rssBytes ?? null,
          at30sBytes: rss30?.rssBytes ?? null,
          endBytes: rssEnd?.rssBytes ?? null,
          maxBytes: Math.max(...runSamples.map((s) => s.rssBytes)),
          slopeMiBPerMin: { theilSen: rssTrend.theilSen, leastSquares: rssTrend.leastSquares, points: rssTrend.points },
          anonSlopeMiBPerMin: { theilSen: anonTrend.theilSen, leastSquares: anonTrend.leastSquares },
          endParts: rssEnd ? { anonBytes: rssEnd.anonBytes, fileBytes: rssEnd.fileBytes, shmemBytes: rssEnd.shmemBytes } : null,
        },
        stop: { ms: stop2.ms, exit: stop2.code ?? stop2.signal, killed: stop2.killed },
      },
      stored: { ...stored, ackedDistinctFindingIds: drain2.ackedOpenIds.length, ackedMissing: missingAcked.length, missingSample: missingAcked.slice(0, 5), dataDirBytes: dataBytes },
      collectorLog: { warnings: logs1.warn + logs2.warn, errors: logs1.error + logs2.error, lastProblems: [...logs1.lastProblems, ...logs2.lastProblems].slice(-10) },
      fleetErrors: drain2.errors,
      rssSeries: runSamples.map((s) => ({ t: Math.round(s.t * 10) / 10, rssBytes: s.rssBytes, anonBytes: s.anonBytes })),
      ticks: fleet.ticks.filter((t) => t.phase === 'saturation' || t.phase === 'run').map((t) => ({ phase: t.phase, atMs: t.atMs, acked: t.ackedFindings, made: t.madeFindings, backlog: t.backlogEvents, inFlight: t.inFlightEvents })),
      targets: TARGETS,
      verdicts,
    };

    // ---- report
    const ackRun = result.run.agentAckLatencyMs;
    console.log('');
    console.log(`${AGENTS} agents, ${cpuCount} CPUs (${result.machine.cpuModel}), ${result.machine.kernel}, node ${process.version}; load average at start ${loadAvgAtStart.join(' / ')}, CPU pressure (PSI some avg60) ${cpuPressureAtStart ?? 'n/a'} % at start, ${result.machine.cpuPressureSomeAvg60AtEnd ?? 'n/a'} % at end`);
    console.log('');
    console.log(
      markdownTable(
        ['measure', 'value', 'target'],
        [
          [`saturation: durable findings/s, ${AGENTS} agents unpaced (${SATURATION.maxInFlight} × ${SATURATION.batchEvents} in flight each)`, n0(saturation.perSec), `≥ ${n0(TARGETS.findingsPerSec)}`],
          ['saturation: API p50 / p99 (ms)', `${f1(apiSatAll.all.p50Ms)} / ${f1(apiSatAll.all.p99Ms)}`, ''],
          ['saturation: agent send→ack p50 / p99 (ms)', `${f1(satPhase?.ackLatencyMs.p50 ?? NaN)} / ${f1(satPhase?.ackLatencyMs.p99 ?? NaN)}`, ''],
          ['run: offered findings/s', n0(offered), n0(TARGETS.findingsPerSec)],
          [`run: sustained acked findings/s (${RUN.seconds} s; per second min–max)`, `${n0(run.perSec)} (${n0(run.minPerSec)}–${n0(run.maxPerSec)})`, '≥ 99 % of offered'],
          ['run: agent send→ack p50 / p99 (ms)', `${f1(ackRun?.p50 ?? NaN)} / ${f1(ackRun?.p99 ?? NaN)}`, ''],
          [`run: API p50 / p99 (ms), ${API_CONCURRENCY} clients, ${n0(apiRunAll.requestsPerSec)} req/s`, `${f1(apiRunAll.all.p50Ms)} / ${f1(apiRunAll.all.p99Ms)}`, `p99 < ${TARGETS.apiP99Ms}`],
          ['run: collector RSS start / 30 s / end (MiB)', `${mib(rssStart?.rssBytes)} / ${mib(rss30?.rssBytes)} / ${mib(rssEnd?.rssBytes)}`, ''],
          [`run: RSS slope, last ${RUN.slopeWindowSeconds} s (MiB/min, Theil–Sen; least squares)`, `${rssTrend.theilSen.toFixed(2)} (${rssTrend.leastSquares.toFixed(2)})`, `< ${TARGETS.rssSlopeMiBPerMin}`],
          ['run: collector CPU / agents CPU / bench CPU (of one core)', `${pct(result.run.collectorCpuShare)} / ${pct(result.run.fleetCpuShare)} / ${pct(result.run.benchCpuShare)}`, ''],
          ['collector disk writes, saturation / run (MiB/s; KiB per acked finding)', `${mib(result.saturation.collectorDiskWriteBytesPerSec)} / ${mib(result.run.collectorDiskWriteBytesPerSec)} (${f1(result.saturation.collectorDiskWriteBytesPerSec / saturation.perSec / 1024)} / ${f1(result.run.collectorDiskWriteBytesPerSec / run.perSec / 1024)})`, ''],
        ],
      ),
    );
    console.log('');
    console.log(
      markdownTable(
        ['API route', 'sat. req', 'sat. p50', 'sat. p99', 'run req', 'run p50', 'run p99', 'run max'],
        (Object.keys(apiRunAll.byRoute) as Array<keyof ApiPhaseResult['byRoute']>).map((r) => {
          const s = apiSatAll.byRoute[r];
          const u = apiRunAll.byRoute[r];
          return [`GET ${r === 'targets' ? TARGETS_PATH : `/api/v1/${r}`}`, n0(s.requests), f1(s.p50Ms), f1(s.p99Ms), n0(u.requests), f1(u.p50Ms), f1(u.p99Ms), f1(u.maxMs)];
        }),
      ),
    );
    console.log('');
    console.log(`stored after the run: ${n0(stored.findings)} findings (${n0(drain2.ackedOpenIds.length)} ids acked, ${missingAcked.length} of them missing; unacked writes may be there too), ${n0(stored.findingEvents)} finding events, ${n0(stored.blobs)} script blobs, ${n0(stored.seriesRows)} series rows, ${mib(dataBytes)} MiB on disk`);
    console.log(`restart: stop ${stop1.ms} ms, start on ${mib(dbBytesAfterSaturation)} MiB of data ${restartStartMs} ms, ${connect2.ms} ms to reconnect ${AGENTS} agents; final stop ${stop2.ms} ms`);
    console.log(`run: ${n0(runPhase?.madeFindings ?? NaN)} findings made, ${n0(runPhase?.ackedFindings ?? NaN)} acked (with the drain), at the end ${n0(lastRunTick?.backlogEvents ?? NaN)} queued in agents and ${n0(lastRunTick?.inFlightEvents ?? NaN)} in flight`);
    console.log(`collector log: ${result.collectorLog.warnings} warnings, ${result.collectorLog.errors} errors; fleet errors: ${JSON.stringify(drain2.errors)}`);
    console.log('');
    for (const [name, ok] of Object.entries(verdicts)) console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}`);

    if (QUICK) console.log('\nquick run (LEAKWATCH_BENCH_QUICK=1): results not written');
    else {
      mkdirSync(dirname(resultsFile), { recursive: true });
      writeFileSync(resultsFile, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`\nwrote ${resultsFile}`);
    }
    return result;
  } finally {
    loopDelay.disable();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
    await teardown();
  }
}
