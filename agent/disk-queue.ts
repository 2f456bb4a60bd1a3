// Finding events waiting for the collector, on disk, so that an agent whose collector is away
// (restarting, unreachable, overloaded) loses nothing within a bound and survives its own restart.
//
// Layout of the spool directory (mode 0700, files 0600: findings carry script contents):
//   seg-<first seq, 16 digits>.jsonl   append-only segments, one `{"seq","change","finding"}` per line
//   cursor.json                        {"consumedSeq","droppedTotal"}: everything <= consumedSeq is gone
//
// Every event gets a sequence number that only grows, also across restarts. "Consumed" is one
// boundary for both ways an event leaves: acknowledged by the collector, or dropped because the
// queue was over its bound (the oldest go first). Segments entirely below the boundary are deleted.
//
// Durability: appends are not fsynced. The agent is the source of these events: a crashed agent
// process loses nothing that write() returned (it is in the page cache), and a crashed node loses
// at most the last seconds of findings about workloads that died with it. Segments are fsynced
// when they are rotated and when the queue closes, so a finished segment is on disk for sure.
// The cursor is not fsynced either: losing it re-sends events the collector already has, and the
// collector's ingest is idempotent per finding id and updatedAt.
import { closeSync, fsyncSync, ftruncateSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Finding } from '../protocol/findings.js';
import type { FindingChange } from '../protocol/messages.js';

export interface QueuedEvent {
  change: FindingChange;
  finding: Finding;
}

export interface DiskQueueOptions {
  dir: string;
  /** Bound on the bytes of pending events. Default 64 MiB. Disk use can exceed it by one segment. */
  maxBytes?: number;
  /** Bound on the number of pending events. Default 100,000 (the in-memory index is ~60 bytes each). */
  maxEvents?: number;
  /** A segment is rotated once it holds this many bytes. Default 4 MiB (at most maxBytes / 4). */
  segmentMaxBytes?: number;
  warn?: (msg: string) => void;
}

export interface PeekResult {
  /** Seq of the last event considered: ack(seq) consumes everything up to it. */
  seq: number;
  events: QueuedEvent[];
}

export const DEFAULT_SPOOL_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_SPOOL_MAX_EVENTS = 100_000;

interface Entry {
  seq: number;
  offset: number;
  length: number;
}

interface Segment {
  path: string;
  entries: Entry[];
  /** Index of the first entry still pending (entries before it are consumed). */
  start: number;
  /** Bytes in the file (valid lines only: a torn tail is never appended after). */
  fileBytes: number;
}

const SEGMENT_NAME = /^seg-(\d{16})\.jsonl$/;
const CURSOR = 'cursor.json';
const DROP_WARNING_INTERVAL_MS = 60_000;
const CHANGES: ReadonlySet<string> = new Set(['open', 'update', 'resolve']);

export class DiskQueue {
  readonly dir: string;
  private readonly maxBytes: number;
  private readonly maxEvents: number;
  private readonly segmentMaxBytes: number;
  private readonly warn: (msg: string) => void;
  private readonly segments: Segment[] = [];
  /** Segment appended to, always the last of `segments`; null until the next append. */
  private head: { segment: Segment; fd: number } | null = null;
  private consumedSeq = 0;
  private lastSeq = 0;
  private pendingCount = 0;
  private pendingBytes = 0;
  private dropped = 0;
  private droppedSinceWarning = 0;
  private lastDropWarningMs = -Infinity;
  private closed = false;

  constructor(options: DiskQueueOptions) {
    this.dir = options.dir;
    this.maxBytes = positive(options.maxBytes, DEFAULT_SPOOL_MAX_BYTES, 'maxBytes');
    this.maxEvents = positive(options.maxEvents, DEFAULT_SPOOL_MAX_EVENTS, 'maxEvents');
    this.segmentMaxBytes = positive(options.segmentMaxBytes, Math.min(4 * 1024 * 1024, Math.max(1, Math.floor(this.maxBytes / 4))), 'segmentMaxBytes');
    this.warn = options.warn ?? (() => {});
    prepareDir(this.dir);
    this.load();
    // A smaller bound than the spool was written with applies at once.
    this.enforceBound();
  }

  /** Events waiting for the collector. */
  get size(): number {
    return this.pendingCount;
  }

  /** Bytes of the events waiting (their JSON lines). */
  get bytes(): number {
    return this.pendingBytes;
  }

  /** Events dropped because the queue was full (or the disk refused them), over the spool's life. */
  get droppedTotal(): number {
    return this.dropped;
  }

  /** Seq of the last event appended (0 before any). */
  get lastAppendedSeq(): number {
    return this.lastSeq;
  }

  /** Every event with seq <= this is acknowledged or dropped. */
  get consumed(): number {
    return this.consumedSeq;
  }

  /** Append events; past the bound the oldest pending events are dropped and counted. */
  append(events: readonly QueuedEvent[]): void {
    this.assertOpen();
    if (events.length === 0) return;
    let lines: Array<{ seq: number; line: Buffer }> = [];
    let linesBytes = 0;
    for (let i = 0; i < events.length; i++) {
      const e = events[i] as QueuedEvent;
      const seq = ++this.lastSeq;
      const line = Buffer.from(`${JSON.stringify({ seq, change: e.change, finding: e.finding })}\n`, 'utf8');
      if (this.head) {
        const used = this.head.segment.fileBytes + linesBytes;
        if (used > 0 && used + line.length > this.segmentMaxBytes) {
          this.flushLines(lines);
          lines = [];
          linesBytes = 0;
          this.rotate();
        }
      }
      if (!this.head && !this.openHead(seq)) {
        // Nothing is waiting in `lines` here: a head is only opened with an empty batch.
        this.dropped += events.length - i;
        this.writeCursor();
        this.enforceBound();
        return;
      }
      lines.push({ seq, line });
      linesBytes += line.length;
    }
    this.flushLines(lines);
    this.enforceBound();
  }

  /**
   * The oldest pending events after `afterSeq` (default: the consumed boundary), at most
   * `maxEvents` of them and `maxBytes` of lines, but always at least one when any is pending,
   * so that one event larger than maxBytes cannot stall the queue.
   */
  peek(maxEvents: number, maxBytes: number, afterSeq: number = this.consumedSeq): PeekResult {
    this.assertOpen();
    const after = Math.max(afterSeq, this.consumedSeq);
    const events: QueuedEvent[] = [];
    let seq = after;
    let bytes = 0;
    let considered = 0;
    for (const segment of this.segments) {
      const last = segment.entries[segment.entries.length - 1];
      if (!last || last.seq <= after) continue;
      let i = Math.max(segment.start, firstAfter(segment.entries, after));
      const batch: Entry[] = [];
      for (; i < segment.entries.length; i++) {
        const entry = segment.entries[i] as Entry;
        if (considered >= maxEvents || (considered > 0 && bytes + entry.length > maxBytes)) break;
        batch.push(entry);
        bytes += entry.length;
        considered++;
      }
      if (batch.length > 0) {
        for (const { entry, event } of this.readEntries(segment, batch)) {
          seq = entry.seq;
          if (event) events.push(event);
        }
      }
      if (i < segment.entries.length) break;
    }
    return { seq, events };
  }

  /** The collector holds every event up to `seq`: forget them (deleting segments that are done). */
  ack(seq: number): void {
    this.assertOpen();
    if (seq <= this.consumedSeq) return;
    this.consumeThrough(Math.min(seq, this.lastSeq));
    this.writeCursor();
  }

  /** Fsync and close the head segment; the queue reopens from the same directory later. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.head) {
      try {
        fsyncSync(this.head.fd);
      } catch (err) {
        this.warn(`spool: fsync of ${this.head.segment.path} failed: ${message(err)}`);
      }
      closeSync(this.head.fd);
      this.head = null;
    }
    this.writeCursor();
  }

  // -- appending

  /** False when the file cannot be created (disk full, directory gone): the caller drops. */
  private openHead(firstSeq: number): boolean {
    const path = join(this.dir, `seg-${String(firstSeq).padStart(16, '0')}.jsonl`);
    let fd: number;
    try {
      // A new segment never reuses an old file: an old one may end in a torn line.
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      this.warn(`spool: could not create ${path}: ${message(err)}; finding events are dropped until it can`);
      return false;
    }
    const segment: Segment = { path, entries: [], start: 0, fileBytes: 0 };
    this.segments.push(segment);
    this.head = { segment, fd };
    syncDir(this.dir, this.warn);
    return true;
  }

  /** A finished segment is fsynced before the next one starts: from here on it is on disk. */
  private rotate(): void {
    const head = this.head;
    if (!head) return;
    this.head = null;
    try {
      fsyncSync(head.fd);
    } catch (err) {
      this.warn(`spool: fsync of ${head.segment.path} failed: ${message(err)}`);
    }
    closeSync(head.fd);
  }

  private flushLines(lines: Array<{ seq: number; line: Buffer }>): void {
    const head = this.head;
    if (!head || lines.length === 0) return;
    const segment = head.segment;
    const data = Buffer.concat(lines.map((l) => l.line));
    try {
      writeAll(head.fd, data);
    } catch (err) {
      // Disk full or gone: these events are lost, and that is reported like any other drop.
      this.dropped += lines.length;
      this.warn(`spool: could not write ${lines.length} finding event(s) to ${segment.path}: ${message(err)}; they are dropped`);
      try {
        ftruncateSync(head.fd, segment.fileBytes);
      } catch {
        // The torn tail is skipped with a warning when the spool is reopened.
      }
      return;
    }
    let offset = segment.fileBytes;
    for (const { seq, line } of lines) {
      segment.entries.push({ seq, offset, length: line.length });
      offset += line.length;
      this.pendingCount++;
      this.pendingBytes += line.length;
    }
    segment.fileBytes = offset;
  }

  /** Over the bound, the oldest pending events go: a queue that fills keeps the newest. */
  private enforceBound(): void {
    let droppedNow = 0;
    while (this.pendingCount > 0 && (this.pendingBytes > this.maxBytes || this.pendingCount > this.maxEvents)) {
      const first = this.firstPending();
      if (!first) break;
      this.consumeThrough(first.seq);
      droppedNow++;
    }
    if (droppedNow > 0) {
      this.dropped += droppedNow;
      this.droppedSinceWarning += droppedNow;
      this.writeCursor();
      // A queue that stays full drops on every pass: say so once a minute, with the count.
      const now = Date.now();
      if (now - this.lastDropWarningMs >= DROP_WARNING_INTERVAL_MS) {
        this.warn(
          `spool full (bound ${this.maxEvents} events, ${this.maxBytes} bytes): dropped the ${this.droppedSinceWarning} oldest finding event(s) the collector had not acknowledged; ${this.dropped} dropped in total`,
        );
        this.lastDropWarningMs = now;
        this.droppedSinceWarning = 0;
      }
    }
  }

  // -- consuming

  private firstPending(): Entry | undefined {
    for (const segment of this.segments) {
      const entry = segment.entries[segment.start];
      if (entry) return entry;
    }
    return undefined;
  }

  /** Move the consumed boundary to `seq`, deleting segments left with nothing pending. */
  private consumeThrough(seq: number): void {
    if (seq > this.consumedSeq) this.consumedSeq = seq;
    while (this.segments.length > 0) {
      const segment = this.segments[0] as Segment;
      while (segment.start < segment.entries.length && (segment.entries[segment.start] as Entry).seq <= this.consumedSeq) {
        const entry = segment.entries[segment.start] as Entry;
        this.pendingCount--;
        this.pendingBytes -= entry.length;
        segment.start++;
      }
      if (segment.start < segment.entries.length) break;
      if (this.head?.segment === segment) {
        // The head is done too: close it, and the next append starts a fresh segment.
        closeSync(this.head.fd);
        this.head = null;
      }
      this.segments.shift();
      try {
        rmSync(segment.path, { force: true });
      } catch (err) {
        this.warn(`spool: could not delete ${segment.path}: ${message(err)}`);
      }
    }
  }

  private writeCursor(): void {
    const tmp = join(this.dir, `${CURSOR}.tmp`);
    try {
      writeFileSync(tmp, JSON.stringify({ consumedSeq: this.consumedSeq, droppedTotal: this.dropped }), { mode: 0o600 });
      renameSync(tmp, join(this.dir, CURSOR));
    } catch (err) {
      this.warn(`spool: could not write ${CURSOR}: ${message(err)} (acknowledged events may be sent again after a restart)`);
    }
  }

  // -- reading

  private readEntries(segment: Segment, batch: Entry[]): Array<{ entry: Entry; event: QueuedEvent | null }> {
    const first = batch[0] as Entry;
    const last = batch[batch.length - 1] as Entry;
    const span = Buffer.alloc(last.offset + last.length - first.offset);
    let fd: number | null = null;
    try {
      fd = openSync(segment.path, 'r');
      let read = 0;
      while (read < span.length) {
        const n = readSync(fd, span, read, span.length - read, first.offset + read);
        if (n === 0) break;
        read += n;
      }
    } catch (err) {
      this.warn(`spool: could not read ${segment.path}: ${message(err)}; ${batch.length} event(s) in it are skipped`);
      return batch.map((entry) => ({ entry, event: null }));
    } finally {
      if (fd !== null) closeSync(fd);
    }
    return batch.map((entry) => {
      const line = span.subarray(entry.offset - first.offset, entry.offset - first.offset + entry.length).toString('utf8');
      const parsed = parseLine(line);
      if (!parsed || parsed.seq !== entry.seq) {
        this.warn(`spool: event ${entry.seq} in ${segment.path} changed on disk since it was written; skipped`);
        return { entry, event: null };
      }
      return { entry, event: parsed.event };
    });
  }

  // -- opening

  private load(): void {
    this.consumedSeq = 0;
    const cursorPath = join(this.dir, CURSOR);
    let cursorText: string | null = null;
    try {
      cursorText = readFileSync(cursorPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.warn(`spool: could not read ${cursorPath}: ${message(err)}; pending events may be sent again`);
    }
    if (cursorText !== null) {
      const cursor = parseCursor(cursorText);
      if (cursor) {
        this.consumedSeq = cursor.consumedSeq;
        this.dropped = cursor.droppedTotal;
      } else {
        this.warn(`spool: ${cursorPath} is unreadable; every event left in the spool will be sent again`);
      }
    }
    this.lastSeq = this.consumedSeq;

    const names = readdirSync(this.dir)
      .filter((n) => SEGMENT_NAME.test(n))
      .sort();
    for (const name of names) {
      const path = join(this.dir, name);
      const segment = this.loadSegment(path);
      const lastEntry = segment.entries[segment.entries.length - 1];
      if (lastEntry && lastEntry.seq > this.lastSeq) this.lastSeq = lastEntry.seq;
      segment.start = firstAfter(segment.entries, this.consumedSeq);
      if (segment.start >= segment.entries.length) {
        rmSync(path, { force: true });
        continue;
      }
      for (let i = segment.start; i < segment.entries.length; i++) {
        this.pendingCount++;
        this.pendingBytes += (segment.entries[i] as Entry).length;
      }
      this.segments.push(segment);
    }
  }

  private loadSegment(path: string): Segment {
    const segment: Segment = { path, entries: [], start: 0, fileBytes: 0 };
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (err) {
      this.warn(`spool: could not read ${path}: ${message(err)}; its events are skipped`);
      return segment;
    }
    let offset = 0;
    let lineNo = 0;
    let previousSeq = this.lastSeq;
    while (offset < data.length) {
      lineNo++;
      const newline = data.indexOf(0x0a, offset);
      if (newline < 0) {
        // The agent stopped in the middle of a write: the torn tail is not an event.
        this.warn(`spool: ${path} ends in a truncated line (${data.length - offset} bytes, the agent stopped mid-write); skipped`);
        break;
      }
      const length = newline + 1 - offset;
      const parsed = parseLine(data.subarray(offset, newline + 1).toString('utf8'));
      if (!parsed) {
        this.warn(`spool: ${path} line ${lineNo} is not a finding event; skipped`);
      } else if (parsed.seq <= previousSeq) {
        this.warn(`spool: ${path} line ${lineNo} has seq ${parsed.seq} after ${previousSeq}; skipped`);
      } else {
        segment.entries.push({ seq: parsed.seq, offset, length });
        previousSeq = parsed.seq;
      }
      offset = newline + 1;
    }
    segment.fileBytes = data.length;
    return segment;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`spool ${this.dir} is closed`);
  }
}

/** The spool holds evidence (script contents): a private directory that is really ours. */
function prepareDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new Error(`spool directory ${dir}: ${message(err)}`);
  }
  const st = lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) throw new Error(`spool directory ${dir} is not a directory (a symlink is refused)`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`spool directory ${dir} belongs to uid ${st.uid}, not to this agent (uid ${uid}): choose another --spool-dir`);
  try {
    const probe = join(dir, '.write-test');
    writeFileSync(probe, '', { mode: 0o600 });
    rmSync(probe);
  } catch (err) {
    throw new Error(`spool directory ${dir} is not writable: ${message(err)}`);
  }
}

function parseLine(line: string): { seq: number; event: QueuedEvent } | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const o = value as Record<string, unknown>;
  const seq = o.seq;
  const finding = o.finding;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= 0) return null;
  if (typeof o.change !== 'string' || !CHANGES.has(o.change)) return null;
  if (typeof finding !== 'object' || finding === null || typeof (finding as { id?: unknown }).id !== 'string') return null;
  return { seq, event: { change: o.change as FindingChange, finding: finding as Finding } };
}

function parseCursor(text: string): { consumedSeq: number; droppedTotal: number } | null {
  try {
    const v = JSON.parse(text) as { consumedSeq?: unknown; droppedTotal?: unknown };
    if (typeof v.consumedSeq !== 'number' || !Number.isSafeInteger(v.consumedSeq) || v.consumedSeq < 0) return null;
    const dropped = typeof v.droppedTotal === 'number' && Number.isSafeInteger(v.droppedTotal) && v.droppedTotal >= 0 ? v.droppedTotal : 0;
    return { consumedSeq: v.consumedSeq, droppedTotal: dropped };
  } catch {
    return null;
  }
}

/** Index of the first entry with seq > after (entries are sorted by seq). */
function firstAfter(entries: Entry[], after: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((entries[mid] as Entry).seq <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function writeAll(fd: number, data: Buffer): void {
  let written = 0;
  while (written < data.length) written += writeSync(fd, data, written, data.length - written);
}

/** A new segment's name must survive a node crash along with its fsynced contents. */
function syncDir(dir: string, warn: (msg: string) => void): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (err) {
    warn(`spool: fsync of ${dir} failed: ${message(err)}`);
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`spool ${name} must be a positive number, got ${value}`);
  return Math.floor(value);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
