// `leakwatch snapshots ls | take | pull | captures`: heap snapshots for the engineer on call.
// `pull` streams to a temporary file beside the target (0600), checks the sha256 against what
// the collector recorded at upload, and only then renames it into place: a damaged or tampered
// download never appears under the name asked for.
import { InvalidArgumentError, type Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, existsSync, fsyncSync, lstatSync, openSync, renameSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { CaptureReport, SnapshotKind } from '../../protocol/snapshots.js';
import { SNAPSHOT_ID_PATTERN } from '../../protocol/snapshots.js';
import type { SnapshotRow } from '../../server/store/types.js';
import { addApiOptions, apiGet, type ApiOptions } from '../api-client.js';
import { apiDownload, apiPost } from '../api-transfer.js';
import { formatBytes, printable, renderTable } from '../format.js';
import { parsePositiveInteger } from '../parse.js';
import { runApiCommand } from './findings.js';
import { parseDurationMs } from './collector.js';

function parsePod(value: string): { namespace: string; pod: string } {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`expected <namespace>/<pod>, e.g. shop/cart-7d9f, got "${value}"`);
  return { namespace: m[1]!, pod: m[3]! };
}

function parseKind(value: string): SnapshotKind {
  if (value !== 'heapsnapshot' && value !== 'heapprofile') throw new InvalidArgumentError('expected heapsnapshot or heapprofile');
  return value;
}

function parseTimeout(value: string): number {
  // A bare number is seconds, as the flag always took it; anything else is a duration like 5m.
  const n = /^\d+$/.test(value.trim()) ? Number(value) * 1000 : parseDurationMs(value);
  if (n <= 0 || n > 30 * 60_000) throw new InvalidArgumentError('expected a duration from 1ms to 30m');
  return n;
}

const when = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

function snapshotTable(rows: SnapshotRow[]): string {
  return renderTable(
    ['ID', 'KIND', 'STORED', 'NODE', 'POD', 'PID', 'SIZE', 'TRIGGER'],
    rows.map((r) => [
      r.snapshotId,
      r.kind,
      when(r.storedAtMs),
      r.node,
      r.pod ? `${r.namespace}/${r.pod}` : '-',
      String(r.pid),
      formatBytes(r.bytes),
      r.trigger === 'growth' && r.findingId ? `growth ${r.findingId}` : r.trigger,
    ]),
  );
}

/** A progress bar on stderr, redrawn at most 10 times a second; only on a terminal. */
function progressBar(label: string): { update: (received: number, total: number | null) => void; done: () => void } {
  if (!process.stderr.isTTY) return { update: () => {}, done: () => {} };
  let last = 0;
  const draw = (received: number, total: number | null): void => {
    const width = 30;
    const frac = total ? Math.min(1, received / total) : 0;
    const bar = total ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ${String(Math.floor(frac * 100)).padStart(3)}%` : '';
    process.stderr.write(`\r${label} ${bar} ${formatBytes(received)}${total ? `/${formatBytes(total)}` : ''}   `);
  };
  let lastArgs: [number, number | null] = [0, null];
  return {
    update(received, total) {
      lastArgs = [received, total];
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      draw(received, total);
    },
    done() {
      draw(...lastArgs);
      process.stderr.write('\n');
    },
  };
}

interface PullOptions extends ApiOptions {
  output: string;
  force?: boolean;
  json?: boolean;
}

async function pull(id: string, options: PullOptions): Promise<void> {
  if (!SNAPSHOT_ID_PATTERN.test(id)) throw new Error(`"${printable(id, 80)}" is not a snapshot id (32 lowercase hex; see leakwatch snapshots ls)`);
  const target = resolve(options.output);
  if (existsSync(target) && !options.force) throw new Error(`${options.output} exists; refusing to overwrite it (pass --force)`);
  if (existsSync(target) && !lstatSync(target).isFile()) throw new Error(`${options.output} is not a regular file; refusing to replace it`);
  const tmp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.part`);
  // Created 0600 before the first byte: a heap snapshot holds the target's secrets.
  const fd = openSync(tmp, 'wx', 0o600);
  const out = createWriteStream('', { fd, autoClose: false });
  const bar = progressBar(`pulling ${id}`);
  let ok = false;
  try {
    const got = await apiDownload(options, `/api/v1/snapshots/${id}/download`, out, bar.update);
    bar.done();
    // The collector sends the sha256 it verified at upload (from its row, not from the file now).
    if (got.declaredSha256 === null || !/^[0-9a-f]{64}$/.test(got.declaredSha256)) throw new Error('the collector sent no X-Content-SHA256: cannot verify the download; nothing written');
    if (got.declaredBytes !== null && got.bytes !== got.declaredBytes) throw new Error(`the download has ${got.bytes} bytes, the snapshot ${got.declaredBytes}: it was cut short; nothing written`);
    if (got.sha256 !== got.declaredSha256) {
      throw new Error(`sha256 mismatch: the download hashes to ${got.sha256}, the snapshot was stored as ${got.declaredSha256}; it is damaged or tampered with, nothing written`);
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, target);
    ok = true;
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ snapshotId: id, path: target, bytes: got.bytes, sha256: got.sha256, kind: got.kind }, null, 2)}\n`);
    } else {
      process.stdout.write(`${target}: ${formatBytes(got.bytes)}, sha256 ${got.sha256} verified\n`);
      if (got.kind === 'heapsnapshot') process.stdout.write('open it in Chrome DevTools: Memory tab → Load\n');
    }
  } finally {
    if (!ok) {
      try {
        closeSync(fd);
      } catch {
        // closed already
      }
      try {
        unlinkSync(tmp);
      } catch {
        // not there
      }
    }
  }
}

interface TakeOptions extends ApiOptions {
  pod: { namespace: string; pod: string };
  container?: string;
  pid?: number;
  kind?: SnapshotKind;
  timeout: number;
  json?: boolean;
}

async function take(options: TakeOptions): Promise<void> {
  const body: Record<string, unknown> = { namespace: options.pod.namespace, pod: options.pod.pod };
  if (options.container) body.container = options.container;
  if (options.pid) body.pid = options.pid;
  if (options.kind) body.kind = options.kind;
  type Answer = { capture: CaptureReport; snapshots: SnapshotRow[] } & { error?: string; message?: string; captureId?: string | null };
  // The HTTP timeout leaves the collector time to answer 504 itself.
  const { status, body: answer } = await apiPost<Answer>(options, '/api/v1/snapshots', body, { query: { timeoutMs: options.timeout }, timeoutMs: options.timeout + 15_000, accept: [504] });
  if (status === 504) {
    if (options.json) process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
    throw new Error(answer.message ?? 'timed out; the capture may still land');
  }
  if (options.json) process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
  const c = answer.capture;
  if (c.outcome === 'refused' || c.outcome === 'failed') {
    if (!options.json) process.stderr.write(`leakwatch: capture ${c.outcome}: ${c.reason ?? 'no reason given'}${c.reasonCode ? ` (${c.reasonCode})` : ''}\n`);
    process.exitCode = 3;
    return;
  }
  if (options.json) return;
  if (c.outcome === 'downgraded') process.stdout.write(`full snapshot refused, sampling profile taken instead: ${c.reason ?? ''}\n`);
  process.stdout.write(`${snapshotTable(answer.snapshots)}\n`);
  const first = answer.snapshots[0];
  if (first) process.stdout.write(`pull it with: leakwatch snapshots pull ${first.snapshotId} -o ${first.pod ?? 'snapshot'}.${first.kind}\n`);
}

/** Registers `snapshots` and returns it, so more subcommands (diff) can be added to it. */
export function registerSnapshots(program: Command): Command {
  const snapshots = program.command('snapshots').description('heap snapshots and sampling heap profiles of Node.js targets');

  addApiOptions(
    snapshots
      .command('ls')
      .description('list stored snapshots, newest first (token scope: read)')
      .option('--pod <namespace/pod>', 'only this pod', parsePod)
      .option('--node <node>', 'only this node')
      .option('--finding <id>', 'only snapshots taken for this growth finding')
      .option('--limit <n>', 'at most this many', parsePositiveInteger, 100)
      .option('--json', 'print the snapshots as a JSON array'),
  ).action((options: ApiOptions & { pod?: { namespace: string; pod: string }; node?: string; finding?: string; limit: number; json?: boolean }) =>
    runApiCommand(async () => {
      const { snapshots: rows } = await apiGet<{ snapshots: SnapshotRow[] }>(options, '/api/v1/snapshots', {
        namespace: options.pod?.namespace,
        pod: options.pod?.pod,
        node: options.node,
        findingId: options.finding,
        limit: options.limit,
      });
      if (options.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      process.stdout.write(rows.length === 0 ? 'no snapshots\n' : `${snapshotTable(rows)}\n`);
    }),
  );

  addApiOptions(
    snapshots
      .command('take')
      .description('take a heap snapshot of a pod now, through its node\'s agent, and wait until it is stored (token scope: snapshots)')
      .requiredOption('--pod <namespace/pod>', 'the pod', parsePod)
      .option('--container <name>', 'the container (default: the agent picks the Node.js process with the most memory)')
      .option('--pid <pid>', 'host pid of the process', parsePositiveInteger)
      .option('--kind <kind>', 'heapsnapshot (full, pauses the target) or heapprofile (sampling, light)', parseKind)
      .option('--timeout <duration>', 'how long to wait for the capture and its upload', parseTimeout, 120_000)
      .option('--json', 'print the capture report and the snapshots as JSON'),
  ).action((options: TakeOptions) => runApiCommand(() => take(options)));

  addApiOptions(
    snapshots
      .command('pull <id>')
      .description('download a snapshot, check its sha256, save it 0600 (token scope: snapshots)')
      .requiredOption('-o, --output <file>', 'where to save it, e.g. cart.heapsnapshot')
      .option('--force', 'overwrite the file if it exists')
      .option('--json', 'print what was saved as JSON'),
  ).action((id: string, options: PullOptions) => runApiCommand(() => pull(id, options)));

  addApiOptions(
    snapshots
      .command('captures')
      .description('every capture attempt, refusals included with their reasons (token scope: read)')
      .option('--pod <namespace/pod>', 'only this pod', parsePod)
      .option('--outcome <outcome>', 'captured, downgraded, refused or failed')
      .option('--limit <n>', 'at most this many', parsePositiveInteger, 100)
      .option('--json', 'print the reports as a JSON array'),
  ).action((options: ApiOptions & { pod?: { namespace: string; pod: string }; outcome?: string; limit: number; json?: boolean }) =>
    runApiCommand(async () => {
      const { captures } = await apiGet<{ captures: CaptureReport[] }>(options, '/api/v1/captures', {
        namespace: options.pod?.namespace,
        pod: options.pod?.pod,
        outcome: options.outcome,
        limit: options.limit,
      });
      if (options.json) {
        process.stdout.write(`${JSON.stringify(captures, null, 2)}\n`);
        return;
      }
      if (captures.length === 0) {
        process.stdout.write('no capture attempts\n');
        return;
      }
      const rows = captures.map((c) => [
        when(c.atMs),
        c.node,
        c.pod ? `${c.namespace}/${c.pod}` : '-',
        c.pid === null ? '-' : String(c.pid),
        c.trigger,
        c.requested,
        c.outcome,
        c.snapshotIds.join(',') || '-',
        printable(c.reason ?? '', 120),
      ]);
      process.stdout.write(`${renderTable(['AT', 'NODE', 'POD', 'PID', 'TRIGGER', 'ASKED', 'OUTCOME', 'SNAPSHOTS', 'REASON'], rows)}\n`);
    }),
  );

  return snapshots;
}
