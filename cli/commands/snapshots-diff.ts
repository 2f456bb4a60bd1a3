// `leakwatch snapshots diff <a> <b>`: what grew between two local heap snapshot files of one
// target, by class (Chrome DevTools' Comparison), and what keeps the top growers alive.
// Class names and paths come from the target's heap: they are printed through printable().
import { InvalidArgumentError, type Command } from 'commander';
import type { HeapClassDelta, HeapDiff } from '../../protocol/heap-diff.js';
import { diffSnapshotFiles } from '../../server/analysis/index.js';
import { formatBytes, printable, renderTable } from '../format.js';
import { parsePositiveInteger } from '../parse.js';

interface DiffCommandOptions {
  top: number;
  match: 'auto' | 'ids' | 'aggregates';
  json?: boolean;
}

function parseMatch(value: string): DiffCommandOptions['match'] {
  if (value !== 'auto' && value !== 'ids' && value !== 'aggregates') throw new InvalidArgumentError('expected auto, ids or aggregates');
  return value;
}

const signed = (n: number): string => (n > 0 ? `+${n}` : String(n));
const signedBytes = (n: number): string => (n > 0 ? `+${formatBytes(n)}` : n < 0 ? `-${formatBytes(-n)}` : '0B');

function rows(classes: HeapClassDelta[]): string[][] {
  return classes.map((c) => [
    printable(c.className, 60),
    c.newCount === null ? '-' : String(c.newCount),
    c.deletedCount === null ? '-' : String(c.deletedCount),
    signed(c.countDelta),
    signedBytes(c.sizeDeltaBytes),
    formatBytes(c.sizeAfterBytes),
  ]);
}

export function renderDiff(diff: HeapDiff): string {
  const out: string[] = [];
  const side = (label: string, s: HeapDiff['before']): string =>
    `${label} ${printable(s.file ?? '-', 80)}  ${s.objectCount} objects, ${formatBytes(s.totalSelfSizeBytes)}`;
  out.push(side('before:', diff.before), side('after: ', diff.after));
  out.push(
    `change: ${signed(diff.countDelta)} objects, ${signedBytes(diff.sizeDeltaBytes)}  (matched by ${diff.method === 'object-ids' ? 'object id' : 'class totals: ids not comparable'})`,
  );
  const t = diff.threshold;
  const noise = `size delta >= ${formatBytes(t.minSizeDeltaBytes)} and >= ${t.minSizeDeltaFraction * 100}% of the heap`;
  const header = ['CLASS', 'NEW', 'DELETED', 'COUNT Δ', 'SIZE Δ', 'SIZE AFTER'];
  const right = new Set([1, 2, 3, 4, 5]);
  out.push('');
  if (diff.growers.length === 0) {
    out.push(`no class grew above noise (${noise})`);
  } else {
    out.push(`growers (${noise}):`, renderTable(header, rows(diff.growers), right), '', 'retained by:');
    for (const g of diff.growers) {
      out.push(`  ${printable(g.retainerPath?.text ?? `${g.className}: no path from a GC root`, 400)}`);
    }
  }
  if (diff.changes.length > 0) {
    out.push('', `largest changes (${diff.changes.length} of ${diff.changedClassCount} classes that changed):`);
    out.push(renderTable(header, rows(diff.changes), right));
  }
  return out.join('\n');
}

export function addDiffCommand(snapshots: Command): void {
  snapshots
    .command('diff')
    .description('compare two heap snapshots of one target: per-class growth (DevTools Comparison) and retainer paths')
    .argument('<before>', 'the earlier .heapsnapshot file')
    .argument('<after>', 'the later .heapsnapshot file')
    .option('--top <n>', 'growers with retainer paths, and changes listed', parsePositiveInteger, 10)
    .option('--match <how>', 'ids (same inspector session), aggregates, or auto', parseMatch, 'auto')
    .option('--json', 'print the diff as JSON')
    .action(async (before: string, after: string, options: DiffCommandOptions) => {
      try {
        const diff = await diffSnapshotFiles(before, after, {
          top: options.top,
          sameSession: options.match === 'auto' ? undefined : options.match === 'ids',
        });
        process.stdout.write(options.json ? `${JSON.stringify(diff, null, 2)}\n` : `${renderDiff(diff)}\n`);
      } catch (err) {
        process.stderr.write(`leakwatch: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}
