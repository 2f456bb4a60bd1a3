// A heap snapshot held as columns of typed arrays: one entry per node or edge, only the fields
// the analysis uses. Node references are ordinals (0..nodeCount-1), not the file's flat indexes.

export interface HeapGraph {
  nodeCount: number;
  /** Edges held: all of them, or (lean) only the property edges of 'object' nodes. */
  edgeCount: number;
  /** Edges the file declared (snapshot.edge_count). */
  fileEdgeCount: number;
  /** True when every edge was kept with its target; false in lean mode (no edgeTo). */
  fullEdges: boolean;
  nodeTypeNames: string[];
  edgeTypeNames: string[];
  nodeType: Uint8Array;
  nodeName: Uint32Array;
  nodeId: Uint32Array;
  nodeSelfSize: Float64Array;
  /** V8's detachedness (0 unknown, 1 attached, 2 detached); null when the file has no such field. */
  nodeDetachedness: Uint8Array | null;
  /** firstEdge[o]..firstEdge[o+1] are node o's edges. Length nodeCount + 1. */
  firstEdge: Uint32Array;
  edgeType: Uint8Array;
  edgeName: Uint32Array;
  /** Target node ordinal; null in lean mode. */
  edgeTo: Uint32Array | null;
  /** 0 = no location, else 1 + index into locationKeys ("scriptId,line,column"). */
  nodeLocation: Uint32Array | null;
  locationKeys: string[];
  strings: string[];
  /** The file's meta fields, for reports. */
  nodeFields: string[];
  edgeFields: string[];
  fileBytes: number;
}

/** Type index by name, -1 when the snapshot's meta does not list it. */
export function typeIndex(names: string[], name: string): number {
  return names.indexOf(name);
}
