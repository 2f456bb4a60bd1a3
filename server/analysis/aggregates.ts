// Per-class totals the way DevTools' Summary counts them: every node with a non-zero self size
// (zero-size nodes are V8 bookkeeping: roots, synthetic groups).
import type { HeapClassStat } from '../../protocol/heap-diff.js';
import type { ClassTable } from './class-names.js';

export interface ClassTotals {
  count: Float64Array;
  size: Float64Array;
  objectCount: number;
  totalSize: number;
}

export function classTotals(self: Float64Array, classOf: Uint32Array, classCount: number): ClassTotals {
  const count = new Float64Array(classCount);
  const size = new Float64Array(classCount);
  let objectCount = 0;
  let totalSize = 0;
  for (let o = 0; o < self.length; o++) {
    const s = self[o]!;
    if (s === 0) continue;
    const c = classOf[o]!;
    count[c]!++;
    size[c]! += s;
    objectCount++;
    totalSize += s;
  }
  return { count, size, objectCount, totalSize };
}

export function classStats(table: ClassTable, totals: ClassTotals): HeapClassStat[] {
  const out: HeapClassStat[] = [];
  for (let c = 0; c < totals.count.length; c++) {
    if (totals.count[c] === 0) continue;
    out.push({ className: table.names[c]!, classKey: table.keys[c]!, count: totals.count[c]!, selfSizeBytes: totals.size[c]! });
  }
  return out.sort((a, b) => b.selfSizeBytes - a.selfSizeBytes || b.count - a.count);
}
