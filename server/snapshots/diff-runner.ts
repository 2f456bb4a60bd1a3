// Runs heap diffs outside the collector: one child process at a time (`diff-main` with the two
// snapshot files), its heap bounded with --max-old-space-size, killed at a timeout. The queue is
// the heap_diffs table (pending rows, oldest first), so a diff queued before a restart runs after
// it; a bounded number may wait. Whatever goes wrong becomes status 'failed' with a reason; the
// collector never throws for it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../common/log.js';
import type { HeapDiffRecord, HeapDiffResult } from '../../protocol/heap-diff-record.js';
import { snapshotFilePath } from '../store/snapshot-files.js';
import type { SnapshotRow, Store } from '../store/types.js';

export interface DiffRunnerOptions {
  store: Store;
  /** Where the snapshot files are. */
  dir: string;
  log: Logger;
  /** A child running longer is killed and its diff failed. Default 10 min. */
  timeoutMs?: number;
  /** Pending diffs beyond this are refused (failed, "queue full"). Default 32. */
  maxPending?: number;
  /** The child's V8 heap bound in MiB; default from the pair's size (see heapBoundMiB). */
  maxOldSpaceMiB?: number;
  /** The child's entry; default diff-main beside this module (the .ts under tsx). */
  entry?: string;
}

export const DEFAULT_DIFF_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_MAX_PENDING = 32;
const MAX_STDOUT_BYTES = 1024 * 1024;
const MAX_REASON_CHARS = 500;
const MiB = 1024 * 1024;

/**
 * The child's heap bound: the reader keeps strings and per-node tables on the V8 heap; a pair
 * peaks near 1.7 × the larger file (measured: 670 MiB for a 400 MiB pair). Twice the larger file
 * plus room for the runtime, within 256 MiB .. 8 GiB.
 */
export function heapBoundMiB(largerFileBytes: number): number {
  return Math.min(8192, Math.max(256, Math.ceil((2 * largerFileBytes) / MiB) + 128));
}

function defaultEntry(): { file: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    // Running from source (tests, `--import tsx`): the child needs the same loader.
    return { file: here.replace(/diff-runner\.ts$/, '../analysis/diff-main.ts'), execArgv: ['--import', import.meta.resolve('tsx')] };
  }
  return { file: fileURLToPath(new URL('../analysis/diff-main.js', import.meta.url)), execArgv: [] };
}

type DoneListener = (record: HeapDiffRecord) => void;

export class DiffRunner {
  private readonly store: Store;
  private readonly dir: string;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly entry: { file: string; execArgv: string[] };
  private child: ChildProcess | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private readonly listeners = new Set<DoneListener>();
  /** Requests waiting for a diff: answered at close, before the store goes. */
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: DiffRunnerOptions) {
    this.store = options.store;
    this.dir = options.dir;
    this.log = options.log;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_DIFF_TIMEOUT_MS;
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
    this.entry = options.entry ? { file: options.entry, execArgv: [] } : defaultEntry();
  }

  /** After a restart: diffs left running go back to the queue, stored pairs never queued are queued. */
  start(): void {
    try {
      const reset = this.store.resetRunningHeapDiffs();
      if (reset > 0) this.log.info('heap diffs interrupted by a restart are queued again', { count: reset });
      for (const p of this.store.undiffedPairs()) {
        this.log.info('heap snapshot pair stored without a diff: queued', { ...p });
        this.queue(p.snapshotA, p.snapshotB, p.findingId);
      }
    } catch (err) {
      this.log.error('could not look for heap diffs to resume', { error: errorText(err) });
    }
    this.kick();
  }

  /** The receiver stored a snapshot: when it completes a pair, queue the pair's diff. */
  onSnapshotStored(row: SnapshotRow): void {
    if (row.kind !== 'heapsnapshot' || row.pairId === null) return;
    try {
      for (const p of this.store.undiffedPairs(row.pairId)) this.queue(p.snapshotA, p.snapshotB, p.findingId);
    } catch (err) {
      this.log.error('could not queue the heap diff of a stored pair', { snapshotId: row.snapshotId, pairId: row.pairId, error: errorText(err) });
    }
  }

  /** Queue a diff (a earlier) and start it when the runner is free; returns the row as stored. */
  queue(a: string, b: string, findingId: string | null): HeapDiffRecord {
    const existing = this.store.getHeapDiff(a, b);
    if (existing) {
      this.kick();
      return existing;
    }
    if (this.store.countHeapDiffs('pending') >= this.maxPending) {
      this.store.queueHeapDiff(a, b, findingId);
      this.store.finishHeapDiff(a, b, { status: 'failed', reason: `the diff queue is full (${this.maxPending} waiting); ask again later`, finishedAtMs: Date.now() });
      this.log.warn('heap diff refused: queue full', { snapshotA: a, snapshotB: b, maxPending: this.maxPending });
      return this.store.getHeapDiff(a, b)!;
    }
    const row = this.store.queueHeapDiff(a, b, findingId);
    this.log.info('heap diff queued', { snapshotA: a, snapshotB: b, findingId });
    this.kick();
    // A free runner has started it already: answer with where it stands now.
    return this.store.getHeapDiff(a, b) ?? row;
  }

  /** A failed diff queued again (explicit retry). */
  retry(a: string, b: string): HeapDiffRecord | null {
    this.store.requeueHeapDiff(a, b);
    this.kick();
    return this.store.getHeapDiff(a, b);
  }

  /** Called with every diff that finished (done or failed). */
  onDone(listener: DoneListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the row once it is done or failed, or with its state at the deadline. */
  waitFor(a: string, b: string, timeoutMs: number): Promise<HeapDiffRecord | null> {
    const now = this.store.getHeapDiff(a, b);
    if (!now || now.status === 'done' || now.status === 'failed' || timeoutMs <= 0) return Promise.resolve(now);
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        off();
        this.waiters.delete(finish);
        try {
          resolve(this.store.getHeapDiff(a, b));
        } catch {
          resolve(now); // the store closed meanwhile (shutdown): the last state known
        }
      };
      const off = this.onDone((r) => {
        if (r.snapshotA === a && r.snapshotB === b) finish();
      });
      const timer = setTimeout(finish, timeoutMs);
      this.waiters.add(finish);
    });
  }

  /** Stops: kills a running child (its row goes back to pending at the next start). */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of [...this.waiters]) w();
    this.child?.kill('SIGKILL');
    await this.running;
  }

  private kick(): void {
    if (this.running || this.closed) return;
    this.running = this.drain().finally(() => {
      this.running = null;
    });
  }

  private async drain(): Promise<void> {
    while (!this.closed) {
      let next: HeapDiffRecord | undefined;
      try {
        next = this.store.listHeapDiffs({ status: 'pending', limit: 1 })[0];
      } catch (err) {
        this.log.error('could not read the heap diff queue', { error: errorText(err) });
        return;
      }
      if (!next) return;
      try {
        await this.runOne(next);
      } catch (err) {
        // The store failing under us (closing): the row stays and the next start picks it up.
        this.log.error('heap diff could not run', { snapshotA: next.snapshotA, snapshotB: next.snapshotB, error: errorText(err) });
        return;
      }
    }
  }

  private async runOne(job: HeapDiffRecord): Promise<void> {
    const { snapshotA: a, snapshotB: b } = job;
    const fields = { snapshotA: a, snapshotB: b, findingId: job.findingId };
    const finish = (status: 'done' | 'failed', reason: string | null, result: HeapDiffResult | null): void => {
      try {
        const kept = this.store.finishHeapDiff(a, b, { status, reason, result, finishedAtMs: Date.now() });
        if (!kept) this.log.info('heap diff finished after its snapshots were deleted; dropped', fields);
        if (status === 'failed') this.log.warn('heap diff failed', { ...fields, reason });
        else this.log.info('heap diff done', { ...fields, growers: result?.growers.length ?? 0, elapsedMs: result?.elapsedMs });
      } catch (err) {
        this.log.error('could not record a heap diff', { ...fields, error: errorText(err) });
      }
      try {
        const record = this.store.getHeapDiff(a, b);
        if (record) for (const l of [...this.listeners]) l(record);
      } catch (err) {
        this.log.error('heap diff listener failed', { ...fields, error: errorText(err) });
      }
    };
    const rowA = this.store.getSnapshot(a);
    const rowB = this.store.getSnapshot(b);
    if (!rowA || !rowB) return finish('failed', `snapshot ${rowA ? b : a} is no longer stored`, null);
    if (rowA.kind !== 'heapsnapshot' || rowB.kind !== 'heapsnapshot') return finish('failed', 'only full heap snapshots can be diffed', null);
    const fileA = snapshotFilePath(this.dir, a, rowA.kind);
    const fileB = snapshotFilePath(this.dir, b, rowB.kind);
    for (const f of [fileA, fileB]) if (!existsSync(f)) return finish('failed', `snapshot file ${f.slice(-60)} is missing (deleted by retention?)`, null);
    this.store.finishHeapDiff(a, b, { status: 'running' });
    const heapMiB = this.options.maxOldSpaceMiB ?? heapBoundMiB(Math.max(rowA.bytes, rowB.bytes));
    this.log.info('heap diff starts', { ...fields, heapBoundMiB: heapMiB });
    const outcome = await this.spawnDiff(fileA, fileB, heapMiB);
    if (this.closed && !outcome.ok) return; // stopped on purpose: pending again at the next start
    if (outcome.ok) finish('done', null, outcome.result);
    else finish('failed', outcome.reason, null);
  }

  private spawnDiff(fileA: string, fileB: string, heapMiB: number): Promise<{ ok: true; result: HeapDiffResult } | { ok: false; reason: string }> {
    return new Promise((resolve) => {
      let child: ChildProcess;
      try {
        child = spawn(process.execPath, [...this.entry.execArgv, `--max-old-space-size=${heapMiB}`, this.entry.file, fileA, fileB], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, NODE_OPTIONS: '' },
        });
      } catch (err) {
        resolve({ ok: false, reason: `could not start the diff process: ${errorText(err)}` });
        return;
      }
      this.child = child;
      // The diff is background work: the collector's own requests come first for the CPU.
      if (child.pid !== undefined) {
        try {
          setPriority(child.pid, 10);
        } catch {
          // not permitted: runs at normal priority
        }
      }
      const out: Buffer[] = [];
      let outBytes = 0;
      let err = '';
      let killedFor: string | null = null;
      child.stdout!.on('data', (c: Buffer) => {
        outBytes += c.length;
        if (outBytes > MAX_STDOUT_BYTES) {
          killedFor = `the diff process wrote more than ${MAX_STDOUT_BYTES} bytes`;
          child.kill('SIGKILL');
          return;
        }
        out.push(c);
      });
      child.stderr!.on('data', (c: Buffer) => {
        err = (err + c.toString('utf8')).slice(-4096);
      });
      const timer = setTimeout(() => {
        killedFor = `timed out after ${Math.round(this.timeoutMs / 1000)} s`;
        child.kill('SIGKILL');
      }, this.timeoutMs);
      child.on('error', (e) => {
        killedFor ??= `the diff process failed: ${e.message}`;
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        this.child = null;
        if (killedFor) return resolve({ ok: false, reason: killedFor });
        if (code !== 0) {
          const said = lastLine(err);
          const oom = /heap out of memory|Allocation failed/i.test(err);
          const reason = oom ? `the diff ran out of memory (heap bound ${heapMiB} MiB)` : `the diff process exited with ${code ?? signal}${said ? `: ${said}` : ''}`;
          return resolve({ ok: false, reason: reason.slice(0, MAX_REASON_CHARS) });
        }
        try {
          resolve({ ok: true, result: JSON.parse(Buffer.concat(out).toString('utf8')) as HeapDiffResult });
        } catch (e) {
          resolve({ ok: false, reason: `the diff process printed something that is not a diff: ${errorText(e)}` });
        }
      });
    });
  }
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines[lines.length - 1] ?? '').replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, MAX_REASON_CHARS);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
