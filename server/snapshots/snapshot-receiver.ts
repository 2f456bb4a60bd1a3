// The collector's half of the snapshot upload (protocol/snapshots.ts). Each agent connection has
// at most one upload in progress. Bytes go to `<dataDir>/snapshots/<id>.part` (0600), appended
// only at the offset the collector expects: a gap or an overlap is rejected and the agent
// begins again from the offset the collector holds. The sha256 is computed as bytes arrive (and
// recomputed over a .part left by an earlier run before resuming), compared at `snapshot-end`,
// then the file is fsynced, renamed to its final name, the directory fsynced and the row inserted
// — and only then does the agent hear `snapshot-stored`. A truncated or mismatching upload never
// gets a row, so it is never listed.
import { createHash, type Hash } from 'node:crypto';
import { chmodSync, closeSync, constants as fsConstants, createReadStream, existsSync, fchmodSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { Logger } from '../../common/log.js';
import { decodeChunkFrame } from '../../protocol/chunk-frame.js';
import type { CollectorMessage, SnapshotBeginMessage, SnapshotEndMessage } from '../../protocol/messages.js';
import type { SnapshotMeta } from '../../protocol/snapshots.js';
import { validateSnapshotMeta } from '../../protocol/validate.js';
import { fsyncDir } from '../store/blob-files.js';
import { snapshotFilePath, snapshotPartMetaPath, snapshotPartPath } from '../store/snapshot-files.js';
import { cleanOrphanParts } from '../store/snapshot-tables.js';
import type { SnapshotRow, Store } from '../store/types.js';
import { errorText, removeQuietly, writeFileDurably } from '../../common/durable-file.js';

export interface SnapshotReceiverOptions {
  dir: string;
  store: Store;
  log: Logger;
  /** Largest snapshot accepted. Default 16 GiB. */
  maxSnapshotBytes?: number;
  now?: () => number;
}

/** What `<id>.part.json` holds: whose upload the .part is, and what it must become. */
interface PartSidecar {
  agentId: string;
  node: string;
  bytes: number;
  sha256: string;
  meta: SnapshotMeta;
  beganAtMs: number;
}

interface Upload {
  id: string;
  sidecar: PartSidecar;
  /** preparing: hashing an existing .part; receiving: chunks expected at `offset`; stored: already listed. */
  state: 'preparing' | 'receiving' | 'finishing' | 'stored';
  fd: number | null;
  offset: number;
  hash: Hash | null;
}

export type ChunkOutcome = { ok: true } | { ok: false; code: string; error: string };

type StoredListener = (row: SnapshotRow) => void;

const DEFAULT_MAX_BYTES = 16 * 1024 ** 3;

export class SnapshotReceiver {
  readonly dir: string;
  readonly store: Store;
  readonly log: Logger;
  readonly maxSnapshotBytes: number;
  readonly now: () => number;
  /** Upload id → the connection receiving it right now (one writer per .part). */
  readonly active = new Map<string, AgentUploads>();
  private readonly listeners = new Set<StoredListener>();

  constructor(options: SnapshotReceiverOptions) {
    this.dir = options.dir;
    this.store = options.store;
    this.log = options.log;
    this.maxSnapshotBytes = options.maxSnapshotBytes ?? DEFAULT_MAX_BYTES;
    this.now = options.now ?? Date.now;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // Snapshots hold the targets' secrets: the directory is the owner's only, even if it existed before.
    chmodSync(this.dir, 0o700);
    cleanOrphanParts(this.dir, this.now(), (msg, fields) => this.log.info(msg, fields));
  }

  /** The upload state of one agent connection (after its hello). */
  forAgent(agentId: string, node: string, send: (m: CollectorMessage) => void): AgentUploads {
    return new AgentUploads(this, agentId, node, send);
  }

  onStored(listener: StoredListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once every id is listed, or with the ids still missing at the deadline. */
  waitStored(ids: readonly string[], timeoutMs: number): Promise<{ missing: string[] }> {
    const missing = new Set(ids.filter((id) => this.store.getSnapshot(id) === null));
    if (missing.size === 0) return Promise.resolve({ missing: [] });
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        off();
        resolve({ missing: [...missing] });
      };
      const off = this.onStored((row) => {
        missing.delete(row.snapshotId);
        if (missing.size === 0) done();
      });
      const timer = setTimeout(done, timeoutMs);
    });
  }

  notifyStored(row: SnapshotRow): void {
    for (const l of [...this.listeners]) {
      try {
        l(row);
      } catch (err) {
        this.log.error('snapshot stored listener failed', { error: err instanceof Error ? err.message : String(err) });
      }
    }
  }
}

export class AgentUploads {
  private current: Upload | null = null;
  /** Uploads rejected on this connection: their chunks still in flight are dropped quietly. */
  private readonly discarding = new Set<string>();
  private closed = false;

  constructor(
    private readonly receiver: SnapshotReceiver,
    readonly agentId: string,
    readonly node: string,
    private readonly send: (m: CollectorMessage) => void,
  ) {}

  async begin(m: SnapshotBeginMessage): Promise<void> {
    const r = this.receiver;
    const id = m.meta.snapshotId;
    this.release();
    this.discarding.delete(id);
    const fields = { agentId: this.agentId, node: this.node, snapshotId: id, bytes: m.bytes };
    if (m.bytes === 0) return this.reject(id, 'empty', 'a snapshot of 0 bytes is not a snapshot', false);
    if (m.bytes > r.maxSnapshotBytes) return this.reject(id, 'too-big', `${m.bytes} bytes is more than this collector takes (${r.maxSnapshotBytes})`, false);

    const stored = r.store.getSnapshot(id);
    if (stored) {
      if (stored.sha256 !== m.sha256 || stored.bytes !== m.bytes || stored.agentId !== this.agentId) {
        return this.reject(id, 'id-conflict', 'a different snapshot is already stored under this id', false);
      }
      this.current = { id, sidecar: sidecarOf(this, m, r.now()), state: 'stored', fd: null, offset: m.bytes, hash: null };
      this.send({ type: 'snapshot-offset', snapshotId: id, offset: m.bytes });
      return;
    }

    const holder = r.active.get(id);
    if (holder && holder !== this) holder.yieldUpload(id);

    const partPath = snapshotPartPath(r.dir, id);
    const sidecarPath = snapshotPartMetaPath(r.dir, id);
    const finalPath = snapshotFilePath(r.dir, id, m.meta.kind);
    let upload: Upload;
    try {
      // Renamed but not recorded (the collector died between the two): verify it again as a .part.
      if (existsSync(finalPath) && !existsSync(partPath)) {
        renameSync(finalPath, partPath);
        r.log.warn('snapshot file without a row found; verifying it again', fields);
      }
      const previous = readSidecar(sidecarPath);
      if (previous && previous.agentId !== this.agentId) {
        return this.reject(id, 'id-conflict', 'another agent is uploading a snapshot with this id', false);
      }
      const sameContent = previous !== null && previous.bytes === m.bytes && previous.sha256 === m.sha256;
      const sidecar = sidecarOf(this, m, sameContent ? previous.beganAtMs : r.now());
      if (!sameContent) writeFileDurably(sidecarPath, JSON.stringify(sidecar));
      // Not O_APPEND: Linux ignores the position of a positional write on an O_APPEND descriptor.
      const fd = openSync(partPath, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
      fchmodSync(fd, 0o600);
      upload = { id, sidecar, state: 'preparing', fd, offset: 0, hash: createHash('sha256') };
      let size = fstatSync(fd).size;
      if (!sameContent || size > m.bytes) {
        if (size > 0) r.log.info('snapshot upload starts over: the held part does not belong to this content', { ...fields, heldBytes: size });
        ftruncateSync(fd, 0);
        size = 0;
      }
      this.current = upload;
      r.active.set(id, this);
      if (size > 0) await hashPrefix(partPath, size, upload.hash!);
      if (this.current !== upload || this.closed) return;
      upload.offset = size;
      upload.state = 'receiving';
      r.log.info(size > 0 ? 'snapshot upload resumes' : 'snapshot upload begins', { ...fields, offset: size, kind: m.meta.kind });
      this.send({ type: 'snapshot-offset', snapshotId: id, offset: size });
    } catch (err) {
      r.log.error('snapshot upload could not begin', { ...fields, error: errorText(err) });
      this.release();
      this.reject(id, 'store-failed', `the collector could not prepare the upload: ${errorText(err)}`, true);
    }
  }

  /** A binary frame. A malformed frame or one for no known upload is the peer's bug (counted by the caller). */
  chunk(data: Buffer): ChunkOutcome {
    const decoded = decodeChunkFrame(data);
    if (!decoded.ok) return { ok: false, code: 'bad-frame', error: decoded.error };
    const { snapshotId, offset, payload } = decoded.frame;
    const u = this.current;
    if (!u || u.id !== snapshotId) {
      if (this.discarding.has(snapshotId)) return { ok: true };
      return { ok: false, code: 'unknown-snapshot', error: `chunk for snapshot ${snapshotId}, which has no upload begun on this connection` };
    }
    if (u.state === 'preparing' || u.state === 'finishing' || u.state === 'stored') {
      this.rejectCurrent('unexpected-chunk', `chunk at ${offset} before snapshot-offset or after snapshot-end`, true);
      return { ok: true };
    }
    if (offset !== u.offset) {
      this.rejectCurrent('offset-mismatch', `chunk at offset ${offset}, expected ${u.offset} (${offset > u.offset ? 'a gap' : 'an overlap'}): begin again from the held offset`, true);
      return { ok: true };
    }
    if (offset + payload.length > u.sidecar.bytes) {
      this.rejectCurrent('past-end', `chunk ends at ${offset + payload.length}, past the declared size ${u.sidecar.bytes}`, true);
      return { ok: true };
    }
    try {
      let written = 0;
      while (written < payload.length) written += writeSync(u.fd!, payload, written, payload.length - written, offset + written);
    } catch (err) {
      this.receiver.log.error('snapshot chunk could not be written', { agentId: this.agentId, snapshotId, offset, error: errorText(err) });
      this.rejectCurrent('store-failed', `the collector could not write the chunk: ${errorText(err)}`, true);
      return { ok: true };
    }
    u.hash!.update(payload);
    u.offset += payload.length;
    return { ok: true };
  }

  end(m: SnapshotEndMessage): void {
    const r = this.receiver;
    const u = this.current;
    if (!u || u.id !== m.snapshotId) {
      if (this.discarding.has(m.snapshotId)) return;
      this.reject(m.snapshotId, 'unknown-snapshot', 'snapshot-end for an upload not begun on this connection', true);
      return;
    }
    const fields = { agentId: this.agentId, node: this.node, snapshotId: u.id, bytes: u.sidecar.bytes };
    if (m.bytes !== u.sidecar.bytes || m.sha256 !== u.sidecar.sha256) {
      return this.rejectCurrent('end-mismatch', 'snapshot-end names another size or sha256 than snapshot-begin', true, { dropPart: true });
    }
    if (u.state === 'stored') {
      this.current = null;
      this.send({ type: 'snapshot-stored', snapshotId: u.id, sha256: u.sidecar.sha256 });
      return;
    }
    if (u.state !== 'receiving') return this.rejectCurrent('unexpected-end', 'snapshot-end before snapshot-offset', true);
    if (u.offset !== u.sidecar.bytes) {
      r.log.warn('snapshot upload truncated; not listed', { ...fields, received: u.offset });
      return this.rejectCurrent('truncated', `received ${u.offset} of ${u.sidecar.bytes} bytes: send the rest from ${u.offset}`, true);
    }
    const digest = u.hash!.digest('hex');
    u.hash = null;
    if (digest !== u.sidecar.sha256) {
      r.log.warn('snapshot upload does not match its sha256; discarded, not listed', { ...fields, expected: u.sidecar.sha256, received: digest });
      return this.rejectCurrent('sha-mismatch', `the bytes received hash to ${digest}, not ${u.sidecar.sha256}: send it again from 0`, true, { dropPart: true });
    }
    u.state = 'finishing';
    const partPath = snapshotPartPath(r.dir, u.id);
    const finalPath = snapshotFilePath(r.dir, u.id, u.sidecar.meta.kind);
    const row: SnapshotRow = { ...u.sidecar.meta, node: this.node, agentId: this.agentId, bytes: u.sidecar.bytes, sha256: digest, storedAtMs: r.now() };
    try {
      fsyncSync(u.fd!);
      closeSync(u.fd!);
      u.fd = null;
      renameSync(partPath, finalPath);
      fsyncDir(r.dir);
    } catch (err) {
      r.log.error('snapshot could not be committed', { ...fields, error: errorText(err) });
      return this.rejectCurrent('store-failed', `the collector could not commit the file: ${errorText(err)}`, true);
    }
    try {
      r.store.insertSnapshot(row);
    } catch (err) {
      // Back to a .part: a file at the final name without a row would be a snapshot nobody lists.
      r.log.error('snapshot row could not be inserted; the file goes back to .part', { ...fields, error: errorText(err) });
      try {
        renameSync(finalPath, partPath);
      } catch {
        // begin() turns a final file without a row back into a .part anyway
      }
      return this.rejectCurrent('store-failed', `the collector could not record the snapshot: ${errorText(err)}`, true);
    }
    removeQuietly(snapshotPartMetaPath(r.dir, u.id));
    this.release();
    r.log.info('snapshot stored', { ...fields, sha256: digest, kind: row.kind, namespace: row.namespace, pod: row.pod });
    this.send({ type: 'snapshot-stored', snapshotId: u.id, sha256: digest });
    r.notifyStored(row);
  }

  /** The connection closed: the .part stays for the agent to resume. */
  close(): void {
    this.closed = true;
    this.release();
  }

  /** Another connection of the same agent took this upload over. */
  yieldUpload(id: string): void {
    if (this.current?.id === id) this.release();
    this.discarding.add(id);
  }

  private rejectCurrent(code: string, reason: string, restart: boolean, options: { dropPart?: boolean } = {}): void {
    const u = this.current;
    if (!u) return;
    this.release();
    if (options.dropPart) {
      removeQuietly(snapshotPartPath(this.receiver.dir, u.id));
      removeQuietly(snapshotPartMetaPath(this.receiver.dir, u.id));
    }
    this.reject(u.id, code, reason, restart);
  }

  private reject(id: string, code: string, reason: string, restart: boolean): void {
    this.discarding.add(id);
    this.receiver.log.warn('snapshot upload rejected', { agentId: this.agentId, node: this.node, snapshotId: id, code, reason, restart });
    this.send({ type: 'snapshot-rejected', snapshotId: id, code, reason, restart });
  }

  private release(): void {
    const u = this.current;
    if (!u) return;
    this.current = null;
    if (u.fd !== null) {
      try {
        closeSync(u.fd);
      } catch {
        // already closed
      }
      u.fd = null;
    }
    if (this.receiver.active.get(u.id) === this) this.receiver.active.delete(u.id);
  }
}

function sidecarOf(uploads: AgentUploads, m: SnapshotBeginMessage, beganAtMs: number): PartSidecar {
  return { agentId: uploads.agentId, node: uploads.node, bytes: m.bytes, sha256: m.sha256, meta: m.meta, beganAtMs };
}

function readSidecar(path: string): PartSidecar | null {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const v = JSON.parse(raw) as PartSidecar;
    const meta = validateSnapshotMeta(v.meta);
    if (typeof v.agentId !== 'string' || typeof v.bytes !== 'number' || typeof v.sha256 !== 'string' || !meta.ok) return null;
    return { ...v, meta: meta.value };
  } catch {
    // A torn sidecar (it is written atomically, so only by hand): the upload starts over.
    return null;
  }
}


function hashPrefix(path: string, bytes: number, hash: Hash): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = createReadStream(path, { start: 0, end: bytes - 1, highWaterMark: 1024 * 1024 });
    stream.on('data', (c) => hash.update(c as Buffer));
    stream.on('end', () => resolve());
    stream.on('error', reject);
  });
}


