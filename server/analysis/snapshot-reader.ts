// Reads a .heapsnapshot file into a HeapGraph while it streams: the tokenizer's events are routed
// by top-level section, and the flat "nodes" and "edges" integer arrays go straight into typed
// columns sized from snapshot.node_count / edge_count. The field layout comes from snapshot.meta
// (never assumed), so V8 versions that add fields (detachedness, trace_node_id) read the same.
// Strings come last in the file: nodes and edges keep string indexes, resolved after.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { HeapGraph } from './heap-graph.js';
import { JsonSyntaxError, JsonTokenizer, type JsonEvents } from './json-tokenizer.js';

export class HeapSnapshotError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly offset: number | null,
    readonly section: string | null,
  ) {
    super(message);
    this.name = 'HeapSnapshotError';
  }
}

export interface ReadOptions {
  /**
   * 'full' keeps every edge with its target (retainer paths, dominators need it); 'lean' keeps
   * only the property edges of 'object' nodes, by name — all that class naming needs — for the
   * baseline side of a diff.
   */
  edges?: 'full' | 'lean';
  /** Read buffer size; 1 MiB by default. */
  chunkBytes?: number;
}

class ReaderError extends Error {}

const MODE_OTHER = 0;
const MODE_NODES = 1;
const MODE_EDGES = 2;
const MODE_LOCATIONS = 3;
const MODE_STRINGS = 4;

const U32_MAX = 0xffffffff;

interface Meta {
  node_fields: string[];
  node_types: unknown[];
  edge_fields: string[];
  edge_types: unknown[];
  location_fields?: string[];
}

/** Builds plain JS values for the small "snapshot" header object. */
class ValueBuilder {
  private readonly stack: Array<{ value: unknown[] | Record<string, unknown>; key: string | null }> = [];
  result: unknown = undefined;
  done = false;

  add(value: unknown): void {
    const top = this.stack[this.stack.length - 1];
    if (!top) {
      this.result = value;
      this.done = true;
      return;
    }
    if (Array.isArray(top.value)) top.value.push(value);
    else top.value[top.key ?? ''] = value;
  }
  open(value: unknown[] | Record<string, unknown>): void {
    this.add(value);
    this.done = false;
    this.stack.push({ value, key: null });
  }
  close(): void {
    this.stack.pop();
    if (this.stack.length === 0) this.done = true;
  }
  key(k: string): void {
    const top = this.stack[this.stack.length - 1];
    if (top) top.key = k;
  }
}

class GrowableU32 {
  data = new Uint32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  trimmed(): Uint32Array {
    return this.data.slice(0, this.length);
  }
}

class SnapshotSink implements JsonEvents {
  depth = 0;
  section: string | null = null;
  /** What a number at depth 2 is: the section's kind, set when its array opens. */
  numberMode = MODE_OTHER;
  private builder: ValueBuilder | null = null;
  meta: Meta | null = null;
  seen = new Set<string>();

  // Layout from meta.
  nodeFieldCount = 0;
  edgeFieldCount = 0;
  nodeTypeNames: string[] = [];
  edgeTypeNames: string[] = [];
  locationFieldCount = 0;
  locIndexField = -1;
  locScriptField = -1;
  locLineField = -1;
  locColumnField = -1;
  declaredNodes = 0;
  declaredEdges = 0;

  // Node columns.
  nodeType = new Uint8Array(0);
  nodeName = new Uint32Array(0);
  nodeId = new Uint32Array(0);
  nodeSelfSize = new Float64Array(0);
  nodeDetachedness: Uint8Array | null = null;
  firstEdge = new Uint32Array(1);
  nodeOrdinal = 0;
  nodeField = 0;
  nodesDone = false;

  // Edge columns.
  edgeType = new Uint8Array(0);
  edgeName = new Uint32Array(0);
  edgeTo: Uint32Array | null = null;
  edgeOrdinal = 0;
  edgeField = 0;
  edgeOwner = 0;
  edgesDone = false;
  curEdgeType = 0;
  curEdgeName = 0;
  leanFirstEdge: Uint32Array | null = null;
  leanNames: GrowableU32 | null = null;
  leanTypes: number[] = [];
  objectType = -1;
  propertyType = -1;

  locations = new GrowableU32();
  locField = 0;
  strings: string[] = [];

  tokenizer: JsonTokenizer | null = null;
  // Field offsets within a record, from meta (-1 when absent).
  private nType = 0;
  private nName = 0;
  private nId = 0;
  private nSelf = 0;
  private nEdgeCount = 0;
  private nDetached = -1;
  private eType = 0;
  private eName = 0;
  private eTo = 0;

  constructor(private readonly lean: boolean) {}

  record(f: Float64Array): void {
    if (this.numberMode === MODE_EDGES) this.edgeRecord(f);
    else this.nodeRecord(f);
  }

  private nodeRecord(f: Float64Array): void {
    const o = this.nodeOrdinal;
    if (o >= this.declaredNodes) {
      throw new ReaderError(`"nodes" holds more than snapshot.node_count (${this.declaredNodes}) records`);
    }
    const type = f[this.nType]!;
    if (type >= this.nodeTypeNames.length) throw new ReaderError(`node ${o} has type ${type}, beyond meta.node_types`);
    this.nodeType[o] = type;
    const name = f[this.nName]!;
    const id = f[this.nId]!;
    if (name > U32_MAX || id > U32_MAX) throw new ReaderError(`node ${o} has a name index or id beyond 32 bits`);
    this.nodeName[o] = name;
    this.nodeId[o] = id;
    this.nodeSelfSize[o] = f[this.nSelf]!;
    const next = this.firstEdge[o]! + f[this.nEdgeCount]!;
    if (next > this.declaredEdges) {
      throw new ReaderError(`node ${o}'s edge_count runs past snapshot.edge_count (${this.declaredEdges})`);
    }
    this.firstEdge[o + 1] = next;
    if (this.nDetached >= 0) this.nodeDetachedness![o] = f[this.nDetached]!;
    this.nodeOrdinal = o + 1;
  }

  private edgeRecord(f: Float64Array): void {
    const e = this.edgeOrdinal;
    if (e >= this.declaredEdges) {
      throw new ReaderError(`"edges" holds more than snapshot.edge_count (${this.declaredEdges}) records`);
    }
    const type = f[this.eType]!;
    if (type >= this.edgeTypeNames.length) throw new ReaderError(`edge ${e} has type ${type}, beyond meta.edge_types`);
    const name = f[this.eName]!;
    if (name > U32_MAX) throw new ReaderError(`edge ${e} has name_or_index ${name}, too large`);
    const raw = f[this.eTo]!;
    const to = raw / this.nodeFieldCount;
    if (to !== Math.floor(to) || to >= this.declaredNodes) {
      throw new ReaderError(`edge ${e} points to ${raw}, which is not the start of a node record`);
    }
    this.edgeOrdinal = e + 1;
    if (this.lean) {
      this.curEdgeType = type;
      this.curEdgeName = name;
      this.commitLeanEdge(e);
    } else {
      this.edgeType[e] = type;
      this.edgeName[e] = name;
      this.edgeTo![e] = to;
    }
  }

  startObject(): void {
    this.openContainer(true);
  }
  startArray(): void {
    this.openContainer(false);
  }
  endObject(): void {
    this.closeContainer();
  }
  endArray(): void {
    this.closeContainer();
  }

  private openContainer(isObject: boolean): void {
    this.depth++;
    if (this.depth === 1) {
      if (!isObject) throw new ReaderError('a heap snapshot is a JSON object, this file starts with an array');
      return;
    }
    if (this.builder) {
      this.builder.open(isObject ? {} : []);
      return;
    }
    if (this.depth === 2) {
      switch (this.section) {
        case 'snapshot':
          if (!isObject) throw new ReaderError('"snapshot" must be an object');
          this.builder = new ValueBuilder();
          this.builder.open({});
          return;
        case 'nodes':
          if (isObject) throw new ReaderError('"nodes" must be an array');
          this.beginNodes();
          this.numberMode = MODE_NODES;
          this.tokenizer!.captureRecords(this.nodeFieldCount);
          return;
        case 'edges':
          if (isObject) throw new ReaderError('"edges" must be an array');
          this.beginEdges();
          this.numberMode = MODE_EDGES;
          this.tokenizer!.captureRecords(this.edgeFieldCount);
          return;
        case 'strings':
        case 'locations':
          if (isObject) throw new ReaderError(`"${this.section}" must be an array`);
          this.numberMode = this.section === 'strings' ? MODE_STRINGS : MODE_LOCATIONS;
          return;
        default:
          return;
      }
    }
    if (this.depth > 2 && (this.section === 'nodes' || this.section === 'edges' || this.section === 'strings' || this.section === 'locations')) {
      throw new ReaderError(`"${this.section}" must be a flat array`);
    }
  }

  private closeContainer(): void {
    if (this.builder) {
      this.builder.close();
      if (this.builder.done) {
        this.setMeta(this.builder.result as Record<string, unknown>);
        this.builder = null;
      }
    } else if (this.depth === 2) {
      if (this.section === 'nodes' || this.section === 'edges') this.nodeField = this.edgeField = this.tokenizer!.endCapture();
      if (this.section === 'nodes') this.endNodes();
      else if (this.section === 'edges') this.endEdges();
      this.numberMode = MODE_OTHER;
    }
    this.depth--;
  }

  key(name: string): void {
    if (this.builder) {
      this.builder.key(name);
      return;
    }
    if (this.depth === 1) {
      this.section = name;
      if (this.seen.has(name)) throw new ReaderError(`section "${name}" appears twice`);
      this.seen.add(name);
    }
  }

  string(value: string): void {
    if (this.builder) {
      this.builder.add(value);
      return;
    }
    if (this.depth === 2) {
      if (this.section === 'strings') this.strings.push(value);
      else if (this.section === 'nodes' || this.section === 'edges' || this.section === 'locations') {
        throw new ReaderError(`"${this.section}" holds a string where an integer belongs`);
      }
    }
  }

  literal(value: boolean | null): void {
    if (this.builder) {
      this.builder.add(value);
      return;
    }
    if (this.depth === 2 && (this.section === 'nodes' || this.section === 'edges' || this.section === 'locations')) {
      throw new ReaderError(`"${this.section}" holds ${String(value)} where an integer belongs`);
    }
  }

  number(v: number): void {
    switch (this.numberMode) {
      case MODE_EDGES:
      case MODE_NODES:
        // Integers arrive as records; only a negative or fractional number comes this way.
        throw new ReaderError(`"${this.section}" holds ${v}, not a non-negative integer`);
      case MODE_LOCATIONS:
        return this.locationNumber(v);
      case MODE_STRINGS:
        throw new ReaderError('"strings" holds a number where a string belongs');
    }
    if (this.builder) this.builder.add(v);
  }

  private setMeta(snapshot: Record<string, unknown>): void {
    const meta = snapshot['meta'] as Meta | undefined;
    if (!meta || typeof meta !== 'object') throw new ReaderError('snapshot.meta is missing');
    const isStringArray = (x: unknown): x is string[] => Array.isArray(x) && x.every((e) => typeof e === 'string');
    if (!isStringArray(meta.node_fields) || !isStringArray(meta.edge_fields)) {
      throw new ReaderError('snapshot.meta.node_fields / edge_fields must be arrays of names');
    }
    if (!Array.isArray(meta.node_types) || !Array.isArray(meta.edge_types)) {
      throw new ReaderError('snapshot.meta.node_types / edge_types are missing');
    }
    const nodeCount = snapshot['node_count'];
    const edgeCount = snapshot['edge_count'];
    if (typeof nodeCount !== 'number' || typeof edgeCount !== 'number' || nodeCount < 1 || edgeCount < 0) {
      throw new ReaderError('snapshot.node_count / edge_count are missing or invalid');
    }
    this.meta = meta;
    this.declaredNodes = nodeCount;
    this.declaredEdges = edgeCount;
    this.nodeFieldCount = meta.node_fields.length;
    this.edgeFieldCount = meta.edge_fields.length;
    const nf = meta.node_fields;
    const need = (fields: string[], name: string, where: string): number => {
      const i = fields.indexOf(name);
      if (i < 0) throw new ReaderError(`snapshot.meta.${where} has no "${name}" field`);
      return i;
    };
    const nodeTypeField = need(nf, 'type', 'node_fields');
    this.nType = nodeTypeField;
    this.nName = need(nf, 'name', 'node_fields');
    this.nId = need(nf, 'id', 'node_fields');
    this.nSelf = need(nf, 'self_size', 'node_fields');
    this.nEdgeCount = need(nf, 'edge_count', 'node_fields');
    this.nDetached = nf.indexOf('detachedness');
    const ef = meta.edge_fields;
    const edgeTypeField = need(ef, 'type', 'edge_fields');
    this.eType = edgeTypeField;
    this.eName = need(ef, 'name_or_index', 'edge_fields');
    this.eTo = need(ef, 'to_node', 'edge_fields');
    const nodeTypes = meta.node_types[nodeTypeField];
    const edgeTypes = meta.edge_types[edgeTypeField];
    if (!isStringArray(nodeTypes) || !isStringArray(edgeTypes)) {
      throw new ReaderError('snapshot.meta node_types / edge_types do not list the type names');
    }
    this.nodeTypeNames = nodeTypes;
    this.edgeTypeNames = edgeTypes;
    this.objectType = nodeTypes.indexOf('object');
    this.propertyType = edgeTypes.indexOf('property');
    const lf = meta.location_fields;
    if (isStringArray(lf) && lf.length > 0) {
      this.locationFieldCount = lf.length;
      this.locIndexField = lf.indexOf('object_index');
      this.locScriptField = lf.indexOf('script_id');
      this.locLineField = lf.indexOf('line');
      this.locColumnField = lf.indexOf('column');
    }
  }

  private beginNodes(): void {
    if (!this.meta) throw new ReaderError('"nodes" comes before snapshot.meta: cannot know the field layout');
    const n = this.declaredNodes;
    this.nodeType = new Uint8Array(n);
    this.nodeName = new Uint32Array(n);
    this.nodeId = new Uint32Array(n);
    this.nodeSelfSize = new Float64Array(n);
    this.nodeDetachedness = this.meta.node_fields.includes('detachedness') ? new Uint8Array(n) : null;
    this.firstEdge = new Uint32Array(n + 1);
  }

  private endNodes(): void {
    if (this.nodeField !== 0 || this.nodeOrdinal !== this.declaredNodes) {
      throw new ReaderError(
        `"nodes" holds ${this.nodeOrdinal} whole records (+${this.nodeField} fields), snapshot.node_count says ${this.declaredNodes}`,
      );
    }
    if (this.firstEdge[this.declaredNodes] !== this.declaredEdges) {
      throw new ReaderError(`the nodes' edge_count fields add up to ${this.firstEdge[this.declaredNodes]}, snapshot.edge_count says ${this.declaredEdges}`);
    }
    this.nodesDone = true;
  }

  private beginEdges(): void {
    if (!this.nodesDone) throw new ReaderError('"edges" comes before "nodes": cannot attribute edges to nodes');
    if (this.lean) {
      this.leanFirstEdge = new Uint32Array(this.declaredNodes + 1);
      this.leanNames = new GrowableU32();
    } else {
      this.edgeType = new Uint8Array(this.declaredEdges);
      this.edgeName = new Uint32Array(this.declaredEdges);
      this.edgeTo = new Uint32Array(this.declaredEdges);
    }
  }

  /** Lean mode: remembers the edge when it is a property of an 'object' node. */
  private commitLeanEdge(e: number): void {
    const first = this.firstEdge;
    let owner = this.edgeOwner;
    const lf = this.leanFirstEdge!;
    while (first[owner + 1]! <= e) {
      owner++;
      lf[owner + 1] = lf[owner]!;
    }
    this.edgeOwner = owner;
    if (this.curEdgeType === this.propertyType && this.nodeType[owner] === this.objectType) {
      this.leanNames!.push(this.curEdgeName);
      lf[owner + 1]!++;
    }
  }

  private endEdges(): void {
    if (this.edgeField !== 0 || this.edgeOrdinal !== this.declaredEdges) {
      throw new ReaderError(
        `"edges" holds ${this.edgeOrdinal} whole records (+${this.edgeField} fields), snapshot.edge_count says ${this.declaredEdges}`,
      );
    }
    if (this.lean) {
      const lf = this.leanFirstEdge!;
      for (let o = this.edgeOwner + 1; o < this.declaredNodes; o++) lf[o + 1] = lf[o]!;
    }
    this.edgesDone = true;
  }

  private locationNumber(v: number): void {
    if (this.locationFieldCount > 0) this.locations.push(v > U32_MAX ? U32_MAX : v);
  }

  finish(file: string, bytes: number): HeapGraph {
    for (const s of ['snapshot', 'nodes', 'edges', 'strings']) {
      if (!this.seen.has(s)) throw new ReaderError(`section "${s}" is missing`);
    }
    if (!this.edgesDone || !this.nodesDone) throw new ReaderError('"nodes" or "edges" did not close');
    const n = this.declaredNodes;
    const strings = this.strings;
    const stringCount = strings.length;
    for (let o = 0; o < n; o++) {
      if (this.nodeName[o]! >= stringCount) throw new ReaderError(`node ${o} names string ${this.nodeName[o]}, but "strings" has ${stringCount}`);
    }
    const edgeNames = this.lean ? this.leanNames!.trimmed() : this.edgeName;
    // Element and hidden edges carry an index, not a string: only check the named kinds.
    const elementType = this.edgeTypeNames.indexOf('element');
    const hiddenType = this.edgeTypeNames.indexOf('hidden');
    if (this.lean) {
      for (let e = 0; e < edgeNames.length; e++) {
        if (edgeNames[e]! >= stringCount) throw new ReaderError(`a property edge names string ${edgeNames[e]}, but "strings" has ${stringCount}`);
      }
    } else {
      for (let e = 0; e < this.declaredEdges; e++) {
        const t = this.edgeType[e];
        if (t !== elementType && t !== hiddenType && this.edgeName[e]! >= stringCount) {
          throw new ReaderError(`edge ${e} names string ${this.edgeName[e]}, but "strings" has ${stringCount}`);
        }
      }
    }
    let nodeLocation: Uint32Array | null = null;
    const locationKeys: string[] = [];
    const lfc = this.locationFieldCount;
    if (lfc > 0 && this.locations.length > 0 && this.locIndexField >= 0 && this.locScriptField >= 0) {
      if (this.locations.length % lfc !== 0) throw new ReaderError('"locations" does not hold whole records');
      nodeLocation = new Uint32Array(n);
      const keyIds = new Map<string, number>();
      const loc = this.locations.data;
      for (let i = 0; i < this.locations.length; i += lfc) {
        const ordinal = loc[i + this.locIndexField]! / this.nodeFieldCount;
        if (ordinal !== Math.floor(ordinal) || ordinal >= n) throw new ReaderError(`a location names ${loc[i + this.locIndexField]}, not a node`);
        const key = `${loc[i + this.locScriptField]},${this.locLineField >= 0 ? loc[i + this.locLineField] : 0},${this.locColumnField >= 0 ? loc[i + this.locColumnField] : 0}`;
        let id = keyIds.get(key);
        if (id === undefined) {
          locationKeys.push(key);
          id = locationKeys.length;
          keyIds.set(key, id);
        }
        nodeLocation[ordinal] = id;
      }
    }
    this.locations = new GrowableU32();
    return {
      nodeCount: n,
      edgeCount: edgeNames.length,
      fileEdgeCount: this.declaredEdges,
      fullEdges: !this.lean,
      nodeTypeNames: this.nodeTypeNames,
      edgeTypeNames: this.edgeTypeNames,
      nodeType: this.nodeType,
      nodeName: this.nodeName,
      nodeId: this.nodeId,
      nodeSelfSize: this.nodeSelfSize,
      nodeDetachedness: this.nodeDetachedness,
      firstEdge: this.lean ? this.leanFirstEdge! : this.firstEdge,
      edgeType: this.lean ? new Uint8Array(edgeNames.length).fill(Math.max(0, this.propertyType)) : this.edgeType,
      edgeName: edgeNames,
      edgeTo: this.lean ? null : this.edgeTo,
      nodeLocation,
      locationKeys,
      strings,
      nodeFields: this.meta!.node_fields,
      edgeFields: this.meta!.edge_fields,
      fileBytes: bytes,
    };
  }
}

/** Reads a heap snapshot file; rejects with a HeapSnapshotError naming the offset and section. */
export async function readHeapSnapshot(file: string, options: ReadOptions = {}): Promise<HeapGraph> {
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (err) {
    throw new HeapSnapshotError(`cannot read ${file}: ${(err as Error).message}`, file, null, null);
  }
  const sink = new SnapshotSink(options.edges === 'lean');
  const tokenizer = new JsonTokenizer(sink);
  sink.tokenizer = tokenizer;
  const where = (): string => (sink.section ? ` in section "${sink.section}"` : '');
  try {
    const stream = createReadStream(file, { highWaterMark: options.chunkBytes ?? 1 << 20 });
    for await (const chunk of stream) tokenizer.write(chunk as Buffer);
    try {
      tokenizer.end();
    } catch (err) {
      if (err instanceof JsonSyntaxError) {
        throw new HeapSnapshotError(
          `truncated heap snapshot ${file}: ${err.message} at byte ${err.offset} of ${size}${where()}` +
            progress(sink),
          file,
          err.offset,
          sink.section,
        );
      }
      throw err;
    }
    return sink.finish(file, size);
  } catch (err) {
    if (err instanceof HeapSnapshotError) throw err;
    if (err instanceof JsonSyntaxError) {
      throw new HeapSnapshotError(`malformed heap snapshot ${file}: ${err.message} at byte ${err.offset}${where()}`, file, err.offset, sink.section);
    }
    if (err instanceof ReaderError) {
      throw new HeapSnapshotError(`invalid heap snapshot ${file} near byte ${tokenizer.offset}${where()}: ${err.message}`, file, tokenizer.offset, sink.section);
    }
    throw new HeapSnapshotError(`cannot read ${file}: ${(err as Error).message}`, file, null, sink.section);
  }
}

function progress(sink: SnapshotSink): string {
  if (sink.section === 'nodes') return ` (${sink.nodeOrdinal} of ${sink.declaredNodes} nodes read)`;
  if (sink.section === 'edges') return ` (${sink.edgeOrdinal} of ${sink.declaredEdges} edges read)`;
  if (sink.section === 'strings') return ` (${sink.strings.length} strings read)`;
  return '';
}
