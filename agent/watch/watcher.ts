// The agent's detection loop: one sampling pass of the node feeds every detector, and what
// they conclude becomes Findings (opened, updated, resolved). Detectors stay pure; this file
// only routes samples to them and turns their events into the shape the rest of leakwatch uses.
import { createHash } from 'node:crypto';
import type { AttributedProcess, ContainerSample, NodeSample, NodeSampler } from '../host/node-sampler.js';
import type { KmsgFollower } from '../host/kmsg.js';
import { OomTracker } from '../host/oom-events.js';
import type { OomKillEvent } from '../host/types.js';
import type { Finding, FindingTarget, GrowthDetails, ProcessRef, SpawnDetails } from '../../protocol/findings.js';
import type { FindingChange } from '../../protocol/messages.js';
import { FanoutDetector, type FanoutEvent, type FanoutOptions } from './fanout.js';
import { GrowthDetector, type GrowthEvent, type GrowthOptions, type GrowthState } from './growth.js';
import { judgeSpawn, ProvenanceCache, type SpawnEvidence, type SpawnJudgement } from './spawn-evidence.js';
import type { SpawnRuleConfig } from './spawn-rules.js';
import { formatBytes as describeBytes, formatDuration as describeDuration } from '../../common/units.js';
import { findingTargetOf } from './finding-target.js';

export interface WatcherOptions {
  sampler: NodeSampler;
  /** Null when the kernel log is not followed (the memcg counters still report kills). */
  kmsg: KmsgFollower | null;
  nodeName: string;
  growth?: GrowthOptions;
  fanout?: FanoutOptions;
  spawnRules?: Partial<SpawnRuleConfig>;
  /** Also judge processes outside pods (host daemons). Default false: leakwatch answers for workloads. */
  includeHost?: boolean;
  /** Script bytes kept as evidence. Default 256 KiB. */
  maxScriptBytes?: number;
  /**
   * A process (or a container, by its oldest process) younger than this is not trended: loading
   * code, filling pools and caches at start-up is growth that stops. Default 15 s.
   */
  settleSec?: number;
  /** A suspicious-spawn finding resolves after this long without another occurrence. Default 600 s. */
  spawnQuietSec?: number;
  /**
   * How long a pass waits for the evidence of new processes before it goes on. Evidence still
   * being collected then (a provenance search over a large tree takes seconds) is reported by the
   * first pass after it is complete, so sampling never stalls behind it. Default 250 ms.
   */
  spawnWaitMs?: number;
  warn?: (msg: string) => void;
}

export type { FindingChange };

export interface FindingEvent {
  change: FindingChange;
  finding: Finding;
}

interface ProcessKeyed {
  key: string;
  process: AttributedProcess;
}

/** A new process whose evidence is being collected; judgement is set once that is done. */
interface PendingJudgement extends ProcessKeyed {
  done: Promise<void>;
  settled: boolean;
  judgement: SpawnJudgement | null;
}

/** How early a sampled start time can read (boot time has whole seconds). */
const startTimeErrorMs = 1000;

/** New processes whose evidence may be collected beside the passes before a pass waits for it all. */
const maxPendingJudgements = 256;

/** Pids of repeated spawns kept on a finding (the most recent). */
const maxSpawnPidsKept = 20;

const processKey = (p: { pid: number; startTimeMs: number }): string => `proc:${p.pid}:${p.startTimeMs}`;
const containerKey = (c: ContainerSample): string => `ctr:${c.cgroupPath}`;

export class Watcher {
  private readonly sampler: NodeSampler;
  private readonly kmsg: KmsgFollower | null;
  private readonly nodeName: string;
  private readonly includeHost: boolean;
  private readonly warn: (msg: string) => void;
  private readonly growth: GrowthDetector;
  private readonly fanout: FanoutDetector;
  private readonly oom: OomTracker;
  private readonly spawnRules: Partial<SpawnRuleConfig>;
  private readonly maxScriptBytes: number;
  private readonly settleMs: number;
  private readonly spawnQuietMs: number;
  private readonly spawnWaitMs: number;
  /** In the order the processes were first seen, so repeats of one spawn stay in order. */
  private pending: PendingJudgement[] = [];
  /** A server spawning per request runs the same script each time: search its provenance once. */
  private readonly provenanceCache = new ProvenanceCache();
  /** Open findings by detector key. */
  private readonly open = new Map<string, Finding>();
  /** Processes already judged for suspicious spawns (by pid and start time). */
  private readonly judged = new Set<string>();
  private liveProcesses = new Map<string, AttributedProcess>();
  private liveContainers = new Map<string, ContainerSample>();
  private lastSample: NodeSample | null = null;

  constructor(options: WatcherOptions) {
    this.sampler = options.sampler;
    this.kmsg = options.kmsg;
    this.nodeName = options.nodeName;
    this.includeHost = options.includeHost ?? false;
    this.warn = options.warn ?? (() => {});
    this.growth = new GrowthDetector({ ...options.growth, warn: this.warn });
    this.fanout = new FanoutDetector({ includeHost: this.includeHost, ...options.fanout, warn: this.warn });
    this.spawnRules = options.spawnRules ?? {};
    this.maxScriptBytes = options.maxScriptBytes ?? 256 * 1024;
    this.settleMs = (options.settleSec ?? 15) * 1000;
    this.spawnQuietMs = (options.spawnQuietSec ?? 600) * 1000;
    this.spawnWaitMs = options.spawnWaitMs ?? 250;
    const kmsg = this.kmsg;
    this.oom = new OomTracker({
      lastSeen: (pid) => this.sampler.lastSeen(pid),
      kmsgActive: () => kmsg !== null && kmsg.available,
    });
    kmsg?.open();
  }

  /** The sample of the last pass, for callers that also show or export it. */
  get latestSample(): NodeSample | null {
    return this.lastSample;
  }

  /** New processes whose evidence is still being collected (reported by a later pass). */
  get pendingSpawnJudgements(): number {
    return this.pending.filter((e) => !e.settled).length;
  }

  openFindings(): Finding[] {
    return [...this.open.values()];
  }

  /** One pass: sample the node, run every detector, return what changed. */
  async tick(now: number = Date.now()): Promise<FindingEvent[]> {
    const sample = this.sampler.sample(now);
    this.lastSample = sample;
    const watched = sample.processes.filter((p) => this.includeHost || p.podUid !== null);
    const events: FindingEvent[] = [];

    this.trackLiveness(watched, sample.containers, now, events);
    events.push(...(await this.judgeNewProcesses(watched)));
    for (const e of this.fanout.observe(now, sample.processes)) this.applyFanout(e, events);
    this.observeGrowth(watched, sample.containers, now, events);
    this.observeOom(sample, now, events);
    this.expireSpawns(now, events);
    return events;
  }

  close(): FindingEvent[] {
    const events: FindingEvent[] = [];
    for (const kill of this.oom.flush()) events.push(this.oomFinding(kill, this.lastSample));
    this.kmsg?.close();
    return events;
  }

  // -- liveness: detectors forget targets that are gone, and their findings resolve

  private trackLiveness(processes: AttributedProcess[], containers: ContainerSample[], now: number, events: FindingEvent[]): void {
    const live = new Map<string, AttributedProcess>();
    for (const p of processes) live.set(processKey(p), p);
    for (const [key, p] of this.liveProcesses) {
      if (live.has(key)) continue;
      this.growth.forget(key);
      this.judged.delete(key);
      this.resolve(`growth:${key}`, now, `process ${p.pid} (${p.comm}) exited`, events);
    }
    this.liveProcesses = live;
    const liveContainers = new Map<string, ContainerSample>();
    for (const c of containers) if (c.pids.length > 0) liveContainers.set(containerKey(c), c);
    for (const [key, c] of this.liveContainers) {
      if (liveContainers.has(key)) continue;
      this.growth.forget(key);
      this.resolve(`growth:${key}`, now, `container ${c.container ?? c.containerId.slice(0, 12)} has no process left`, events);
    }
    this.liveContainers = liveContainers;
  }

  // -- suspicious spawns: judged once, at first sight, because temp files vanish

  private async judgeNewProcesses(processes: AttributedProcess[]): Promise<FindingEvent[]> {
    const lookup = (pid: number) => this.sampler.lastSeen(pid);
    for (const p of processes) {
      const key = processKey(p);
      if (this.judged.has(key)) continue;
      this.judged.add(key);
      // Evidence collection starts now, at first sight: only the report of it may wait.
      const entry: PendingJudgement = { key, process: p, settled: false, judgement: null, done: Promise.resolve() };
      entry.done = judgeSpawn(p, {
        procRoot: this.sampler.procRoot,
        lookup,
        maxScriptBytes: this.maxScriptBytes,
        rules: this.spawnRules,
        provenanceCache: this.provenanceCache,
        warn: this.warn,
      }).then(
        (judgement) => {
          entry.judgement = judgement;
          entry.settled = true;
        },
        (err: unknown) => {
          this.warn(`spawn evidence for pid ${p.pid} failed: ${err instanceof Error ? err.message : String(err)}`);
          entry.settled = true;
        },
      );
      this.pending.push(entry);
    }
    // A storm of new processes must not grow the work in flight without bound: past the cap, the
    // pass waits for all of it, as if evidence were always awaited.
    await this.waitForPending(this.pending.length > maxPendingJudgements ? Number.POSITIVE_INFINITY : this.spawnWaitMs);
    return this.takeSettledJudgements();
  }

  /** Resolves when every pending judgement has settled or maxWaitMs has passed, whichever is first. */
  private async waitForPending(maxWaitMs: number): Promise<void> {
    if (this.pending.every((e) => e.settled)) return;
    if (maxWaitMs === Number.POSITIVE_INFINITY) {
      await Promise.all(this.pending.map((e) => e.done));
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, maxWaitMs);
    });
    await Promise.race([Promise.all(this.pending.map((e) => e.done)), timeout]);
    clearTimeout(timer);
  }

  private takeSettledJudgements(): FindingEvent[] {
    const events: FindingEvent[] = [];
    const stillPending: PendingJudgement[] = [];
    for (const entry of this.pending) {
      if (!entry.settled) {
        stillPending.push(entry);
        continue;
      }
      const judgement = entry.judgement;
      if (!judgement) continue;
      const key = spawnKey(entry.process, judgement);
      const existing = this.open.get(key);
      if (existing?.kind === 'suspicious-spawn') {
        events.push({ change: 'update', finding: this.repeatSpawn(key, existing, entry.process, judgement.evidence.collectedAtMs) });
      } else {
        const finding = this.spawnFinding(key, entry.process, judgement);
        this.open.set(key, finding);
        events.push({ change: 'open', finding });
      }
    }
    this.pending = stillPending;
    return events;
  }

  /**
   * The spawn findings whose evidence was still being collected, waiting at most maxWaitMs for
   * them: before close(), so that stopping the agent does not drop evidence already being read.
   */
  async finishPendingSpawns(maxWaitMs: number): Promise<FindingEvent[]> {
    await this.waitForPending(maxWaitMs);
    return this.takeSettledJudgements();
  }

  /**
   * The same parent running the same script again (one collector per request) is one finding
   * that counts its occurrences: the evidence of the first is what a reviewer reads.
   */
  private repeatSpawn(key: string, existing: Finding & { kind: 'suspicious-spawn' }, p: AttributedProcess, atMs: number): Finding {
    const pids = [...existing.details.pids, p.pid].slice(-maxSpawnPidsKept);
    const occurrences = existing.details.occurrences + 1;
    const details: SpawnDetails = { ...existing.details, occurrences, pids };
    const summary = existing.summary.replace(/( — seen \d+ times, last pid \d+)?$/, ` — seen ${occurrences} times, last pid ${p.pid}`);
    const finding: Finding = { ...existing, updatedAt: atMs, summary, details };
    this.open.set(key, finding);
    return finding;
  }

  /** Spawn findings have no end of their own: they resolve when the parent stops repeating them. */
  private expireSpawns(now: number, events: FindingEvent[]): void {
    for (const [key, f] of this.open) {
      if (f.kind === 'suspicious-spawn' && now - f.updatedAt > this.spawnQuietMs) {
        this.resolve(key, now, `no new spawn for ${Math.round(this.spawnQuietMs / 60_000)} min`, events);
      }
    }
  }

  private spawnFinding(key: string, p: AttributedProcess, judgement: SpawnJudgement): Finding {
    const ev = judgement.evidence;
    const details: SpawnDetails = {
      rules: judgement.rules.map((r) => ({ id: r.id, reason: r.reason })),
      argv: ev.argv,
      exe: ev.exe,
      cwd: ev.cwd,
      uid: ev.uid,
      startTimeMs: ev.startTimeMs,
      parentChain: ev.parentChain.map((l) => ({ pid: l.pid, comm: l.comm, cmdline: l.cmdline })),
      script: ev.script ? scriptDetails(ev) : null,
      provenance: ev.provenance ? { path: ev.provenance.path, sha256: ev.provenance.sha256, encoding: ev.provenance.encoding, statement: ev.provenance.statement } : null,
      notes: [...ev.notes, ...ev.refused.map((r) => `refused ${r.what} ${r.path}: ${r.reason} (${r.detail})`)],
      occurrences: 1,
      pids: [p.pid],
    };
    const parent = details.parentChain[0];
    const what = ev.script?.path ?? ev.script?.argPath ?? ev.cmdline;
    const from = parent ? ` spawned by ${parent.comm} (pid ${parent.pid})` : '';
    const provenance = ev.provenance ? `; ${ev.provenance.statement}` : '';
    const summary = `suspicious spawn: ${p.comm} (pid ${p.pid}) running ${what}${from} [${details.rules.map((r) => r.id).join(', ')}]${provenance}`;
    return { ...this.base('suspicious-spawn', key, ev.collectedAtMs, findingTargetOf(p), summary), kind: 'suspicious-spawn', details };
  }

  // -- growth: per process (anon + swap) and per container (cgroup anon)

  private observeGrowth(processes: AttributedProcess[], containers: ContainerSample[], now: number, events: FindingEvent[]): void {
    const fanoutParents = new Set<number>();
    for (const f of this.open.values()) if (f.kind === 'fanout' && f.status === 'open') fanoutParents.add(f.details.parent.pid);
    const oldestStartByContainer = new Map<string, number>();
    for (const p of processes) {
      if (p.containerId) oldestStartByContainer.set(p.containerId, Math.min(p.startTimeMs, oldestStartByContainer.get(p.containerId) ?? Infinity));
    }
    for (const p of processes) {
      if (now - p.startTimeMs < this.settleMs) continue;
      const key = processKey(p);
      for (const e of this.growth.observe(key, now, p.rssAnonBytes + p.swapBytes, p.limitBytes)) {
        // Children of a fan-out are reported once, as the fan-out, not one growth finding each.
        if (e.kind === 'open' && fanoutParents.has(p.ppid)) continue;
        this.applyGrowth(e, `growth:${key}`, events, (state) => this.processGrowthFinding(p, state));
      }
    }
    for (const c of containers) {
      if (c.pids.length === 0 || !c.memory) continue;
      if (now - (oldestStartByContainer.get(c.containerId) ?? now) < this.settleMs) continue;
      const key = containerKey(c);
      for (const e of this.growth.observe(key, now, c.memory.anonBytes, c.limitBytes)) {
        // One alert per leak: a container whose growth one growing process already explains stays
        // quiet. A fan-out does not explain it away: the container's path to its limit is the ETA.
        if (e.kind === 'open' && this.hasOpenProcessGrowthIn(c)) continue;
        this.applyGrowth(e, `growth:${key}`, events, (state) => this.containerGrowthFinding(c, state));
      }
    }
  }

  private hasOpenProcessGrowthIn(c: ContainerSample): boolean {
    for (const f of this.open.values()) {
      if (f.target.containerId === c.containerId && f.kind === 'growth' && f.details.scope === 'process') return true;
    }
    return false;
  }

  private applyGrowth(e: GrowthEvent, key: string, events: FindingEvent[], build: (state: GrowthState) => Finding): void {
    if (e.kind === 'resolve') {
      this.resolve(key, e.atMs, e.reason, events);
      return;
    }
    const existing = this.open.get(key);
    if (e.kind === 'update' && !existing) return;
    const finding = build(e.state);
    if (existing) {
      finding.id = existing.id;
      finding.at = existing.at;
    }
    this.open.set(key, finding);
    events.push({ change: existing ? 'update' : 'open', finding });
  }

  private processGrowthFinding(p: AttributedProcess, s: GrowthState): Finding {
    const details = growthDetails('process', s, null);
    const where = p.pod ? ` in ${p.namespace}/${p.pod}${p.container ? `/${p.container}` : ''}` : '';
    const summary = `${p.comm} (pid ${p.pid})${where} ${growthSentence(details)}`;
    return { ...this.base('growth', `growth:${processKey(p)}`, s.firstDetectedMs, findingTargetOf(p), summary, s.windowEndMs), kind: 'growth', details };
  }

  private containerGrowthFinding(c: ContainerSample, s: GrowthState): Finding {
    const details = growthDetails('container', s, c.memory?.workingSetBytes ?? null);
    const name = `${c.namespace ?? '?'}/${c.pod ?? c.podUid}/${c.container ?? c.containerId.slice(0, 12)}`;
    const summary = `container ${name} ${growthSentence(details)}`;
    const target: FindingTarget = {
      pid: null,
      comm: null,
      cmdline: null,
      namespace: c.namespace,
      pod: c.pod,
      podUid: c.podUid,
      container: c.container,
      containerId: c.containerId,
    };
    return { ...this.base('growth', `growth:${containerKey(c)}`, s.firstDetectedMs, target, summary, s.windowEndMs), kind: 'growth', details };
  }

  // -- fan-out

  private applyFanout(e: FanoutEvent, events: FindingEvent[]): void {
    const key = `fanout:${e.key}`;
    if (e.kind === 'resolve') {
      this.resolve(key, e.atMs, e.reason, events);
      return;
    }
    const existing = this.open.get(key);
    const finding: Finding = { ...this.base('fanout', key, existing?.at ?? e.atMs, e.target, e.summary, e.atMs), kind: 'fanout', details: e.details };
    if (existing) finding.id = existing.id;
    this.open.set(key, finding);
    events.push({ change: existing ? 'update' : 'open', finding });
  }

  // -- OOM kills

  private observeOom(sample: NodeSample, now: number, events: FindingEvent[]): void {
    if (this.kmsg) this.oom.observeKmsg(this.kmsg.poll(), now);
    this.oom.observeCounters(
      now,
      sample.containers
        .filter((c) => c.memory)
        .map((c) => ({
          cgroupPath: c.cgroupPath,
          oomKills: c.memory?.oomKills ?? 0,
          podUid: c.podUid,
          containerId: c.containerId,
          namespace: c.namespace,
          pod: c.pod,
          container: c.container,
        })),
    );
    for (const kill of this.oom.takeEvents(now)) {
      if (!this.includeHost && kill.podUid === null) continue;
      events.push(this.oomFinding(kill, sample));
    }
  }

  private oomFinding(kill: OomKillEvent, sample: NodeSample | null): FindingEvent {
    const related = [...this.open.values()]
      .filter((f) => (f.kind === 'growth' || f.kind === 'fanout') && sameContainer(f.target, kill))
      .map((f) => f.id);
    const victim = kill.pid !== null ? this.sampler.lastSeen(kill.pid) : undefined;
    const containerSurvived = sample ? survived(kill, victim?.startTimeMs ?? null, sample) : null;
    const who = kill.pid !== null ? `${kill.comm ?? '?'} (pid ${kill.pid})` : 'a process';
    const where = kill.pod ? ` in ${kill.namespace}/${kill.pod}${kill.container ? `/${kill.container}` : ''}` : kill.memcg ? ` in ${kill.memcg}` : '';
    const rss = kill.lastRssAnonBytes ?? kill.kernelAnonRssBytes;
    const survivedText =
      containerSurvived === true ? "; the container's main process lived on, so Kubernetes reports nothing" : containerSurvived === false ? '; the container died with it' : '';
    const summary = `OOM kill: ${who}${where}${rss !== null ? ` holding ${describeBytes(rss)} anon` : ''}${survivedText}`;
    const key = `oom:${kill.pid ?? 'counter'}:${kill.atMs}:${kill.memcg ?? ''}`;
    const finding: Finding = {
      ...this.base(
        'oom-kill',
        key,
        kill.atMs,
        {
          pid: kill.pid,
          comm: kill.comm,
          cmdline: kill.cmdline,
          namespace: kill.namespace,
          pod: kill.pod,
          podUid: kill.podUid,
          container: kill.container,
          containerId: kill.containerId,
        },
        summary,
      ),
      kind: 'oom-kill',
      details: {
        victim: { pid: kill.pid, ppid: victimParentOf(kill, victim), comm: kill.comm, cmdline: kill.cmdline, lastRssAnonBytes: kill.lastRssAnonBytes ?? kill.kernelAnonRssBytes },
        memcg: kill.taskMemcg ?? kill.memcg,
        containerSurvived,
        sources: kill.sources,
        relatedFindings: related,
      },
    };
    return { change: 'open', finding };
  }

  // -- shared

  private base(kind: Finding['kind'], key: string, at: number, target: FindingTarget, summary: string, updatedAt: number = at) {
    const id = `${kind}-${createHash('sha256').update(`${this.nodeName}\0${key}\0${at}`).digest('hex').slice(0, 16)}`;
    return { id, status: 'open' as const, at, updatedAt, node: this.nodeName, target, summary };
  }

  private resolve(key: string, atMs: number, reason: string, events: FindingEvent[]): void {
    const existing = this.open.get(key);
    if (!existing) return;
    this.open.delete(key);
    const finding = { ...existing, status: 'resolved' as const, updatedAt: atMs, summary: `${existing.summary} — resolved: ${reason}` } as Finding;
    events.push({ change: 'resolve', finding });
  }
}

/** One finding per parent and script: by the script's hash, else by the command line. */
function spawnKey(p: AttributedProcess, judgement: SpawnJudgement): string {
  const ev = judgement.evidence;
  const parent = ev.parentChain[0];
  const what = ev.script?.sha256 ?? createHash('sha256').update(ev.argv.join('\0')).digest('hex');
  return `spawn:${parent ? `${parent.pid}:${parent.startTimeMs}` : `self:${processKey(p)}`}:${what}`;
}


function growthDetails(scope: 'process' | 'container', s: GrowthState, workingSetBytes: number | null): GrowthDetails {
  return {
    scope,
    slopeBytesPerSec: s.slopeBytesPerSec,
    currentBytes: s.currentBytes,
    workingSetBytes,
    limitBytes: s.limitBytes,
    etaSec: s.etaSec,
    confidence: s.confidence,
    windowStartMs: s.windowStartMs,
    windowEndMs: s.windowEndMs,
  };
}

function growthSentence(d: GrowthDetails): string {
  const rate = `grows ${describeBytes(d.slopeBytesPerSec)}/s, now ${describeBytes(d.currentBytes)}`;
  if (d.limitBytes === null) return `${rate}, no memory limit`;
  return `${rate} of a ${describeBytes(d.limitBytes)} limit: OOM in ~${describeDuration(d.etaSec ?? 0)}`;
}

function scriptDetails(ev: SpawnEvidence): SpawnDetails['script'] {
  const s = ev.script;
  if (!s) return null;
  const refusal = ev.refused.find((r) => r.what === 'script');
  return {
    path: s.path ?? s.argPath,
    sha256: s.sha256,
    sizeBytes: s.sizeBytes,
    mtimeMs: s.mtimeMs,
    ctimeMs: s.ctimeMs,
    content: s.content?.data ?? null,
    contentEncoding: s.content?.encoding ?? null,
    truncated: s.content?.truncated ?? false,
    refused: refusal ? `${refusal.reason}: ${refusal.detail}` : null,
  };
}

function sameContainer(t: FindingTarget, kill: OomKillEvent): boolean {
  if (kill.containerId && t.containerId) return kill.containerId === t.containerId;
  return kill.podUid !== null && t.podUid === kill.podUid;
}

/**
 * Whether the container's main process outlived the kill. The main process is the container's
 * init (nsPid 1 in its own pid namespace) or, without a pid namespace, its oldest process.
 */
/** The victim's parent, when the process last sampled under its pid is the one that was killed. */
function victimParentOf(kill: OomKillEvent, lastSeen: AttributedProcess | undefined): number | null {
  if (!lastSeen || kill.pid === null) return null;
  if (kill.comm !== null && lastSeen.comm !== kill.comm) return null;
  return lastSeen.ppid;
}

function survived(kill: OomKillEvent, victimStartMs: number | null, sample: NodeSample): boolean | null {
  if (!kill.containerId) return null;
  // Only processes that were there at the kill can have survived it: a restarted main process
  // (same cgroup, new process) started after. Start times can read up to ~1 s early (btime has
  // whole seconds), hence the margin.
  const inContainer = sample.processes.filter(
    (p) => p.containerId === kill.containerId && p.pid !== kill.pid && p.state !== 'Z' && p.startTimeMs < kill.atMs - startTimeErrorMs,
  );
  if (inContainer.length === 0) return false;
  if (inContainer.some((p) => p.nsPid === 1 && p.nsPids.length > 1)) return true;
  // No pid namespace to tell the init: the oldest process is the main one, and if the victim was
  // older than everything left, the main process is what died.
  const oldest = Math.min(...inContainer.map((p) => p.startTimeMs));
  return victimStartMs === null || victimStartMs > oldest;
}

export type { ProcessRef };
