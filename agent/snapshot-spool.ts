// The agent's outgoing snapshot spool: finished captures wait here for the collector, bounded on
// disk, and survive a restart of the agent. Each snapshot is two files in `<spoolDir>/snapshots`:
// `<id>.<kind>` (the bytes, 0600) and `<id>.json` (what the collector needs: meta, size, sha256),
// the sidecar written first and atomically, the bytes renamed in last, so a complete pair is a
// complete snapshot whatever crashed when. A file leaves only when the collector said
// `snapshot-stored` (or refused it for good). When a capture would not fit, accept() throws
// SpoolFullError: the new capture is refused and reported, the older ones are never dropped.
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, chmodSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { SNAPSHOT_ID_PATTERN, type SnapshotMeta } from '../protocol/snapshots.js';
import { validateSnapshotMeta } from '../protocol/validate.js';
import { SpoolFullError, type CapturedFile, type SnapshotSink } from './capture/types.js';
import { errorText, fsyncDir, removeQuietly, writeFileDurably } from '../common/durable-file.js';

export const DEFAULT_SNAPSHOT_SPOOL_MAX_BYTES = 2 * 1024 ** 3;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;

export interface SpooledSnapshot {
  meta: SnapshotMeta;
  bytes: number;
  sha256: string;
  acceptedAtMs: number;
  /** The bytes. */
  path: string;
}

export interface SnapshotSpoolOptions {
  /** The agent's spool directory; snapshots go to `<spoolDir>/snapshots`. */
  spoolDir: string;
  /** Bound on the bytes of spooled snapshots. Default 2 GiB. */
  maxBytes?: number;
  log?: Logger;
  now?: () => number;
}

type Listener = () => void;

export class SnapshotSpool implements SnapshotSink {
  readonly dir: string;
  readonly workDir: string;
  readonly maxBytes: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly entries = new Map<string, SpooledSnapshot>();
  private usedBytes = 0;
  private readonly listeners = new Set<Listener>();

  constructor(options: SnapshotSpoolOptions) {
    this.dir = join(resolve(options.spoolDir), 'snapshots');
    this.workDir = join(this.dir, 'work');
    this.maxBytes = options.maxBytes ?? DEFAULT_SNAPSHOT_SPOOL_MAX_BYTES;
    if (!Number.isSafeInteger(this.maxBytes) || this.maxBytes <= 0) throw new RangeError(`snapshot spool bound must be a positive number of bytes, got ${this.maxBytes}`);
    this.log = options.log ?? silentLogger;
    this.now = options.now ?? Date.now;
    try {
      mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
      chmodSync(this.dir, 0o700);
      chmodSync(this.workDir, 0o700);
    } catch (err) {
      throw new Error(`spool directory ${resolve(options.spoolDir)}: cannot hold snapshots in ${this.dir}: ${errorText(err)} (set --spool-dir to a writable directory)`);
    }
    this.recover();
  }

  /** Bytes of spooled snapshots. */
  get bytes(): number {
    return this.usedBytes;
  }

  get size(): number {
    return this.entries.size;
  }

  freeBytes(): number {
    return Math.max(0, this.maxBytes - this.usedBytes);
  }

  /** Oldest first: the order they go to the collector. */
  list(): SpooledSnapshot[] {
    return [...this.entries.values()].sort((a, b) => a.acceptedAtMs - b.acceptedAtMs || a.meta.snapshotId.localeCompare(b.meta.snapshotId));
  }

  get(snapshotId: string): SpooledSnapshot | null {
    return this.entries.get(snapshotId) ?? null;
  }

  /** Called whenever a snapshot is added (the uplink starts uploading). */
  onAdded(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async accept(file: CapturedFile): Promise<void> {
    const checked = validateSnapshotMeta(file.meta);
    if (!checked.ok) throw new Error(`snapshot meta does not match the protocol: ${checked.error}`);
    const meta = checked.value;
    const id = meta.snapshotId;
    if (!SHA256_PATTERN.test(file.sha256)) throw new Error(`snapshot ${id}: sha256 must be 64 lowercase hex characters`);
    if (this.entries.has(id)) throw new Error(`snapshot ${id} is already in the spool`);
    const st = lstatSync(file.path);
    if (!st.isFile()) throw new Error(`snapshot ${id}: ${file.path} is not a regular file`);
    if (st.size !== file.bytes) throw new Error(`snapshot ${id}: ${file.path} holds ${st.size} bytes, the capture said ${file.bytes}`);
    if (file.bytes === 0) throw new Error(`snapshot ${id}: the capture is empty`);
    if (file.bytes > this.freeBytes()) {
      throw new SpoolFullError(
        `the snapshot spool is full: ${file.bytes} bytes do not fit in the ${this.freeBytes()} left of ${this.maxBytes} (${this.entries.size} snapshots wait for the collector)`,
      );
    }
    const path = join(this.dir, `${id}.${meta.kind}`);
    const entry: SpooledSnapshot = { meta, bytes: file.bytes, sha256: file.sha256, acceptedAtMs: this.now(), path };
    // Sidecar first: bytes without a sidecar could never be uploaded; a sidecar without bytes is dropped at rescan.
    writeFileDurably(join(this.dir, `${id}.json`), JSON.stringify({ meta, bytes: entry.bytes, sha256: entry.sha256, acceptedAtMs: entry.acceptedAtMs }), { syncDir: true });
    try {
      chmodSync(file.path, 0o600);
      renameSync(file.path, path);
      fsyncDir(this.dir);
    } catch (err) {
      removeQuietly(join(this.dir, `${id}.json`));
      throw new Error(`snapshot ${id} could not be moved into the spool: ${errorText(err)}`);
    }
    this.entries.set(id, entry);
    this.usedBytes += entry.bytes;
    this.log.info('snapshot spooled', { snapshotId: id, kind: meta.kind, bytes: entry.bytes, spooledBytes: this.usedBytes, spooled: this.entries.size });
    for (const l of [...this.listeners]) l();
  }

  /** The collector stored it (or refused it for good): the local copy goes. */
  remove(snapshotId: string, why: string): void {
    const entry = this.entries.get(snapshotId);
    if (!entry) return;
    this.entries.delete(snapshotId);
    this.usedBytes -= entry.bytes;
    removeQuietly(entry.path);
    removeQuietly(join(this.dir, `${snapshotId}.json`));
    try {
      fsyncDir(this.dir);
    } catch {
      // a later rescan deals with it
    }
    this.log.info('snapshot removed from the spool', { snapshotId, why, bytes: entry.bytes, spooledBytes: this.usedBytes });
  }

  /**
   * Rescan after a restart: complete pairs are queued again (oldest first); half-written files
   * (`.tmp`, work files, a sidecar or bytes without the other, sizes that disagree) go, logged.
   */
  private recover(): void {
    const dropped: Array<{ file: string; why: string }> = [];
    for (const name of readdirSync(this.workDir)) {
      removeQuietly(join(this.workDir, name));
      dropped.push({ file: join(this.workDir, name), why: 'capture interrupted by a restart' });
    }
    const names = readdirSync(this.dir);
    const sidecars = new Map<string, string>();
    const data = new Map<string, string>();
    for (const name of names) {
      const path = join(this.dir, name);
      if (name === 'work') continue;
      if (name.endsWith('.tmp')) {
        removeQuietly(path);
        dropped.push({ file: path, why: 'left half-written' });
        continue;
      }
      const m = /^([0-9a-f]{32})\.(json|heapsnapshot|heapprofile)$/.exec(name);
      if (!m) {
        this.log.warn('unexpected file in the snapshot spool; left alone', { path });
        continue;
      }
      if (m[2] === 'json') sidecars.set(m[1]!, path);
      else data.set(m[1]!, path);
    }
    for (const [id, sidecarPath] of sidecars) {
      const dataPath = data.get(id);
      data.delete(id);
      const entry = dataPath ? readEntry(sidecarPath, dataPath) : null;
      if (!entry || !dataPath) {
        removeQuietly(sidecarPath);
        if (dataPath) removeQuietly(dataPath);
        dropped.push({ file: dataPath ?? sidecarPath, why: dataPath ? 'sidecar unreadable or disagrees with the file' : 'sidecar without its bytes' });
        continue;
      }
      this.entries.set(id, entry);
      this.usedBytes += entry.bytes;
    }
    for (const [, path] of data) {
      removeQuietly(path);
      dropped.push({ file: path, why: 'bytes without their sidecar' });
    }
    for (const d of dropped) this.log.warn('snapshot spool: dropped a leftover file', d);
    if (this.entries.size > 0 || dropped.length > 0) {
      this.log.info('snapshot spool recovered', { dir: this.dir, snapshots: this.entries.size, bytes: this.usedBytes, droppedFiles: dropped.length });
    }
  }
}

/** The spool for `leakwatch agent` / `leakwatch up`: the lead wires it into startAgent's capture option. */
export function createSnapshotSpool(options: SnapshotSpoolOptions): SnapshotSpool {
  return new SnapshotSpool(options);
}

function readEntry(sidecarPath: string, dataPath: string): SpooledSnapshot | null {
  try {
    const v = JSON.parse(readFileSync(sidecarPath, 'utf8')) as { meta: unknown; bytes: unknown; sha256: unknown; acceptedAtMs: unknown };
    const meta = validateSnapshotMeta(v.meta);
    if (!meta.ok || typeof v.bytes !== 'number' || typeof v.sha256 !== 'string' || !SHA256_PATTERN.test(v.sha256) || typeof v.acceptedAtMs !== 'number') return null;
    if (meta.value.snapshotId !== basename(sidecarPath, '.json') || !SNAPSHOT_ID_PATTERN.test(meta.value.snapshotId)) return null;
    if (`${meta.value.snapshotId}.${meta.value.kind}` !== basename(dataPath)) return null;
    if (lstatSync(dataPath).size !== v.bytes) return null;
    return { meta: meta.value, bytes: v.bytes, sha256: v.sha256, acceptedAtMs: v.acceptedAtMs, path: dataPath };
  } catch {
    return null;
  }
}




