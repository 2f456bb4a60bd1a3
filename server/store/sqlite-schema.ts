// The collector database's schema, as an ordered list of migrations: `PRAGMA user_version` holds
// how many have run, so a newer leakwatch upgrades an older data directory in place, and an older
// leakwatch refuses a database it does not understand instead of misreading it.
import type BetterSqlite3 from 'better-sqlite3';

/** 'LKWT': marks the file as ours, so a stray SQLite database is not mistaken for one. */
export const APPLICATION_ID = 0x4c4b5754;

type Migration = (db: BetterSqlite3.Database) => void;

export const MIGRATIONS: Migration[] = [
  // 1: the first schema.
  (db) => {
    db.exec(`
      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) WITHOUT ROWID;

      CREATE TABLE agents (
        agentId TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        version TEXT NOT NULL,
        firstSeenMs INTEGER NOT NULL,
        lastSeenMs INTEGER NOT NULL,
        connected INTEGER NOT NULL,
        droppedFindings INTEGER NOT NULL DEFAULT 0
      );

      -- One row per target that has (or had) points; startMs is parsed from a process key
      -- (proc:<pid>:<startMs>) to tell a pid's incarnations apart when findings are matched;
      -- the target's series before compactedBeforeMs is in 10 s buckets already.
      CREATE TABLE targets (
        node TEXT NOT NULL,
        targetKey TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('process', 'container')),
        pid INTEGER,
        startMs INTEGER,
        comm TEXT,
        cmdline TEXT,
        namespace TEXT,
        pod TEXT,
        podUid TEXT,
        container TEXT,
        containerId TEXT,
        firstSeenMs INTEGER NOT NULL,
        lastSeenMs INTEGER NOT NULL,
        compactedBeforeMs INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (node, targetKey)
      ) WITHOUT ROWID;
      CREATE INDEX targets_ns_pod ON targets (namespace, pod);
      CREATE INDEX targets_last_seen ON targets (lastSeenMs);

      CREATE TABLE findings (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('growth', 'fanout', 'suspicious-spawn', 'oom-kill')),
        status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
        node TEXT NOT NULL,
        namespace TEXT,
        pod TEXT,
        podUid TEXT,
        container TEXT,
        containerId TEXT,
        pid INTEGER,
        at INTEGER NOT NULL,
        updatedAt INTEGER NOT NULL,
        summary TEXT NOT NULL,
        targetJson TEXT NOT NULL,
        detailsJson TEXT NOT NULL,
        receivedMs INTEGER NOT NULL
      );
      -- The API lists newest first under each filter; the last two serve target matching.
      CREATE INDEX findings_updated ON findings (updatedAt);
      CREATE INDEX findings_kind ON findings (kind, updatedAt);
      CREATE INDEX findings_status ON findings (status, updatedAt);
      CREATE INDEX findings_node ON findings (node, updatedAt);
      CREATE INDEX findings_ns_pod ON findings (namespace, pod, updatedAt);
      CREATE INDEX findings_node_pid ON findings (node, pid);
      CREATE INDEX findings_node_container ON findings (node, containerId);

      -- Change history, clustered by finding; the key makes a re-sent batch add nothing.
      CREATE TABLE finding_events (
        findingId TEXT NOT NULL,
        atMs INTEGER NOT NULL,
        change TEXT NOT NULL CHECK (change IN ('open', 'update', 'resolve')),
        status TEXT NOT NULL,
        summary TEXT NOT NULL,
        receivedMs INTEGER NOT NULL,
        PRIMARY KEY (findingId, atMs, change)
      ) WITHOUT ROWID;

      -- The evidence index: which blob files a finding's stored JSON refers to.
      CREATE TABLE finding_blobs (
        findingId TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        sizeBytes INTEGER NOT NULL,
        PRIMARY KEY (findingId, sha256)
      ) WITHOUT ROWID;
      CREATE INDEX finding_blobs_sha ON finding_blobs (sha256);

      -- Raw points, and 10 s buckets once they are older than the raw window: a bucket row has
      -- atMs at the bucket start, points > 1, and lastAtMs of the newest point merged into it.
      CREATE TABLE series (
        node TEXT NOT NULL,
        targetKey TEXT NOT NULL,
        atMs INTEGER NOT NULL,
        anonBytes INTEGER NOT NULL,
        workingSetBytes INTEGER,
        limitBytes INTEGER,
        points INTEGER NOT NULL DEFAULT 1,
        lastAtMs INTEGER NOT NULL,
        PRIMARY KEY (node, targetKey, atMs)
      ) WITHOUT ROWID;

      CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        atMs INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT,
        remote TEXT
      );
      CREATE INDEX audit_at ON audit (atMs);
      CREATE INDEX audit_action ON audit (action, id);
    `);
  },
  // 2: heap snapshots (listed only once verified and renamed) and every capture attempt.
  (db) => {
    db.exec(`
      CREATE TABLE snapshots (
        snapshotId TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        agentId TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('heapsnapshot', 'heapprofile')),
        targetKey TEXT NOT NULL,
        namespace TEXT,
        pod TEXT,
        container TEXT,
        findingId TEXT,
        takenAtMs INTEGER NOT NULL,
        storedAtMs INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        metaJson TEXT NOT NULL
      );
      CREATE INDEX snapshots_stored ON snapshots (storedAtMs);
      CREATE INDEX snapshots_ns_pod ON snapshots (namespace, pod, storedAtMs);
      CREATE INDEX snapshots_finding ON snapshots (findingId);

      CREATE TABLE captures (
        captureId TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        atMs INTEGER NOT NULL,
        namespace TEXT,
        pod TEXT,
        targetKey TEXT,
        findingId TEXT,
        outcome TEXT NOT NULL,
        reportJson TEXT NOT NULL,
        receivedMs INTEGER NOT NULL
      );
      CREATE INDEX captures_at ON captures (atMs);
      CREATE INDEX captures_ns_pod ON captures (namespace, pod, atMs);
      `);
    },
  // 3: fewer index writes per ingested finding. Nearly every finding change an agent sends is an
  // update under the same id with a later updatedAt, and every index holding updatedAt is
  // rewritten by it (a delete at a random page, an insert at the end); with seven such indexes a
  // group of 500 updates dirtied ~2,300 pages. What the queries need:
  //  - newest first, unfiltered or by kind: findings_updated, findings_kind (kind, updatedAt),
  //    so a rare kind (spawns, for the security reviewer) is a seek, not a scan;
  //  - status (two values; open findings are the recent ones) and retention's "resolved before X"
  //    walk findings_updated: findings_status goes;
  //  - node: findings_node_pid (node, pid) has node as its prefix; a node's findings are few
  //    enough to sort: findings_node goes;
  //  - namespace/pod: (namespace, pod) without updatedAt, then a small sort: it is not rewritten
  //    by updates any more;
  //  - target counts: findings_node_pid, findings_node_container, which updates leave alone
  //    (the store writes only the columns that change).
  // EXPLAIN QUERY PLAN for every API filter is checked in the store's tests.
  (db) => {
    db.exec(`
      DROP INDEX findings_status;
      DROP INDEX findings_node;
      DROP INDEX findings_ns_pod;
      CREATE INDEX findings_ns_pod ON findings (namespace, pod);
    `);
  },
  // 4: heap diffs of snapshot pairs (a job queue as much as a result table: pending rows are the
  // queue, so a restarted collector picks up what it had not finished), and the pair lookup.
  (db) => {
    db.exec(`
      CREATE TABLE heap_diffs (
        snapshotA TEXT NOT NULL,
        snapshotB TEXT NOT NULL,
        findingId TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
        reason TEXT,
        createdAtMs INTEGER NOT NULL,
        finishedAtMs INTEGER,
        resultJson TEXT,
        PRIMARY KEY (snapshotA, snapshotB)
      ) WITHOUT ROWID;
      CREATE INDEX heap_diffs_finding ON heap_diffs (findingId, createdAtMs);
      CREATE INDEX heap_diffs_b ON heap_diffs (snapshotB);
      CREATE INDEX heap_diffs_status ON heap_diffs (status, createdAtMs);
      CREATE INDEX snapshots_pair ON snapshots (json_extract(metaJson, '$.pairId'));
    `);
  },
  // 5: a process target's parent, so the web page draws a container's process tree from what the
  // agent sampled instead of guessing it from command lines.
  (db) => {
    db.exec(`ALTER TABLE targets ADD COLUMN ppid INTEGER;`);
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export type SchemaState = { kind: 'fresh' } | { kind: 'ours'; version: number } | { kind: 'foreign'; reason: string };

/** What the opened file holds: nothing yet, a leakwatch database of some version, or something else. */
export function inspectSchema(db: BetterSqlite3.Database): SchemaState {
  const applicationId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  if (applicationId === APPLICATION_ID) return { kind: 'ours', version };
  const objects = (db.prepare(`SELECT COUNT(*) AS n FROM sqlite_master`).get() as { n: number }).n;
  if (applicationId === 0 && version === 0 && objects === 0) return { kind: 'fresh' };
  return { kind: 'foreign', reason: `application_id ${applicationId}, user_version ${version}, ${objects} schema objects` };
}

/** Run the migrations from `fromVersion` on, each in its own transaction with its version bump. */
export function migrate(db: BetterSqlite3.Database, fromVersion: number): void {
  for (let v = fromVersion; v < MIGRATIONS.length; v++) {
    const step = MIGRATIONS[v];
    if (!step) continue;
    db.transaction(() => {
      if (v === 0) db.pragma(`application_id = ${APPLICATION_ID}`);
      step(db);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
