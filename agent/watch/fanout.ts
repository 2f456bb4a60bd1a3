// Fan-out: one parent that keeps starting children which stay alive or grow (seeds 000/001: a
// Flask server started one `python /tmp/tmpXXXX.py` per request, each allocating forever). It is
// reported as ONE problem keyed by the parent, not as one alert per child.
//
// What must stay silent, and how:
//  - a pre-fork pool (gunicorn, nginx, supervisord): children that started within
//    `startupGraceMs` of the parent's own start are pool members, never counted as spawns;
//  - a pool that recycles its workers (gunicorn max_requests, crash respawn): every spawn is
//    matched by an exit, so the net number of children does not grow;
//  - a shell or cron-like parent whose children exit quickly: they never linger
//    (`minChildAgeMs`) and the memory they hold has no trend;
//  - parallel short jobs (make -j, a batch runner): each exits before it is minChildAgeMs old;
//  - zombies: a child that exited but was not reaped holds no memory and counts as exited;
//  - orphans a subreaper (tini, pid 1) adopts: a child first seen under another parent is adopted,
//    not spawned.
// A leak in a single child is the growth detector's; here only fleets of siblings count.
//
// Pure function of its inputs plus per-parent state: no clock, no I/O, so recorded passes replay.
import type { AttributedProcess } from '../host/node-sampler.js';
import type { FanoutDetails, FindingTarget, ProcessRef } from '../../protocol/findings.js';
import { mannKendall, serialCorrelationFactor, theilSen } from './trend-stats.js';
import { interpreterKind, programName } from './spawn-rules.js';
import { findingTargetOf } from './finding-target.js';

export interface FanoutOptions {
  /**
   * Also watch parents outside any pod. Off by default: host daemons fork legitimately and
   * often (containerd-shim starts every container, systemd starts units, sshd a child per login,
   * kthreadd its workers), and what leakwatch answers for is the workloads in pods.
   */
  includeHost?: boolean;
  /**
   * Children that are copies of the parent (forked, not exec'd into another program) started
   * within this long after the parent are its pool, not spawns. Default 30 s: covers gunicorn
   * --preload, which imports the app for a while before it forks its workers.
   */
  startupGraceMs?: number;
  /**
   * Children that run another program are start-up helpers only within this long after the
   * parent's start. Default 10 s: shorter, so that a server spawning a script per request
   * (the seeds' collector) is counted from its first requests.
   */
  execStartupGraceMs?: number;
  /** Window in which spawns and exits are counted. Default 5 min. */
  spawnWindowMs?: number;
  /** Spawns within the window needed for the spawn-driven triggers. Default 5. */
  minSpawns?: number;
  /**
   * Children that must both still be alive (older than minChildAgeMs) and be net additions
   * (spawns minus exits in the window) for the "accumulating" trigger. Default 3.
   */
  minAccumulated?: number;
  /** A spawned child counts as staying alive once it is this old. Default 5 s: health checks and one-shot commands are gone by then. */
  minChildAgeMs?: number;
  /** Window of the combined-memory trend. Default 60 s. */
  trendWindowMs?: number;
  /** Points needed before a combined-memory trend is computed. Default 10. */
  minTrendPoints?: number;
  /**
   * The spawned children's combined memory, and all children's together, must both grow at least
   * this fast for the "spawned-memory-growing" trigger. Default 256 KiB/s (~900 MiB/h).
   */
  minCombinedSlopeBytesPerSec?: number;
  /** Siblings each growing on their own for the "siblings-growing" trigger. Default 3. */
  minGrowingSiblings?: number;
  /** A child's own trend is tested on the floor (minimum) of each bucket of this length, so a GC sawtooth does not count. Default 5 s. */
  childBucketMs?: number;
  /** Floor buckets kept per child (the child's trend window). Default 24 (2 min at 5 s). */
  childTrendBuckets?: number;
  /** Floor buckets needed before a child may count as growing. Default 8. */
  minChildTrendBuckets?: number;
  /** A child's first this-long is warm-up and left out of its own trend. Default 60 s. */
  childWarmupMs?: number;
  /** A child counts as growing at or above this floor slope. Default 16 KiB/s (~56 MiB/h). */
  minChildSlopeBytesPerSec?: number;
  /** 'update' events are at least this far apart, and only when the numbers moved. Default 5 s. */
  updateIntervalMs?: number;
  /** Resolve an open finding after this long without a spawn and without memory growth. Default 2 min. */
  quietMs?: number;
  /** A parent missing from the passes this long has exited (tolerates one missed pass). Default 2 s. */
  parentGoneGraceMs?: number;
  /** Children named in a finding, largest first. Default 16, at most 64. */
  maxSampleChildren?: number;
  /** Parents tracked at once; beyond it new parents are ignored (with one warning). Default 4096. */
  maxParents?: number;
  /** Spawn and exit timestamps kept per parent (the spawn count saturates there). Default 512. */
  maxEventsPerParent?: number;
  warn?: (msg: string) => void;
}

export type FanoutTrigger = 'accumulating' | 'spawned-memory-growing' | 'siblings-growing';

export interface FanoutFindingEvent {
  kind: 'open' | 'update';
  /** `<parent pid>:<parent startTimeMs>`: a reused pid is a different key. */
  key: string;
  atMs: number;
  target: FindingTarget;
  details: FanoutDetails;
  summary: string;
  /** Which condition opened the finding (kept on updates). */
  trigger: FanoutTrigger;
}

export interface FanoutResolveEvent {
  kind: 'resolve';
  key: string;
  atMs: number;
  cause: 'quiet' | 'parent-exited';
  reason: string;
}

export type FanoutEvent = FanoutFindingEvent | FanoutResolveEvent;

type Settings = Required<Omit<FanoutOptions, 'warn'>>;

const defaults: Settings = {
  includeHost: false,
  startupGraceMs: 30_000,
  execStartupGraceMs: 10_000,
  spawnWindowMs: 300_000,
  minSpawns: 5,
  minAccumulated: 3,
  minChildAgeMs: 5_000,
  trendWindowMs: 60_000,
  minTrendPoints: 10,
  minCombinedSlopeBytesPerSec: 256 * 1024,
  minGrowingSiblings: 3,
  childBucketMs: 5_000,
  childTrendBuckets: 24,
  minChildTrendBuckets: 8,
  childWarmupMs: 60_000,
  minChildSlopeBytesPerSec: 16 * 1024,
  updateIntervalMs: 5_000,
  quietMs: 120_000,
  parentGoneGraceMs: 2_000,
  maxSampleChildren: 16,
  maxParents: 4096,
  maxEventsPerParent: 512,
};

const sampleChildrenCap = 64;
/** Combined-memory points kept per parent, whatever the sampling rate: bounds Theil–Sen's O(n²). */
const maxTrendPoints = 120;
/** One-sided 95 % for the Mann–Kendall z. */
const zCritical = 1.645;
const kthreaddPid = 2;

interface Point {
  t: number;
  v: number;
}

interface ChildState {
  pid: number;
  startTimeMs: number;
  comm: string;
  cmdline: string;
  spawned: boolean;
  /** Spawn time (start time clamped to the pass), for counting it inside the window. */
  spawnedAtMs: number;
  /** Time of the last pass that listed it alive: children not stamped this pass have exited. */
  seenAtMs: number;
  bytes: number;
  bucketStartMs: number | null;
  bucketMin: number;
  floors: Point[];
  growing: boolean;
}

interface Episode {
  trigger: FanoutTrigger;
  childrenSeen: number;
  lastActivityMs: number;
  lastEmittedAtMs: number;
  lastEmitted: FanoutDetails;
}

interface ParentState {
  key: string;
  pid: number;
  startTimeMs: number;
  parent: AttributedProcess;
  /** Alive children by pid (a reused child pid is an exit plus a new child). */
  children: Map<number, ChildState>;
  spawnTimes: number[];
  exitTimes: number[];
  /** Spawns and exits before this (the last resolve) no longer count towards opening. */
  baselineMs: number;
  /** Combined anon+swap of all alive children. */
  allSeries: Point[];
  /** Combined anon+swap of alive spawned children: the signal of the spawn-driven trigger. */
  spawnedSeries: Point[];
  /** Trends of the two series, recomputed at most every trendEveryMs. */
  trendsAtMs: number;
  allTrend: Trend | null;
  spawnedTrend: Trend | null;
  missingSinceMs: number | null;
  episode: Episode | null;
}

/** Spawns counted in the current window (since the last resolve, at most spawnWindowMs back). */
interface SpawnWindow {
  count: number;
  firstMs: number;
  lastMs: number;
}

interface Trend {
  slopeBytesPerSec: number;
  increasing: boolean;
}

/**
 * The combined-memory trends cost O(n²) on up to maxTrendPoints points; a cron-like parent is
 * a candidate on every pass, so they are refreshed at this pace rather than per pass.
 */
const trendEveryMs = 3_000;

export class FanoutDetector {
  private readonly s: Settings;
  private readonly warn: (msg: string) => void;
  /** By parent pid; the state's startTimeMs tells a reused pid apart. */
  private readonly parents = new Map<number, ParentState>();
  /** The previous pass by pid, to tell adopted orphans from spawns. */
  private previousByPid = new Map<number, AttributedProcess>();
  private lastAtMs = -Infinity;
  private warnedParentCap = false;

  constructor(options: FanoutOptions = {}) {
    const { warn, ...rest } = options;
    this.warn = warn ?? (() => {});
    const merged: Settings = { ...defaults };
    for (const [name, value] of Object.entries(rest) as Array<[keyof Settings, unknown]>) {
      if (value === undefined) continue;
      const expected = typeof defaults[name];
      if (typeof value !== expected || (typeof value === 'number' && !(Number.isFinite(value) && value >= 0))) {
        throw new TypeError(`FanoutOptions.${name} must be a ${expected === 'number' ? 'finite number >= 0' : expected}, got ${String(value)}`);
      }
      (merged as unknown as Record<string, unknown>)[name] = value;
    }
    merged.maxSampleChildren = Math.min(merged.maxSampleChildren, sampleChildrenCap);
    this.s = merged;
  }

  /** Parents and children currently held, for the agent's own metrics and for tests of the bounds. */
  get stateSize(): { parents: number; children: number; openFindings: number } {
    let children = 0;
    let openFindings = 0;
    for (const p of this.parents.values()) {
      children += p.children.size;
      if (p.episode) openFindings++;
    }
    return { parents: this.parents.size, children, openFindings };
  }

  /** Feed one sampling pass. Returns the findings that opened, changed or resolved in it. */
  observe(atMs: number, processes: AttributedProcess[]): FanoutEvent[] {
    if (!Number.isFinite(atMs)) {
      this.warn(`fanout: pass ignored, its time is not a number (${String(atMs)})`);
      return [];
    }
    if (atMs < this.lastAtMs) {
      this.warn(`fanout: pass at ${atMs} ignored, it is earlier than the previous pass at ${this.lastAtMs}`);
      return [];
    }
    if (!Array.isArray(processes)) {
      this.warn('fanout: pass ignored, processes is not an array');
      return [];
    }
    this.lastAtMs = atMs;
    const events: FanoutEvent[] = [];

    const byPid = new Map<number, AttributedProcess>();
    for (const p of processes) {
      if (!isUsable(p)) continue;
      byPid.set(p.pid, p);
    }

    // Group this pass's children by the parent process alive now.
    const groups = new Map<number, AttributedProcess[]>();
    for (const child of byPid.values()) {
      if (child.ppid <= 0 || child.ppid === kthreaddPid || child.ppid === child.pid) continue;
      const parent = byPid.get(child.ppid);
      if (!parent) continue;
      if (parent.podUid === null && !this.s.includeHost) continue;
      let group = groups.get(parent.pid);
      if (!group) {
        group = [];
        groups.set(parent.pid, group);
      }
      group.push(child);
    }

    // Parents we hold state for that are gone, or have no children in this pass.
    for (const state of [...this.parents.values()]) {
      const now = byPid.get(state.pid);
      if (now && now.startTimeMs === state.startTimeMs) {
        state.missingSinceMs = null;
        if (!groups.has(state.pid)) this.update(state, now, [], atMs, events);
        continue;
      }
      // Same pid with another start time: the parent is certainly gone and the pid reused.
      const reused = now !== undefined;
      state.missingSinceMs ??= atMs;
      if (reused || atMs - state.missingSinceMs >= this.s.parentGoneGraceMs) {
        if (state.episode) {
          events.push({
            kind: 'resolve',
            key: state.key,
            atMs,
            cause: 'parent-exited',
            reason: `${label(state.parent)} exited${reused ? ' (its pid now belongs to another process)' : ''}; it had ${state.children.size} ${plural(state.children.size, 'child', 'children')} alive when last seen`,
          });
        }
        this.parents.delete(state.pid);
      }
    }

    for (const [pid, children] of groups) {
      const parent = byPid.get(pid)!;
      let state = this.parents.get(pid);
      if (!state) {
        if (this.parents.size >= this.s.maxParents) {
          if (!this.warnedParentCap) {
            this.warn(`fanout: tracking ${this.parents.size} parents already (maxParents); new parents are ignored until some go away`);
            this.warnedParentCap = true;
          }
          continue;
        }
        state = {
          key: `${parent.pid}:${parent.startTimeMs}`,
          pid: parent.pid,
          startTimeMs: parent.startTimeMs,
          parent,
          children: new Map(),
          spawnTimes: [],
          exitTimes: [],
          baselineMs: -Infinity,
          allSeries: [],
          spawnedSeries: [],
          trendsAtMs: -Infinity,
          allTrend: null,
          spawnedTrend: null,
          missingSinceMs: null,
          episode: null,
        };
        this.parents.set(pid, state);
      }
      this.update(state, parent, children, atMs, events);
    }

    this.previousByPid = byPid;
    return events;
  }

  private update(state: ParentState, parent: AttributedProcess, children: AttributedProcess[], atMs: number, events: FanoutEvent[]): void {
    const s = this.s;
    state.parent = parent;
    let spawnedNow = 0;
    for (const c of children) {
      if (isGone(c)) continue; // a zombie holds no memory: handled as an exit below
      let child = state.children.get(c.pid);
      if (child && child.startTimeMs !== c.startTimeMs) {
        state.children.delete(c.pid);
        pushBounded(state.exitTimes, atMs, s.maxEventsPerParent);
        child = undefined;
      }
      if (!child) {
        // An orphan reparented to this process (a subreaper, the container's init) was started
        // by someone else: it is adopted, not spawned.
        const before = this.previousByPid.get(c.pid);
        const adopted = before !== undefined && before.startTimeMs === c.startTimeMs && before.ppid !== state.pid;
        const grace = isForkOf(c, parent) ? s.startupGraceMs : s.execStartupGraceMs;
        const spawned = !adopted && c.startTimeMs - state.startTimeMs > grace;
        const spawnedAtMs = Math.min(c.startTimeMs, atMs);
        child = {
          pid: c.pid,
          startTimeMs: c.startTimeMs,
          comm: c.comm,
          cmdline: c.cmdline,
          spawned,
          spawnedAtMs,
          seenAtMs: atMs,
          bytes: 0,
          bucketStartMs: null,
          bucketMin: Infinity,
          floors: [],
          growing: false,
        };
        state.children.set(c.pid, child);
        if (spawned) {
          pushBounded(state.spawnTimes, spawnedAtMs, s.maxEventsPerParent);
          spawnedNow++;
        }
        if (state.episode) state.episode.childrenSeen++;
      }
      child.seenAtMs = atMs;
      child.comm = c.comm;
      child.cmdline = c.cmdline;
      child.bytes = anonBytes(c);
      this.trackChildFloor(child, atMs);
    }
    for (const child of state.children.values()) {
      if (child.seenAtMs === atMs) continue;
      state.children.delete(child.pid);
      pushBounded(state.exitTimes, atMs, s.maxEventsPerParent);
    }

    const horizon = atMs - s.spawnWindowMs;
    dropBefore(state.spawnTimes, horizon);
    dropBefore(state.exitTimes, horizon);
    // spawnTimes is in arrival order, not time order (the agent may see an old child late).
    const windowStart = Math.max(horizon, state.baselineMs);

    let allBytes = 0;
    let spawnedBytes = 0;
    let lingering = 0;
    let growingChildren = 0;
    for (const child of state.children.values()) {
      allBytes += child.bytes;
      if (child.growing) growingChildren++;
      if (!child.spawned) continue;
      spawnedBytes += child.bytes;
      if (child.spawnedAtMs >= windowStart && atMs - child.startTimeMs >= s.minChildAgeMs) lingering++;
    }

    const spawnWindow: SpawnWindow = { count: 0, firstMs: Infinity, lastMs: -Infinity };
    for (const t of state.spawnTimes) {
      if (t < windowStart) continue;
      spawnWindow.count++;
      if (t < spawnWindow.firstMs) spawnWindow.firstMs = t;
      if (t > spawnWindow.lastMs) spawnWindow.lastMs = t;
    }
    const spawns = spawnWindow.count;
    let exits = 0;
    for (const t of state.exitTimes) if (t >= windowStart) exits++;

    // Most parents (a shell with its one server, a pool) never spawn: their combined memory is
    // only recorded from the first spawn in the window on, or while a finding is open.
    if (spawns > 0 || state.episode) {
      pushPoint(state.allSeries, { t: atMs, v: allBytes }, atMs - s.trendWindowMs);
      pushPoint(state.spawnedSeries, { t: atMs, v: spawnedBytes }, atMs - s.trendWindowMs);
    } else if (state.allSeries.length > 0) {
      state.allSeries.length = 0;
      state.spawnedSeries.length = 0;
      state.allTrend = null;
      state.spawnedTrend = null;
    }

    if (!state.episode) {
      let trigger: FanoutTrigger | null = null;
      if (spawns >= s.minSpawns && lingering >= s.minAccumulated && spawns - exits >= s.minAccumulated) trigger = 'accumulating';
      else if (spawns >= s.minSpawns && this.spawnedMemoryGrowing(state, atMs)) trigger = 'spawned-memory-growing';
      else if (growingChildren >= s.minGrowingSiblings) trigger = 'siblings-growing';
      if (!trigger) {
        if (state.children.size === 0 && state.spawnTimes.length === 0 && state.exitTimes.length === 0) this.parents.delete(state.pid);
        return;
      }
      this.refreshTrends(state, atMs);
      const details = this.details(state, allBytes, growingChildren, spawnWindow, atMs);
      state.episode = {
        trigger,
        // The children that made the case: those alive now and those that left inside the window.
        childrenSeen: state.children.size + exits,
        lastActivityMs: atMs,
        lastEmittedAtMs: atMs,
        lastEmitted: details,
      };
      details.childrenSeen = state.episode.childrenSeen;
      events.push(this.findingEvent('open', state, details, spawnWindow, atMs));
      return;
    }

    const episode = state.episode;
    this.refreshTrends(state, atMs);
    const memoryGrowing = this.rising(state.spawnedTrend) || this.rising(state.allTrend) || growingChildren > 0;
    if (spawnedNow > 0 || memoryGrowing) episode.lastActivityMs = atMs;

    if (atMs - episode.lastActivityMs >= s.quietMs) {
      events.push({
        kind: 'resolve',
        key: state.key,
        atMs,
        cause: 'quiet',
        reason: `${label(parent)} has started no children and its children's memory has not grown for ${formatDuration(atMs - episode.lastActivityMs)}; ${state.children.size} ${plural(state.children.size, 'child', 'children')} alive hold ${formatBytes(allBytes)}`,
      });
      state.episode = null;
      state.baselineMs = atMs;
      return;
    }

    if (atMs - episode.lastEmittedAtMs < s.updateIntervalMs) return;
    const details = this.details(state, allBytes, growingChildren, spawnWindow, atMs);
    details.childrenSeen = episode.childrenSeen;
    if (!changedMaterially(episode.lastEmitted, details)) return;
    episode.lastEmitted = details;
    episode.lastEmittedAtMs = atMs;
    events.push(this.findingEvent('update', state, details, spawnWindow, atMs));
  }

  private refreshTrends(state: ParentState, atMs: number): void {
    if (atMs - state.trendsAtMs < trendEveryMs) return;
    state.trendsAtMs = atMs;
    state.allTrend = trendOf(state.allSeries, this.s.minTrendPoints);
    state.spawnedTrend = trendOf(state.spawnedSeries, this.s.minTrendPoints);
  }

  private spawnedMemoryGrowing(state: ParentState, atMs: number): boolean {
    this.refreshTrends(state, atMs);
    // Spawned children's memory alone also rises when a pool replaces its workers (each
    // replacement is a spawn): only when all children together hold more is it accumulation.
    return this.rising(state.spawnedTrend) && this.rising(state.allTrend);
  }

  private rising(t: Trend | null): boolean {
    return t !== null && t.increasing && t.slopeBytesPerSec >= this.s.minCombinedSlopeBytesPerSec;
  }

  private trackChildFloor(child: ChildState, atMs: number): void {
    const s = this.s;
    if (atMs - child.startTimeMs < s.childWarmupMs) return;
    if (child.bucketStartMs === null) {
      child.bucketStartMs = atMs;
      child.bucketMin = child.bytes;
      return;
    }
    if (atMs - child.bucketStartMs < s.childBucketMs) {
      child.bucketMin = Math.min(child.bucketMin, child.bytes);
      return;
    }
    child.floors.push({ t: child.bucketStartMs, v: child.bucketMin });
    if (child.floors.length > s.childTrendBuckets) child.floors.splice(0, child.floors.length - s.childTrendBuckets);
    child.bucketStartMs = atMs;
    child.bucketMin = child.bytes;
    const trend = trendOf(child.floors, Math.max(3, s.minChildTrendBuckets));
    child.growing = trend !== null && trend.increasing && trend.slopeBytesPerSec >= s.minChildSlopeBytesPerSec;
  }

  private details(
    state: ParentState,
    allBytes: number,
    growingChildren: number,
    spawnWindow: SpawnWindow,
    atMs: number,
  ): FanoutDetails {
    const allTrend = state.allTrend;
    const alive = [...state.children.values()];
    alive.sort((a, b) => b.bytes - a.bytes || b.startTimeMs - a.startTimeMs);
    return {
      parent: ref(state.parent),
      childrenAlive: state.children.size,
      childrenSeen: state.children.size,
      spawnRatePerMin: spawnRatePerMin(spawnWindow, atMs),
      childrenAnonBytes: allBytes,
      childrenSlopeBytesPerSec: allTrend ? Math.round(allTrend.slopeBytesPerSec) : null,
      growingChildren,
      limitBytes: state.parent.limitBytes,
      sampleChildren: alive.slice(0, this.s.maxSampleChildren).map((c) => ({ pid: c.pid, comm: c.comm, cmdline: c.cmdline })),
    };
  }

  private findingEvent(
    kind: 'open' | 'update',
    state: ParentState,
    details: FanoutDetails,
    spawnWindow: SpawnWindow,
    atMs: number,
  ): FanoutFindingEvent {
    const episode = state.episode;
    const trigger = episode?.trigger ?? 'accumulating';
    const p = state.parent;
    return {
      kind,
      key: state.key,
      atMs,
      target: findingTargetOf(p),
      details,
      summary: summarize(p, details, trigger, spawnWindow, this.s.spawnWindowMs, atMs),
      trigger,
    };
  }
}

// --- helpers ---------------------------------------------------------------------------------

/** A process entry the detector can reason about; anything else is skipped, never thrown on. */
function isUsable(p: unknown): p is AttributedProcess {
  if (typeof p !== 'object' || p === null) return false;
  const q = p as Partial<AttributedProcess>;
  return Number.isInteger(q.pid) && (q.pid ?? 0) > 0 && Number.isInteger(q.ppid) && Number.isFinite(q.startTimeMs);
}

function isGone(p: AttributedProcess): boolean {
  return p.state === 'Z' || p.state === 'X' || p.state === 'x';
}

function anonBytes(p: AttributedProcess): number {
  const anon = Number.isFinite(p.rssAnonBytes) && p.rssAnonBytes > 0 ? p.rssAnonBytes : 0;
  const swap = Number.isFinite(p.swapBytes) && p.swapBytes > 0 ? p.swapBytes : 0;
  return anon + swap;
}

function ref(p: AttributedProcess): ProcessRef {
  return { pid: p.pid, comm: p.comm, cmdline: p.cmdline };
}

function label(p: { comm: string; pid: number }): string {
  return `${p.comm || '?'} (pid ${p.pid})`;
}

function pushBounded(list: number[], value: number, cap: number): void {
  list.push(value);
  if (list.length > cap) list.splice(0, list.length - cap);
}

function dropBefore(list: number[], horizon: number): void {
  // Not sorted (see spawnTimes), so filter in place rather than trim a prefix.
  let kept = 0;
  for (const t of list) if (t >= horizon) list[kept++] = t;
  list.length = kept;
}

function pushPoint(series: Point[], point: Point, horizon: number): void {
  series.push(point);
  let drop = 0;
  while (drop < series.length && series[drop]!.t < horizon) drop++;
  drop = Math.max(drop, series.length - maxTrendPoints);
  if (drop > 0) series.splice(0, drop);
}

/** Average since the first spawn in the window, so it decays once spawning stops. */
function spawnRatePerMin({ count: spawns, firstMs: firstSpawnMs }: SpawnWindow, atMs: number): number {
  if (spawns === 0 || !Number.isFinite(firstSpawnMs)) return 0;
  // A floor of 10 s keeps one spawn seen a moment ago from reading as hundreds per minute.
  const spanMs = Math.max(atMs - firstSpawnMs, 10_000);
  return Math.round((spawns * 60_000 * 10) / spanMs) / 10;
}

/**
 * Increasing trend by Mann–Kendall (one-sided 95 %, with the serial-correlation correction: a
 * staircase of spawns or a sawtooth floor is not many independent rising points) and its
 * Theil–Sen slope, both robust to the odd outlier sample where least squares is not.
 */
export function trendOf(points: readonly Point[], minPoints: number): Trend | null {
  const n = points.length;
  if (n < Math.max(3, minPoints)) return null;
  // A flat series (the common case: children holding nothing) needs no O(n²) pass.
  const first = points[0]!.v;
  if (points.every((p) => p.v === first)) return { slopeBytesPerSec: 0, increasing: false };
  // Relative times keep the residuals (value − slope·time) clear of epoch-sized rounding.
  const t0 = points[0]!.t;
  const times = points.map((p) => p.t - t0);
  const values = points.map((p) => p.v);
  const fit = theilSen(times, values);
  if (!Number.isFinite(fit.slope)) return null;
  const test = mannKendall(values, serialCorrelationFactor(times, values, fit.slope));
  return { slopeBytesPerSec: fit.slope * 1000, increasing: test.z >= zCritical && fit.slope > 0 };
}

function changedMaterially(a: FanoutDetails, b: FanoutDetails): boolean {
  if (a.childrenAlive !== b.childrenAlive || a.childrenSeen !== b.childrenSeen || a.growingChildren !== b.growingChildren) return true;
  if (a.limitBytes !== b.limitBytes) return true;
  const mib = 1024 * 1024;
  if (Math.abs(a.childrenAnonBytes - b.childrenAnonBytes) >= Math.max(mib, 0.05 * a.childrenAnonBytes)) return true;
  const sa = a.childrenSlopeBytesPerSec;
  const sb = b.childrenSlopeBytesPerSec;
  if ((sa === null) !== (sb === null)) return true;
  if (sa !== null && sb !== null && Math.abs(sa - sb) >= Math.max(64 * 1024, 0.25 * Math.abs(sa))) return true;
  return false;
}

function summarize(p: AttributedProcess, d: FanoutDetails, trigger: FanoutTrigger, spawn: SpawnWindow, windowMs: number, atMs: number): string {
  const who = label(p);
  const parts: string[] = [];
  if (trigger === 'siblings-growing' && spawn.count === 0) {
    parts.push(`${who} has ${d.growingChildren} children each growing`);
  } else if (spawn.count > 0) {
    const sinceLast = atMs - spawn.lastMs;
    // While spawning goes on, "in 40 s" runs to now; once it stopped, say when it stopped.
    const stopped = sinceLast >= 10_000;
    const span = Math.max((stopped ? spawn.lastMs : atMs) - spawn.firstMs, 1000);
    const last = stopped ? `, the last ${formatDuration(sinceLast)} ago` : '';
    parts.push(`${who} spawned ${spawn.count} ${plural(spawn.count, 'child', 'children')} in ${formatDuration(span)}${last}`);
    if (d.growingChildren > 0) parts.push(`${d.growingChildren} ${plural(d.growingChildren, 'is', 'are')} growing`);
  } else {
    parts.push(`${who} spawned no children in the last ${formatDuration(windowMs)}`);
  }
  const slope = d.childrenSlopeBytesPerSec;
  const slopeText = slope === null ? '' : ` (${slope >= 0 ? '+' : '−'}${formatBytes(Math.abs(slope))}/s)`;
  const limitText = d.limitBytes === null ? '' : ` of a ${formatBytes(d.limitBytes)} limit`;
  parts.push(`${d.childrenAlive} alive hold ${formatBytes(d.childrenAnonBytes)}${slopeText}${limitText}`);
  return parts.join('; ');
}

function plural(n: number, one: string, many: string): string {
  return n === 1 ? one : many;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || Math.abs(value) >= 10 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  const sec = Math.round(ms / 1000);
  if (sec < 120) return `${sec} s`;
  const min = Math.round(sec / 60);
  if (min < 120) return `${min} min`;
  return `${Math.round(min / 60)} h`;
}

/**
 * Whether a child is a copy of its parent rather than another program: the same executable, and
 * for an interpreter the same command line too (python spawning `python /tmp/x.py` is another
 * program; nginx or gunicorn workers, retitled or not, are the same one).
 */
function isForkOf(child: AttributedProcess, parent: AttributedProcess): boolean {
  if (child.exe === null || child.exe !== parent.exe) return false;
  if (interpreterKind(programName(child.exe)) === null) return true;
  return child.cmdline === parent.cmdline;
}
