// Two adjustments DevTools makes to a snapshot before it counts anything (JSHeapSnapshot in
// HeapSnapshot.ts), repeated here so our counts are the ones people see in Chrome:
//  - calculateShallowSizes: an array, hidden object or external string owned by exactly one
//    object has its size moved to that owner (a Map's table counts as the Map), and then, with
//    self size 0, is no longer counted on its own;
//  - propagateDOMState: native nodes that V8 marks detached (and native nodes they reach) are
//    named "Detached <name>".
import type { HeapGraph } from './heap-graph.js';

const UNVISITED = 0xffffffff;
const MULTIPLE = 0xfffffffe;

/** DevTools skips the transfer when the root has no user roots (an "expose internals" snapshot). */
function hasUserRoots(graph: HeapGraph): boolean {
  const synthetic = graph.nodeTypeNames.indexOf('synthetic');
  for (let e = graph.firstEdge[0]!; e < graph.firstEdge[1]!; e++) {
    if (graph.nodeType[graph.edgeTo![e]!] !== synthetic) return true;
  }
  return false;
}

/** Moves owned sizes in place (graph.nodeSelfSize). Needs the full edge list. */
export function transferShallowSizes(graph: HeapGraph): void {
  if (!graph.edgeTo) throw new Error('shallow sizes need the full edge list');
  if (!hasUserRoots(graph)) return;
  const { nodeCount: n, nodeType, nodeName, nodeSelfSize, firstEdge, edgeType, strings } = graph;
  const edgeTo = graph.edgeTo;
  const t = graph.nodeTypeNames;
  const hidden = t.indexOf('hidden');
  const array = t.indexOf('array');
  const native = t.indexOf('native');
  const synthetic = t.indexOf('synthetic');
  const weak = graph.edgeTypeNames.indexOf('weak');
  const externalString = strings.indexOf('system / ExternalStringData');
  const owners = new Uint32Array(n);
  // A node enters the worklist at most twice (unvisited → owner → multiple); start at n, grow if needed.
  let worklist = new Uint32Array(n);
  let top = 0;
  for (let i = 0; i < n; i++) {
    const type = nodeType[i];
    if (type === hidden || type === array || (type === native && nodeName[i] === externalString)) owners[i] = UNVISITED;
    else {
      owners[i] = i;
      worklist[top++] = i;
    }
  }
  while (top > 0) {
    const id = worklist[--top]!;
    const owner = owners[id]!;
    for (let e = firstEdge[id]!; e < firstEdge[id + 1]!; e++) {
      if (edgeType[e] === weak) continue;
      const target = edgeTo[e]!;
      const current = owners[target]!;
      if (current === UNVISITED) owners[target] = owner;
      else if (current !== target && current !== owner && current !== MULTIPLE) owners[target] = MULTIPLE;
      else continue;
      if (top === worklist.length) {
        const grown = new Uint32Array(Math.min(2 * n, worklist.length + (worklist.length >> 1) + 1024));
        grown.set(worklist);
        worklist = grown;
      }
      worklist[top++] = target;
    }
  }
  for (let i = 0; i < n; i++) {
    const owner = owners[i]!;
    if (owner === UNVISITED || owner === MULTIPLE || owner === i) continue;
    if (nodeType[owner] === synthetic || owner === 0) continue;
    nodeSelfSize[owner]! += nodeSelfSize[i]!;
    nodeSelfSize[i] = 0;
  }
}

/** 1 for native nodes DevTools names "Detached ...". All zero when the file has no detachedness. */
export function detachedNatives(graph: HeapGraph): Uint8Array {
  const n = graph.nodeCount;
  const out = new Uint8Array(n);
  const state = graph.nodeDetachedness;
  if (!state || !graph.edgeTo) return out;
  const { nodeType, firstEdge, edgeType } = graph;
  const edgeTo = graph.edgeTo;
  const native = graph.nodeTypeNames.indexOf('native');
  const et = graph.edgeTypeNames;
  const skip = new Set([et.indexOf('hidden'), et.indexOf('invisible'), et.indexOf('weak')]);
  const propagated = new Uint8Array(state);
  const visited = new Uint8Array(n);
  const attached: number[] = [];
  const detached: number[] = [];
  const process = (o: number, newState: number): void => {
    if (visited[o]) return;
    if (nodeType[o] !== native) {
      visited[o] = 1;
      return;
    }
    propagated[o] = newState;
    if (newState === 1) attached.push(o);
    else if (newState === 2) {
      out[o] = 1;
      detached.push(o);
    }
    visited[o] = 1;
  };
  const propagate = (o: number, newState: number): void => {
    for (let e = firstEdge[o]!; e < firstEdge[o + 1]!; e++) {
      if (!skip.has(edgeType[e]!)) process(edgeTo[e]!, newState);
    }
  };
  for (let o = 0; o < n; o++) if (state[o] !== 0) process(o, state[o]!);
  while (attached.length > 0) propagate(attached.pop()!, 1);
  while (detached.length > 0) {
    const o = detached.pop()!;
    if (propagated[o] === 1) continue;
    propagate(o, 2);
  }
  return out;
}
