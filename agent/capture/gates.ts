// The safety gates in front of a capture. A full snapshot pauses the target and needs extra memory
// inside the target's own cgroup, 2× to 12× its heap in use depending on how object-dense it is:
// the capture that causes the OOM kill it was meant to explain is the worst outcome, so short
// headroom turns it into a sampling profile. Before a target's first snapshot only a fixed factor
// can be applied; after it, what that snapshot cost (snapshot-cost.ts).
import { formatBytes } from '../../common/units.js';
import { readCgroupMemory, tightestLimit, type MemoryHierarchy } from '../host/cgroup-memory.js';
import type { SnapshotCost } from './snapshot-cost.js';

export interface GateOptions {
  /** A full snapshot needs headroom ≥ factor × heapUsed. Default 2. */
  headroomFactor?: number;
  /** Automatic captures of one target at most this often. Default 10 min. */
  autoIntervalMs?: number;
  /** Snapshot file size per byte of heap in use, for the spool check. Default 2.5 (V8's JSON is about 2×). */
  snapshotBytesPerHeapByte?: number;
}

export type Verdict = { ok: true } | { ok: false; reasonCode: string; reason: string };

export interface Headroom {
  limitBytes: number;
  usageBytes: number;
  headroomBytes: number;
  /** The cgroup whose limit is the tightest. */
  cgroup: string;
}

const MiB = (n: number): string => formatBytes(n);
/** A learned cost is scaled by this: the next heap may be denser than the last. */
const LEARNED_COST_MARGIN = 1.25;

/** Limit − usage of the tightest limited cgroup enclosing the process; null when nothing limits it. */
export function readHeadroom(hierarchy: MemoryHierarchy | null, cgroupPath: string | null): Headroom | null {
  if (!hierarchy || !cgroupPath) return null;
  const tightest = tightestLimit(hierarchy, cgroupPath);
  if (!tightest || tightest.limitBytes === null || tightest.cgroup === null) return null;
  const memory = readCgroupMemory(hierarchy, tightest.cgroup);
  if (!memory) return null;
  return { limitBytes: tightest.limitBytes, usageBytes: memory.usageBytes, headroomBytes: Math.max(0, tightest.limitBytes - memory.usageBytes), cgroup: tightest.cgroup };
}

export class CaptureGates {
  readonly headroomFactor: number;
  readonly autoIntervalMs: number;
  readonly snapshotBytesPerHeapByte: number;
  private nodeBusy: string | null = null;
  private readonly lastAuto = new Map<string, number>();

  constructor(options: GateOptions = {}) {
    this.headroomFactor = options.headroomFactor ?? 2;
    this.autoIntervalMs = options.autoIntervalMs ?? 10 * 60_000;
    this.snapshotBytesPerHeapByte = options.snapshotBytesPerHeapByte ?? 2.5;
    if (!(this.headroomFactor > 0)) throw new RangeError(`headroomFactor must be > 0, got ${this.headroomFactor}`);
    if (!(this.autoIntervalMs >= 0)) throw new RangeError(`autoIntervalMs must be >= 0, got ${this.autoIntervalMs}`);
  }

  /** One capture on the node at a time: returns a release function, or null while another runs. */
  acquireNode(what: string): (() => void) | null {
    if (this.nodeBusy !== null) return null;
    this.nodeBusy = what;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.nodeBusy = null;
    };
  }

  busyVerdict(): Verdict {
    return this.nodeBusy === null ? { ok: true } : { ok: false, reasonCode: 'busy', reason: `another capture is running on this node (${this.nodeBusy})` };
  }

  /** Automatic captures: at most one per target per interval. */
  rateVerdict(targetKey: string, nowMs: number): Verdict {
    const last = this.lastAuto.get(targetKey);
    if (last === undefined || nowMs - last >= this.autoIntervalMs) return { ok: true };
    const waitSec = Math.ceil((this.autoIntervalMs - (nowMs - last)) / 1000);
    return { ok: false, reasonCode: 'rate-limit', reason: `an automatic capture of this target ran ${Math.round((nowMs - last) / 1000)} s ago; the next is allowed in ${waitSec} s` };
  }

  recordAuto(targetKey: string, nowMs: number): void {
    this.lastAuto.set(targetKey, nowMs);
    // Targets come and go; forget those long past their interval.
    if (this.lastAuto.size > 1000) for (const [k, at] of this.lastAuto) if (nowMs - at > this.autoIntervalMs) this.lastAuto.delete(k);
  }

  /**
   * Room for a full snapshot: headroomFactor × heap in use, or more when this target's last
   * snapshot cost more than that (its measured cost per heap byte, with a margin: the heap may
   * have grown denser since).
   */
  headroomVerdict(heapUsedBytes: number, headroom: Headroom | null, lastCost: SnapshotCost | null = null): Verdict {
    if (!headroom) return { ok: true };
    const learned = lastCost ? lastCost.ratio * LEARNED_COST_MARGIN : 0;
    const factor = Math.max(this.headroomFactor, learned);
    const needed = factor * heapUsedBytes;
    if (headroom.headroomBytes >= needed) return { ok: true };
    const room = `cgroup headroom ${MiB(headroom.headroomBytes)} (limit ${MiB(headroom.limitBytes)} − usage ${MiB(headroom.usageBytes)})`;
    const why =
      learned > this.headroomFactor && lastCost
        ? `${factor.toFixed(1)} × heap in use (${factor.toFixed(1)} × ${MiB(heapUsedBytes)}): this target's last snapshot took ${MiB(lastCost.extraBytes)} more memory for ${MiB(lastCost.heapUsedBytes)} of heap, and ${Math.round((LEARNED_COST_MARGIN - 1) * 100)} % is kept in reserve`
        : `${this.headroomFactor} × heap in use (${this.headroomFactor} × ${MiB(heapUsedBytes)})`;
    return { ok: false, reasonCode: 'headroom', reason: `${room} is below ${why}: a full snapshot could OOM-kill the target` };
  }

  estimateSnapshotBytes(heapUsedBytes: number): number {
    return Math.ceil(heapUsedBytes * this.snapshotBytesPerHeapByte);
  }

  spoolVerdict(freeBytes: number, estimateBytes: number): Verdict {
    if (freeBytes >= estimateBytes) return { ok: true };
    return { ok: false, reasonCode: 'spool-full', reason: `the snapshot spool has ${MiB(freeBytes)} free, the capture needs about ${MiB(estimateBytes)}` };
  }
}
