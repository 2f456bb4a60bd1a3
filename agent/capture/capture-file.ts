// A capture file being written: 0600 from its first byte (snapshots hold secrets), sha256 computed
// on the way, one write in flight at a time, fsynced before anyone is told it is complete.
import { createHash, type Hash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';

const batchLimitBytes = 1024 * 1024;

export class CaptureFile {
  private readonly hash: Hash = createHash('sha256');
  private bytesWritten = 0;
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private writing: Promise<void> | null = null;
  private error: Error | null = null;
  private idleWaiters: Array<() => void> = [];
  private lowWaiters: Array<() => void> = [];

  private constructor(readonly path: string, private readonly fh: FileHandle) {}

  static async create(path: string): Promise<CaptureFile> {
    // 'wx': never overwrite or follow an existing name.
    return new CaptureFile(path, await open(path, 'wx', 0o600));
  }

  get bytes(): number {
    return this.bytesWritten;
  }

  /** Chunks waiting for the disk: the caller pauses its source while this is not small. */
  get backlog(): number {
    return this.queue.length;
  }

  get backlogBytes(): number {
    return this.queuedBytes;
  }

  get failed(): Error | null {
    return this.error;
  }

  /** Queues bytes (the buffer becomes ours) and starts writing them. */
  push(bytes: Buffer): void {
    if (this.error || bytes.length === 0) return;
    this.hash.update(bytes);
    this.queue.push(bytes);
    this.queuedBytes += bytes.length;
    if (!this.writing) this.writing = this.drain();
  }

  /** Resolves when every queued byte is written (or writing failed). */
  idle(): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Calls cb once at most one chunk is left waiting (the source may resume). */
  onLow(cb: () => void): void {
    if (this.queue.length <= 1) cb();
    else this.lowWaiters.push(cb);
  }

  /** Writes what is queued, fsyncs and closes. Returns size and digest of what is on disk. */
  async finish(): Promise<{ bytes: number; sha256: string }> {
    await this.idle();
    if (this.error) throw this.error;
    await this.fh.sync();
    await this.fh.close();
    return { bytes: this.bytesWritten, sha256: this.hash.digest('hex') };
  }

  /** Closes and removes the file: an incomplete capture is never handed on. */
  async discard(): Promise<void> {
    await this.idle();
    await this.fh.close().catch(() => {});
    await rm(this.path, { force: true });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        // Small chunks (Node 20 sends 100 KiB) are written together, up to 1 MiB: fewer syscalls
        // without a big copy (Node 22+ chunks are 1 MiB already and go alone).
        let n = 1;
        let size = this.queue[0]!.length;
        while (n < this.queue.length && size + this.queue[n]!.length <= batchLimitBytes) size += this.queue[n++]!.length;
        const batch = n === 1 ? this.queue[0]! : Buffer.concat(this.queue.slice(0, n), size);
        let off = 0;
        while (off < batch.length) {
          const { bytesWritten } = await this.fh.write(batch, off, batch.length - off);
          off += bytesWritten;
        }
        this.queue.splice(0, n);
        this.queuedBytes -= batch.length;
        this.bytesWritten += batch.length;
        if (this.queue.length <= 1) for (const w of this.lowWaiters.splice(0)) w();
      }
    } catch (err) {
      this.error = err as Error;
      this.queue = [];
      this.queuedBytes = 0;
    } finally {
      this.writing = null;
      for (const w of this.lowWaiters.splice(0)) w();
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
