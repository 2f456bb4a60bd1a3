// The embedded Store: one data directory holding `leakwatch.db` (SQLite in WAL mode) and
// `blobs/<aa>/<sha256>` (evidence files by content). One collector owns a data directory at a time.
//
// Durability: `synchronous = FULL`, so every commit fsyncs the WAL before it returns. The
// collector acknowledges a batch to the agent as soon as ingestFindings returns, and the agent
// then forgets it; in WAL mode NORMAL only fsyncs at checkpoints, so an OS crash or power loss
// could roll back batches that were already acknowledged — lost for good. (A killed process loses
// nothing under either setting: the WAL is in the page cache.) FULL costs one fsync per commit
// (~0.3 ms on this disk), which is why callers should batch; see ingestFindingBatches.
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Finding, FindingKind, FindingStatus, ScriptEvidence } from '../../protocol/findings.js';
import type { FindingChange, SeriesPoint, TargetInfo } from '../../protocol/messages.js';
import { BlobFiles, fsyncDir } from './blob-files.js';
import { downsample, mergeBucket, bucketStart, type StoredPoint } from './series-buckets.js';
import { inspectSchema, migrate, SCHEMA_VERSION } from './sqlite-schema.js';
import { snapshotDir } from './snapshot-files.js';
import { SnapshotTables } from './snapshot-tables.js';
import { HeapDiffTables, type UndiffedPair } from './heap-diff-tables.js';
import type { HeapDiffRecord, HeapDiffResult, HeapDiffStatus } from '../../protocol/heap-diff-record.js';
import type { CaptureReport } from '../../protocol/snapshots.js';
import { TARGET_PAGE_DEFAULT, TARGET_PAGE_MAX } from './types.js';
import type {
  AgentRow,
  AuditEntry,
  AuditRow,
  CaptureFilter,
  FindingFilter,
  SnapshotFilter,
  SnapshotRow,
  RetentionPolicy,
  RetentionReport,
  Store,
  TargetFilter,
  TargetRow,
} from './types.js';

export const DB_FILE = 'leakwatch.db';
export const PID_FILE = 'leakwatch.pid';
export const BLOB_DIR = 'blobs';

export type StoreLog = (msg: string, fields: Record<string, unknown>) => void;

export interface SqliteStoreOptions {
  /** Warnings outside retention (a finding id claimed by another node, ...). */
  log?: StoreLog;
  /** How long opening waits for a database another process holds. Default 1000 ms. */
  lockTimeoutMs?: number;
  /** `PRAGMA quick_check` at open, so corruption is a startup error and not a failure hours later. Default true. */
  checkOnOpen?: boolean;
  /** Points younger than this stay raw; older ones become buckets. Default 1 h. */
  rawSeriesMs?: number;
  /** Default 10 s. */
  seriesBucketMs?: number;
  /**
   * Retention leaves an unreferenced blob (or a leftover `.part`) alone while it is younger than
   * this: a blob is written before the row that refers to it commits. Default 10 min.
   */
  unreferencedBlobGraceMs?: number;
  /** Clock for receivedMs and for targets sent without points. Default Date.now. */
  now?: () => number;
}

export type StoreOpenFailure = 'in-use' | 'corrupt' | 'newer-schema' | 'data-dir';

/** Opening failed for a reason the operator must act on; `message` says what to do. */
export class StoreOpenError extends Error {
  readonly reason: StoreOpenFailure;
  constructor(reason: StoreOpenFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreOpenError';
    this.reason = reason;
  }
}

export interface FindingBatch {
  node: string;
  events: Array<{ change: FindingChange; finding: Finding }>;
}

export interface IngestResult {
  /** Events that changed the stored finding. */
  applied: number;
  /** Re-sent or older than what is stored: history only, the finding kept as it was. */
  unchanged: number;
  /** Ids that belong to another node: ignored entirely (and logged). */
  rejected: number;
}

export interface FindingEventRow {
  change: FindingChange;
  atMs: number;
  status: FindingStatus;
  summary: string;
  receivedMs: number;
}

export interface SqliteRetentionReport extends RetentionReport {
  /** Raw points this run merged away into 10 s buckets (not counted in seriesPointsDeleted). */
  seriesPointsDownsampled: number;
  targetsDeleted: number;
  /** 'update' history entries older than maxAgeMs of findings that are kept. */
  findingUpdatesTrimmed: number;
}

/** Where a spawn finding's script content went, in the stored JSON (content itself is null there). */
interface ContentBlobRef {
  sha256: string;
  sizeBytes: number;
}
const CONTENT_BLOB_KEY = 'contentBlob';

const DEFAULT_LIST_LIMIT = 1000;
/** Per retention transaction: bounds each stall of the event loop (better-sqlite3 is synchronous). */
const RETENTION_TARGETS_PER_TX = 200;
const RETENTION_FINDINGS_PER_TX = 1000;

interface FindingRow {
  id: string;
  kind: FindingKind;
  status: FindingStatus;
  node: string;
  at: number;
  updatedAt: number;
  summary: string;
  targetJson: string;
  detailsJson: string;
}

/** What ingest reads of a stored finding to decide whether and how to write a change. */
interface StoredHead {
  node: string;
  status: FindingStatus;
  updatedAt: number;
  at: number;
  kind: FindingKind;
  namespace: string | null;
  pod: string | null;
  podUid: string | null;
  container: string | null;
  containerId: string | null;
  pid: number | null;
}

function sameTarget(stored: StoredHead, kind: FindingKind, t: Finding['target']): boolean {
  return (
    stored.kind === kind &&
    stored.namespace === t.namespace &&
    stored.pod === t.pod &&
    stored.podUid === t.podUid &&
    stored.container === t.container &&
    stored.containerId === t.containerId &&
    stored.pid === t.pid
  );
}

interface TargetDbRow {
  node: string;
  targetKey: string;
  kind: 'process' | 'container';
  pid: number | null;
  ppid: number | null;
  startMs: number | null;
  comm: string | null;
  cmdline: string | null;
  namespace: string | null;
  pod: string | null;
  podUid: string | null;
  container: string | null;
  containerId: string | null;
  firstSeenMs: number;
  lastSeenMs: number;
  /** Start of the same pid's next incarnation on the node (process targets with a start only). */
  nextStartMs: number | null;
}

// Which findings are "about" a target, for its counts and for retention. The finding carries no
// target key, so: a container target owns every finding inside its container (its own growth and
// the processes' findings and kills there); a process target owns the findings of its pid on its
// node from its start (parsed from proc:<pid>:<startMs>) until that pid's next incarnation started.
// Counting is one probe of findings_node_container or findings_node_pid per target, so it is done
// for the rows a caller gets, never for the whole table (that was most of a busy collector's CPU).
const TARGET_COLUMNS = `node, targetKey, kind, pid, ppid, startMs, comm, cmdline, namespace, pod, podUid, container, containerId, firstSeenMs, lastSeenMs`;
// The next incarnation's start: the pid's other keys are a range of the primary key (proc:<pid>:*).
const NEXT_START_MS = `CASE WHEN t.kind = 'process' AND t.startMs IS NOT NULL THEN
    (SELECT MIN(n.startMs) FROM targets n
      WHERE n.node = t.node AND n.targetKey > 'proc:' || t.pid || ':' AND n.targetKey < 'proc:' || t.pid || ';'
        AND n.kind = 'process' AND n.pid = t.pid AND n.startMs > t.startMs)
  END AS nextStartMs`;
const CONTAINER_FINDING_COUNTS = `SELECT COUNT(*) AS findingCount, COALESCE(SUM(status = 'open'), 0) AS openFindingCount
  FROM findings WHERE node = ? AND containerId = ?`;
const PROCESS_FINDING_COUNTS = `SELECT COUNT(*) AS findingCount, COALESCE(SUM(status = 'open'), 0) AS openFindingCount
  FROM findings WHERE node = @node AND pid = @pid
    AND (@startMs IS NULL OR (at >= @startMs AND (@nextStartMs IS NULL OR at < @nextStartMs)))`;

export function openStore(dataDir: string, opts: SqliteStoreOptions = {}): SqliteStore {
  return new SqliteStore(dataDir, opts);
}

export class SqliteStore implements Store {
  readonly dataDir: string;
  readonly dbPath: string;
  private readonly db: BetterSqlite3.Database;
  private readonly blobs: BlobFiles;
  private readonly log: StoreLog;
  private readonly now: () => number;
  private readonly rawSeriesMs: number;
  private readonly bucketMs: number;
  private readonly blobGraceMs: number;
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  private readonly snapshotTables: SnapshotTables;
  private readonly heapDiffTables: HeapDiffTables;
  private closed = false;

  constructor(dataDir: string, opts: SqliteStoreOptions = {}) {
    this.dataDir = resolve(dataDir);
    this.dbPath = join(this.dataDir, DB_FILE);
    this.log = opts.log ?? (() => {});
    this.now = opts.now ?? Date.now;
    this.rawSeriesMs = opts.rawSeriesMs ?? 60 * 60 * 1000;
    this.bucketMs = opts.seriesBucketMs ?? 10_000;
    this.blobGraceMs = opts.unreferencedBlobGraceMs ?? 10 * 60 * 1000;
    prepareDataDir(this.dataDir);
    this.blobs = new BlobFiles(join(this.dataDir, BLOB_DIR));
    try {
      this.blobs.ensureDir();
    } catch (err) {
      throw new StoreOpenError('data-dir', `cannot use data directory ${this.dataDir}: ${errorText(err)}`, { cause: err });
    }
    this.db = openDatabase(this.dataDir, this.dbPath, opts.lockTimeoutMs ?? 1000, opts.checkOnOpen ?? true);
    try {
      mkdirSync(snapshotDir(this.dataDir), { recursive: true, mode: 0o700 });
    } catch (err) {
      this.db.close();
      throw new StoreOpenError('data-dir', `cannot use data directory ${this.dataDir}: ${errorText(err)}`, { cause: err });
    }
    this.snapshotTables = new SnapshotTables(this.db, snapshotDir(this.dataDir));
    this.heapDiffTables = new HeapDiffTables(this.db);
    // A restarted collector has no connections yet: every agent is disconnected until it says hello.
    this.db.prepare(`UPDATE agents SET connected = 0 WHERE connected <> 0`).run();
    writePidFile(this.dataDir);
  }

  // ---- snapshots and captures (SQL in snapshot-tables.ts)

  insertSnapshot(row: SnapshotRow): void {
    this.snapshotTables.insertSnapshot(row);
  }

  getSnapshot(snapshotId: string): SnapshotRow | null {
    return this.snapshotTables.getSnapshot(snapshotId);
  }

  listSnapshots(filter?: SnapshotFilter): SnapshotRow[] {
    return this.snapshotTables.listSnapshots(filter);
  }

  recordCapture(report: CaptureReport): void {
    this.snapshotTables.recordCapture(report, this.now());
  }

  listCaptures(filter?: CaptureFilter): CaptureReport[] {
    return this.snapshotTables.listCaptures(filter);
  }

  // ---- heap diffs (SQL in heap-diff-tables.ts)

  queueHeapDiff(snapshotA: string, snapshotB: string, findingId: string | null): HeapDiffRecord {
    return this.heapDiffTables.queueHeapDiff(snapshotA, snapshotB, findingId, this.now());
  }

  requeueHeapDiff(snapshotA: string, snapshotB: string): void {
    this.heapDiffTables.requeueHeapDiff(snapshotA, snapshotB, this.now());
  }

  finishHeapDiff(snapshotA: string, snapshotB: string, update: { status: HeapDiffStatus; reason?: string | null; result?: HeapDiffResult | null; finishedAtMs?: number | null }): boolean {
    return this.heapDiffTables.finishHeapDiff(snapshotA, snapshotB, update);
  }

  getHeapDiff(snapshotA: string, snapshotB: string): HeapDiffRecord | null {
    return this.heapDiffTables.getHeapDiff(snapshotA, snapshotB);
  }

  listHeapDiffs(filter: { findingId?: string; snapshotId?: string; status?: HeapDiffStatus; limit?: number }): HeapDiffRecord[] {
    return this.heapDiffTables.listHeapDiffs(filter);
  }

  countHeapDiffs(status: HeapDiffStatus): number {
    return this.heapDiffTables.countHeapDiffs(status);
  }

  undiffedPairs(pairId?: string): UndiffedPair[] {
    return this.heapDiffTables.undiffedPairs(pairId);
  }

  resetRunningHeapDiffs(): number {
    return this.heapDiffTables.resetRunning();
  }

  // ---- agents

  recordAgent(agent: { agentId: string; node: string; version: string; atMs: number; connected: boolean; droppedFindings?: number }): void {
    this.stmt(`
      INSERT INTO agents (agentId, node, version, firstSeenMs, lastSeenMs, connected, droppedFindings)
      VALUES (@agentId, @node, @version, @atMs, @atMs, @connected, COALESCE(@dropped, 0))
      ON CONFLICT (agentId) DO UPDATE SET
        node = excluded.node,
        version = excluded.version,
        firstSeenMs = MIN(agents.firstSeenMs, excluded.firstSeenMs),
        lastSeenMs = MAX(agents.lastSeenMs, excluded.lastSeenMs),
        connected = excluded.connected,
        droppedFindings = COALESCE(@dropped, agents.droppedFindings)`).run({
      agentId: agent.agentId,
      node: agent.node,
      version: agent.version,
      atMs: agent.atMs,
      connected: agent.connected ? 1 : 0,
      dropped: agent.droppedFindings ?? null,
    });
  }

  listAgents(): AgentRow[] {
    const rows = this.stmt(`SELECT * FROM agents ORDER BY node, agentId`).all() as Array<Omit<AgentRow, 'connected'> & { connected: number }>;
    return rows.map((r) => ({ ...r, connected: r.connected !== 0 }));
  }

  // ---- findings

  ingestFindings(node: string, events: Array<{ change: FindingChange; finding: Finding }>): IngestResult {
    return this.ingestFindingBatches([{ node, events }]);
  }

  /**
   * Several agents' batches in one transaction and one fsync (group commit): under load the
   * collector can gather what arrived in the last few ms, call this once, then ack them all.
   */
  ingestFindingBatches(batches: FindingBatch[]): IngestResult {
    const result: IngestResult = { applied: 0, unchanged: 0, rejected: 0 };
    const receivedMs = this.now();
    const head = this.stmt(`SELECT node, status, updatedAt, at, kind, namespace, pod, podUid, container, containerId, pid FROM findings WHERE id = ?`);
    const addEvent = this.stmt(`
      INSERT OR IGNORE INTO finding_events (findingId, change, atMs, status, summary, receivedMs)
      VALUES (?, ?, ?, ?, ?, ?)`);
    const upsert = this.stmt(`
      INSERT INTO findings (id, kind, status, node, namespace, pod, podUid, container, containerId, pid,
                            at, updatedAt, summary, targetJson, detailsJson, receivedMs)
      VALUES (@id, @kind, @status, @node, @namespace, @pod, @podUid, @container, @containerId, @pid,
              @at, @updatedAt, @summary, @targetJson, @detailsJson, @receivedMs)
      ON CONFLICT (id) DO UPDATE SET
        kind = excluded.kind, status = excluded.status, namespace = excluded.namespace, pod = excluded.pod,
        podUid = excluded.podUid, container = excluded.container, containerId = excluded.containerId,
        pid = excluded.pid, at = MIN(findings.at, excluded.at), updatedAt = excluded.updatedAt,
        summary = excluded.summary, targetJson = excluded.targetJson, detailsJson = excluded.detailsJson,
        receivedMs = excluded.receivedMs`);
    // The usual change: same finding, same target, newer state. Only the columns that change are
    // written, so the indexes on kind, namespace/pod, node/pid and node/container are left alone.
    const advance = this.stmt(`
      UPDATE findings SET status = @status, at = MIN(at, @at), updatedAt = @updatedAt, summary = @summary,
        targetJson = @targetJson, detailsJson = @detailsJson, receivedMs = @receivedMs
      WHERE id = @id`);
    const dropBlobRefs = this.stmt(`DELETE FROM finding_blobs WHERE findingId = ?`);
    const addBlobRef = this.stmt(`INSERT OR IGNORE INTO finding_blobs (findingId, sha256, sizeBytes) VALUES (?, ?, ?)`);
    const rejected: Array<{ id: string; node: string; ownerNode: string }> = [];

    this.db.transaction(() => {
      for (const batch of batches) {
        for (const { change, finding } of batch.events) {
          const stored = head.get(finding.id) as StoredHead | undefined;
          if (stored && stored.node !== batch.node) {
            // Ids embed the node's name, so this is a bug or an agent speaking for another node.
            rejected.push({ id: finding.id, node: batch.node, ownerNode: stored.node });
            result.rejected++;
            continue;
          }
          const status: FindingStatus = change === 'resolve' ? 'resolved' : finding.status;
          addEvent.run(finding.id, change, finding.updatedAt, status, finding.summary, receivedMs);
          const newer =
            !stored ||
            finding.updatedAt > stored.updatedAt ||
            (finding.updatedAt === stored.updatedAt && status === 'resolved' && stored.status === 'open');
          if (!newer) {
            result.unchanged++;
            continue;
          }
          // Blobs are written (and fsynced) before the row that names them commits; a rollback
          // leaves an unreferenced file that retention removes after its grace period.
          const { json, blobs } = this.storedDetails(finding);
          const t = finding.target;
          const row = {
            id: finding.id,
            kind: finding.kind,
            status,
            node: batch.node,
            namespace: t.namespace,
            pod: t.pod,
            podUid: t.podUid,
            container: t.container,
            containerId: t.containerId,
            pid: t.pid,
            at: finding.at,
            updatedAt: finding.updatedAt,
            summary: finding.summary,
            targetJson: JSON.stringify(t),
            detailsJson: json,
            receivedMs,
          };
          if (stored && sameTarget(stored, finding.kind, t)) advance.run(row);
          else upsert.run(row);
          // Only spawn findings have blobs: a finding that never had any has no refs to drop.
          if (blobs.length > 0 || finding.kind === 'suspicious-spawn' || stored?.kind === 'suspicious-spawn') dropBlobRefs.run(finding.id);
          for (const b of blobs) addBlobRef.run(finding.id, b.sha256, b.sizeBytes);
          result.applied++;
        }
      }
    }).immediate();

    for (const r of rejected) this.log('ingest: ignored a finding id that belongs to another node', r);
    return result;
  }

  /**
   * Findings newest first (by updatedAt). Spawn findings come without their script content
   * (`content: null`, everything else kept: path, sha256, sizes, contentEncoding), which keeps
   * lists small; getFinding has it. Default limit 1000.
   */
  listFindings(filter: FindingFilter = {}): Finding[] {
    const where: string[] = [];
    const params: Record<string, unknown> = {};
    const eq = (column: string, value: unknown) => {
      if (value === undefined) return;
      where.push(`${column} = @${column}`);
      params[column] = value;
    };
    eq('kind', filter.kind);
    eq('status', filter.status);
    eq('node', filter.node);
    eq('namespace', filter.namespace);
    eq('pod', filter.pod);
    if (filter.since !== undefined) {
      where.push(`updatedAt >= @since`);
      params.since = filter.since;
    }
    params.limit = countParam('limit', filter.limit, DEFAULT_LIST_LIMIT);
    params.offset = countParam('offset', filter.offset, 0);
    const sql = `SELECT id, kind, status, node, at, updatedAt, summary, targetJson, detailsJson FROM findings
      ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY updatedAt DESC, id DESC LIMIT @limit OFFSET @offset`;
    const rows = this.stmt(sql).all(params) as FindingRow[];
    return rows.map((r) => this.findingOf(r, false));
  }

  getFinding(id: string): Finding | null {
    if (typeof id !== 'string') return null;
    const row = this.stmt(`SELECT id, kind, status, node, at, updatedAt, summary, targetJson, detailsJson FROM findings WHERE id = ?`).get(id) as
      | FindingRow
      | undefined;
    return row ? this.findingOf(row, true) : null;
  }

  /** A finding's history, oldest first (empty for an unknown id). */
  findingEvents(id: string): FindingEventRow[] {
    return this.stmt(`SELECT change, atMs, status, summary, receivedMs FROM finding_events WHERE findingId = ? ORDER BY atMs, CASE change WHEN 'open' THEN 0 WHEN 'update' THEN 1 ELSE 2 END`).all(
      id,
    ) as FindingEventRow[];
  }

  // ---- targets and series

  /**
   * Downsampling happens here, as points arrive: each target's points older than an hour before
   * its newest point in this message are merged into 10 s buckets in the same transaction, so the
   * work is spread evenly and never piles up for one long stall. A point that arrives for a time
   * already bucketed goes straight into its bucket. (applyRetention catches up targets that stopped
   * sending.)
   */
  ingestSeries(node: string, targets: TargetInfo[], points: SeriesPoint[]): void {
    const nowMs = this.now();
    const seenByKey = new Map<string, { first: number; last: number }>();
    for (const p of points) {
      const s = seenByKey.get(p.targetKey);
      if (!s) seenByKey.set(p.targetKey, { first: p.atMs, last: p.atMs });
      else {
        s.first = Math.min(s.first, p.atMs);
        s.last = Math.max(s.last, p.atMs);
      }
    }
    // A described target: its times widen (the row is new, or only lastSeenMs moves: the index on
    // namespace/pod is not rewritten), and its description is rewritten only where it changed.
    const upsertTarget = this.stmt(`
      INSERT INTO targets (node, targetKey, kind, pid, ppid, startMs, comm, cmdline, namespace, pod, podUid, container, containerId, firstSeenMs, lastSeenMs)
      VALUES (@node, @targetKey, @kind, @pid, @ppid, @startMs, @comm, @cmdline, @namespace, @pod, @podUid, @container, @containerId, @first, @last)
      ON CONFLICT (node, targetKey) DO UPDATE SET
        firstSeenMs = MIN(targets.firstSeenMs, excluded.firstSeenMs), lastSeenMs = MAX(targets.lastSeenMs, excluded.lastSeenMs)`);
    const describeTarget = this.stmt(`
      UPDATE targets SET kind = @kind, pid = @pid, ppid = @ppid, startMs = @startMs, comm = @comm, cmdline = @cmdline, namespace = @namespace,
        pod = @pod, podUid = @podUid, container = @container, containerId = @containerId
      WHERE node = @node AND targetKey = @targetKey AND NOT (kind IS @kind AND pid IS @pid AND ppid IS @ppid AND startMs IS @startMs AND comm IS @comm
        AND cmdline IS @cmdline AND namespace IS @namespace AND pod IS @pod AND podUid IS @podUid AND container IS @container
        AND containerId IS @containerId)`);
    // Points may come without their target (it was sent with earlier points): only widen its times.
    const touchTarget = this.stmt(`
      INSERT INTO targets (node, targetKey, kind, pid, startMs, firstSeenMs, lastSeenMs)
      VALUES (@node, @targetKey, @kind, @pid, @startMs, @first, @last)
      ON CONFLICT (node, targetKey) DO UPDATE SET
        firstSeenMs = MIN(targets.firstSeenMs, excluded.firstSeenMs), lastSeenMs = MAX(targets.lastSeenMs, excluded.lastSeenMs)`);
    const watermark = this.stmt(`SELECT compactedBeforeMs FROM targets WHERE node = ? AND targetKey = ?`).pluck();
    const insertPoint = this.stmt(`
      INSERT INTO series (node, targetKey, atMs, anonBytes, workingSetBytes, limitBytes, lastAtMs)
      VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`);

    this.db.transaction(() => {
      const described = new Set<string>();
      for (const t of targets) {
        const seen = seenByKey.get(t.targetKey) ?? { first: nowMs, last: nowMs };
        const row = { ...t, node, startMs: processStartOf(t.targetKey), first: seen.first, last: seen.last };
        upsertTarget.run(row);
        describeTarget.run(row);
        described.add(t.targetKey);
      }
      for (const [targetKey, seen] of seenByKey) {
        if (described.has(targetKey)) continue;
        const parsed = parseTargetKey(targetKey);
        touchTarget.run({ node, targetKey, kind: parsed.kind, pid: parsed.pid, startMs: parsed.startMs, first: seen.first, last: seen.last });
      }
      const bucketedBefore = new Map<string, number>();
      for (const key of seenByKey.keys()) bucketedBefore.set(key, watermark.get(node, key) as number);
      for (const p of points) {
        if (p.atMs < (bucketedBefore.get(p.targetKey) ?? 0)) this.mergeLatePoint(node, p);
        else insertPoint.run(node, p.targetKey, p.atMs, p.anonBytes, p.workingSetBytes, p.limitBytes, p.atMs);
      }
      for (const [targetKey, seen] of seenByKey) this.compactTarget(node, targetKey, bucketedBefore.get(targetKey) ?? 0, seen.last, -Infinity);
    }).immediate();
  }

  /**
   * Buckets the target's raw points in [watermark, bucket start of newestMs - raw window) and moves
   * its watermark there; points before `deleteBeforeMs` are dropped instead. Returns
   * { merged: raw rows merged away, deleted: rows dropped by age }. Call inside a transaction.
   */
  private compactTarget(node: string, targetKey: string, watermarkMs: number, newestMs: number, deleteBeforeMs: number): { merged: number; deleted: number } {
    let deleted = 0;
    if (deleteBeforeMs > -Infinity) {
      deleted = this.stmt(`DELETE FROM series WHERE node = ? AND targetKey = ? AND atMs < ?`).run(node, targetKey, deleteBeforeMs).changes;
    }
    const before = bucketStart(newestMs - this.rawSeriesMs, this.bucketMs);
    if (before <= watermarkMs) return { merged: 0, deleted };
    const from = Math.max(watermarkMs, deleteBeforeMs);
    const range = [node, targetKey, from, before] as const;
    const raw = this.stmt(`
      SELECT atMs, anonBytes, workingSetBytes, limitBytes, lastAtMs FROM series
      WHERE node = ? AND targetKey = ? AND atMs >= ? AND atMs < ? ORDER BY atMs`).all(...range) as StoredPoint[];
    const merged = downsample(raw, this.bucketMs);
    if (merged.length < raw.length) {
      this.stmt(`DELETE FROM series WHERE node = ? AND targetKey = ? AND atMs >= ? AND atMs < ?`).run(...range);
      for (const p of merged) this.insertStoredPoint(node, targetKey, p);
    }
    this.stmt(`UPDATE targets SET compactedBeforeMs = ? WHERE node = ? AND targetKey = ?`).run(before, node, targetKey);
    return { merged: raw.length - merged.length, deleted };
  }

  /** A point older than what was already bucketed goes straight into its bucket. */
  private mergeLatePoint(node: string, p: SeriesPoint): void {
    const b = bucketStart(p.atMs, this.bucketMs);
    const range = [node, p.targetKey, b, b + this.bucketMs] as const;
    const rows = this.stmt(`
      SELECT atMs, anonBytes, workingSetBytes, limitBytes, lastAtMs FROM series
      WHERE node = ? AND targetKey = ? AND atMs >= ? AND atMs < ? ORDER BY atMs`).all(...range) as StoredPoint[];
    const point: StoredPoint = { atMs: p.atMs, anonBytes: p.anonBytes, workingSetBytes: p.workingSetBytes, limitBytes: p.limitBytes, lastAtMs: p.atMs };
    if (rows.some((r) => r.atMs === p.atMs && r.lastAtMs === p.atMs)) return; // re-sent
    const merged = rows.length === 0 ? point : mergeBucket([...rows, point], b);
    this.stmt(`DELETE FROM series WHERE node = ? AND targetKey = ? AND atMs >= ? AND atMs < ?`).run(...range);
    this.insertStoredPoint(node, p.targetKey, merged);
  }

  private insertStoredPoint(node: string, targetKey: string, p: StoredPoint): void {
    this.stmt(`INSERT INTO series (node, targetKey, atMs, anonBytes, workingSetBytes, limitBytes, lastAtMs) VALUES (?, ?, ?, ?, ?, ?, ?)`).run(
      node,
      targetKey,
      p.atMs,
      p.anonBytes,
      p.workingSetBytes,
      p.limitBytes,
      p.lastAtMs,
    );
  }

  /** Most recently seen first, a page at a time (default 100, at most 1000), each with its finding counts. */
  listTargets(filter: TargetFilter = {}): TargetRow[] {
    const where: string[] = [];
    const limit = countParam('limit', filter.limit, TARGET_PAGE_DEFAULT);
    if (limit > TARGET_PAGE_MAX) throw new RangeError(`limit must be at most ${TARGET_PAGE_MAX}, got ${limit}`);
    const params: Record<string, unknown> = { limit, offset: countParam('offset', filter.offset, 0) };
    for (const column of ['node', 'namespace', 'pod'] as const) {
      const value = filter[column];
      if (value === undefined) continue;
      where.push(`${column} = @${column}`);
      params[column] = value;
    }
    const sql = `SELECT ${TARGET_COLUMNS}, ${NEXT_START_MS} FROM (
        SELECT ${TARGET_COLUMNS} FROM targets ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY lastSeenMs DESC, node, targetKey LIMIT @limit OFFSET @offset
      ) AS t ORDER BY lastSeenMs DESC, node, targetKey`;
    const rows = this.stmt(sql).all(params) as TargetDbRow[];
    return rows.map((r) => {
      const { startMs: _startMs, nextStartMs: _nextStartMs, ...row } = r;
      return { ...row, ...this.findingCountsOf(r) };
    });
  }

  /** Findings about one target (see "Which findings are about a target" above). */
  private findingCountsOf(t: Pick<TargetDbRow, 'node' | 'kind' | 'pid' | 'containerId' | 'startMs' | 'nextStartMs'>): { findingCount: number; openFindingCount: number } {
    if (t.kind === 'container') {
      if (t.containerId === null) return { findingCount: 0, openFindingCount: 0 };
      return this.stmt(CONTAINER_FINDING_COUNTS).get(t.node, t.containerId) as { findingCount: number; openFindingCount: number };
    }
    if (t.pid === null) return { findingCount: 0, openFindingCount: 0 };
    return this.stmt(PROCESS_FINDING_COUNTS).get({ node: t.node, pid: t.pid, startMs: t.startMs, nextStartMs: t.nextStartMs }) as { findingCount: number; openFindingCount: number };
  }

  /**
   * Points of one target, oldest first, `sinceMs`/`untilMs` inclusive. With `maxPoints`, a longer
   * run is thinned into that many equal time buckets, each keeping its peak (see series-buckets).
   */
  series(node: string, targetKey: string, range: { sinceMs?: number; untilMs?: number; maxPoints?: number } = {}): SeriesPoint[] {
    const since = range.sinceMs ?? Number.MIN_SAFE_INTEGER;
    const until = range.untilMs ?? Number.MAX_SAFE_INTEGER;
    const rows = this.stmt(`
      SELECT atMs, anonBytes, workingSetBytes, limitBytes, lastAtMs FROM series
      WHERE node = ? AND targetKey = ? AND atMs >= ? AND atMs <= ? ORDER BY atMs`).all(node, targetKey, since, until) as StoredPoint[];
    let kept: StoredPoint[] = rows;
    const maxPoints = range.maxPoints === undefined ? undefined : countParam('maxPoints', range.maxPoints, 0);
    const first = rows[0];
    const last = rows[rows.length - 1];
    if (maxPoints !== undefined && rows.length > maxPoints && first && last) {
      if (maxPoints === 0) return [];
      const width = Math.max(1, Math.ceil((last.atMs - first.atMs + 1) / maxPoints));
      kept = downsample(rows, width, first.atMs);
    }
    return kept.map((r) => ({ targetKey, atMs: r.atMs, anonBytes: r.anonBytes, workingSetBytes: r.workingSetBytes, limitBytes: r.limitBytes }));
  }

  // ---- blobs

  putBlob(bytes: Buffer): string {
    return this.blobs.put(bytes);
  }

  blobPath(sha256: string): string | null {
    return this.blobs.pathOf(sha256);
  }

  // ---- audit

  audit(entry: AuditEntry): void {
    this.stmt(`INSERT INTO audit (atMs, actor, action, subject, detail, remote) VALUES (?, ?, ?, ?, ?, ?)`).run(
      entry.atMs,
      entry.actor,
      entry.action,
      entry.subject,
      entry.detail ?? null,
      entry.remote ?? null,
    );
  }

  /** Newest first. Default limit 1000. */
  listAudit(filter: { since?: number; action?: string; limit?: number } = {}): AuditRow[] {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: countParam('limit', filter.limit, DEFAULT_LIST_LIMIT) };
    if (filter.since !== undefined) {
      where.push('atMs >= @since');
      params.since = filter.since;
    }
    if (filter.action !== undefined) {
      where.push('action = @action');
      params.action = filter.action;
    }
    const rows = this.stmt(
      `SELECT * FROM audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT @limit`,
    ).all(params) as Array<{ id: number; atMs: number; actor: string; action: string; subject: string; detail: string | null; remote: string | null }>;
    return rows.map((r) => {
      const row: AuditRow = { id: r.id, atMs: r.atMs, actor: r.actor, action: r.action, subject: r.subject };
      if (r.detail !== null) row.detail = r.detail;
      if (r.remote !== null) row.remote = r.remote;
      return row;
    });
  }

  // ---- retention

  /**
   * In order: resolved findings older than maxAgeMs (with their history and evidence refs);
   * 'update' history older than maxAgeMs of the findings kept; targets that no longer have any
   * finding and sent nothing for maxAgeMs, with their series; series points older than maxAgeMs;
   * raw points older than the raw window into 10 s buckets for targets that stopped sending
   * (downsampling is normally done by ingestSeries as points arrive); leftover `.part` files and
   * unreferenced blobs past their grace; then blobs oldest-stored first while
   * their total is over maxBlobBytes, evidence still referenced included. Each deletion is logged
   * after its transaction commits.
   */
  applyRetention(policy: RetentionPolicy, nowMs: number, log: (msg: string, fields: Record<string, unknown>) => void): SqliteRetentionReport {
    for (const [name, value] of [['maxAgeMs', policy.maxAgeMs], ['maxBlobBytes', policy.maxBlobBytes], ['nowMs', nowMs]] as const) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new RangeError(`retention: ${name} must be a non-negative number, got ${value}`);
    }
    const report: SqliteRetentionReport = {
      findingsDeleted: 0,
      seriesPointsDeleted: 0,
      blobsDeleted: 0,
      bytesFreed: 0,
      seriesPointsDownsampled: 0,
      targetsDeleted: 0,
      findingUpdatesTrimmed: 0,
    };
    const cutoff = nowMs - policy.maxAgeMs;

    // Findings.
    const old = this.stmt(`
      SELECT id, kind, node, namespace, pod, at, updatedAt FROM findings
      WHERE status = 'resolved' AND updatedAt < ? ORDER BY updatedAt`).all(cutoff) as Array<{
      id: string;
      kind: FindingKind;
      node: string;
      namespace: string | null;
      pod: string | null;
      at: number;
      updatedAt: number;
    }>;
    if (old.length > 0) {
      const delEvents = this.stmt(`DELETE FROM finding_events WHERE findingId = ?`);
      const delRefs = this.stmt(`DELETE FROM finding_blobs WHERE findingId = ?`);
      const delFinding = this.stmt(`DELETE FROM findings WHERE id = ?`);
      for (let i = 0; i < old.length; i += RETENTION_FINDINGS_PER_TX) {
        const chunk = old.slice(i, i + RETENTION_FINDINGS_PER_TX);
        this.db.transaction(() => {
          for (const f of chunk) {
            delEvents.run(f.id);
            delRefs.run(f.id);
            delFinding.run(f.id);
          }
        }).immediate();
        for (const f of chunk) {
          log('retention: deleted finding', { id: f.id, kind: f.kind, node: f.node, namespace: f.namespace, pod: f.pod, atMs: f.at, resolvedAtMs: f.updatedAt });
        }
        report.findingsDeleted += chunk.length;
      }
    }
    report.findingUpdatesTrimmed = this.stmt(`DELETE FROM finding_events WHERE change = 'update' AND atMs < ?`).run(cutoff).changes;
    if (report.findingUpdatesTrimmed > 0) log('retention: trimmed finding history', { updatesDeleted: report.findingUpdatesTrimmed, olderThanMs: cutoff });

    // Targets without findings, and their series.
    const quiet = this.stmt(`SELECT ${TARGET_COLUMNS}, ${NEXT_START_MS} FROM targets AS t WHERE lastSeenMs < ?`).all(cutoff) as TargetDbRow[];
    const orphans = quiet.filter((t) => this.findingCountsOf(t).findingCount === 0);
    if (orphans.length > 0) {
      const delSeries = this.stmt(`DELETE FROM series WHERE node = ? AND targetKey = ?`);
      const delTarget = this.stmt(`DELETE FROM targets WHERE node = ? AND targetKey = ?`);
      const points: number[] = [];
      this.db.transaction(() => {
        for (const t of orphans) {
          points.push(delSeries.run(t.node, t.targetKey).changes);
          delTarget.run(t.node, t.targetKey);
        }
      }).immediate();
      orphans.forEach((t, i) => {
        log('retention: deleted target', { node: t.node, targetKey: t.targetKey, seriesPoints: points[i] ?? 0 });
        report.seriesPointsDeleted += points[i] ?? 0;
      });
      report.targetsDeleted = orphans.length;
    }

    // Series of the targets kept: age, then buckets.
    const aged = this.retainSeries(nowMs, cutoff, report);
    if (aged > 0) log('retention: deleted series points', { points: aged, olderThanMs: cutoff });
    report.seriesPointsDeleted += aged;
    if (report.seriesPointsDownsampled > 0) log('retention: downsampled series', { rawPointsMerged: report.seriesPointsDownsampled, bucketMs: this.bucketMs });

    this.retainBlobs(policy.maxBlobBytes, nowMs, log, report);
    const snaps = this.snapshotTables.retain(
      { maxAgeMs: policy.maxSnapshotAgeMs ?? policy.maxAgeMs, maxBytes: policy.maxSnapshotBytes ?? policy.maxBlobBytes, captureMaxAgeMs: policy.maxAgeMs },
      nowMs,
      log,
    );
    report.snapshotsDeleted = snaps.deleted;
    report.snapshotBytesFreed = snaps.bytesFreed;
    if (report.findingsDeleted + report.targetsDeleted + report.seriesPointsDeleted + report.seriesPointsDownsampled > 0) {
      // Give freed pages back to the file system (auto_vacuum = INCREMENTAL).
      this.db.pragma('incremental_vacuum');
    }
    return report;
  }

  /** Drops points older than `cutoff` and buckets what targets that stopped sending left raw. */
  private retainSeries(nowMs: number, cutoff: number, report: SqliteRetentionReport): number {
    const targets = this.stmt(`SELECT node, targetKey, compactedBeforeMs FROM targets ORDER BY node, targetKey`).all() as Array<{
      node: string;
      targetKey: string;
      compactedBeforeMs: number;
    }>;
    let aged = 0;
    // Several transactions, so a large catch-up never holds the event loop (and the lock) in one piece.
    for (let i = 0; i < targets.length; i += RETENTION_TARGETS_PER_TX) {
      this.db.transaction(() => {
        for (const t of targets.slice(i, i + RETENTION_TARGETS_PER_TX)) {
          const r = this.compactTarget(t.node, t.targetKey, t.compactedBeforeMs, nowMs, cutoff);
          aged += r.deleted;
          report.seriesPointsDownsampled += r.merged;
        }
      }).immediate();
    }
    return aged;
  }

  private retainBlobs(maxBlobBytes: number, nowMs: number, log: StoreLog, report: SqliteRetentionReport): void {
    const { blobs, parts } = this.blobs.scan();
    for (const part of parts) {
      if (nowMs - part.mtimeMs < this.blobGraceMs) continue;
      if (this.blobs.remove(part.path)) log('retention: deleted partial blob', { path: part.path });
    }
    const referenced = new Set(this.stmt(`SELECT DISTINCT sha256 FROM finding_blobs`).pluck().all() as string[]);
    const kept: typeof blobs = [];
    for (const b of blobs) {
      if (referenced.has(b.sha256) || nowMs - b.mtimeMs < this.blobGraceMs) {
        kept.push(b);
        continue;
      }
      if (!this.blobs.remove(b.path)) continue;
      report.blobsDeleted++;
      report.bytesFreed += b.sizeBytes;
      log('retention: deleted blob', { sha256: b.sha256, bytes: b.sizeBytes, reason: 'unreferenced', storedAtMs: b.mtimeMs });
    }
    let total = kept.reduce((sum, b) => sum + b.sizeBytes, 0);
    if (total <= maxBlobBytes) return;
    kept.sort((a, b) => a.mtimeMs - b.mtimeMs || a.sha256.localeCompare(b.sha256));
    const refsOf = this.stmt(`SELECT findingId FROM finding_blobs WHERE sha256 = ? ORDER BY findingId`).pluck();
    const dropRefs = this.stmt(`DELETE FROM finding_blobs WHERE sha256 = ?`);
    for (const b of kept) {
      if (total <= maxBlobBytes) break;
      const findings = refsOf.all(b.sha256) as string[];
      // The file goes first: a crash in between leaves a reference to a missing blob, which
      // getFinding reports as evidence no longer stored, never a file nothing accounts for.
      this.blobs.remove(b.path);
      dropRefs.run(b.sha256);
      total -= b.sizeBytes;
      report.blobsDeleted++;
      report.bytesFreed += b.sizeBytes;
      log('retention: deleted blob', { sha256: b.sha256, bytes: b.sizeBytes, reason: 'over-byte-bound', storedAtMs: b.mtimeMs, findings, maxBlobBytes });
    }
  }

  /** The settings durability depends on, as SQLite reports them (for /readyz, logs and tests). */
  describe(): { journalMode: string; synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA'; lockingMode: string; autoVacuum: string; schemaVersion: number } {
    const sync = this.db.pragma('synchronous', { simple: true }) as number;
    const vacuum = this.db.pragma('auto_vacuum', { simple: true }) as number;
    return {
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: (['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const)[sync] ?? 'OFF',
      lockingMode: String(this.db.pragma('locking_mode', { simple: true })),
      autoVacuum: ['none', 'full', 'incremental'][vacuum] ?? String(vacuum),
      schemaVersion: this.db.pragma('user_version', { simple: true }) as number,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.statements.clear();
    this.db.close();
    removePidFile(this.dataDir);
  }

  // ---- internals

  private stmt(sql: string): BetterSqlite3.Statement {
    if (this.closed) throw new Error(`store ${this.dataDir} is closed`);
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** The details JSON to store: a spawn's script content moves to a blob file, named by a ref. */
  private storedDetails(finding: Finding): { json: string; blobs: ContentBlobRef[] } {
    if (finding.kind !== 'suspicious-spawn' || !finding.details.script) return { json: JSON.stringify(finding.details), blobs: [] };
    // A ref arriving from the wire would let an agent attach any stored blob (a heap snapshot)
    // to its finding: only refs this store wrote are kept.
    const { [CONTENT_BLOB_KEY]: _incoming, ...script } = finding.details.script as ScriptEvidence & { [CONTENT_BLOB_KEY]?: unknown };
    const bytes = script.content === null ? null : contentBytes(script.content, script.contentEncoding);
    if (!bytes) return { json: JSON.stringify({ ...finding.details, script }), blobs: [] };
    const ref: ContentBlobRef = { sha256: this.blobs.put(bytes), sizeBytes: bytes.length };
    return { json: JSON.stringify({ ...finding.details, script: { ...script, content: null, [CONTENT_BLOB_KEY]: ref } }), blobs: [ref] };
  }

  private findingOf(row: FindingRow, withContent: boolean): Finding {
    let target: unknown;
    let details: unknown;
    try {
      target = JSON.parse(row.targetJson);
      details = JSON.parse(row.detailsJson);
    } catch (err) {
      throw new Error(`finding ${row.id}: stored JSON is unreadable (${errorText(err)}); the database may be damaged`);
    }
    if (row.kind === 'suspicious-spawn') details = this.withEvidence(row.id, details as Record<string, unknown>, withContent);
    return { id: row.id, kind: row.kind, status: row.status, at: row.at, updatedAt: row.updatedAt, node: row.node, target, summary: row.summary, details } as Finding;
  }

  private withEvidence(findingId: string, details: Record<string, unknown>, withContent: boolean): Record<string, unknown> {
    const stored = details.script as (Record<string, unknown> & { [CONTENT_BLOB_KEY]?: unknown }) | null | undefined;
    if (!stored || typeof stored !== 'object') return details;
    const { [CONTENT_BLOB_KEY]: ref, ...script } = stored;
    if (!withContent) return { ...details, script: { ...script, content: null } };
    if (!isBlobRef(ref)) return details;
    const known = this.stmt(`SELECT 1 FROM finding_blobs WHERE findingId = ? AND sha256 = ?`).get(findingId, ref.sha256) !== undefined;
    const bytes = known ? this.blobs.read(ref.sha256) : null;
    if (bytes) {
      const content = script.contentEncoding === 'base64' ? bytes.toString('base64') : bytes.toString('utf8');
      return { ...details, script: { ...script, content } };
    }
    const notes = Array.isArray(details.notes) ? [...(details.notes as unknown[])] : [];
    notes.push(`script content (blob ${ref.sha256}, ${ref.sizeBytes} bytes) is no longer stored: removed by retention or lost`);
    return { ...details, script: { ...script, content: null, contentEncoding: null }, notes };
  }
}

// ---- opening

/** Files a leakwatch data directory may hold; anything else means it is not (only) ours. */
const OWN_ENTRIES = new Set([DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`, `${DB_FILE}-journal`, PID_FILE, `${PID_FILE}.part`, BLOB_DIR, 'tokens.json']);

function prepareDataDir(dir: string): void {
  let foreign: string | undefined;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = statSync(dir);
    if (!st.isDirectory()) throw new Error('not a directory');
    // It holds script evidence and (later) heap snapshots: nobody else reads it. A shared
    // directory (/tmp, a home) is refused rather than locked down under its other users.
    if ((st.mode & 0o077) !== 0) {
      foreign = readdirSync(dir).find((name) => !OWN_ENTRIES.has(name));
      if (foreign === undefined) chmodSync(dir, 0o700);
    }
  } catch (err) {
    throw new StoreOpenError('data-dir', `cannot use data directory ${dir}: ${errorText(err)}`, { cause: err });
  }
  if (foreign !== undefined) {
    throw new StoreOpenError(
      'data-dir',
      `cannot use data directory ${dir}: others can read it and it holds files that are not leakwatch's (${foreign}); give leakwatch a directory of its own (it is made 0700)`,
    );
  }
}

function openDatabase(dataDir: string, dbPath: string, lockTimeoutMs: number, checkOnOpen: boolean): BetterSqlite3.Database {
  let db: BetterSqlite3.Database;
  try {
    // Created 0600 before SQLite opens it: SQLite gives the -wal file the database's mode.
    closeSync(openSync(dbPath, 'a', 0o600));
    db = new Database(dbPath, { timeout: lockTimeoutMs });
  } catch (err) {
    throw classifyOpenError(err, dataDir, dbPath);
  }
  try {
    // EXCLUSIVE keeps the file lock from the first write until close: a second collector on the
    // same directory fails here instead of interleaving writes. The kernel drops the lock when
    // the process dies, so a SIGKILLed collector leaves nothing stale behind.
    db.pragma('locking_mode = EXCLUSIVE');
    // Takes effect only on a file without tables yet (a no-op otherwise): lets retention hand
    // freed pages back to the file system with incremental_vacuum.
    db.pragma('auto_vacuum = INCREMENTAL');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, not wal`);
    db.exec('BEGIN IMMEDIATE; COMMIT');
    chmodSync(dbPath, 0o600);
    if (existsSync(`${dbPath}-wal`)) chmodSync(`${dbPath}-wal`, 0o600);
    db.pragma('synchronous = FULL');
    db.pragma('journal_size_limit = 67108864');
    // Checkpoint every ~40 MiB of WAL instead of SQLite's 4 MiB: a group of 500 finding updates
    // writes ~1,000 pages, so the default checkpointed after nearly every commit, on the event
    // loop; the same hot index pages rewritten by ten commits are copied back once instead of ten
    // times (measured: ~25 % less time per group commit, with a larger stall every ~10 commits).
    db.pragma('wal_autocheckpoint = 10000');
    db.pragma('cache_size = -16000');
    if (checkOnOpen) {
      const problems = db.pragma('quick_check', { simple: false }) as Array<{ quick_check: string }>;
      const first = problems[0]?.quick_check;
      if (first !== 'ok') {
        throw new StoreOpenError(
          'corrupt',
          `${dbPath} is not a leakwatch database or is corrupt: move it away or restore a backup (quick_check: ${problems
            .slice(0, 3)
            .map((p) => p.quick_check)
            .join('; ')})`,
        );
      }
    }
    const state = inspectSchema(db);
    if (state.kind === 'foreign') {
      throw new StoreOpenError('corrupt', `${dbPath} is not a leakwatch database or is corrupt: move it away or restore a backup (${state.reason})`);
    }
    if (state.kind === 'ours' && state.version > SCHEMA_VERSION) {
      throw new StoreOpenError(
        'newer-schema',
        `${dbPath} was written by a newer leakwatch (schema ${state.version}; this one knows up to ${SCHEMA_VERSION}): upgrade leakwatch or use another --data-dir`,
      );
    }
    migrate(db, state.kind === 'ours' ? state.version : 0);
    return db;
  } catch (err) {
    try {
      db.close();
    } catch {
      // already unusable; the open error is what matters
    }
    throw classifyOpenError(err, dataDir, dbPath);
  }
}

function classifyOpenError(err: unknown, dataDir: string, dbPath: string): Error {
  if (err instanceof StoreOpenError) return err;
  const code = (err as { code?: unknown }).code;
  const text = errorText(err);
  if (typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))) {
    const holder = readPidFile(dataDir);
    const who = holder ? `pid ${holder.pid}${holder.host && holder.host !== hostname() ? ` on ${holder.host}` : ''}` : 'pid unknown';
    return new StoreOpenError('in-use', `${dbPath} is in use by another collector (${who}): stop it or use another --data-dir`, { cause: err });
  }
  if (typeof code === 'string' && (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT'))) {
    return new StoreOpenError('corrupt', `${dbPath} is not a leakwatch database or is corrupt: move it away or restore a backup (${text})`, {
      cause: err,
    });
  }
  return new StoreOpenError('data-dir', `cannot open ${dbPath}: ${text}`, { cause: err });
}

// ---- the pid file: only says who holds the lock, for the error message (the lock is SQLite's)

function writePidFile(dataDir: string): void {
  const path = join(dataDir, PID_FILE);
  const tmp = `${path}.part`;
  try {
    writeFileSync(tmp, `${process.pid}\n${hostname()}\n`, { mode: 0o600 });
    renameSync(tmp, path);
    fsyncDir(dataDir);
  } catch {
    // Informational only: a missing pid file makes a lock error say "pid unknown".
  }
}

function readPidFile(dataDir: string): { pid: number; host: string | null } | null {
  try {
    const [pidText, host] = readFileSync(join(dataDir, PID_FILE), 'utf8').split('\n');
    const pid = Number(pidText);
    return Number.isInteger(pid) && pid > 0 ? { pid, host: host || null } : null;
  } catch {
    return null;
  }
}

function removePidFile(dataDir: string): void {
  const holder = readPidFile(dataDir);
  if (holder?.pid !== process.pid) return;
  try {
    unlinkSync(join(dataDir, PID_FILE));
  } catch {
    // gone already
  }
}

// ---- helpers

/** `proc:<pid>:<startMs>` or `ctr:<cgroup path>`; anything else is treated as a container key. */
function parseTargetKey(key: string): { kind: 'process' | 'container'; pid: number | null; startMs: number | null } {
  const m = /^proc:(\d+):(\d+)$/.exec(key);
  if (m) return { kind: 'process', pid: Number(m[1]), startMs: Number(m[2]) };
  if (key.startsWith('proc:')) {
    const pid = Number(key.split(':')[1]);
    return { kind: 'process', pid: Number.isInteger(pid) ? pid : null, startMs: null };
  }
  return { kind: 'container', pid: null, startMs: null };
}

function processStartOf(key: string): number | null {
  return parseTargetKey(key).startMs;
}

/** The bytes a script's content stands for, or null when they would not turn back into the same string. */
function contentBytes(content: string, encoding: ScriptEvidence['contentEncoding']): Buffer | null {
  if (encoding === 'base64') {
    const bytes = Buffer.from(content, 'base64');
    return bytes.toString('base64') === content ? bytes : null;
  }
  const bytes = Buffer.from(content, 'utf8');
  // Lone surrogates do not survive UTF-8; such content stays inline in the JSON.
  return bytes.toString('utf8') === content ? bytes : null;
}

function isBlobRef(v: unknown): v is ContentBlobRef {
  if (!v || typeof v !== 'object') return false;
  const r = v as Record<string, unknown>;
  return typeof r.sha256 === 'string' && /^[0-9a-f]{64}$/.test(r.sha256) && typeof r.sizeBytes === 'number';
}

function countParam(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  return value;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
