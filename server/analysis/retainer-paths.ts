// Shortest retainer paths from the GC root to every object, by one breadth-first pass over the
// forward edges (the same paths a reverse BFS from each object would find, computed once for all
// objects instead of once per object). Weak edges never retain. Within one BFS level, edges a
// person can read (properties, elements, variables) are expanded before V8's internal and hidden
// links, so a path prefers `Map.sessions` to `(system).table` when both are equally short.
import type { RetainerPath, RetainerStep } from '../../protocol/heap-diff.js';
import type { HeapGraph } from './heap-graph.js';

export const NO_PARENT = 0xffffffff;
/** parentEdge of the root itself. */
const ROOT = 0xfffffffe;

export interface RetainerTree {
  /** The edge through which each node was first reached; NO_PARENT when unreachable, ROOT for the root. */
  parentEdge: Uint32Array;
  /** Holder of an edge: the node whose edge range contains it (binary search; paths are short). */
  holderOf(edge: number): number;
}

/**
 * GC root groups whose paths explain nothing to a developer: a handle scope holds whatever native
 * code touched last, strong roots include V8's own identity maps (the snapshot generator's,
 * the debugger's). Objects reached only through them get their path last.
 */
const DEFERRED_ROOTS = new Set(['(Handle scope)', '(Strong roots)', '(Relocatable)', '(Debugger)', '(Compilation cache)']);

export function buildRetainerTree(graph: HeapGraph, rootOrdinal = 0): RetainerTree {
  const { nodeCount: n, firstEdge, edgeType, nodeType, nodeName, strings } = graph;
  const edgeTo = graph.edgeTo;
  if (!edgeTo) throw new Error('retainer paths need the full edge list');
  const t = graph.edgeTypeNames;
  const weak = t.indexOf('weak');
  const internal = t.indexOf('internal');
  const hidden = t.indexOf('hidden');
  const synthetic = graph.nodeTypeNames.indexOf('synthetic');
  const parentEdge = new Uint32Array(n).fill(NO_PARENT);
  const queue = new Uint32Array(n);
  const deferred: number[] = []; // edges into deferred roots, met during the main search
  const isDeferred = (w: number): boolean => nodeType[w] === synthetic && DEFERRED_ROOTS.has(strings[nodeName[w]!] ?? '');
  let tail = 0;
  // Breadth-first from queue[head..tail), level by level, readable edges first within a level.
  const search = (head: number): void => {
    while (head < tail) {
      const levelEnd = tail;
      for (let pass = 0; pass < 2; pass++) {
        for (let q = head; q < levelEnd; q++) {
          const v = queue[q]!;
          for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e++) {
            const type = edgeType[e]!;
            if (type === weak) continue;
            const lowRank = type === internal || type === hidden;
            if ((pass === 0) === lowRank) continue;
            const w = edgeTo[e]!;
            if (parentEdge[w] !== NO_PARENT) continue;
            if (isDeferred(w)) {
              deferred.push(e);
              continue;
            }
            parentEdge[w] = e;
            queue[tail++] = w;
          }
        }
      }
      head = levelEnd;
    }
  };
  parentEdge[rootOrdinal] = ROOT;
  // 1. As DevTools does: from the user roots (the root's non-synthetic children, e.g. globals).
  let head = tail;
  for (let e = firstEdge[rootOrdinal]!; e < firstEdge[rootOrdinal + 1]!; e++) {
    const w = edgeTo[e]!;
    if (nodeType[w] === synthetic || parentEdge[w] !== NO_PARENT || edgeType[e] === weak) continue;
    parentEdge[w] = e;
    queue[tail++] = w;
  }
  search(head);
  // 2. From the root through the GC roots (stack, globals handles, ...), handle scopes aside.
  head = tail;
  queue[tail++] = rootOrdinal;
  search(head);
  // 3. What only handle scopes hold.
  for (let i = 0; i < deferred.length; i++) {
    const e = deferred[i]!;
    const w = edgeTo[e]!;
    if (parentEdge[w] !== NO_PARENT) continue;
    parentEdge[w] = e;
    head = tail;
    queue[tail++] = w;
    search(head);
  }
  const holderOf = (edge: number): number => {
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (firstEdge[mid]! <= edge) lo = mid;
      else hi = mid - 1;
    }
    // Nodes without edges share a firstEdge with the next one: step back to the owner.
    while (firstEdge[lo + 1]! <= edge) lo++;
    return lo;
  };
  return { parentEdge, holderOf };
}

export interface PathLabels {
  className(ordinal: number): string;
}

function nodeLabel(graph: HeapGraph, labels: PathLabels, o: number): string {
  const type = graph.nodeTypeNames[graph.nodeType[o]!];
  const name = graph.strings[graph.nodeName[o]!] ?? '';
  if (type === 'synthetic') return name;
  if (type === 'closure') return name ? `Function ${name}` : 'Function';
  return labels.className(o);
}

function edgeLabel(graph: HeapGraph, e: number): { type: string; name: string; text: string } {
  const type = graph.edgeTypeNames[graph.edgeType[e]!] ?? '?';
  const raw = graph.edgeName[e]!;
  if (type === 'element' || type === 'hidden') {
    return { type, name: String(raw), text: `[${raw}]` };
  }
  const name = graph.strings[raw] ?? String(raw);
  // V8 names some internal slots by number ("63209" in a hash table): show them as indexes.
  if (type === 'internal' && /^\d+$/.test(name)) return { type, name, text: `[${name}]` };
  return { type, name, text: `.${name}` };
}

/** The path from `ordinal` up to the root, formatted "Session ← Map.sessions ← ...". */
export function retainerPath(
  graph: HeapGraph,
  tree: RetainerTree,
  labels: PathLabels,
  ordinal: number,
  maxLength = 16,
): RetainerPath | null {
  const pe = tree.parentEdge;
  if (pe[ordinal] === NO_PARENT || pe[ordinal] === ROOT) return null;
  const steps: RetainerStep[] = [];
  const parts = [nodeLabel(graph, labels, ordinal)];
  let x = ordinal;
  let truncated = false;
  while (pe[x] !== ROOT) {
    const holder = tree.holderOf(pe[x]!);
    if (pe[holder] === ROOT) break; // holder is the snapshot's synthetic root
    if (steps.length === maxLength) {
      truncated = true;
      break;
    }
    const edge = edgeLabel(graph, pe[x]!);
    const holderText = nodeLabel(graph, labels, holder);
    steps.push({
      className: labels.className(holder),
      nodeName: graph.strings[graph.nodeName[holder]!] ?? '',
      nodeId: graph.nodeId[holder]!,
      nodeType: graph.nodeTypeNames[graph.nodeType[holder]!] ?? '?',
      edgeType: edge.type,
      edgeName: edge.name,
    });
    parts.push(`${holderText}${edge.text}`);
    x = holder;
  }
  return {
    nodeId: graph.nodeId[ordinal]!,
    className: labels.className(ordinal),
    steps,
    text: parts.join(' ← ') + (truncated ? ' ← …' : ''),
    truncated,
  };
}
