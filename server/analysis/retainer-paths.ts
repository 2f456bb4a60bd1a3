// Shortest retainer paths from the GC root to every object, by one breadth-first pass over the
// forward edges (the same paths a reverse BFS from each object would find, computed once for all
// objects instead of once per object). Weak edges never retain. Within one BFS level, edges a
// person can read (properties, elements, variables) are expanded before V8's internal and hidden
// links, so a path prefers `Map.sessions` to `(system).table` when both are equally short.
import type { RetainerPath, RetainerStep } from '../../protocol/heap-diff.js';
import type { HeapGraph } from './heap-graph.js';

export const NO_PARENT = 0xffffffff;

export interface RetainerTree {
  /** Holder ordinal on the shortest path; NO_PARENT for the root and unreachable nodes. */
  parentNode: Uint32Array;
  /** The holder's edge that reaches the node. */
  parentEdge: Uint32Array;
}

export function buildRetainerTree(graph: HeapGraph, rootOrdinal = 0): RetainerTree {
  const { nodeCount: n, firstEdge, edgeType } = graph;
  const edgeTo = graph.edgeTo;
  if (!edgeTo) throw new Error('retainer paths need the full edge list');
  const t = graph.edgeTypeNames;
  const weak = t.indexOf('weak');
  const internal = t.indexOf('internal');
  const hidden = t.indexOf('hidden');
  const parentNode = new Uint32Array(n).fill(NO_PARENT);
  const parentEdge = new Uint32Array(n).fill(NO_PARENT);
  const visited = new Uint8Array(n);
  const queue = new Uint32Array(n);
  let head = 0;
  let tail = 0;
  queue[tail++] = rootOrdinal;
  visited[rootOrdinal] = 1;
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
          if (visited[w]) continue;
          visited[w] = 1;
          parentNode[w] = v;
          parentEdge[w] = e;
          queue[tail++] = w;
        }
      }
    }
    head = levelEnd;
  }
  return { parentNode, parentEdge };
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
  if (tree.parentNode[ordinal] === NO_PARENT) return null;
  const steps: RetainerStep[] = [];
  const parts = [nodeLabel(graph, labels, ordinal)];
  let x = ordinal;
  let truncated = false;
  while (tree.parentNode[x] !== NO_PARENT) {
    const holder = tree.parentNode[x]!;
    if (tree.parentNode[holder] === NO_PARENT) break; // holder is the snapshot's synthetic root
    if (steps.length === maxLength) {
      truncated = true;
      break;
    }
    const edge = edgeLabel(graph, tree.parentEdge[x]!);
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
