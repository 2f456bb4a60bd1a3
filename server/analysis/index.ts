// Heap snapshot analysis, the API the collector and the CLI use.
export { diffSnapshotFiles, DEFAULT_THRESHOLD, type DiffOptions } from './diff.js';
export { summarizeSnapshotFile, summarizeGraph, type SummaryOptions } from './summary.js';
export { readHeapSnapshot, HeapSnapshotError, type ReadOptions } from './snapshot-reader.js';
export type { HeapGraph } from './heap-graph.js';
