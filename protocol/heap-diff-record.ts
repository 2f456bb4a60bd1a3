// A heap diff the collector computed and keeps: the pair of snapshots it compares, where the job
// stands, and the top growers reduced to what a person reads (class, deltas, retainer path as
// text). Bounded in size so a finding's JSON stays small whatever the target's heap held. Class
// names and paths come from the target's heap: untrusted text for every reader.
import type { HeapDiff } from './heap-diff.js';

export type HeapDiffStatus = 'pending' | 'running' | 'done' | 'failed';

export interface HeapDiffGrower {
  className: string;
  countDelta: number;
  sizeDeltaBytes: number;
  /** Objects new in the later snapshot (null when the ids were not comparable). */
  newCount: number | null;
  countAfter: number;
  sizeAfterBytes: number;
  /** "Session ← Map.table ← (GC roots)", or null when no path from a GC root was found. */
  retainerPath: string | null;
}

export interface HeapDiffRecord {
  /** The earlier snapshot (pairIndex 0) and the later one. */
  snapshotA: string;
  snapshotB: string;
  findingId: string | null;
  status: HeapDiffStatus;
  /** Why it failed, in plain language (status 'failed' only). */
  reason: string | null;
  createdAtMs: number;
  finishedAtMs: number | null;
  /** Set when done. */
  result: HeapDiffResult | null;
}

export interface HeapDiffResult {
  method: HeapDiff['method'];
  countDelta: number;
  sizeDeltaBytes: number;
  beforeTotalBytes: number;
  afterTotalBytes: number;
  /** Classes that grew above noise, largest size delta first; at most MAX_STORED_GROWERS. */
  growers: HeapDiffGrower[];
  elapsedMs: number;
}

export const MAX_STORED_GROWERS = 10;
export const MAX_CLASS_NAME_CHARS = 200;
export const MAX_PATH_CHARS = 1000;

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The part of a HeapDiff the collector stores and serves. */
export function reduceHeapDiff(diff: HeapDiff): HeapDiffResult {
  return {
    method: diff.method,
    countDelta: diff.countDelta,
    sizeDeltaBytes: diff.sizeDeltaBytes,
    beforeTotalBytes: diff.before.totalSelfSizeBytes,
    afterTotalBytes: diff.after.totalSelfSizeBytes,
    growers: diff.growers.slice(0, MAX_STORED_GROWERS).map((g) => ({
      className: clip(g.className, MAX_CLASS_NAME_CHARS),
      countDelta: g.countDelta,
      sizeDeltaBytes: g.sizeDeltaBytes,
      newCount: g.newCount,
      countAfter: g.countAfter,
      sizeAfterBytes: g.sizeAfterBytes,
      retainerPath: g.retainerPath ? clip(g.retainerPath.text, MAX_PATH_CHARS) : null,
    })),
    elapsedMs: Math.round(diff.elapsedMs),
  };
}
