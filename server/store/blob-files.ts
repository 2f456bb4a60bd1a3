// Content-addressed files under one directory: `<dir>/<aa>/<sha256>`, where aa is the first two
// hex digits. A file appears under its final name only once its bytes are on disk, so a name that
// exists is always a complete blob whatever crashed when.
import { createHash } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { join, resolve, sep } from 'node:path';

export const SHA256_HEX = /^[0-9a-f]{64}$/;
const FAN_OUT_DIR = /^[0-9a-f]{2}$/;
const PART_SUFFIX = '.part';

export interface BlobFile {
  sha256: string;
  path: string;
  sizeBytes: number;
  /** Last time the blob was stored (a re-put of the same bytes refreshes it). */
  mtimeMs: number;
}

export interface PartFile {
  path: string;
  mtimeMs: number;
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

import { fsyncDir } from '../../common/durable-file.js';
export { fsyncDir };

export class BlobFiles {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  /** Create the directory (0700) if needed. */
  ensureDir(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /**
   * Store bytes under their sha256 and return it. Written as `.part`, fsynced, renamed, and the
   * directory fsynced: once this returns, the blob survives a crash. Storing bytes that are already
   * there only refreshes the file's mtime, which retention reads as "last stored".
   */
  put(bytes: Buffer): string {
    const sha = sha256Hex(bytes);
    const fanDir = join(this.dir, sha.slice(0, 2));
    const finalPath = join(fanDir, sha);
    const existing = statIfRegularFile(finalPath);
    if (existing && existing.size === bytes.length) {
      const now = new Date();
      utimesSync(finalPath, now, now);
      return sha;
    }
    let createdFanDir = false;
    try {
      mkdirSync(fanDir, { mode: 0o700 });
      createdFanDir = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const partPath = finalPath + PART_SUFFIX;
    const fd = openSync(partPath, 'w', 0o600);
    try {
      // The mode given to open is filtered by the umask and ignored for an existing leftover .part.
      fchmodSync(fd, 0o600);
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(partPath, finalPath);
    fsyncDir(fanDir);
    if (createdFanDir) fsyncDir(this.dir);
    return sha;
  }

  /**
   * Absolute path of a stored blob, or null: for anything but 64 lowercase hex digits, for a blob
   * that is not there, and for anything that is not a plain file inside the directory (a symlink
   * planted in place of a blob or of its fan-out directory is refused, not followed).
   */
  pathOf(sha256: string): string | null {
    if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) return null;
    const fanDir = join(this.dir, sha256.slice(0, 2));
    const path = join(fanDir, sha256);
    if (!path.startsWith(this.dir + sep)) return null;
    try {
      if (!lstatSync(fanDir).isDirectory()) return null;
    } catch {
      return null;
    }
    return statIfRegularFile(path) ? path : null;
  }

  /** The blob's bytes, or null when it is missing or its bytes no longer hash to its name. */
  read(sha256: string): Buffer | null {
    const path = this.pathOf(sha256);
    if (!path) return null;
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      return null;
    }
    return sha256Hex(bytes) === sha256 ? bytes : null;
  }

  /** Every blob and every leftover `.part` (a write that crashed before its rename). */
  scan(): { blobs: BlobFile[]; parts: PartFile[] } {
    const blobs: BlobFile[] = [];
    const parts: PartFile[] = [];
    let fanDirs: string[];
    try {
      fanDirs = readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { blobs, parts };
      throw err;
    }
    for (const fan of fanDirs) {
      if (!FAN_OUT_DIR.test(fan)) continue;
      const fanDir = join(this.dir, fan);
      let names: string[];
      try {
        if (!lstatSync(fanDir).isDirectory()) continue;
        names = readdirSync(fanDir);
      } catch {
        continue;
      }
      for (const name of names) {
        const path = join(fanDir, name);
        const st = statIfRegularFile(path);
        if (!st) continue;
        if (name.endsWith(PART_SUFFIX)) parts.push({ path, mtimeMs: st.mtimeMs });
        else if (SHA256_HEX.test(name) && name.startsWith(fan)) blobs.push({ sha256: name, path, sizeBytes: st.size, mtimeMs: st.mtimeMs });
      }
    }
    return { blobs, parts };
  }

  /** Remove a blob or a `.part` by path; false when it was already gone. */
  remove(path: string): boolean {
    if (!resolve(path).startsWith(this.dir + sep)) throw new Error(`refusing to delete ${path}: outside ${this.dir}`);
    try {
      unlinkSync(path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }
}

function statIfRegularFile(path: string): { size: number; mtimeMs: number } | null {
  try {
    const st = lstatSync(path);
    return st.isFile() ? { size: st.size, mtimeMs: st.mtimeMs } : null;
  } catch {
    return null;
  }
}
