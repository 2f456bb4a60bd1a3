// DevTools' grouping of heap objects into classes (the Summary and Comparison views), as the
// Chromium DevTools frontend does it (HeapSnapshot.ts: calculateObjectNames, classKeyInternal,
// inferInterfaceDefinitions, applyInterfaceDefinitions):
//   hidden → '(system)', code → '(compiled code)', closure → 'Function', regexp → 'RegExp',
//   object/native → the node's name ('<div id=x>' → '<div>'), other types → '(type)';
//   plain 'Object's are named by their property shape ('{id, user}') when that shape is common;
//   'object' nodes with a source location are keyed by location too (two classes named Foo
//   from different scripts are different rows).
// Class keys are strings comparable across snapshots; ClassTable numbers them.
import type { HeapGraph } from './heap-graph.js';

const MIN_INTERFACE_PROPERTY_COUNT = 1;
const MAX_INTERFACE_NAME_LENGTH = 120;
const MIN_OBJECT_COUNT_PER_INTERFACE = 2;
const MIN_OBJECT_PROPORTION_PER_INTERFACE = 1000;

export interface InterfaceDefinition {
  name: string;
  properties: string[];
  count: number;
}

/** Class keys shared by the snapshots of one analysis: key → number, and back. */
export class ClassTable {
  readonly keys: string[] = [];
  readonly names: string[] = [];
  private readonly index = new Map<string, number>();

  intern(key: string, name: string): number {
    let i = this.index.get(key);
    if (i === undefined) {
      i = this.keys.length;
      this.keys.push(key);
      this.names.push(name);
      this.index.set(key, i);
    }
    return i;
  }

  get size(): number {
    return this.keys.length;
  }
}

function formatPropertyName(name: string): string {
  if (/[,'"{}]/.test(name)) {
    const s = JSON.stringify({ [name]: 0 });
    return s.substring(1, s.length - 3);
  }
  return name;
}

function plainObjectName(graph: HeapGraph): number {
  return graph.strings.indexOf('Object');
}

/** DevTools' inferInterfaceDefinitions: the common property shapes of plain Objects. */
export function inferInterfaceDefinitions(graph: HeapGraph): InterfaceDefinition[] {
  const objectType = graph.nodeTypeNames.indexOf('object');
  const propertyType = graph.edgeTypeNames.indexOf('property');
  const objectName = plainObjectName(graph);
  if (objectName < 0 || objectType < 0) return [];
  const { nodeType, nodeName, firstEdge, edgeType, edgeName, strings } = graph;
  const candidates = new Map<string, InterfaceDefinition>();
  // Objects of one hidden class share a property list: name each distinct list once.
  const bySignature = new Map<string, { name: string; properties: string[] } | null>();
  let total = 0;
  for (let o = 0; o < graph.nodeCount; o++) {
    if (nodeType[o] !== objectType || nodeName[o] !== objectName) continue;
    total++;
    let signature = '';
    for (let e = firstEdge[o]!; e < firstEdge[o + 1]!; e++) {
      if (edgeType[e] === propertyType) signature += `${edgeName[e]},`;
    }
    let shape = bySignature.get(signature);
    if (shape === undefined) {
      let name = '{';
      const properties: string[] = [];
      for (let e = firstEdge[o]!; e < firstEdge[o + 1]!; e++) {
        if (edgeType[e] !== propertyType) continue;
        const edge = strings[edgeName[e]!]!;
        if (edge === '__proto__') continue;
        const formatted = formatPropertyName(edge);
        if (name.length > MIN_INTERFACE_PROPERTY_COUNT && name.length + formatted.length > MAX_INTERFACE_NAME_LENGTH) break;
        if (name.length !== 1) name += ', ';
        name += formatted;
        properties.push(edge);
      }
      shape = properties.length === 0 ? null : { name: name + '}', properties };
      bySignature.set(signature, shape);
    }
    if (!shape) continue;
    const c = candidates.get(shape.name);
    if (c) c.count++;
    else candidates.set(shape.name, { name: shape.name, properties: shape.properties, count: 1 });
  }
  const sorted = [...candidates.values()].sort((a, b) => b.count - a.count);
  const minCount = Math.max(MIN_OBJECT_COUNT_PER_INTERFACE, total / MIN_OBJECT_PROPORTION_PER_INTERFACE);
  const result: InterfaceDefinition[] = [];
  for (const c of sorted) {
    if (c.count < minCount) break;
    result.push(c);
  }
  return result;
}

interface TreeNode {
  next: Map<string, TreeNode>;
  matchInfo: { name: string; propertyCount: number; index: number } | null;
  greatestNext: string | null;
}

/** Which interface (if any) a plain Object with these properties belongs to: DevTools' matcher. */
function interfaceMatcher(definitions: InterfaceDefinition[]): (properties: string[]) => string | null {
  const root: TreeNode = { next: new Map(), matchInfo: null, greatestNext: null };
  definitions.forEach((definition, index) => {
    const properties = [...definition.properties].sort();
    let current = root;
    for (const p of properties) {
      let next = current.next.get(p);
      if (!next) {
        next = { next: new Map(), matchInfo: null, greatestNext: null };
        current.next.set(p, next);
        if (current.greatestNext === null || current.greatestNext < p) current.greatestNext = p;
      }
      current = next;
    }
    if (!current.matchInfo) current.matchInfo = { name: definition.name, propertyCount: properties.length, index };
  });
  type Match = { name: string; propertyCount: number; index: number };
  const better = (a: Match, b: Match | null): Match => {
    if (!b || a.propertyCount > b.propertyCount) return a;
    if (b.propertyCount > a.propertyCount) return b;
    return a.index <= b.index ? a : b;
  };
  const initial: Match = { name: '', propertyCount: 0, index: Infinity };
  return (properties) => {
    properties.sort();
    const states = new Set<TreeNode>([root]);
    let match = better(initial, root.matchInfo);
    for (const p of properties) {
      for (const state of Array.from(states.keys())) {
        if (state.greatestNext === null || p >= state.greatestNext) states.delete(state);
        const next = state.next.get(p);
        if (next) {
          states.add(next);
          match = better(match, next.matchInfo);
        }
      }
    }
    return match === initial ? null : match.name;
  };
}

/** Classes of one snapshot before plain-Object shapes are named: shapes are kept by property list. */
export interface PreClassified {
  /** >= 0: class number in the table; < 0: -(shape index + 1). */
  classOf: Int32Array;
  shapes: Array<{ properties: string[]; locationKey: string | null }>;
}

/**
 * Class of every node by DevTools' rules, except plain Objects, which wait for the interface
 * definitions (DevTools' Comparison applies the later snapshot's definitions to both sides).
 * `detached` marks native nodes DevTools prefixes with "Detached ".
 */
export function preclassify(graph: HeapGraph, table: ClassTable, detached: Uint8Array | null): PreClassified {
  const t = graph.nodeTypeNames;
  const hidden = t.indexOf('hidden');
  const object = t.indexOf('object');
  const native = t.indexOf('native');
  const code = t.indexOf('code');
  const closure = t.indexOf('closure');
  const regexp = t.indexOf('regexp');
  const propertyType = graph.edgeTypeNames.indexOf('property');
  const objectName = plainObjectName(graph);
  const { nodeType, nodeName, nodeLocation, locationKeys, strings, firstEdge, edgeType, edgeName } = graph;
  const classOf = new Int32Array(graph.nodeCount);
  const byName = new Map<number, number>();
  const byDetachedName = new Map<number, number>();
  const byLocationName = new Map<number, number>();
  const exactKeys = (locationKeys.length + 1) * strings.length < Number.MAX_SAFE_INTEGER;
  const typeClass = t.map((name) => table.intern(`,(${name})`, `(${name})`));
  const fixed = (name: string): number => table.intern(`,${name}`, name);
  const hiddenClass = fixed('(system)');
  const codeClass = fixed('(compiled code)');
  const functionClass = fixed('Function');
  const regexpClass = fixed('RegExp');
  const shapes: PreClassified['shapes'] = [];
  const shapeBySignature = new Map<string, number>();
  const nameOfNode = (o: number): string => {
    let raw = strings[nodeName[o]!]!;
    if (detached && detached[o]) raw = `Detached ${raw}`;
    if (raw.startsWith('<')) {
      const sp = raw.indexOf(' ');
      return sp !== -1 ? raw.substring(0, sp) + '>' : raw;
    }
    if (raw.startsWith('Detached <')) {
      const sp = raw.indexOf(' ', 10);
      return sp !== -1 ? raw.substring(0, sp) + '>' : raw;
    }
    return raw;
  };
  for (let o = 0; o < graph.nodeCount; o++) {
    const type = nodeType[o]!;
    if (type === hidden) classOf[o] = hiddenClass;
    else if (type === code) classOf[o] = codeClass;
    else if (type === closure) classOf[o] = functionClass;
    else if (type === regexp) classOf[o] = regexpClass;
    else if (type === object || type === native) {
      const loc = type === object && nodeLocation ? nodeLocation[o]! : 0;
      const locationKey = loc !== 0 ? locationKeys[loc - 1]! : null;
      if (type === object && nodeName[o] === objectName) {
        let signature = locationKey ?? '';
        signature += '|';
        for (let e = firstEdge[o]!; e < firstEdge[o + 1]!; e++) {
          if (edgeType[e] === propertyType) signature += `${edgeName[e]},`;
        }
        let shape = shapeBySignature.get(signature);
        if (shape === undefined) {
          const properties: string[] = [];
          for (let e = firstEdge[o]!; e < firstEdge[o + 1]!; e++) {
            if (edgeType[e] === propertyType) properties.push(strings[edgeName[e]!]!);
          }
          shape = shapes.length;
          shapes.push({ properties, locationKey });
          shapeBySignature.set(signature, shape);
        }
        classOf[o] = -(shape + 1);
      } else if (locationKey !== null) {
        // Many objects share a constructor location: cache (location, name) → class by number.
        const cacheKey = loc * strings.length + nodeName[o]!;
        let c = exactKeys ? byLocationName.get(cacheKey) : undefined;
        if (c === undefined) {
          const name = nameOfNode(o);
          c = table.intern(`${locationKey},${name}`, name);
          if (exactKeys) byLocationName.set(cacheKey, c);
        }
        classOf[o] = c;
      } else {
        const cache = detached && detached[o] ? byDetachedName : byName;
        let c = cache.get(nodeName[o]!);
        if (c === undefined) {
          const name = nameOfNode(o);
          c = table.intern(`,${name}`, name);
          cache.set(nodeName[o]!, c);
        }
        classOf[o] = c;
      }
    } else {
      classOf[o] = typeClass[type]!;
    }
  }
  return { classOf, shapes };
}

/** Names the plain-Object shapes with the given interface definitions; class number per node. */
export function resolveClasses(pre: PreClassified, table: ClassTable, definitions: InterfaceDefinition[]): Uint32Array {
  const match = definitions.length > 0 ? interfaceMatcher(definitions) : null;
  const shapeClass = pre.shapes.map(({ properties, locationKey }) => {
    const name = (match && match([...properties])) ?? 'Object';
    return table.intern(locationKey !== null ? `${locationKey},${name}` : `,${name}`, name);
  });
  const out = new Uint32Array(pre.classOf.length);
  for (let o = 0; o < out.length; o++) {
    const c = pre.classOf[o]!;
    out[o] = c >= 0 ? c : shapeClass[-c - 1]!;
  }
  return out;
}

export function classifyNodes(
  graph: HeapGraph,
  table: ClassTable,
  definitions: InterfaceDefinition[],
  detached: Uint8Array | null = null,
): Uint32Array {
  return resolveClasses(preclassify(graph, table, detached), table, definitions);
}
