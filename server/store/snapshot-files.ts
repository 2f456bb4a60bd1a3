// Where snapshot files live in the data directory: `snapshots/<id>.heapsnapshot|.heapprofile` once
// verified, `snapshots/<id>.part` (and its `<id>.part.json` sidecar) while an upload is under way.
// Names are built only from ids that match SNAPSHOT_ID_PATTERN, so nothing from a request or a
// peer ever becomes a path.
import { join, resolve } from 'node:path';
import { SNAPSHOT_ID_PATTERN, type SnapshotKind } from '../../protocol/snapshots.js';

export const SNAPSHOT_DIR = 'snapshots';

export function snapshotDir(dataDir: string): string {
  return join(resolve(dataDir), SNAPSHOT_DIR);
}

function checkedId(snapshotId: string): string {
  if (!SNAPSHOT_ID_PATTERN.test(snapshotId)) throw new RangeError('snapshot id must be 32 lowercase hex characters');
  return snapshotId;
}

export function snapshotFilePath(dir: string, snapshotId: string, kind: SnapshotKind): string {
  return join(dir, `${checkedId(snapshotId)}.${kind}`);
}

export function snapshotPartPath(dir: string, snapshotId: string): string {
  return join(dir, `${checkedId(snapshotId)}.part`);
}

export function snapshotPartMetaPath(dir: string, snapshotId: string): string {
  return join(dir, `${checkedId(snapshotId)}.part.json`);
}

/** `<id>.part` / `<id>.part.json` / `<id>.heapsnapshot` → what it is, or null for anything else. */
export function parseSnapshotFileName(name: string): { snapshotId: string; kind: 'part' | 'part-meta' | SnapshotKind } | null {
  const m = /^([0-9a-f]{32})\.(part|part\.json|heapsnapshot|heapprofile)$/.exec(name);
  if (!m) return null;
  const kind = m[2] === 'part.json' ? 'part-meta' : (m[2] as 'part' | SnapshotKind);
  return { snapshotId: m[1]!, kind };
}
