// Results of heap snapshot analysis, shared by the collector (which computes them), the API,
// the CLI and the web page. Sizes are V8 "self size" in bytes unless the name says retained.
// Class names follow Chrome DevTools' Summary/Comparison grouping ('(string)', '(compiled code)',
// 'Function' for closures, '{a, b}' for common plain-object shapes, constructor names otherwise).

/** One class (DevTools' constructor row) in one snapshot. */
export interface HeapClassStat {
  className: string;
  /** DevTools' class key: ',Name', or 'scriptId,line,column,Name' for classes with a source location. */
  classKey: string;
  count: number;
  selfSizeBytes: number;
}

/** An object that keeps a lot alive (dominator tree). */
export interface HeapRetainer {
  className: string;
  name: string;
  nodeId: number;
  selfSizeBytes: number;
  retainedSizeBytes: number;
}

export interface HeapSummary {
  nodeCount: number;
  edgeCount: number;
  /** Objects DevTools counts (self size > 0) and their self sizes. */
  objectCount: number;
  totalSelfSizeBytes: number;
  /** The file's node_fields as V8 wrote them (differ between Node versions). */
  nodeFields: string[];
  /** Every class, largest self size first. */
  classes: HeapClassStat[];
  /** Top objects by retained size; null when dominators were skipped (see retainedNote). */
  topRetainers: HeapRetainer[] | null;
  retainedNote: string | null;
  elapsedMs: number;
}

/** One hop of a retainer path, from the object towards the GC root. */
export interface RetainerStep {
  /** The holder's DevTools class name. */
  className: string;
  /** The holder's own name (function name, '(GC roots)', ...). */
  nodeName: string;
  nodeId: number;
  nodeType: string;
  /** How the holder references the previous hop: 'property', 'element', 'context', 'internal', ... */
  edgeType: string;
  /** Property or variable name, or the element index as text. */
  edgeName: string;
}

export interface RetainerPath {
  /** The object the path starts at. */
  nodeId: number;
  className: string;
  /** Holders from the object's direct retainer up to a GC root (or the cut-off). */
  steps: RetainerStep[];
  /** "LeakyRecord ← Array[1234] ← Object.records ← (GC roots)" */
  text: string;
  /** True when the path was cut at maxPathLength. */
  truncated: boolean;
}

/** One class in a comparison (DevTools' Comparison row). */
export interface HeapClassDelta {
  className: string;
  classKey: string;
  countBefore: number;
  countAfter: number;
  sizeBeforeBytes: number;
  sizeAfterBytes: number;
  /** Objects in the later snapshot whose id is not in the earlier one (null when matched by aggregates). */
  newCount: number | null;
  /** Objects of the earlier snapshot gone in the later one (null when matched by aggregates). */
  deletedCount: number | null;
  newSizeBytes: number | null;
  deletedSizeBytes: number | null;
  countDelta: number;
  sizeDeltaBytes: number;
  /** For growers: how one new (or newest) object of this class is kept alive. */
  retainerPath: RetainerPath | null;
}

export interface HeapDiffSide {
  file: string | null;
  nodeCount: number;
  objectCount: number;
  totalSelfSizeBytes: number;
  nodeFields: string[];
}

/** What counts as growth rather than noise; see HeapDiff.growers. */
export interface GrowthThreshold {
  /** A grower's self size delta is at least this many bytes... */
  minSizeDeltaBytes: number;
  /** ...and at least this fraction of the later snapshot's total self size... */
  minSizeDeltaFraction: number;
  /** ...and its count delta is at least this. */
  minCountDelta: number;
}

export interface HeapDiff {
  /** 'object-ids': both snapshots from one inspector session, objects matched by id (DevTools' Comparison).
   *  'aggregates': ids not comparable, per-class totals subtracted. */
  method: 'object-ids' | 'aggregates';
  before: HeapDiffSide;
  after: HeapDiffSide;
  countDelta: number;
  sizeDeltaBytes: number;
  threshold: GrowthThreshold;
  /** Classes whose growth passes the threshold, largest size delta first, with retainer paths. */
  growers: HeapClassDelta[];
  /** The largest changes (growth or shrinkage) by absolute size delta, up to `top`. */
  changes: HeapClassDelta[];
  /** Classes with any change; `changes` may be a prefix of them. */
  changedClassCount: number;
  elapsedMs: number;
}
