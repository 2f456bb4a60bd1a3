// The agent's half of the snapshot upload (protocol/snapshots.ts), one snapshot at a time, oldest
// first: snapshot-begin → the collector's snapshot-offset → chunk frames from that offset →
// snapshot-end → snapshot-stored (the spool copy goes) or snapshot-rejected (begin again, or drop
// it when the collector will never take it). A lost connection just stops the loop: on the next
// one, begin again and the collector says how much it already holds.
//
// Chunks are written only while the socket's send buffer is below a high-water mark that is
// lower than the one findings and heartbeats stop at, so those always find room between chunks:
// a 500 MiB upload never starves them.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { encodeChunkFrame } from '../protocol/chunk-frame.js';
import type { AgentMessage, SnapshotOffsetMessage, SnapshotRejectedMessage, SnapshotStoredMessage } from '../protocol/messages.js';
import type { SnapshotSpool, SpooledSnapshot } from './snapshot-spool.js';

/** What the uploader needs of the connection; the uplink provides it for each welcomed session. */
export interface UploadChannel {
  sendMessage(message: AgentMessage): void;
  /** `done` runs once the socket took the frame (or failed). */
  sendBinary(frame: Buffer, done: (err?: Error) => void): void;
  bufferedAmount(): number;
  /** Drop this connection (the collector stopped answering); the uplink reconnects. */
  reset(reason: string): void;
}

export interface SnapshotUploaderOptions {
  spool: SnapshotSpool;
  log?: Logger;
  /** Payload bytes per chunk frame. Default 256 KiB. */
  chunkBytes?: number;
  /** No chunk is written while the send buffer holds this much. Default 512 KiB. */
  highWaterBytes?: number;
  /** snapshot-offset and the answer to snapshot-end must come within this. Default 120 s. */
  answerTimeoutMs?: number;
  /** First delay before beginning again after a rejection; doubles per attempt up to 60 s. Default 500 ms. */
  retryDelayMs?: number;
}

export interface SnapshotUploadState {
  spooled: number;
  spooledBytes: number;
  uploading: string | null;
  /** Payload bytes written to the socket since start (re-sent bytes counted again). */
  bytesSent: number;
  stored: number;
  rejected: number;
  dropped: number;
  /** Offsets the collector answered with that were > 0 (resumed uploads). */
  resumedFromOffsets: number[];
}

interface Attempt {
  entry: SpooledSnapshot;
  phase: 'await-offset' | 'sending' | 'await-result';
  timer: NodeJS.Timeout | null;
}

const MAX_RETRY_DELAY_MS = 60_000;

export class SnapshotUploader {
  private readonly spool: SnapshotSpool;
  private readonly log: Logger;
  private readonly chunkBytes: number;
  private readonly highWaterBytes: number;
  private readonly answerTimeoutMs: number;
  private readonly retryDelayMs: number;
  private channel: UploadChannel | null = null;
  private current: Attempt | null = null;
  private readonly attempts = new Map<string, number>();
  private readonly retryAt = new Map<string, number>();
  private retryTimer: NodeJS.Timeout | null = null;
  private drainWaiters: Array<() => void> = [];
  private readonly stats = { bytesSent: 0, stored: 0, rejected: 0, dropped: 0, resumedFromOffsets: [] as number[] };

  constructor(options: SnapshotUploaderOptions) {
    this.spool = options.spool;
    this.log = options.log ?? silentLogger;
    this.chunkBytes = options.chunkBytes ?? 256 * 1024;
    this.highWaterBytes = options.highWaterBytes ?? 512 * 1024;
    this.answerTimeoutMs = options.answerTimeoutMs ?? 120_000;
    this.retryDelayMs = options.retryDelayMs ?? 500;
    this.spool.onAdded(() => this.kick());
  }

  state(): SnapshotUploadState {
    return {
      spooled: this.spool.size,
      spooledBytes: this.spool.bytes,
      uploading: this.current?.entry.meta.snapshotId ?? null,
      bytesSent: this.stats.bytesSent,
      stored: this.stats.stored,
      rejected: this.stats.rejected,
      dropped: this.stats.dropped,
      resumedFromOffsets: [...this.stats.resumedFromOffsets],
    };
  }

  /** A welcomed connection: start (or resume) uploading. */
  attach(channel: UploadChannel): void {
    this.detach();
    this.channel = channel;
    // Whatever was rejected on the previous connection is tried at once on this one.
    this.retryAt.clear();
    this.kick();
  }

  /** The connection is gone: the loop stops; the next attach begins again. */
  detach(): void {
    this.channel = null;
    this.stopAttempt();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** The socket took some bytes: a chunk waiting for room may go. */
  notifyDrained(): void {
    if (this.drainWaiters.length === 0) return;
    if (this.channel && this.channel.bufferedAmount() >= this.highWaterBytes) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  onMessage(m: SnapshotOffsetMessage | SnapshotStoredMessage | SnapshotRejectedMessage): void {
    const a = this.current;
    if (!a || a.entry.meta.snapshotId !== m.snapshotId) {
      this.log.warn('collector answered about a snapshot the agent is not uploading; ignored', { type: m.type, snapshotId: m.snapshotId });
      return;
    }
    switch (m.type) {
      case 'snapshot-offset':
        this.onOffset(a, m.offset);
        return;
      case 'snapshot-stored':
        this.onStored(a, m.sha256);
        return;
      case 'snapshot-rejected':
        void this.onRejected(a, m);
        return;
    }
  }

  /** Start the next upload if none is running and the connection is up. */
  kick(): void {
    if (!this.channel || this.current) return;
    const now = Date.now();
    let earliest = Infinity;
    const next = this.spool.list().find((e) => {
      const at = this.retryAt.get(e.meta.snapshotId) ?? 0;
      if (at > now) earliest = Math.min(earliest, at);
      return at <= now;
    });
    if (!next) {
      if (earliest !== Infinity && !this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.kick();
        }, earliest - now);
        this.retryTimer.unref();
      }
      return;
    }
    const a: Attempt = { entry: next, phase: 'await-offset', timer: null };
    this.current = a;
    this.armAnswerTimer(a, 'snapshot-offset');
    this.channel.sendMessage({ type: 'snapshot-begin', meta: next.meta, bytes: next.bytes, sha256: next.sha256 });
  }

  private onOffset(a: Attempt, offset: number): void {
    if (a.phase !== 'await-offset') return;
    if (a.timer) clearTimeout(a.timer);
    a.timer = null;
    const { entry } = a;
    if (offset > entry.bytes) {
      this.log.error('collector holds more bytes than the snapshot has; beginning again', { snapshotId: entry.meta.snapshotId, offset, bytes: entry.bytes });
      this.retryLater(a);
      return;
    }
    if (offset > 0) {
      this.stats.resumedFromOffsets.push(offset);
      this.log.info('snapshot upload resumes from the offset the collector holds', { snapshotId: entry.meta.snapshotId, offset, bytes: entry.bytes });
    }
    a.phase = 'sending';
    void this.sendFrom(a, offset).catch((err: unknown) => {
      if (this.current !== a) return;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || err instanceof LocalFileChanged) {
        this.drop(a, `the spooled file is unreadable: ${errorText(err)}`);
        return;
      }
      this.log.error('snapshot upload failed reading the spool; retrying later', { snapshotId: entry.meta.snapshotId, error: errorText(err) });
      this.retryLater(a);
    });
  }

  private async sendFrom(a: Attempt, offset: number): Promise<void> {
    const { entry } = a;
    const id = entry.meta.snapshotId;
    let file: FileHandle | null = await open(entry.path, 'r');
    try {
      let pos = offset;
      while (pos < entry.bytes) {
        await this.roomToSend(a);
        if (this.current !== a || !this.channel) return;
        const size = Math.min(this.chunkBytes, entry.bytes - pos);
        const payload = Buffer.allocUnsafe(size);
        const { bytesRead } = await file.read(payload, 0, size, pos);
        if (bytesRead !== size) throw new LocalFileChanged(`read ${bytesRead} bytes at ${pos}, expected ${size}: the file shrank`);
        if (this.current !== a || !this.channel) return;
        const channel = this.channel;
        channel.sendBinary(encodeChunkFrame(id, pos, payload), () => this.notifyDrained());
        pos += size;
        this.stats.bytesSent += size;
      }
      await file.close();
      file = null;
      if (this.current !== a || !this.channel) return;
      a.phase = 'await-result';
      this.armAnswerTimer(a, 'snapshot-stored');
      this.channel.sendMessage({ type: 'snapshot-end', snapshotId: id, bytes: entry.bytes, sha256: entry.sha256 });
    } finally {
      if (file) await file.close();
    }
  }

  private roomToSend(a: Attempt): Promise<void> {
    const channel = this.channel;
    if (!channel || this.current !== a || channel.bufferedAmount() < this.highWaterBytes) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearInterval(poll);
        this.drainWaiters = this.drainWaiters.filter((w) => w !== done);
        resolve();
      };
      // Send callbacks wake us (notifyDrained); the poll covers a buffer that drained without one.
      const poll = setInterval(() => {
        if (this.current !== a || !this.channel || this.channel.bufferedAmount() < this.highWaterBytes) done();
      }, 50);
      poll.unref();
      this.drainWaiters.push(done);
    });
  }

  private onStored(a: Attempt, sha256: string): void {
    const id = a.entry.meta.snapshotId;
    if (sha256 !== a.entry.sha256) {
      this.log.error('collector stored a snapshot under another sha256; keeping the local copy and beginning again', { snapshotId: id, expected: a.entry.sha256, stored: sha256 });
      this.retryLater(a);
      return;
    }
    this.stopAttempt();
    this.attempts.delete(id);
    this.retryAt.delete(id);
    this.stats.stored++;
    this.spool.remove(id, 'stored by the collector');
    this.kick();
  }

  private async onRejected(a: Attempt, m: SnapshotRejectedMessage): Promise<void> {
    this.stats.rejected++;
    const id = a.entry.meta.snapshotId;
    if (!m.restart) {
      this.drop(a, `the collector refuses it for good (${m.code}: ${m.reason})`);
      return;
    }
    this.log.warn('collector rejected a snapshot upload; beginning again', { snapshotId: id, code: m.code, reason: m.reason });
    // Stop sending at once: the collector discards the rest of this attempt's chunks.
    a.phase = 'await-result';
    if (m.code === 'sha-mismatch') {
      // Either the bytes were damaged on the way (send again) or the spool file itself is (never deliverable).
      let local: string;
      try {
        local = await sha256OfFile(a.entry.path);
      } catch (err) {
        if (this.current === a) this.drop(a, `the spooled file is unreadable: ${errorText(err)}`);
        return;
      }
      if (this.current !== a) return;
      if (local !== a.entry.sha256) {
        this.drop(a, `the spooled file no longer matches its sha256 (${local}, captured as ${a.entry.sha256})`);
        return;
      }
    }
    this.retryLater(a);
  }

  private retryLater(a: Attempt): void {
    const id = a.entry.meta.snapshotId;
    const n = (this.attempts.get(id) ?? 0) + 1;
    this.attempts.set(id, n);
    this.retryAt.set(id, Date.now() + Math.min(MAX_RETRY_DELAY_MS, this.retryDelayMs * 2 ** (n - 1)));
    this.stopAttempt();
    this.kick();
  }

  private drop(a: Attempt, why: string): void {
    const id = a.entry.meta.snapshotId;
    this.log.error('snapshot dropped from the spool: it can never be delivered', { snapshotId: id, bytes: a.entry.bytes, why });
    this.stopAttempt();
    this.attempts.delete(id);
    this.retryAt.delete(id);
    this.stats.dropped++;
    this.spool.remove(id, why);
    this.kick();
  }

  private armAnswerTimer(a: Attempt, waitingFor: string): void {
    if (a.timer) clearTimeout(a.timer);
    a.timer = setTimeout(() => {
      if (this.current !== a || !this.channel) return;
      this.log.warn(`collector did not answer with ${waitingFor} in time; reconnecting to resume`, { snapshotId: a.entry.meta.snapshotId, timeoutMs: this.answerTimeoutMs });
      this.channel.reset(`no ${waitingFor} within ${this.answerTimeoutMs} ms`);
    }, this.answerTimeoutMs);
    a.timer.unref();
  }

  private stopAttempt(): void {
    const a = this.current;
    if (a?.timer) clearTimeout(a.timer);
    this.current = null;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}

class LocalFileChanged extends Error {}

function sha256OfFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const stream = createReadStream(path, { highWaterMark: 1024 * 1024 });
    stream.on('data', (c) => hash.update(c as Buffer));
    stream.on('end', () => resolve(hash.digest('hex')));
    stream.on('error', reject);
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
