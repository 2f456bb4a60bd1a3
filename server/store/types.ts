// The collector's storage, behind one narrow interface: the embedded default is SQLite (WAL)
// plus files by sha256 in one data directory; a deployment that outgrows one collector can put
// PostgreSQL and object storage behind the same methods.
import type { Finding, FindingKind, FindingStatus } from '../../protocol/findings.js';
import type { FindingChange, SeriesPoint, TargetInfo } from '../../protocol/messages.js';
import type { HeapDiffRecord, HeapDiffResult, HeapDiffStatus } from '../../protocol/heap-diff-record.js';
import type { CaptureOutcome, CaptureReport } from '../../protocol/snapshots.js';
import type { UndiffedPair } from './heap-diff-tables.js';
import type { AgentRow, SnapshotRow, TargetRow } from '../../protocol/api-rows.js';

export type { AgentRow, SnapshotRow, TargetRow };

export interface SnapshotFilter {
  namespace?: string;
  pod?: string;
  container?: string;
  targetKey?: string;
  node?: string;
  findingId?: string;
  limit?: number;
  offset?: number;
}

export interface CaptureFilter {
  namespace?: string;
  pod?: string;
  targetKey?: string;
  findingId?: string;
  outcome?: CaptureOutcome;
  limit?: number;
}

export interface FindingFilter {
  kind?: FindingKind;
  status?: FindingStatus;
  node?: string;
  namespace?: string;
  pod?: string;
  /** updatedAt >= since (epoch ms). */
  since?: number;
  limit?: number;
  offset?: number;
}

/** A target list is a page: counting each target's findings costs an index probe per row. */
export const TARGET_PAGE_DEFAULT = 100;
export const TARGET_PAGE_MAX = 1000;

export interface TargetFilter {
  node?: string;
  namespace?: string;
  pod?: string;
  /** 1..TARGET_PAGE_MAX; default TARGET_PAGE_DEFAULT. */
  limit?: number;
  offset?: number;
}

export interface AuditEntry {
  atMs: number;
  /** Name of the token that acted (never the token itself). */
  actor: string;
  /** e.g. 'snapshot.download', 'finding.read', 'token.rejected'. */
  action: string;
  subject: string;
  detail?: string;
  remote?: string;
}

export interface AuditRow extends AuditEntry {
  id: number;
}

export interface RetentionPolicy {
  /** Findings resolved longer ago than this, their series and unreferenced blobs go. */
  maxAgeMs: number;
  /** Blob files beyond this total are deleted oldest first. */
  maxBlobBytes: number;
  /** Snapshots stored longer ago than this go. Default: maxAgeMs. */
  maxSnapshotAgeMs?: number;
  /** Snapshot files beyond this total are deleted oldest first. Default: maxBlobBytes. */
  maxSnapshotBytes?: number;
}

export interface RetentionReport {
  findingsDeleted: number;
  seriesPointsDeleted: number;
  blobsDeleted: number;
  bytesFreed: number;
  /** Snapshots deleted by age or by the bytes bound, and orphan upload leftovers. */
  snapshotsDeleted?: number;
  snapshotBytesFreed?: number;
}

export interface Store {
  /** Upsert an agent; connected toggles with its WebSocket. */
  recordAgent(agent: { agentId: string; node: string; version: string; atMs: number; connected: boolean; droppedFindings?: number }): void;
  /**
   * Store finding changes from one agent in ONE transaction, durable (fsynced WAL) when this
   * returns: the collector acknowledges to the agent only after it returns. Idempotent per
   * finding id and updatedAt, so a batch re-sent after a lost ack changes nothing.
   */
  ingestFindings(node: string, events: Array<{ change: FindingChange; finding: Finding }>): void;
  /** Store targets and their points (downsampled on the way in or by retention), durable on return. */
  ingestSeries(node: string, targets: TargetInfo[], points: SeriesPoint[]): void;
  listAgents(): AgentRow[];
  /** Most recently seen first, one page (see TargetFilter); a limit past TARGET_PAGE_MAX is a RangeError. */
  listTargets(filter?: TargetFilter): TargetRow[];
  listFindings(filter?: FindingFilter): Finding[];
  /** One finding with its evidence (script content re-attached from its blob), or null. */
  getFinding(id: string): Finding | null;
  series(node: string, targetKey: string, range?: { sinceMs?: number; untilMs?: number; maxPoints?: number }): SeriesPoint[];
  /** Write a blob (atomically: .part, fsync, rename) and return its sha256. */
  putBlob(bytes: Buffer): string;
  /** Absolute path of a stored blob, or null; `sha256` must be 64 hex (anything else is null). */
  blobPath(sha256: string): string | null;
  audit(entry: AuditEntry): void;
  listAudit(filter?: { since?: number; action?: string; limit?: number }): AuditRow[];
  /** The data directory: snapshot files live in `<dataDir>/snapshots`. */
  readonly dataDir: string;
  /**
   * Record a verified snapshot whose file is already at its final name; durable on return.
   * Idempotent per snapshotId.
   */
  insertSnapshot(row: SnapshotRow): void;
  getSnapshot(snapshotId: string): SnapshotRow | null;
  listSnapshots(filter?: SnapshotFilter): SnapshotRow[];
  /** Every capture attempt, refusals included; idempotent per captureId (a re-sent report changes nothing). */
  recordCapture(report: CaptureReport): void;
  listCaptures(filter?: CaptureFilter): CaptureReport[];
  /** Queue a diff of two heap snapshots (a earlier); an existing row for the pair is kept. Returns the stored row. */
  queueHeapDiff(snapshotA: string, snapshotB: string, findingId: string | null): HeapDiffRecord;
  /** A failed diff back to pending. */
  requeueHeapDiff(snapshotA: string, snapshotB: string): void;
  /** Record the state of a queued diff; false when its row is gone (snapshots deleted meanwhile). */
  finishHeapDiff(snapshotA: string, snapshotB: string, update: { status: HeapDiffStatus; reason?: string | null; result?: HeapDiffResult | null; finishedAtMs?: number | null }): boolean;
  getHeapDiff(snapshotA: string, snapshotB: string): HeapDiffRecord | null;
  listHeapDiffs(filter: { findingId?: string; snapshotId?: string; status?: HeapDiffStatus; limit?: number }): HeapDiffRecord[];
  countHeapDiffs(status: HeapDiffStatus): number;
  /** Stored heap snapshot pairs without a diff row (all, or the one pairId). */
  undiffedPairs(pairId?: string): UndiffedPair[];
  /** Diffs left 'running' by a collector that stopped go back to 'pending'; returns how many. */
  resetRunningHeapDiffs(): number;
  applyRetention(policy: RetentionPolicy, nowMs: number, log: (msg: string, fields: Record<string, unknown>) => void): RetentionReport;
  close(): void;
}
