// `leakwatch snapshots diff <a> <b>`: what grew between two heap snapshots of one target, by
// class (Chrome DevTools' Comparison), and what keeps the top growers alive. Two local files are
// diffed here; two snapshot ids (32 hex, not local paths) are diffed by the collector, which
// keeps the result (GET /api/v1/snapshots/:a/diff/:b, polled until it is done).
// Class names and paths come from the target's heap: they are printed through printable().
import { existsSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import type { HeapClassDelta, HeapDiff } from '../../protocol/heap-diff.js';
import type { HeapDiffRecord } from '../../protocol/heap-diff-record.js';
import { SNAPSHOT_ID_PATTERN } from '../../protocol/snapshots.js';
import { diffSnapshotFiles } from '../../server/analysis/index.js';
import { addApiOptions, apiGet, type ApiOptions } from '../api-client.js';
import { formatBytes, printable, renderTable } from '../format.js';
import { parsePositiveInteger } from '../parse.js';

interface DiffCommandOptions extends ApiOptions {
  top: number;
  timeout: number;
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

/** A diff the collector computed (growers only: it keeps the top ones, not every change). */
export function renderStoredDiff(record: HeapDiffRecord, top: number): string {
  const out = [`before: ${record.snapshotA}`, `after:  ${record.snapshotB}`];
  if (record.findingId) out.push(`finding: ${printable(record.findingId, 80)}`);
  const r = record.result;
  if (!r) return [...out, `status: ${record.status}${record.reason ? `: ${printable(record.reason, 400)}` : ''}`].join('\n');
  out.push(`change: ${signed(r.countDelta)} objects, ${signedBytes(r.sizeDeltaBytes)}  (matched by ${r.method === 'object-ids' ? 'object id' : 'class totals: ids not comparable'})`, '');
  const growers = r.growers.slice(0, top);
  if (growers.length === 0) return [...out, 'no class grew above noise'].join('\n');
  const rows = growers.map((g) => [printable(g.className, 60), g.newCount === null ? '-' : String(g.newCount), signed(g.countDelta), signedBytes(g.sizeDeltaBytes), formatBytes(g.sizeAfterBytes)]);
  out.push('growers:', renderTable(['CLASS', 'NEW', 'COUNT Δ', 'SIZE Δ', 'SIZE AFTER'], rows, new Set([1, 2, 3, 4])), '', 'retained by:');
  for (const g of growers) out.push(`  ${printable(g.retainerPath ?? `${g.className}: no path from a GC root`, 400)}`);
  return out.join('\n');
}

/** Both arguments are snapshot ids and neither is a file here: ask the collector. */
export function namesStoredSnapshots(before: string, after: string): boolean {
  return [before, after].every((x) => SNAPSHOT_ID_PATTERN.test(x) && !existsSync(x));
}

async function diffOnCollector(before: string, after: string, options: DiffCommandOptions): Promise<HeapDiffRecord> {
  const deadline = Date.now() + options.timeout * 1000;
  for (;;) {
    const wait = Math.max(0, Math.min(20_000, deadline - Date.now()));
    const { heapDiff } = await apiGet<{ heapDiff: HeapDiffRecord }>(options, `/api/v1/snapshots/${before}/diff/${after}`, { wait });
    if (heapDiff.status === 'done' || heapDiff.status === 'failed') return heapDiff;
    if (Date.now() >= deadline) throw new Error(`the collector has not finished the diff within ${options.timeout} s (status ${heapDiff.status}); ask again later`);
  }
}

export function addDiffCommand(snapshots: Command): void {
  addApiOptions(
    snapshots
      .command('diff')
      .description('compare two heap snapshots of one target: per-class growth (DevTools Comparison) and retainer paths; two local files, or two stored snapshot ids (diffed by the collector, token scope: read)')
      .argument('<before>', 'the earlier .heapsnapshot file, or snapshot id')
      .argument('<after>', 'the later .heapsnapshot file, or snapshot id')
      .option('--top <n>', 'growers with retainer paths, and changes listed', parsePositiveInteger, 10)
      .option('--match <how>', 'ids (same inspector session), aggregates, or auto (local files)', parseMatch, 'auto')
      .option('--timeout <sec>', 'how long to wait for the collector to finish a diff (snapshot ids)', parsePositiveInteger, 900)
      .option('--json', 'print the diff as JSON'),
  ).action(async (before: string, after: string, options: DiffCommandOptions) => {
    try {
      if (namesStoredSnapshots(before, after)) {
        const record = await diffOnCollector(before, after, options);
        if (options.json) process.stdout.write(`${JSON.stringify(record, null, 2)}\n`);
        else process.stdout.write(`${renderStoredDiff(record, options.top)}\n`);
        if (record.status === 'failed') {
          process.stderr.write(`leakwatch: the collector could not diff these snapshots: ${printable(record.reason ?? 'no reason given', 400)}\n`);
          process.exitCode = 1;
        }
        return;
      }
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
