// How memory points collapse into buckets, for storage (10 s buckets past the raw window) and
// for reading (a chart asking for at most N points). A bucket keeps the peak, not the mean: the
// question a chart answers is "how close did it get to the limit", and a mean hides the spike
// that killed the process.

export interface StoredPoint {
  atMs: number;
  anonBytes: number;
  workingSetBytes: number | null;
  limitBytes: number | null;
  /** Time of the newest raw point in this row (its own atMs for a raw point). */
  lastAtMs: number;
}

export function bucketStart(atMs: number, bucketMs: number, originMs = 0): number {
  return originMs + Math.floor((atMs - originMs) / bucketMs) * bucketMs;
}

/**
 * One row for the points of one bucket: the largest anon and working set, the limit of the
 * newest point (a limit changes when the pod is resized; the newest is the one in force).
 */
export function mergeBucket(points: readonly StoredPoint[], atMs: number): StoredPoint {
  const first = points[0];
  if (!first) throw new Error('mergeBucket: no points');
  let anon = first.anonBytes;
  let workingSet = first.workingSetBytes;
  let newest = first;
  for (const p of points) {
    if (p.anonBytes > anon) anon = p.anonBytes;
    if (p.workingSetBytes !== null && (workingSet === null || p.workingSetBytes > workingSet)) workingSet = p.workingSetBytes;
    if (p.lastAtMs >= newest.lastAtMs) newest = p;
  }
  return { atMs, anonBytes: anon, workingSetBytes: workingSet, limitBytes: newest.limitBytes, lastAtMs: newest.lastAtMs };
}

/**
 * Group time-ordered points into buckets of `bucketMs` from `originMs`; a bucket with one point
 * keeps it as it is, a bucket with several becomes one merged row at the bucket's start.
 */
export function downsample(points: readonly StoredPoint[], bucketMs: number, originMs = 0): StoredPoint[] {
  const out: StoredPoint[] = [];
  let group: StoredPoint[] = [];
  let groupStart = Number.NaN;
  const flush = () => {
    if (group.length === 1 && group[0]) out.push(group[0]);
    else if (group.length > 1) out.push(mergeBucket(group, groupStart));
    group = [];
  };
  for (const p of points) {
    const b = bucketStart(p.atMs, bucketMs, originMs);
    if (b !== groupStart) {
      flush();
      groupStart = b;
    }
    group.push(p);
  }
  flush();
  return out;
}
