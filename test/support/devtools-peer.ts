// Chrome DevTools' own heap snapshot code (via heap-snapshot-toolkit), as the reference our
// analysis must agree with. Comparison as DevTools' UI does it: the later snapshot's interface
// definitions applied to the earlier one's aggregates.
import { createReadStream } from 'node:fs';
import { parse } from 'heap-snapshot-toolkit';

export interface PeerClassDiff {
  name: string;
  addedCount: number;
  removedCount: number;
  addedSize: number;
  removedSize: number;
  countDelta: number;
  sizeDelta: number;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
export async function devtoolsComparison(before: string, after: string): Promise<Map<string, PeerClassDiff>> {
  const A: any = await parse(createReadStream(before));
  const B: any = await parse(createReadStream(after));
  const definitions = await B.interfaceDefinitions();
  const aggregates = await A.aggregatesForDiff(definitions);
  const diff = (await B.calculateSnapshotDiff(A.uid, aggregates)) as Record<string, PeerClassDiff>;
  return new Map(Object.entries(diff));
}

export async function devtoolsSummary(file: string): Promise<Map<string, { name: string; count: number; self: number }>> {
  const S: any = await parse(createReadStream(file));
  const aggregates = (await S.getAggregatesByClassKey(false, 'allObjects')) as Record<string, { name: string; count: number; self: number }>;
  return new Map(Object.entries(aggregates));
}

/** DevTools' retained size of each node id asked for (its own dominator tree). */
export async function devtoolsRetainedSizes(file: string, ids: number[]): Promise<Map<number, number>> {
  const S: any = await parse(createReadStream(file));
  const wanted = new Set(ids);
  const out = new Map<number, number>();
  const node = S.createNode(0);
  for (let i = 0; i < S.nodeCount; i++) {
    node.nodeIndex = i * S.nodeFieldCount;
    const id = node.id() as number;
    if (wanted.has(id)) out.set(id, node.retainedSize() as number);
  }
  return out;
}

/** How many objects of one class DevTools' Summary shows in a snapshot (0 when none). */
export async function devtoolsClassCount(file: string, className: string): Promise<number> {
  for (const row of (await devtoolsSummary(file)).values()) if (row.name === className) return row.count;
  return 0;
}
