// One snapshot on its own: DevTools' Summary (count and self size per class) and, when the
// dominator tree is affordable, the objects that retain the most.
import type { HeapRetainer, HeapSummary } from '../../protocol/heap-diff.js';
import { classStats, classTotals } from './aggregates.js';
import { ClassTable, classifyNodes, inferInterfaceDefinitions } from './class-names.js';
import { detachedNatives, transferShallowSizes } from './devtools-adjustments.js';
import { computeDominators, dominatorCostBytes } from './dominators.js';
import type { HeapGraph } from './heap-graph.js';
import { readHeapSnapshot } from './snapshot-reader.js';

export interface SummaryOptions {
  /** Top retainers to list (default 10). */
  topRetainers?: number;
  /**
   * Dominator scratch memory allowed (bytes, default 1 GiB): about 52 bytes per node plus 4 per
   * edge. Bigger heaps get no retained sizes, and the summary says so.
   */
  maxDominatorBytes?: number;
}

/** Summarizes a graph read with full edges; moves owned sizes in the graph as DevTools does. */
export function summarizeGraph(graph: HeapGraph, options: SummaryOptions = {}, startedMs = performance.now()): HeapSummary {
  const table = new ClassTable();
  transferShallowSizes(graph);
  const classOf = classifyNodes(graph, table, inferInterfaceDefinitions(graph), detachedNatives(graph));
  const totals = classTotals(graph.nodeSelfSize, classOf, table.size);
  const classes = classStats(table, totals);
  let topRetainers: HeapRetainer[] | null = null;
  let retainedNote: string | null = null;
  const cost = dominatorCostBytes(graph);
  const budget = options.maxDominatorBytes ?? 1024 ** 3;
  if (cost > budget) {
    retainedNote = `retained sizes skipped: the dominator tree of ${graph.nodeCount} nodes needs ~${Math.round(cost / 2 ** 20)} MiB, over the ${Math.round(budget / 2 ** 20)} MiB budget`;
  } else {
    const dom = computeDominators(graph);
    const synthetic = graph.nodeTypeNames.indexOf('synthetic');
    const want = options.topRetainers ?? 10;
    // Top-k by retained size with a small sorted list (k is small, the heap is not).
    const best: number[] = [];
    for (let o = 1; o < graph.nodeCount; o++) {
      if (graph.nodeType[o] === synthetic) continue;
      const r = dom.retained[o]!;
      if (best.length === want && r <= dom.retained[best[best.length - 1]!]!) continue;
      let i = best.length;
      while (i > 0 && dom.retained[best[i - 1]!]! < r) i--;
      best.splice(i, 0, o);
      if (best.length > want) best.pop();
    }
    topRetainers = best.map((o) => ({
      className: table.names[classOf[o]!]!,
      name: graph.strings[graph.nodeName[o]!] ?? '',
      nodeId: graph.nodeId[o]!,
      selfSizeBytes: graph.nodeSelfSize[o]!,
      retainedSizeBytes: dom.retained[o]!,
    }));
    retainedNote = `${dom.reachable} of ${graph.nodeCount} nodes reachable from the root`;
  }
  return {
    nodeCount: graph.nodeCount,
    edgeCount: graph.edgeCount,
    objectCount: totals.objectCount,
    totalSelfSizeBytes: totals.totalSize,
    nodeFields: graph.nodeFields,
    classes,
    topRetainers,
    retainedNote,
    elapsedMs: Math.round(performance.now() - startedMs),
  };
}

export async function summarizeSnapshotFile(path: string, options: SummaryOptions = {}): Promise<HeapSummary> {
  const started = performance.now();
  const graph = await readHeapSnapshot(path, { edges: 'full' });
  return summarizeGraph(graph, options, started);
}
