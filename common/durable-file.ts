// Small files that must survive a crash whole or not at all (spool sidecars, capture reports,
// upload checkpoints): written beside the target, fsynced, then renamed over it. A reader sees the
// old content or the new, never half of either. Both sides (agent and collector) use these.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** fsync a directory so a rename or a new entry in it survives a power loss, not only the file's bytes. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replace `path` with `text` (mode 0600) through `<path>.tmp`. With `syncDir` the rename itself is
 * made durable too: needed when the file's existence is what a later step relies on.
 */
export function writeFileDurably(path: string, text: string, options: { syncDir?: boolean } = {}): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  if (options.syncDir) fsyncDir(dirname(path));
}

/** Remove a file that may already be gone. */
export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
