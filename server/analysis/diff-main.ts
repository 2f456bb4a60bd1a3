// The diff as its own process: `node diff-main.js <before> <after>` prints the reduced diff
// (HeapDiffRecord['result']) as one JSON line on stdout, or one line on stderr and exit 1. The
// collector runs it as a child so a pair of large snapshots (analysis peaks near 1.7 × the file
// size) never grows or blocks the collector's own heap.
import { reduceHeapDiff } from '../../protocol/heap-diff-record.js';
import { diffSnapshotFiles } from './diff.js';

const [before, after] = process.argv.slice(2);
if (!before || !after) {
  process.stderr.write('usage: diff-main <before.heapsnapshot> <after.heapsnapshot>\n');
  process.exit(2);
}
try {
  // A pair comes from one inspector session, but the data decides (ids that do not agree fall back to class totals).
  const diff = await diffSnapshotFiles(before, after, { top: 10 });
  process.stdout.write(`${JSON.stringify(reduceHeapDiff(diff))}\n`);
} catch (err) {
  process.stderr.write(`${(err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').slice(0, 500)}\n`);
  process.exitCode = 1;
}
