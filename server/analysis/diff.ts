// Two snapshots of one target: what grew, by class, and what keeps the growth alive.
// DevTools' Comparison semantics: per class, "new" objects are ids in the later snapshot absent
// from the earlier one, "deleted" the reverse (ids are comparable when both snapshots come from
// one inspector session); class names use the later snapshot's plain-object shapes on both sides.
// Memory: the earlier snapshot is read, reduced to id, size and class per node, and dropped
// before the later one (held whole: paths need its edges) is read.
import type { GrowthThreshold, HeapClassDelta, HeapDiff, HeapDiffSide } from '../../protocol/heap-diff.js';
import { classTotals } from './aggregates.js';
import { ClassTable, inferInterfaceDefinitions, preclassify, resolveClasses, type PreClassified } from './class-names.js';
import { detachedNatives, transferShallowSizes } from './devtools-adjustments.js';
import type { HeapGraph } from './heap-graph.js';
import { IdIndex } from './id-index.js';
import { buildRetainerTree, retainerPath } from './retainer-paths.js';
import { readHeapSnapshot } from './snapshot-reader.js';

export interface DiffOptions {
  /** How many growers get a retainer path, and how many changes are listed (default 10). */
  top?: number;
  /**
   * true: match objects by id (snapshots of one inspector session — SnapshotMeta.pairId);
   * false: per-class totals only; undefined: decide from the data (ids match when at least 90%
   * of the objects found under the same id in both snapshots also have the same class).
   */
  sameSession?: boolean;
  threshold?: Partial<GrowthThreshold>;
  maxPathLength?: number;
}

/**
 * Noise, defined: a class grows only when its self size grew by at least 256 KiB and by at least
 * 0.5% of the later heap's total, with more objects than before. Below that, V8's own churn
 * (code compiled or flushed, strings interned, feedback vectors) moves classes back and forth
 * between two snapshots of a process that does not leak.
 */
export const DEFAULT_THRESHOLD: GrowthThreshold = { minSizeDeltaBytes: 256 * 1024, minSizeDeltaFraction: 0.005, minCountDelta: 1 };

/** What the comparison needs of one snapshot. */
interface Side {
  file: string | null;
  nodeCount: number;
  nodeFields: string[];
  nodeId: Uint32Array;
  nodeSelfSize: Float64Array;
  pre: PreClassified | null;
  classOf: Uint32Array;
}

/** DevTools' adjustments, then classes up to plain-Object shapes. */
function prepare(graph: HeapGraph, table: ClassTable, file: string | null): Side {
  transferShallowSizes(graph);
  const pre = preclassify(graph, table, detachedNatives(graph));
  // Locations and detachedness only decide classes; once classified, they are dead weight.
  graph.nodeLocation = null;
  graph.nodeDetachedness = null;
  return { file, nodeCount: graph.nodeCount, nodeFields: graph.nodeFields, nodeId: graph.nodeId, nodeSelfSize: graph.nodeSelfSize, pre, classOf: new Uint32Array(0) };
}

function describeSide(side: Side, objectCount: number, totalSize: number): HeapDiffSide {
  return { file: side.file, nodeCount: side.nodeCount, objectCount, totalSelfSizeBytes: totalSize, nodeFields: side.nodeFields };
}

/**
 * Diffs two snapshot files (pathA earlier, pathB later, both from one target). Peak memory is
 * about one snapshot's columns plus 16 bytes per node of the other.
 */
export async function diffSnapshotFiles(pathA: string, pathB: string, options: DiffOptions = {}): Promise<HeapDiff> {
  const started = performance.now();
  const table = new ClassTable();
  let before: HeapGraph | null = await readHeapSnapshot(pathA, { edges: 'full' });
  const A = prepare(before, table, pathA);
  before = null; // only A's id, size and class columns survive
  const after = await readHeapSnapshot(pathB, { edges: 'full' });
  const B = prepare(after, table, pathB);
  const definitions = inferInterfaceDefinitions(after);
  A.classOf = resolveClasses(A.pre!, table, definitions);
  B.classOf = resolveClasses(B.pre!, table, definitions);
  A.pre = B.pre = null;
  return compare(A, B, after, table, options, started);
}

function compare(A: Side, B: Side, afterGraph: HeapGraph, table: ClassTable, options: DiffOptions, started: number): HeapDiff {
  const k = table.size;
  const totalsA = classTotals(A.nodeSelfSize, A.classOf, k);
  const totalsB = classTotals(B.nodeSelfSize, B.classOf, k);
  const threshold: GrowthThreshold = { ...DEFAULT_THRESHOLD, ...options.threshold };
  const top = options.top ?? 10;

  const index = new IdIndex(A.nodeId, (a) => A.nodeSelfSize[a] !== 0);
  const selfA = A.nodeSelfSize;
  const selfB = B.nodeSelfSize;
  const idsB = B.nodeId;

  // One pass matches objects by id; when the caller did not say whether ids are comparable, the
  // same pass measures it: in one session nearly every id found on both sides keeps its class.
  const newCount = new Float64Array(k);
  const newSize = new Float64Array(k);
  const deletedCount = new Float64Array(k);
  const deletedSize = new Float64Array(k);
  const matchedA = new Uint8Array(A.nodeCount);
  let matched = 0;
  let agree = 0;
  for (let b = 0; b < B.nodeCount; b++) {
    const s = selfB[b]!;
    if (s === 0) continue;
    const c = B.classOf[b]!;
    const a = index.get(idsB[b]!);
    if (a >= 0) {
      matched++;
      if (A.classOf[a] === c) {
        agree++;
        matchedA[a] = 1;
        continue;
      }
    }
    newCount[c]!++;
    newSize[c]! += s;
  }
  const byIds = options.sameSession ?? (matched > 0 && agree / matched >= 0.9);
  if (byIds) {
    for (let a = 0; a < A.nodeCount; a++) {
      const s = selfA[a]!;
      if (s === 0 || matchedA[a]) continue;
      const c = A.classOf[a]!;
      deletedCount[c]!++;
      deletedSize[c]! += s;
    }
  }
  /** Is object b of the later snapshot one DevTools would list as new? */
  const isNew = (b: number): boolean => {
    if (!byIds) return true; // aggregates: every object of the class is a candidate sample
    const a = index.get(idsB[b]!);
    return a < 0 || A.classOf[a] !== B.classOf[b];
  };

  const deltas: HeapClassDelta[] = [];
  for (let c = 0; c < k; c++) {
    const countDelta = totalsB.count[c]! - totalsA.count[c]!;
    const sizeDelta = totalsB.size[c]! - totalsA.size[c]!;
    if (byIds ? newCount[c] === 0 && deletedCount[c] === 0 : countDelta === 0 && sizeDelta === 0) continue;
    deltas.push({
      className: table.names[c]!,
      classKey: table.keys[c]!,
      countBefore: totalsA.count[c]!,
      countAfter: totalsB.count[c]!,
      sizeBeforeBytes: totalsA.size[c]!,
      sizeAfterBytes: totalsB.size[c]!,
      newCount: byIds ? newCount[c]! : null,
      deletedCount: byIds ? deletedCount[c]! : null,
      newSizeBytes: byIds ? newSize[c]! : null,
      deletedSizeBytes: byIds ? deletedSize[c]! : null,
      countDelta: byIds ? newCount[c]! - deletedCount[c]! : countDelta,
      sizeDeltaBytes: byIds ? newSize[c]! - deletedSize[c]! : sizeDelta,
      retainerPath: null,
    });
  }
  const minSize = Math.max(threshold.minSizeDeltaBytes, threshold.minSizeDeltaFraction * totalsB.totalSize);
  const growers = deltas
    .filter((d) => d.sizeDeltaBytes >= minSize && d.countDelta >= threshold.minCountDelta)
    .sort((x, y) => y.sizeDeltaBytes - x.sizeDeltaBytes || y.countDelta - x.countDelta)
    .slice(0, top);
  if (growers.length > 0) {
    // The sample is the median new object of each grower (by position in the heap): the newest
    // one tends to be held by the stack or a handle scope of the code that just made it.
    const classOfGrower = new Map(growers.map((g) => [table.keys.indexOf(g.classKey), g]));
    const wanted = new Map<number, number>();
    for (const [c] of classOfGrower) wanted.set(c, Math.floor((byIds ? newCount[c]! : totalsB.count[c]!) / 2));
    const sample = new Map<number, number>();
    index.rewind();
    const seen = new Map<number, number>();
    for (let b = 0; b < B.nodeCount && sample.size < wanted.size; b++) {
      if (selfB[b] === 0) continue;
      const c = B.classOf[b]!;
      const want = wanted.get(c);
      if (want === undefined || sample.has(c) || !isNew(b)) continue;
      const n = seen.get(c) ?? 0;
      if (n === want) sample.set(c, b);
      seen.set(c, n + 1);
    }
    // The earlier snapshot's columns and the id index are done with: let them go before the
    // retainer tree is built over the later one.
    index.release();
    A.nodeId = A.classOf = new Uint32Array(0);
    A.nodeSelfSize = new Float64Array(0);
    const tree = buildRetainerTree(afterGraph);
    const labels = { className: (o: number) => table.names[B.classOf[o]!]! };
    for (const [c, g] of classOfGrower) {
      const o = sample.get(c);
      if (o !== undefined) g.retainerPath = retainerPath(afterGraph, tree, labels, o, options.maxPathLength ?? 16);
    }
  }
  const changes = [...deltas].sort((x, y) => Math.abs(y.sizeDeltaBytes) - Math.abs(x.sizeDeltaBytes)).slice(0, top);
  return {
    method: byIds ? 'object-ids' : 'aggregates',
    before: describeSide(A, totalsA.objectCount, totalsA.totalSize),
    after: describeSide(B, totalsB.objectCount, totalsB.totalSize),
    countDelta: totalsB.objectCount - totalsA.objectCount,
    sizeDeltaBytes: totalsB.totalSize - totalsA.totalSize,
    threshold,
    growers,
    changes,
    changedClassCount: deltas.length,
    elapsedMs: Math.round(performance.now() - started),
  };
}
