// One OomKillEvent per kernel OOM kill, from two sources that each see part of it:
//  - the kernel log (KmsgFollower): victim pid, name, memcgs, RSS at the kill; absent when
//    /dev/kmsg is not readable, and may miss kills in a ring-buffer gap;
//  - the memcg oom_kill counters: exact counts per cgroup, but no victim; they vanish with the
//    cgroup (a container whose main process died is removed within seconds).
//
// Timing. The kernel bumps the counter and logs the lines within microseconds of each other, but
// the agent reads the two at different moments, in either order. So:
//  - a counter increase of N between two readings of a cgroup (t0, t1] is N kills in that
//    interval; a kmsg kill matches one of them when its memcg is the cgroup or below it and its
//    time falls in (t0 − slack, t1 + slack];
//  - a match is reported at once (both sides seen);
//  - a kill seen by one source only is held for `holdMs` (default 5 s, i.e. several 1 Hz
//    passes) from when the tracker learned of it, waiting for the other; then reported alone.
//    When kmsg is known to be inert, counter kills are not held.
// holdMs must exceed the longest gap between a kmsg poll and a counter read of the same pass
// plus one pass interval; slack covers the error of placing kernel timestamps in wall time.

import { parsePodCgroup } from './cgroup-path.js';
import type { KmsgOomKill } from './kmsg.js';
import type { OomKillEvent } from './types.js';

/** One cgroup's cumulative OOM-kill counter in one pass (v1 memory.oom_control, v2 memory.events). */
export interface OomCounterReading {
  /** Path relative to the memory hierarchy root, as the agent sees it. */
  cgroupPath: string;
  oomKills: number;
  podUid?: string | null;
  containerId?: string | null;
  namespace?: string | null;
  pod?: string | null;
  container?: string | null;
}

/** What the process table last knew of a process (it keeps exited ones for a while). */
export interface OomVictimInfo {
  comm: string;
  cmdline: string;
  rssAnonBytes: number;
  cgroupPath: string | null;
  podUid: string | null;
  containerId: string | null;
  namespace: string | null;
  pod: string | null;
  container: string | null;
}

export interface CgroupIds {
  podUid: string | null;
  containerId: string | null;
}

export interface OomTrackerOptions {
  lastSeen?: (pid: number) => OomVictimInfo | undefined;
  /** How long a kill seen by one source waits for the other. Default 5000 ms. */
  holdMs?: number;
  /** Allowed error around a counter's reading interval when matching a kmsg kill's time. Default 2000 ms. */
  matchSlackMs?: number;
  /** Whether kmsg kills can still arrive; when false, counter kills are reported without waiting. */
  kmsgActive?: () => boolean;
  /** Pod uid and container id of a cgroup path; default parses the Kubernetes layouts. */
  identify?: (cgroupPath: string) => CgroupIds | null;
  /** A cgroup not read for this long loses its baseline (bounds memory as pods come and go). Default 10 min. */
  forgetCgroupAfterMs?: number;
}

interface CounterState {
  count: number;
  atMs: number;
}

/** One kill a counter increase stands for. */
interface CounterKill {
  reading: OomCounterReading;
  ids: CgroupIds | null;
  /** The kill happened after this reading ... */
  sinceMs: number;
  /** ... and by this one. */
  atMs: number;
  learnedMs: number;
}

interface PendingKmsgKill {
  kill: KmsgOomKill;
  victim: OomVictimInfo | undefined;
  learnedMs: number;
}

const RECENT_KMSG_KEYS = 1024;

export class OomTracker {
  private readonly lastSeen: (pid: number) => OomVictimInfo | undefined;
  private readonly holdMs: number;
  private readonly slackMs: number;
  private readonly kmsgActive: () => boolean;
  private readonly identify: (cgroupPath: string) => CgroupIds | null;
  private readonly forgetAfterMs: number;
  private readonly counters = new Map<string, CounterState>();
  private counterKills: CounterKill[] = [];
  private observedAnyPass = false;
  private kmsgKills: PendingKmsgKill[] = [];
  private ready: OomKillEvent[] = [];
  /** The same kill read twice (follower reopened, overlapping fixtures) is one kill. */
  private readonly seenKmsg = new Set<string>();

  constructor(options: OomTrackerOptions = {}) {
    this.lastSeen = options.lastSeen ?? (() => undefined);
    this.holdMs = options.holdMs ?? 5000;
    this.slackMs = options.matchSlackMs ?? 2000;
    this.kmsgActive = options.kmsgActive ?? (() => true);
    this.identify = options.identify ?? identifyKubernetesCgroup;
    this.forgetAfterMs = options.forgetCgroupAfterMs ?? 10 * 60_000;
  }

  /** Kills from KmsgFollower.poll(); `nowMs` is when the tracker learned of them. */
  observeKmsg(kills: KmsgOomKill[], nowMs: number): void {
    for (const kill of kills) {
      const key = `${kill.pid}@${kill.monotonicUsec}`;
      if (this.seenKmsg.has(key)) continue;
      this.seenKmsg.add(key);
      if (this.seenKmsg.size > RECENT_KMSG_KEYS) this.seenKmsg.delete(this.seenKmsg.values().next().value!);
      // Looked up now, while the process table still remembers the victim.
      const pending: PendingKmsgKill = { kill, victim: this.victimOf(kill), learnedMs: nowMs };
      const match = this.bestCounterKill(pending);
      if (match) {
        this.counterKills = this.counterKills.filter((c) => c !== match);
        this.ready.push(this.event(pending, match));
      } else {
        this.kmsgKills.push(pending);
      }
    }
  }

  /**
   * One pass of counter readings taken at `atMs`. The first reading of a cgroup is its baseline;
   * a counter lower than before means the cgroup was recreated, and becomes the new baseline.
   */
  observeCounters(atMs: number, readings: OomCounterReading[]): void {
    const moved: Array<{ reading: OomCounterReading; delta: number; sinceMs: number }> = [];
    const seen = new Set<string>();
    const firstPass = !this.observedAnyPass;
    this.observedAnyPass = true;
    for (const reading of readings) {
      if (seen.has(reading.cgroupPath) || !Number.isSafeInteger(reading.oomKills) || reading.oomKills < 0) continue;
      seen.add(reading.cgroupPath);
      const before = this.counters.get(reading.cgroupPath);
      this.counters.set(reading.cgroupPath, { count: reading.oomKills, atMs });
      if (before && reading.oomKills > before.count) {
        moved.push({ reading, delta: reading.oomKills - before.count, sinceMs: before.atMs });
      } else if (!before && !firstPass && reading.oomKills > 0) {
        this.confirmFromFirstSighting(reading, atMs);
      }
    }
    for (const [path, state] of this.counters) {
      if (atMs - state.atMs > this.forgetAfterMs) this.counters.delete(path);
    }

    for (const m of moved) {
      // cgroup v2 counts a kill in every ancestor too: a kill already counted by a moved
      // descendant in this pass is not another kill. v1 counts only the victim's own memcg, so
      // there a kill of a process sitting directly in the pod cgroup, in the same pass as a
      // container kill, would be undercounted; kubelet puts no process there.
      const below = moved.filter((d) => d !== m && isStrictlyBelow(d.reading.cgroupPath, m.reading.cgroupPath));
      const nearest = below.filter((d) => !below.some((e) => e !== d && isStrictlyBelow(d.reading.cgroupPath, e.reading.cgroupPath)));
      const own = m.delta - nearest.reduce((sum, d) => sum + d.delta, 0);
      const ids = this.idsOfReading(m.reading);
      for (let i = 0; i < own; i++) {
        const counterKill: CounterKill = { reading: m.reading, ids, sinceMs: m.sinceMs, atMs, learnedMs: atMs };
        const match = this.bestKmsgKill(counterKill);
        if (match) {
          this.kmsgKills = this.kmsgKills.filter((k) => k !== match);
          this.ready.push(this.event(match, counterKill));
        } else {
          this.counterKills.push(counterKill);
        }
      }
    }
  }

  /**
   * A cgroup first read after start-up with kills already counted: a container whose process was
   * killed before any pass saw it in the cgroup (it is read only while it has processes), now
   * running again. Its count is all since it was made, at an unknown time, so it is not reported
   * on its own (a kill the kernel log already reported alone would be counted twice); it only
   * confirms kernel-log kills still waiting for their counter, oldest first.
   */
  private confirmFromFirstSighting(reading: OomCounterReading, atMs: number): void {
    const ids = this.idsOfReading(reading);
    for (let i = 0; i < reading.oomKills; i++) {
      const counterKill: CounterKill = { reading, ids, sinceMs: Number.NEGATIVE_INFINITY, atMs, learnedMs: atMs };
      const match = this.bestKmsgKill(counterKill);
      if (!match) return;
      this.kmsgKills = this.kmsgKills.filter((k) => k !== match);
      this.ready.push(this.event(match, counterKill));
    }
  }

  /** Events ready at `nowMs`: every match, and single-source kills whose hold has run out. Oldest first. */
  takeEvents(nowMs: number): OomKillEvent[] {
    const holdCounters = this.kmsgActive();
    const kmsgDue = this.kmsgKills.filter((k) => nowMs - k.learnedMs >= this.holdMs);
    const counterDue = this.counterKills.filter((c) => !holdCounters || nowMs - c.learnedMs >= this.holdMs);
    return this.emit(kmsgDue, counterDue);
  }

  /** Everything still held, reported alone (shutdown). */
  flush(): OomKillEvent[] {
    return this.emit([...this.kmsgKills], [...this.counterKills]);
  }

  /** Kills held waiting for their other source (for metrics and tests). */
  get pendingCount(): number {
    return this.kmsgKills.length + this.counterKills.length;
  }

  private emit(kmsgDue: PendingKmsgKill[], counterDue: CounterKill[]): OomKillEvent[] {
    this.kmsgKills = this.kmsgKills.filter((k) => !kmsgDue.includes(k));
    this.counterKills = this.counterKills.filter((c) => !counterDue.includes(c));
    const out = this.ready;
    this.ready = [];
    for (const k of kmsgDue) out.push(this.event(k, null));
    for (const c of counterDue) out.push(this.event(null, c));
    return out.sort((a, b) => a.atMs - b.atMs);
  }

  private victimOf(kill: KmsgOomKill): OomVictimInfo | undefined {
    let victim: OomVictimInfo | undefined;
    try {
      victim = this.lastSeen(kill.pid);
    } catch {
      return undefined;
    }
    if (!victim) return undefined;
    // The pid may already belong to another process: the kernel's task name must agree, and so
    // must the memcg when both are known.
    if (victim.comm !== kill.comm) return undefined;
    if (kill.taskMemcg !== null && victim.cgroupPath !== null && !sameCgroup(kill.taskMemcg, victim.cgroupPath)) return undefined;
    return victim;
  }

  private bestCounterKill(k: PendingKmsgKill): CounterKill | null {
    let best: CounterKill | null = null;
    for (const c of this.counterKills) {
      if (!this.matches(k, c)) continue;
      if (!best || depth(c.reading.cgroupPath) > depth(best.reading.cgroupPath)) best = c;
    }
    return best;
  }

  private bestKmsgKill(c: CounterKill): PendingKmsgKill | null {
    let best: PendingKmsgKill | null = null;
    for (const k of this.kmsgKills) {
      if (this.matches(k, c) && (!best || k.kill.atMs < best.kill.atMs)) best = k;
    }
    return best;
  }

  private matches(k: PendingKmsgKill, c: CounterKill): boolean {
    if (k.kill.atMs <= c.sinceMs - this.slackMs || k.kill.atMs > c.atMs + this.slackMs) return false;
    const victimPath = k.kill.taskMemcg ?? k.victim?.cgroupPath ?? null;
    if (victimPath !== null && isAtOrBelow(victimPath, c.reading.cgroupPath)) return true;
    // Cgroup namespaces and nested nodes can make the two paths differ in their prefix (handled
    // above) or beyond recognition: fall back to the ids the paths carry.
    const victimIds = this.idsOfKill(k);
    const counterIds = c.ids;
    if (!victimIds || !counterIds) return false;
    if (counterIds.containerId) return victimIds.containerId === counterIds.containerId;
    return counterIds.podUid !== null && victimIds.podUid === counterIds.podUid;
  }

  private idsOfKill(k: PendingKmsgKill): CgroupIds | null {
    const path = k.kill.taskMemcg ?? k.victim?.cgroupPath ?? null;
    const fromPath = path === null ? null : this.identify(path);
    const podUid = fromPath?.podUid ?? k.victim?.podUid ?? null;
    const containerId = fromPath?.containerId ?? k.victim?.containerId ?? null;
    return podUid === null && containerId === null ? null : { podUid, containerId };
  }

  private idsOfReading(r: OomCounterReading): CgroupIds | null {
    const fromPath = this.identify(r.cgroupPath);
    const podUid = r.podUid ?? fromPath?.podUid ?? null;
    const containerId = r.containerId ?? fromPath?.containerId ?? null;
    return podUid === null && containerId === null ? null : { podUid, containerId };
  }

  private event(k: PendingKmsgKill | null, c: CounterKill | null): OomKillEvent {
    const kill = k?.kill ?? null;
    // A victim the table had not yet retired at observeKmsg() time may be known now.
    const victim = k ? (k.victim ?? this.victimOf(k.kill)) : undefined;
    const reading = c?.reading;
    const killIds = k ? this.idsOfKill({ ...k, victim }) : null;
    const sources: OomKillEvent['sources'] = [];
    if (kill) sources.push('kmsg');
    if (c) sources.push('counter');
    return {
      atMs: kill?.atMs ?? c!.atMs,
      pid: kill?.pid ?? null,
      comm: kill?.comm ?? null,
      cmdline: victim?.cmdline ?? null,
      lastRssAnonBytes: victim?.rssAnonBytes ?? null,
      memcg: kill?.memcg ?? reading?.cgroupPath ?? null,
      taskMemcg: kill?.taskMemcg ?? victim?.cgroupPath ?? null,
      podUid: reading?.podUid ?? victim?.podUid ?? c?.ids?.podUid ?? killIds?.podUid ?? null,
      containerId: reading?.containerId ?? victim?.containerId ?? c?.ids?.containerId ?? killIds?.containerId ?? null,
      namespace: reading?.namespace ?? victim?.namespace ?? null,
      pod: reading?.pod ?? victim?.pod ?? null,
      container: reading?.container ?? victim?.container ?? null,
      sources,
      kernelAnonRssBytes: kill?.anonRssBytes ?? null,
    };
  }
}

function identifyKubernetesCgroup(path: string): CgroupIds | null {
  const identity = parsePodCgroup(path);
  if (identity === null || identity === 'skip') return null;
  return { podUid: identity.podUid, containerId: identity.containerId };
}

function segmentsOf(path: string): string[] {
  // A path seen from inside a cgroup namespace may start with `..` segments: they name nothing
  // the kernel's full path would show.
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  let i = 0;
  while (segments[i] === '..') i++;
  return segments.slice(i);
}

/**
 * Whether `victim` (a kernel path, full hierarchy) is `cgroup` (an agent path) or below it. The
 * agent's path may lack a prefix the kernel shows (the agent runs in a cgroup namespace, or the
 * node is itself a container), so `cgroup`'s segments may sit anywhere in `victim`'s, whole.
 */
export function isAtOrBelow(victim: string, cgroup: string): boolean {
  const v = segmentsOf(victim);
  const c = segmentsOf(cgroup);
  if (c.length === 0) return true;
  for (let start = 0; start + c.length <= v.length; start++) {
    if (c.every((s, i) => v[start + i] === s)) return true;
  }
  return false;
}

function isStrictlyBelow(path: string, ancestor: string): boolean {
  return depth(path) > depth(ancestor) && isAtOrBelow(path, ancestor);
}

/** Same cgroup, allowing one of the two to be seen through a cgroup namespace (a shorter suffix). */
function sameCgroup(a: string, b: string): boolean {
  const x = segmentsOf(a).join('/');
  const y = segmentsOf(b).join('/');
  return x === y || x.endsWith('/' + y) || y.endsWith('/' + x) || x === '' || y === '';
}

function depth(path: string): number {
  return segmentsOf(path).length;
}
