// The agent as a service: the sampling loop, its findings handed to the collector through the
// disk queue and the uplink, and the memory series of the targets those findings are about.
// `leakwatch agent` runs this; `leakwatch up` runs it beside the collector in one process.
//
// One pass a second: watcher.tick() → finding events → spool → uplink. A pass that throws is
// logged and the next one runs: a node's /proc and cgroups change under our feet all the time,
// and one bad read must not blind the agent for good.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KmsgFollower } from './host/kmsg.js';
import { NodeSampler, type AttributedProcess, type ContainerSample, type NodeSample, type NodeSamplerOptions } from './host/node-sampler.js';
import { Watcher, type FindingEvent, type WatcherOptions } from './watch/watcher.js';
import { DiskQueue } from './disk-queue.js';
import { Uplink, type UplinkOptions, type UplinkState } from './uplink.js';
import { CaptureReportQueue } from './capture-report-queue.js';
import type { SnapshotSpool } from './snapshot-spool.js';
import { silentLogger, type Logger } from '../common/log.js';
import { Capturer, type CaptureTuning } from './capture/capturer.js';
import type { CaptureReportSink, ProbeRegistry, SnapshotSink } from './capture/types.js';
import type { Finding } from '../protocol/findings.js';
import type { SeriesPoint, TargetInfo } from '../protocol/messages.js';

/**
 * Where finding events wait for the collector unless told otherwise. The temp directory works
 * for anyone running the agent by hand; the DaemonSet passes `--spool-dir /var/lib/leakwatch/spool`
 * on an emptyDir volume, which outlives a restart of the agent's container (what matters: the
 * queue is for a collector that is away, and for an agent restarted meanwhile).
 */
export function defaultSpoolDir(): string {
  return join(tmpdir(), 'leakwatch-spool');
}

export interface CollectorTarget {
  url: string;
  token: string;
  /** PEM of the CA the collector's certificate chains to (self-signed collectors). */
  ca?: string | Buffer;
}

export interface SeriesOptions {
  /** How often points go to the collector. Default 5 s. */
  intervalMs?: number;
  /** A target stays tracked this long after its last finding resolved. Default 10 min. */
  retainAfterResolveMs?: number;
  /** Targets tracked at once; beyond it, new ones wait for a slot. Default 200. */
  maxTargets?: number;
  /** Points held per target between sends (the uplink holds its own bounded backlog). Default 600. */
  maxPointsPerTarget?: number;
}

export interface AgentPass {
  atMs: number;
  /** The pass's node sample; null when sampling failed. */
  sample: NodeSample | null;
  events: FindingEvent[];
  openFindings: Finding[];
  durationMs: number;
  /** Why the pass failed, null when it did not. */
  error: string | null;
}

export interface AgentRuntimeOptions {
  nodeName: string;
  /** Stable id the collector knows this agent by. Default: the node name. */
  agentId?: string;
  /** Reported in hello. Default '0.0.0-unknown'. */
  version?: string;
  /** Seconds between passes. Default 1. */
  intervalSec?: number;
  /**
   * Where the node's trees are (procRoot, cgroupRoot, podLogRoot), or a sampler to use as it is
   * (shared with another reader of the node). The runtime closes it either way.
   */
  sampler?: Omit<NodeSamplerOptions, 'warn'> | NodeSampler;
  /** /dev/kmsg, or null not to follow the kernel log. Default /dev/kmsg. */
  kmsgPath?: string | null;
  includeHost?: boolean;
  /** Detector tuning, passed to the Watcher. */
  watcher?: Pick<WatcherOptions, 'growth' | 'fanout' | 'spawnRules' | 'maxScriptBytes' | 'settleSec'>;
  /** Without a collector the runtime detects only (onPass still sees every event). */
  collector?: CollectorTarget;
  spoolDir?: string;
  spoolMaxBytes?: number;
  /** Snapshots waiting for the collector (createSnapshotSpool); the uplink uploads them. */
  snapshotSpool?: SnapshotSpool;
  spoolMaxEvents?: number;
  /** Uplink tuning (batch sizes, back-off): tests and `leakwatch up`. */
  uplink?: Partial<Omit<UplinkOptions, 'url' | 'token' | 'ca' | 'queue' | 'log' | 'agentId' | 'node' | 'version'>>;
  series?: SeriesOptions;
  log?: Logger;
  /** Called after every pass (metrics, liveness); an exception in it is logged, never fatal. */
  onPass?: (pass: AgentPass) => void;
  /**
   * Heap snapshots of Node.js targets (agent/capture/): automatic pairs on growth findings and the
   * collector's `snapshot` command. Files go to sink (the outgoing snapshot spool), reports to reports.
   */
  capture?: CaptureTuning & { sink: SnapshotSink; reports: CaptureReportSink; probes?: ProbeRegistry };
}

export interface AgentStats {
  passes: number;
  passErrors: number;
  lastPassAtMs: number | null;
  lastPassDurationMs: number | null;
  /** What the sampler itself took in the last pass. */
  lastSampleDurationMs: number | null;
  findingEvents: number;
  openFindings: number;
  trackedTargets: number;
  spool: { dir: string; queued: number; bytes: number; dropped: number } | null;
  uplink: UplinkState | null;
}

export interface AgentRuntime {
  readonly watcher: Watcher;
  readonly sampler: NodeSampler;
  /** Null without a collector. Register command handlers with uplink.onCommand(). */
  readonly uplink: Uplink | null;
  readonly queue: DiskQueue | null;
  /** Null unless options.capture was given. */
  readonly capturer: Capturer | null;
  stats(): AgentStats;
  /** Stop the loop and deliver what can be delivered within flushMs (default 2 s). */
  close(options?: { flushMs?: number }): Promise<void>;
}

/**
 * Starts the loop at once (the first pass runs on the next tick). Throws, with a message fit for
 * one line on stderr, when the configuration cannot work (spool directory, collector URL).
 */
export function startAgent(options: AgentRuntimeOptions): AgentRuntime {
  const log = options.log ?? silentLogger;
  const warn = (msg: string): void => log.warn(msg);
  const intervalMs = Math.max(10, (options.intervalSec ?? 1) * 1000);
  const seriesIntervalMs = options.series?.intervalMs ?? 5_000;

  let queue: DiskQueue | null = null;
  let uplink: Uplink | null = null;
  if (options.collector) {
    const spoolDir = options.spoolDir ?? defaultSpoolDir();
    queue = new DiskQueue({ dir: spoolDir, maxBytes: options.spoolMaxBytes, maxEvents: options.spoolMaxEvents, warn });
    try {
      uplink = new Uplink({
        ...options.uplink,
        url: options.collector.url,
        token: options.collector.token,
        ...(options.collector.ca !== undefined ? { ca: options.collector.ca } : {}),
        agentId: options.agentId ?? options.nodeName,
        node: options.nodeName,
        version: options.version ?? '0.0.0-unknown',
        queue,
        log,
        ...(options.snapshotSpool ? { snapshotSpool: options.snapshotSpool } : {}),
        captureReports: new CaptureReportQueue({ spoolDir, log }),
      });
    } catch (err) {
      queue.close();
      throw err;
    }
  }

  let sampler: NodeSampler;
  let watcher: Watcher;
  try {
    sampler = options.sampler instanceof NodeSampler ? options.sampler : new NodeSampler({ ...options.sampler, warn });
    const kmsgPath = options.kmsgPath === undefined ? '/dev/kmsg' : options.kmsgPath;
    const kmsg = kmsgPath === null ? null : new KmsgFollower({ path: kmsgPath, procRoot: sampler.procRoot, warn });
    watcher = new Watcher({ ...options.watcher, sampler, kmsg, nodeName: options.nodeName, includeHost: options.includeHost, warn });
  } catch (err) {
    queue?.close();
    throw err;
  }
  const series = uplink ? new TargetSeries({ ...options.series, warn }) : null;
  let capturer: Capturer | null = null;
  if (options.capture) {
    const { sink, reports, probes, ...tuning } = options.capture;
    capturer = new Capturer({
      ...tuning,
      node: options.nodeName,
      sink,
      reports,
      ...(probes ? { probes } : {}),
      hierarchy: sampler.memoryHierarchy,
      procRoot: sampler.procRoot,
      processes: () => watcher.latestSample?.processes ?? [],
      log,
    });
    const c = capturer;
    uplink?.onCommand('snapshot', (command, context) => c.handleCommand(command, context));
  }

  uplink?.onCommand('ping', () => ({ node: options.nodeName, atMs: Date.now(), version: options.version ?? '0.0.0-unknown' }));
  // The collector asks every agent this when it must reach a pod it has no target or finding for
  // (a `snapshots take` of a quiet pod): only the agent whose node runs it says yes.
  uplink?.onCommand('locate-pod', (command) => {
    const namespace = typeof command.namespace === 'string' ? command.namespace : null;
    const pod = typeof command.pod === 'string' ? command.pod : null;
    if (!namespace || !pod) throw new Error('locate-pod needs namespace and pod');
    const processes = watcher.latestSample?.processes ?? [];
    return { found: processes.some((p) => p.namespace === namespace && p.pod === pod) };
  });
  uplink?.start();

  const stats = {
    passes: 0,
    passErrors: 0,
    lastPassAtMs: null as number | null,
    lastPassDurationMs: null as number | null,
    lastSampleDurationMs: null as number | null,
    findingEvents: 0,
  };
  let lastSeriesSentMs = Date.now();
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let next = Date.now();

  const deliver = (events: FindingEvent[], atMs: number, sample: NodeSample | null): void => {
    stats.findingEvents += events.length;
    if (!uplink || !series) return;
    if (events.length > 0) uplink.enqueue(events);
    series.observe(events, sample, atMs);
    if (atMs - lastSeriesSentMs >= seriesIntervalMs) {
      lastSeriesSentMs = atMs;
      flushSeries();
    }
  };
  const flushSeries = (): void => {
    if (!uplink || !series) return;
    const { targets, points } = series.take();
    if (points.length > 0) uplink.sendSeries(targets, points);
  };

  const pass = async (): Promise<void> => {
    const atMs = Date.now();
    const started = performance.now();
    let events: FindingEvent[] = [];
    let error: string | null = null;
    let sample: NodeSample | null = null;
    try {
      events = await watcher.tick(atMs);
      sample = watcher.latestSample;
      stats.lastSampleDurationMs = sample?.durationMs ?? null;
    } catch (err) {
      error = `sampling pass failed: ${errorText(err)}`;
    }
    try {
      deliver(events, atMs, sample && sample.atMs === atMs ? sample : null);
    } catch (err) {
      error = error ?? `handing findings to the uplink failed: ${errorText(err)}`;
    }
    // Captures run beside the loop (they take seconds to minutes); their reports say how they went.
    if (capturer && sample && events.length > 0) capturer.observe(events, sample.processes, atMs);
    const durationMs = performance.now() - started;
    stats.passes++;
    stats.lastPassAtMs = atMs;
    stats.lastPassDurationMs = durationMs;
    if (error) {
      stats.passErrors++;
      log.error(error, { passes: stats.passes, passErrors: stats.passErrors });
    }
    if (options.onPass) {
      try {
        options.onPass({ atMs, sample, events, openFindings: watcher.openFindings(), durationMs, error });
      } catch (err) {
        log.error('onPass hook failed', { error: errorText(err) });
      }
    }
  };

  const loop = (): void => {
    timer = null;
    if (stopped) return;
    running = pass().finally(() => {
      running = null;
      if (stopped) return;
      next += intervalMs;
      // A slow pass must not make the next ones pile up: skip to the next slot in the future.
      if (next < Date.now()) next = Date.now() + intervalMs;
      timer = setTimeout(loop, next - Date.now());
    });
  };
  timer = setTimeout(loop, 0);

  let closing: Promise<void> | null = null;
  const close = (closeOptions: { flushMs?: number } = {}): Promise<void> => {
    closing ??= (async () => {
      const deadline = Date.now() + (closeOptions.flushMs ?? 2_000);
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      if (capturer) await capturer.close();
      // A pass stuck in a hung read must not hold the exit past the deadline.
      if (running) await within(running, deadline - Date.now());
      // Spawn evidence already being read is worth the wait; a pass is no longer running to report it.
      const lateSpawns = await watcher.finishPendingSpawns(Math.max(0, Math.min(1_000, deadline - Date.now())));
      try {
        // OOM kills the kernel logged but the watcher has not reported yet.
        deliver([...lateSpawns, ...watcher.close()], Date.now(), null);
        flushSeries();
      } catch (err) {
        log.error('final findings could not be queued', { error: errorText(err) });
      }
      if (uplink) await uplink.close({ flushMs: Math.max(0, deadline - Date.now()) });
      queue?.close();
      sampler.close();
    })();
    return closing;
  };

  return {
    watcher,
    sampler,
    uplink,
    queue,
    capturer,
    close,
    stats: () => ({
      ...stats,
      openFindings: watcher.openFindings().length,
      trackedTargets: series?.size ?? 0,
      spool: queue ? { dir: queue.dir, queued: queue.size, bytes: queue.bytes, dropped: queue.droppedTotal } : null,
      uplink: uplink?.state() ?? null,
    }),
  };
}

// ---- memory series of the targets that have findings

interface TrackedTarget {
  info: TargetInfo;
  /** Open findings about it; when none are left, it is kept for retainAfterResolveMs. */
  findings: Set<string>;
  idleSinceMs: number | null;
  pending: SeriesPoint[];
  lastPointMs: number;
  /** Process targets: pid and start time (a reused pid is another process). */
  pid: number | null;
  startTimeMs: number | null;
  cgroupPath: string | null;
}

/**
 * For every target with an open (or recently resolved) finding, one memory point per pass:
 * processes anon + swap with their limit, containers cgroup anon with working set and limit.
 * What a finding is "about": a process growth or spawn is the process; a container growth, an
 * OOM kill (its victim is dead) and a fan-out (its children come and go; their container's
 * memory is the story) are the container, falling back to the process when there is none.
 */
export class TargetSeries {
  private readonly targets = new Map<string, TrackedTarget>();
  /** Finding id → target key, fixed when the finding is first seen. */
  private readonly findingTargets = new Map<string, string>();
  private readonly retainAfterResolveMs: number;
  private readonly maxTargets: number;
  private readonly maxPointsPerTarget: number;
  private readonly warn: (msg: string) => void;
  private warnedFull = false;

  constructor(options: SeriesOptions & { warn?: (msg: string) => void } = {}) {
    this.retainAfterResolveMs = options.retainAfterResolveMs ?? 10 * 60_000;
    this.maxTargets = options.maxTargets ?? 200;
    this.maxPointsPerTarget = options.maxPointsPerTarget ?? 600;
    this.warn = options.warn ?? (() => {});
  }

  get size(): number {
    return this.targets.size;
  }

  observe(events: FindingEvent[], sample: NodeSample | null, nowMs: number): void {
    for (const e of events) this.route(e, sample, nowMs);
    if (sample) this.addPoints(sample);
    for (const [key, t] of this.targets) {
      if (t.findings.size === 0 && t.idleSinceMs !== null && nowMs - t.idleSinceMs > this.retainAfterResolveMs) this.targets.delete(key);
    }
    // Finding ids of targets that are gone cannot come back: forget them too.
    if (this.findingTargets.size > 4 * this.maxTargets) {
      for (const [id, key] of this.findingTargets) if (!this.targets.has(key)) this.findingTargets.delete(id);
    }
  }

  /** Points gathered since the last take, with the targets they belong to. */
  take(): { targets: TargetInfo[]; points: SeriesPoint[] } {
    const targets: TargetInfo[] = [];
    const points: SeriesPoint[] = [];
    for (const t of this.targets.values()) {
      if (t.pending.length === 0) continue;
      targets.push(t.info);
      points.push(...t.pending);
      t.pending = [];
    }
    return { targets, points };
  }

  private route(e: FindingEvent, sample: NodeSample | null, nowMs: number): void {
    const id = e.finding.id;
    let key = this.findingTargets.get(id);
    if (key === undefined && e.change !== 'resolve') {
      const target = sample ? targetOf(e.finding, sample) : null;
      if (!target) return;
      key = target.info.targetKey;
      if (!this.targets.has(key)) {
        if (this.targets.size >= this.maxTargets && !this.evictIdle()) {
          if (!this.warnedFull) this.warn(`series: already tracking ${this.maxTargets} targets; ${key} gets no memory series`);
          this.warnedFull = true;
          return;
        }
        this.targets.set(key, target);
      }
      this.findingTargets.set(id, key);
    }
    if (key === undefined) return;
    const t = this.targets.get(key);
    if (!t) return;
    if (e.change === 'resolve' || e.finding.status === 'resolved' || e.finding.kind === 'oom-kill' || e.finding.kind === 'suspicious-spawn') {
      // Kills and spawns are moments, not states: their target is charted for a while after.
      t.findings.delete(id);
      if (t.findings.size === 0) t.idleSinceMs = nowMs;
    } else {
      t.findings.add(id);
      t.idleSinceMs = null;
    }
  }

  /** Makes room by dropping the target idle the longest. */
  private evictIdle(): boolean {
    let oldest: [string, number] | null = null;
    for (const [key, t] of this.targets) {
      if (t.findings.size === 0 && t.idleSinceMs !== null && (!oldest || t.idleSinceMs < oldest[1])) oldest = [key, t.idleSinceMs];
    }
    if (!oldest) return false;
    this.targets.delete(oldest[0]);
    return true;
  }

  private addPoints(sample: NodeSample): void {
    if (this.targets.size === 0) return;
    const processes = new Map<number, AttributedProcess>();
    const containers = new Map<string, ContainerSample>();
    for (const p of sample.processes) processes.set(p.pid, p);
    for (const c of sample.containers) containers.set(c.cgroupPath, c);
    for (const t of this.targets.values()) {
      if (sample.atMs <= t.lastPointMs) continue;
      let point: SeriesPoint | null = null;
      if (t.pid !== null) {
        const p = processes.get(t.pid);
        if (p && p.startTimeMs === t.startTimeMs) {
          point = { targetKey: t.info.targetKey, atMs: sample.atMs, anonBytes: p.rssAnonBytes + p.swapBytes, workingSetBytes: null, limitBytes: p.limitBytes };
        }
      } else if (t.cgroupPath !== null) {
        const c = containers.get(t.cgroupPath);
        if (c?.memory) {
          point = { targetKey: t.info.targetKey, atMs: sample.atMs, anonBytes: c.memory.anonBytes, workingSetBytes: c.memory.workingSetBytes, limitBytes: c.limitBytes };
        }
      }
      if (!point) continue;
      t.lastPointMs = sample.atMs;
      t.pending.push(point);
      if (t.pending.length > this.maxPointsPerTarget) t.pending.splice(0, t.pending.length - this.maxPointsPerTarget);
    }
  }
}

function targetOf(f: Finding, sample: NodeSample): TrackedTarget | null {
  const preferContainer = f.kind === 'oom-kill' || f.kind === 'fanout' || (f.kind === 'growth' && f.details.scope === 'container');
  const container = f.target.containerId ? sample.containers.find((c) => c.containerId === f.target.containerId) : undefined;
  const process = f.target.pid !== null && f.kind !== 'oom-kill' ? sample.processes.find((p) => p.pid === f.target.pid) : undefined;
  if (container && (preferContainer || !process)) {
    return tracked(
      {
        targetKey: `ctr:${container.cgroupPath}`,
        kind: 'container',
        pid: null,
        ppid: null,
        comm: null,
        cmdline: null,
        namespace: container.namespace,
        pod: container.pod,
        podUid: container.podUid,
        container: container.container,
        containerId: container.containerId,
      },
      { cgroupPath: container.cgroupPath },
    );
  }
  if (!process) return null;
  return tracked(
    {
      targetKey: `proc:${process.pid}:${process.startTimeMs}`,
      kind: 'process',
      pid: process.pid,
      ppid: process.ppid,
      comm: process.comm,
      cmdline: process.cmdline,
      namespace: process.namespace,
      pod: process.pod,
      podUid: process.podUid,
      container: process.container,
      containerId: process.containerId,
    },
    { pid: process.pid, startTimeMs: process.startTimeMs },
  );
}

function tracked(info: TargetInfo, where: { pid?: number; startTimeMs?: number; cgroupPath?: string }): TrackedTarget {
  return {
    info,
    findings: new Set(),
    idleSinceMs: null,
    pending: [],
    lastPointMs: 0,
    pid: where.pid ?? null,
    startTimeMs: where.startTimeMs ?? null,
    cgroupPath: where.cgroupPath ?? null,
  };
}

function within(promise: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, ms));
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
