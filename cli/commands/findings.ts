// `leakwatch findings` and `leakwatch targets`: what the collector holds, for the engineer on call.
import { InvalidArgumentError, type Command } from 'commander';
import type { Finding, FindingKind } from '../../protocol/findings.js';
import type { HeapDiffRecord } from '../../protocol/heap-diff-record.js';
import type { TargetInfo } from '../../protocol/messages.js';
import { addApiOptions, apiGet, parseSince, type ApiOptions } from '../api-client.js';
import { formatBytes, formatDuration, printable, renderTable } from '../format.js';
import { TARGET_PAGE_DEFAULT, TARGET_PAGE_MAX } from '../../server/store/types.js';
import { parseNonNegativeInteger, parsePositiveInteger } from '../parse.js';

const kinds: FindingKind[] = ['growth', 'fanout', 'suspicious-spawn', 'oom-kill'];

interface FindingsOptions extends ApiOptions {
  kind?: FindingKind;
  status?: 'open' | 'resolved';
  node?: string;
  namespace?: string;
  pod?: string;
  since?: number;
  limit: number;
  json?: boolean;
}

interface TargetsOptions extends ApiOptions {
  node?: string;
  namespace?: string;
  pod?: string;
  limit: number;
  offset: number;
  json?: boolean;
}

function parsePageLimit(value: string): number {
  const n = parsePositiveInteger(value);
  if (n > TARGET_PAGE_MAX) throw new InvalidArgumentError(`expected at most ${TARGET_PAGE_MAX}, got ${n}; use --offset for the next page`);
  return n;
}

function parseKind(value: string): FindingKind {
  if (!kinds.includes(value as FindingKind)) throw new InvalidArgumentError(`expected one of ${kinds.join(', ')}`);
  return value as FindingKind;
}

function parseStatus(value: string): 'open' | 'resolved' {
  if (value !== 'open' && value !== 'resolved') throw new InvalidArgumentError('expected open or resolved');
  return value;
}

function parseSinceArg(value: string): number {
  try {
    return parseSince(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** Runs an API command; an API error is one line on stderr and exit code 1. */
export async function runApiCommand(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    process.stderr.write(`leakwatch: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}

export function registerFindings(program: Command): void {
  addApiOptions(
    program
      .command('findings')
      .description('list findings gathered by the collector, newest first')
      .option('--kind <kind>', `one of ${kinds.join(', ')}`, parseKind)
      .option('--status <status>', 'open or resolved', parseStatus)
      .option('--node <node>', 'only this node')
      .option('--namespace <namespace>', 'only this namespace')
      .option('--pod <pod>', 'only this pod (name)')
      .option('--since <when>', 'updated since: 30m, 2h, 7d or an ISO date', parseSinceArg)
      .option('--limit <n>', 'at most this many', parsePositiveInteger, 100)
      .option('--json', 'print the findings as a JSON array'),
  ).action((options: FindingsOptions) =>
    runApiCommand(async () => {
      const { findings } = await apiGet<{ findings: Array<Finding & { heapDiff?: HeapDiffRecord }> }>(options, '/api/v1/findings', {
        kind: options.kind,
        status: options.status,
        node: options.node,
        namespace: options.namespace,
        pod: options.pod,
        since: options.since,
        limit: options.limit,
      });
      if (options.json) {
        process.stdout.write(`${JSON.stringify(findings, null, 2)}\n`);
        return;
      }
      if (findings.length === 0) {
        process.stdout.write('no findings\n');
        return;
      }
      const rows = findings.map((f) => [
        f.id,
        f.kind,
        f.status,
        new Date(f.updatedAt).toISOString().replace('T', ' ').slice(0, 19),
        f.node,
        f.target.pod ? `${f.target.namespace}/${f.target.pod}` : '-',
        keyFigure(f),
        printable(f.summary, 160),
      ]);
      process.stdout.write(`${renderTable(['ID', 'KIND', 'STATUS', 'UPDATED', 'NODE', 'POD', 'KEY', 'SUMMARY'], rows)}\n`);
      // Growth findings whose snapshot pair the collector diffed: what grew, and what holds it.
      const diffed = findings.filter((f) => f.heapDiff);
      if (diffed.length > 0) process.stdout.write(`\n${diffed.map((f) => `${f.id}  ${heapDiffLine(f.heapDiff!)}`).join('\n')}\n`);
    }),
  );

  addApiOptions(
    program
      .command('targets')
      .description('list processes and containers the collector has findings or memory series for')
      .option('--node <node>', 'only this node')
      .option('--namespace <namespace>', 'only this namespace')
      .option('--pod <pod>', 'only this pod (name)')
      .option('--limit <n>', `at most this many (up to ${TARGET_PAGE_MAX})`, parsePageLimit, TARGET_PAGE_DEFAULT)
      .option('--offset <n>', 'skip this many (the next page)', parseNonNegativeInteger, 0)
      .option('--json', 'print the targets as a JSON array'),
  ).action((options: TargetsOptions) =>
    runApiCommand(async () => {
      type Target = TargetInfo & { node: string; lastSeenMs: number; findingCount: number; openFindingCount: number };
      const { targets, nextOffset } = await apiGet<{ targets: Target[]; nextOffset?: number | null }>(options, '/api/v1/targets', {
        node: options.node,
        namespace: options.namespace,
        pod: options.pod,
        limit: options.limit,
        offset: options.offset || undefined,
      });
      if (options.json) {
        process.stdout.write(`${JSON.stringify(targets, null, 2)}\n`);
        return;
      }
      const rows = targets.map((t) => [
        t.node,
        t.pod ? `${t.namespace}/${t.pod}` : '-',
        t.container ?? '-',
        t.kind,
        t.pid === null ? '-' : String(t.pid),
        `${t.openFindingCount}/${t.findingCount}`,
        new Date(t.lastSeenMs).toISOString().replace('T', ' ').slice(0, 19),
        printable(t.cmdline ?? t.targetKey, 80),
      ]);
      process.stdout.write(`${renderTable(['NODE', 'POD', 'CONTAINER', 'KIND', 'PID', 'OPEN/ALL', 'LAST SEEN', 'COMMAND'], rows)}\n`);
      if (typeof nextOffset === 'number') process.stdout.write(`(more targets: --offset ${nextOffset})\n`);
    }),
  );
}

/** One line about a finding's heap diff: its top grower, or where the diff stands. */
export function heapDiffLine(d: HeapDiffRecord): string {
  if (d.status === 'failed') return `heap diff failed: ${printable(d.reason ?? 'no reason given', 200)}`;
  if (d.status !== 'done' || !d.result) return `heap diff ${d.status}`;
  const g = d.result.growers[0];
  if (!g) return 'heap diff: no class grew above noise';
  const path = g.retainerPath ? `  ${printable(g.retainerPath, 200)}` : '';
  return `top grower: ${printable(g.className, 60)} ${g.countDelta >= 0 ? '+' : ''}${g.countDelta} objects, +${formatBytes(g.sizeDeltaBytes)}${path}`;
}

/** The one number that matters for each kind of finding. */
function keyFigure(f: Finding): string {
  switch (f.kind) {
    case 'growth':
      return f.details.etaSec !== null ? `OOM in ${formatDuration(f.details.etaSec)}` : `+${formatBytes(f.details.slopeBytesPerSec)}/s`;
    case 'fanout':
      return `${f.details.childrenAlive} alive / ${f.details.childrenSeen}`;
    case 'suspicious-spawn':
      return f.details.rules.map((r) => r.id).join(',');
    case 'oom-kill':
      return `pid ${f.details.victim.pid ?? '?'}`;
  }
}
