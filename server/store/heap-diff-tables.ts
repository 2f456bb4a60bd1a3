// The heap_diffs table: one row per compared pair (earlier snapshot, later snapshot). Its pending
// rows are the diff queue, so nothing queued is lost when the collector stops. Rows go with their
// snapshots (retention deletes both in one transaction).
import type BetterSqlite3 from 'better-sqlite3';
import type { HeapDiffRecord, HeapDiffResult, HeapDiffStatus } from '../../protocol/heap-diff-record.js';

interface HeapDiffDbRow {
  snapshotA: string;
  snapshotB: string;
  findingId: string | null;
  status: HeapDiffStatus;
  reason: string | null;
  createdAtMs: number;
  finishedAtMs: number | null;
  resultJson: string | null;
}

function toRecord(r: HeapDiffDbRow): HeapDiffRecord {
  return {
    snapshotA: r.snapshotA,
    snapshotB: r.snapshotB,
    findingId: r.findingId,
    status: r.status,
    reason: r.reason,
    createdAtMs: r.createdAtMs,
    finishedAtMs: r.finishedAtMs,
    result: r.resultJson === null ? null : (JSON.parse(r.resultJson) as HeapDiffResult),
  };
}

/** A stored pair of heap snapshots (same agent, same pairId, index 0 and 1) without a diff row. */
export interface UndiffedPair {
  snapshotA: string;
  snapshotB: string;
  findingId: string | null;
}

export class HeapDiffTables {
  constructor(private readonly db: BetterSqlite3.Database) {}

  /** Adds a pending row; an existing row for the pair is left as it is. Returns the row now stored. */
  queueHeapDiff(a: string, b: string, findingId: string | null, nowMs: number): HeapDiffRecord {
    this.db
      .prepare(`INSERT OR IGNORE INTO heap_diffs (snapshotA, snapshotB, findingId, status, createdAtMs) VALUES (?, ?, ?, 'pending', ?)`)
      .run(a, b, findingId, nowMs);
    return this.getHeapDiff(a, b)!;
  }

  /** A failed row back to pending (an explicit retry). */
  requeueHeapDiff(a: string, b: string, nowMs: number): void {
    this.db
      .prepare(`UPDATE heap_diffs SET status = 'pending', reason = NULL, finishedAtMs = NULL, resultJson = NULL, createdAtMs = ? WHERE snapshotA = ? AND snapshotB = ? AND status = 'failed'`)
      .run(nowMs, a, b);
  }

  /** Sets the state of an existing row; false when the row is gone (its snapshots were deleted). */
  finishHeapDiff(a: string, b: string, update: { status: HeapDiffStatus; reason?: string | null; result?: HeapDiffResult | null; finishedAtMs?: number | null }): boolean {
    return (
      this.db
        .prepare(`UPDATE heap_diffs SET status = ?, reason = ?, resultJson = ?, finishedAtMs = ? WHERE snapshotA = ? AND snapshotB = ?`)
        .run(update.status, update.reason ?? null, update.result ? JSON.stringify(update.result) : null, update.finishedAtMs ?? null, a, b).changes > 0
    );
  }

  getHeapDiff(a: string, b: string): HeapDiffRecord | null {
    const r = this.db.prepare(`SELECT * FROM heap_diffs WHERE snapshotA = ? AND snapshotB = ?`).get(a, b) as HeapDiffDbRow | undefined;
    return r ? toRecord(r) : null;
  }

  /** Diffs of a finding (newest first), of a snapshot (either side), or in a status (oldest first: the queue order). */
  listHeapDiffs(filter: { findingId?: string; snapshotId?: string; status?: HeapDiffStatus; limit?: number }): HeapDiffRecord[] {
    const limit = filter.limit ?? 100;
    let rows: HeapDiffDbRow[];
    if (filter.findingId !== undefined) {
      rows = this.db.prepare(`SELECT * FROM heap_diffs WHERE findingId = ? ORDER BY createdAtMs DESC LIMIT ?`).all(filter.findingId, limit) as HeapDiffDbRow[];
    } else if (filter.snapshotId !== undefined) {
      rows = this.db
        .prepare(`SELECT * FROM heap_diffs WHERE snapshotA = ? UNION ALL SELECT * FROM heap_diffs WHERE snapshotB = ? ORDER BY createdAtMs DESC LIMIT ?`)
        .all(filter.snapshotId, filter.snapshotId, limit) as HeapDiffDbRow[];
    } else if (filter.status !== undefined) {
      rows = this.db.prepare(`SELECT * FROM heap_diffs WHERE status = ? ORDER BY createdAtMs, snapshotA LIMIT ?`).all(filter.status, limit) as HeapDiffDbRow[];
    } else {
      rows = this.db.prepare(`SELECT * FROM heap_diffs ORDER BY createdAtMs DESC LIMIT ?`).all(limit) as HeapDiffDbRow[];
    }
    return rows.map(toRecord);
  }

  countHeapDiffs(status: HeapDiffStatus): number {
    return (this.db.prepare(`SELECT COUNT(*) AS n FROM heap_diffs WHERE status = ?`).get(status) as { n: number }).n;
  }

  /**
   * Heap snapshot pairs stored whole (both indices, one agent) that have no diff row: a collector
   * that stopped between storing the second snapshot and queueing its diff. With `pairId`, only that pair.
   */
  undiffedPairs(pairId?: string): UndiffedPair[] {
    const rows = this.db.prepare(
        `SELECT a.snapshotId AS snapshotA, b.snapshotId AS snapshotB, COALESCE(b.findingId, a.findingId) AS findingId
         FROM snapshots a JOIN snapshots b
           ON json_extract(b.metaJson, '$.pairId') = json_extract(a.metaJson, '$.pairId') AND b.agentId = a.agentId
         WHERE json_extract(a.metaJson, '$.pairId') IS NOT NULL
           ${pairId !== undefined ? `AND json_extract(a.metaJson, '$.pairId') = @pairId` : ''}
           AND json_extract(a.metaJson, '$.pairIndex') = 0 AND json_extract(b.metaJson, '$.pairIndex') = 1
           AND a.kind = 'heapsnapshot' AND b.kind = 'heapsnapshot'
           AND NOT EXISTS (SELECT 1 FROM heap_diffs d WHERE d.snapshotA = a.snapshotId AND d.snapshotB = b.snapshotId)
         ORDER BY b.storedAtMs`,
    );
    return (pairId !== undefined ? rows.all({ pairId }) : rows.all()) as UndiffedPair[];
  }

  /** Running rows of a collector that stopped mid-diff go back to the queue. */
  resetRunning(): number {
    return this.db.prepare(`UPDATE heap_diffs SET status = 'pending' WHERE status = 'running'`).run().changes;
  }

  /** The diffs a deleted snapshot took part in. */
  deleteForSnapshot(snapshotId: string): number {
    return this.db.prepare(`DELETE FROM heap_diffs WHERE snapshotA = ? OR snapshotB = ?`).run(snapshotId, snapshotId).changes;
  }
}
