// The snapshot and capture rows of the SQLite store, and the retention of snapshot files. Kept
// apart from sqlite-store.ts (which delegates here) so the snapshot schema reads in one place.
import type BetterSqlite3 from 'better-sqlite3';
import { lstatSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { CaptureReport, SnapshotMeta } from '../../protocol/snapshots.js';
import { fsyncDir } from './blob-files.js';
import { parseSnapshotFileName, snapshotFilePath } from './snapshot-files.js';
import type { CaptureFilter, SnapshotFilter, SnapshotRow } from './types.js';

const DEFAULT_LIST_LIMIT = 1000;
/** A `.part` untouched this long is an upload nobody will finish. */
export const ORPHAN_PART_AGE_MS = 24 * 60 * 60 * 1000;

interface SnapshotDbRow {
  snapshotId: string;
  node: string;
  agentId: string;
  bytes: number;
  sha256: string;
  storedAtMs: number;
  metaJson: string;
}

function toRow(r: SnapshotDbRow): SnapshotRow {
  const meta = JSON.parse(r.metaJson) as SnapshotMeta;
  return { ...meta, snapshotId: r.snapshotId, node: r.node, agentId: r.agentId, bytes: r.bytes, sha256: r.sha256, storedAtMs: r.storedAtMs };
}

function metaOf(row: SnapshotRow): SnapshotMeta {
  const { node: _n, agentId: _a, bytes: _b, sha256: _s, storedAtMs: _t, ...meta } = row;
  return meta;
}

export class SnapshotTables {
  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly dir: string,
  ) {}

  insertSnapshot(row: SnapshotRow): void {
    this.db
      .prepare(
        `INSERT OR IGNORE INTO snapshots (snapshotId, node, agentId, kind, targetKey, namespace, pod, container, findingId, takenAtMs, storedAtMs, bytes, sha256, metaJson)
         VALUES (@snapshotId, @node, @agentId, @kind, @targetKey, @namespace, @pod, @container, @findingId, @takenAtMs, @storedAtMs, @bytes, @sha256, @metaJson)`,
      )
      .run({
        snapshotId: row.snapshotId,
        node: row.node,
        agentId: row.agentId,
        kind: row.kind,
        targetKey: row.targetKey,
        namespace: row.namespace,
        pod: row.pod,
        container: row.container,
        findingId: row.findingId,
        takenAtMs: row.takenAtMs,
        storedAtMs: row.storedAtMs,
        bytes: row.bytes,
        sha256: row.sha256,
        metaJson: JSON.stringify(metaOf(row)),
      });
  }

  getSnapshot(snapshotId: string): SnapshotRow | null {
    const r = this.db.prepare(`SELECT * FROM snapshots WHERE snapshotId = ?`).get(snapshotId) as SnapshotDbRow | undefined;
    return r ? toRow(r) : null;
  }

  listSnapshots(filter: SnapshotFilter = {}): SnapshotRow[] {
    const where: string[] = [];
    const args: Record<string, unknown> = {};
    for (const key of ['namespace', 'pod', 'container', 'targetKey', 'node', 'findingId'] as const) {
      const v = filter[key];
      if (v === undefined) continue;
      where.push(`${key} = @${key}`);
      args[key] = v;
    }
    args.limit = filter.limit ?? DEFAULT_LIST_LIMIT;
    args.offset = filter.offset ?? 0;
    const sql = `SELECT * FROM snapshots ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY storedAtMs DESC, snapshotId LIMIT @limit OFFSET @offset`;
    return (this.db.prepare(sql).all(args) as SnapshotDbRow[]).map(toRow);
  }

  recordCapture(report: CaptureReport, receivedMs: number): void {
    this.db
      .prepare(
        `INSERT OR IGNORE INTO captures (captureId, node, atMs, namespace, pod, targetKey, findingId, outcome, reportJson, receivedMs)
         VALUES (@captureId, @node, @atMs, @namespace, @pod, @targetKey, @findingId, @outcome, @reportJson, @receivedMs)`,
      )
      .run({
        captureId: report.captureId,
        node: report.node,
        atMs: report.atMs,
        namespace: report.namespace,
        pod: report.pod,
        targetKey: report.targetKey,
        findingId: report.findingId,
        outcome: report.outcome,
        reportJson: JSON.stringify(report),
        receivedMs,
      });
  }

  listCaptures(filter: CaptureFilter = {}): CaptureReport[] {
    const where: string[] = [];
    const args: Record<string, unknown> = {};
    for (const key of ['namespace', 'pod', 'targetKey', 'findingId', 'outcome'] as const) {
      const v = filter[key];
      if (v === undefined) continue;
      where.push(`${key} = @${key}`);
      args[key] = v;
    }
    args.limit = filter.limit ?? DEFAULT_LIST_LIMIT;
    const sql = `SELECT reportJson FROM captures ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY atMs DESC, captureId LIMIT @limit`;
    return (this.db.prepare(sql).pluck().all(args) as string[]).map((j) => JSON.parse(j) as CaptureReport);
  }

  /**
   * Snapshots stored before `nowMs - maxAgeMs`, then the oldest while the total is over maxBytes;
   * captures older than maxAgeMs; `.part` uploads untouched for a day. The row goes first (so a
   * snapshot is never listed without its file), then the file; each deletion is logged.
   */
  retain(
    policy: { maxAgeMs: number; maxBytes: number; captureMaxAgeMs: number },
    nowMs: number,
    log: (msg: string, fields: Record<string, unknown>) => void,
  ): { deleted: number; bytesFreed: number } {
    const out = { deleted: 0, bytesFreed: 0 };
    const rows = this.db.prepare(`SELECT snapshotId, node, kind, namespace, pod, bytes, storedAtMs FROM snapshots ORDER BY storedAtMs, snapshotId`).all() as Array<{
      snapshotId: string;
      node: string;
      kind: 'heapsnapshot' | 'heapprofile';
      namespace: string | null;
      pod: string | null;
      bytes: number;
      storedAtMs: number;
    }>;
    let total = rows.reduce((n, r) => n + r.bytes, 0);
    const del = this.db.prepare(`DELETE FROM snapshots WHERE snapshotId = ?`);
    // A diff goes with either of its snapshots: its growers describe files no longer kept.
    const delDiffs = this.db.prepare(`DELETE FROM heap_diffs WHERE snapshotA = ? OR snapshotB = ?`);
    let removedAny = false;
    for (const r of rows) {
      const tooOld = r.storedAtMs < nowMs - policy.maxAgeMs;
      const overBytes = total > policy.maxBytes;
      if (!tooOld && !overBytes) continue;
      del.run(r.snapshotId);
      const diffs = delDiffs.run(r.snapshotId, r.snapshotId).changes;
      try {
        unlinkSync(snapshotFilePath(this.dir, r.snapshotId, r.kind));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      removedAny = true;
      total -= r.bytes;
      out.deleted++;
      out.bytesFreed += r.bytes;
      log('retention: deleted snapshot', {
        snapshotId: r.snapshotId,
        node: r.node,
        namespace: r.namespace,
        pod: r.pod,
        bytes: r.bytes,
        storedAtMs: r.storedAtMs,
        reason: tooOld ? 'age' : 'bytes',
        heapDiffsDeleted: diffs,
      });
    }
    const captures = this.db.prepare(`DELETE FROM captures WHERE atMs < ?`).run(nowMs - policy.captureMaxAgeMs).changes;
    if (captures > 0) log('retention: deleted capture reports', { captures, olderThanMs: nowMs - policy.captureMaxAgeMs });
    if (cleanOrphanParts(this.dir, nowMs, log) > 0) removedAny = true;
    if (removedAny) fsyncDir(this.dir);
    return out;
  }
}

/**
 * Removes `.part` uploads (and sidecars) untouched for a day: an agent that never came back.
 * Returns how many files went. Each is logged.
 */
export function cleanOrphanParts(dir: string, nowMs: number, log: (msg: string, fields: Record<string, unknown>) => void, maxAgeMs = ORPHAN_PART_AGE_MS): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  // A .part and its sidecar go together, judged by the newer of the two (appends touch the .part only).
  const uploads = new Map<string, Array<{ path: string; bytes: number; mtimeMs: number }>>();
  for (const name of names) {
    const parsed = parseSnapshotFileName(name);
    if (!parsed || (parsed.kind !== 'part' && parsed.kind !== 'part-meta')) continue;
    const path = join(dir, name);
    try {
      const st = lstatSync(path);
      const files = uploads.get(parsed.snapshotId) ?? [];
      files.push({ path, bytes: st.size, mtimeMs: st.mtimeMs });
      uploads.set(parsed.snapshotId, files);
    } catch {
      // gone meanwhile
    }
  }
  for (const [snapshotId, files] of uploads) {
    const newest = Math.max(...files.map((f) => f.mtimeMs));
    if (nowMs - newest < maxAgeMs) continue;
    for (const f of files) {
      try {
        unlinkSync(f.path);
        removed++;
        log('deleted orphan snapshot upload', { snapshotId, path: f.path, bytes: f.bytes, modifiedAtMs: Math.round(f.mtimeMs) });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  return removed;
}
