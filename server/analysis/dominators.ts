// Dominator tree and retained sizes over a HeapGraph: Lengauer–Tarjan (simple version, path
// compression) on typed arrays, iterative (no recursion: heaps are millions of nodes deep).
// Which edges retain follows DevTools (computeIsEssentialEdge): not weak ones, not self edges,
// shortcuts only from the root, not a WeakMap table's edge to a value (the key's edge is kept),
// and not an edge from an object outside the user roots' reach into one inside it (a debugger's
// reference must not become an object's dominator). Nodes not reachable keep retained = 0.
import type { HeapGraph } from './heap-graph.js';

export interface Dominators {
  /** Immediate dominator ordinal per node; the root and unreachable nodes hold NONE. */
  idom: Uint32Array;
  retained: Float64Array;
  reachable: number;
}

export const NONE = 0xffffffff;

/** Bytes of scratch memory computeDominators needs, to decide whether it is affordable. */
export function dominatorCostBytes(graph: HeapGraph): number {
  return graph.nodeCount * 4 * 13 + graph.edgeCount * 5;
}

const WEAKMAP_EDGE = /^\d+ \/ part of key \(.*? @\d+\) -> value \(.*? @\d+\) pair in WeakMap \(table @(\d+)\)$/;

/** 1 for each edge that retains its target, by DevTools' rules. */
export function essentialEdges(graph: HeapGraph, rootOrdinal = 0): Uint8Array {
  const { nodeCount: n, firstEdge, edgeType, edgeName, nodeId, nodeType, nodeName, strings } = graph;
  const edgeTo = graph.edgeTo!;
  const et = graph.edgeTypeNames;
  const weak = et.indexOf('weak');
  const shortcut = et.indexOf('shortcut');
  const element = et.indexOf('element');
  const internal = et.indexOf('internal');
  const synthetic = graph.nodeTypeNames.indexOf('synthetic');
  // Objects reachable from the user roots (globals the root marks with shortcut edges).
  const owned = new Uint8Array(n);
  const stack: number[] = [];
  for (let e = firstEdge[rootOrdinal]!; e < firstEdge[rootOrdinal + 1]!; e++) {
    const w = edgeTo[e]!;
    const t = edgeType[e];
    const domTrees = t === element && nodeType[w] === synthetic && strings[nodeName[w]!] === '(Document DOM trees)';
    if (t !== shortcut && !domTrees) continue;
    if (!owned[w]) stack.push(w);
    owned[w] = 1;
  }
  while (stack.length > 0) {
    const v = stack.pop()!;
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e++) {
      const w = edgeTo[e]!;
      if (owned[w] || edgeType[e] === weak) continue;
      owned[w] = 1;
      stack.push(w);
    }
  }
  const weakMapTable = new Map<number, number>(); // edge name index → table id, or -1
  const out = new Uint8Array(graph.edgeCount);
  for (let v = 0; v < n; v++) {
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e++) {
      const t = edgeType[e];
      if (t === weak) continue;
      const w = edgeTo[e]!;
      if (w === v) continue;
      if (v !== rootOrdinal && (t === shortcut || (owned[w] && !owned[v]))) continue;
      if (t === internal) {
        const nameIndex = edgeName[e]!;
        let table = weakMapTable.get(nameIndex);
        if (table === undefined) {
          const m = WEAKMAP_EDGE.exec(strings[nameIndex] ?? '');
          table = m ? Number(m[1]) : -1;
          weakMapTable.set(nameIndex, table);
        }
        if (table === nodeId[v]) continue;
      }
      out[e] = 1;
    }
  }
  return out;
}

export function computeDominators(graph: HeapGraph, rootOrdinal = 0): Dominators {
  const { nodeCount: n, firstEdge, nodeSelfSize } = graph;
  const edgeTo = graph.edgeTo;
  if (!edgeTo) throw new Error('dominators need the full edge list');
  const retains = essentialEdges(graph, rootOrdinal);

  // 1. Depth-first preorder numbering (1-based), parent in DFS tree.
  const dfn = new Uint32Array(n);
  const vertex = new Uint32Array(n + 1);
  const parent = new Uint32Array(n + 1);
  const stackNode = new Uint32Array(n);
  const stackEdge = new Uint32Array(n);
  let count = 0;
  let sp = 0;
  dfn[rootOrdinal] = ++count;
  vertex[count] = rootOrdinal;
  stackNode[sp] = rootOrdinal;
  stackEdge[sp] = firstEdge[rootOrdinal]!;
  sp++;
  while (sp > 0) {
    const v = stackNode[sp - 1]!;
    const e = stackEdge[sp - 1]!;
    if (e >= firstEdge[v + 1]!) {
      sp--;
      continue;
    }
    stackEdge[sp - 1] = e + 1;
    if (!retains[e]) continue;
    const w = edgeTo[e]!;
    if (dfn[w] !== 0) continue;
    dfn[w] = ++count;
    vertex[count] = w;
    parent[count] = dfn[v]!;
    stackNode[sp] = w;
    stackEdge[sp] = firstEdge[w]!;
    sp++;
  }
  const N = count;

  // 2. Predecessors in dfn space (reachable, non-weak edges only), as CSR.
  const predStart = new Uint32Array(N + 2);
  for (let v = 0; v < n; v++) {
    if (dfn[v] === 0) continue;
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e++) {
      if (retains[e]) predStart[dfn[edgeTo[e]!]! + 1]!++;
    }
  }
  for (let i = 1; i <= N + 1; i++) predStart[i]! += predStart[i - 1]!;
  const preds = new Uint32Array(predStart[N + 1]!);
  const fill = predStart.slice(0, N + 1);
  for (let v = 0; v < n; v++) {
    const dv = dfn[v]!;
    if (dv === 0) continue;
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e++) {
      if (retains[e]) preds[fill[dfn[edgeTo[e]!]!]!++] = dv;
    }
  }

  // 3. Semidominators and immediate dominators.
  const semi = new Uint32Array(N + 1);
  const label = new Uint32Array(N + 1);
  const ancestor = new Uint32Array(N + 1);
  const idomD = new Uint32Array(N + 1);
  const bucketHead = new Uint32Array(N + 1);
  const bucketNext = new Uint32Array(N + 1);
  const path = stackNode; // reuse: at most N entries
  for (let i = 1; i <= N; i++) {
    semi[i] = i;
    label[i] = i;
  }
  const evaluate = (v: number): number => {
    if (ancestor[v] === 0) return v;
    let depth = 0;
    let x = v;
    while (ancestor[ancestor[x]!] !== 0) {
      path[depth++] = x;
      x = ancestor[x]!;
    }
    while (depth > 0) {
      const y = path[--depth]!;
      const a = ancestor[y]!;
      if (semi[label[a]!]! < semi[label[y]!]!) label[y] = label[a]!;
      ancestor[y] = ancestor[a]!;
    }
    return label[v]!;
  };
  for (let w = N; w >= 2; w--) {
    for (let k = predStart[w]!; k < predStart[w + 1]!; k++) {
      const u = evaluate(preds[k]!);
      if (semi[u]! < semi[w]!) semi[w] = semi[u]!;
    }
    const s = semi[w]!;
    bucketNext[w] = bucketHead[s]!;
    bucketHead[s] = w;
    const p = parent[w]!;
    ancestor[w] = p;
    for (let v = bucketHead[p]!; v !== 0; v = bucketNext[v]!) {
      const u = evaluate(v);
      idomD[v] = semi[u]! < semi[v]! ? u : p;
    }
    bucketHead[p] = 0;
  }
  for (let w = 2; w <= N; w++) {
    if (idomD[w] !== semi[w]) idomD[w] = idomD[idomD[w]!]!;
  }

  // 4. Back to node ordinals; retained sizes bottom-up (reverse preorder: children first).
  const idom = new Uint32Array(n).fill(NONE);
  const retained = new Float64Array(n);
  for (let i = 1; i <= N; i++) retained[vertex[i]!] = nodeSelfSize[vertex[i]!]!;
  for (let w = N; w >= 2; w--) {
    const node = vertex[w]!;
    const dom = vertex[idomD[w]!]!;
    idom[node] = dom;
    retained[dom]! += retained[node]!;
  }
  return { idom, retained, reachable: N };
}
