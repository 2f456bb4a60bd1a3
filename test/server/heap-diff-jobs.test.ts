// Automatic heap diffs on a real collector: a real agent Uplink uploads two real snapshots of a
// leaking child (one pairId, pairIndex 0 and 1, the growth finding's id); the collector diffs them
// in a child process and the finding's API answer carries the top growers, the leaking class
// first. A pair stored but not diffed before a restart is picked up; a truncated file fails with a
// reason while the collector keeps serving; the CLI diffs by ids through the API.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { DiskQueue } from '../../agent/disk-queue.js';
import { SnapshotSpool } from '../../agent/snapshot-spool.js';
import { Uplink } from '../../agent/uplink.js';
import type { HeapDiffRecord } from '../../protocol/heap-diff-record.js';
import { startCollector, type Collector, type CollectorOptions } from '../../server/collector.js';
import { snapshotDir, snapshotFilePath } from '../../server/store/snapshot-files.js';
import { openStore, type SqliteStore } from '../../server/store/sqlite-store.js';
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from '../../server/store/sqlite-schema.js';
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { repoRoot } from '../support/cli.js';
import { httpGet, makeTokens, memoryLogger, startTestCollector, type TestCollector } from '../support/collector-harness.js';
import { takeSnapshotPair, type SnapshotPair } from '../support/heap-targets.js';
import { recordingLogger } from '../support/protocol-peer.js';
import { growthFinding } from '../support/sample-findings.js';
import { newId, sampleMeta, sha256Of } from '../support/snapshot-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'leakwatch-heap-diff-jobs-'));
let pair: SnapshotPair;
before(() => {
  pair = takeSnapshotPair('sessions');
});
after(() => {
  pair?.cleanup();
  rmSync(root, { recursive: true, force: true });
});
let n = 0;
const fresh = (name: string): string => join(root, `${name}-${++n}`);
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function untilDiff(url: string, token: string, path: string, pick: (json: any) => HeapDiffRecord | undefined, timeoutMs = 60_000): Promise<HeapDiffRecord> {
  let last: HeapDiffRecord | undefined;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await httpGet(url, path, token);
    last = r.status === 200 || r.status === 202 ? pick(r.json) : undefined;
    if (last && (last.status === 'done' || last.status === 'failed')) return last;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`no finished heap diff at ${path} within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

/** The CLI from source, without blocking this process (the collector under test lives in it). */
function runCli(args: string[], options: { env: NodeJS.ProcessEnv }): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(repoRoot, 'cli/main.ts'), ...args], { cwd: repoRoot, env: { ...process.env, ...options.env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Copies the pair into a data directory as if uploaded (rows + 0600 files), without queueing anything. */
function plantPair(store: SqliteStore, findingId: string | null, options: { truncateAfter?: boolean } = {}): { a: string; b: string } {
  const pairId = newId();
  const ids: string[] = [];
  for (const [index, file] of [pair.before, pair.after].entries()) {
    const meta = sampleMeta({ pairId, pairIndex: index, findingId, trigger: 'growth' });
    const dest = snapshotFilePath(snapshotDir(store.dataDir), meta.snapshotId, 'heapsnapshot');
    copyFileSync(file, dest);
    if (index === 1 && options.truncateAfter) truncateSync(dest, Math.floor(statSync(dest).size / 2));
    const content = readFileSync(dest);
    store.insertSnapshot({ ...meta, node: 'node-a', agentId: 'node-a', bytes: content.length, sha256: sha256Of(content), storedAtMs: Date.now() + index });
    ids.push(meta.snapshotId);
  }
  return { a: ids[0]!, b: ids[1]! };
}

async function collectorOn(dataDir: string, options: Partial<CollectorOptions> = {}): Promise<{ collector: Collector; store: SqliteStore; read: string; logs: ReturnType<typeof memoryLogger> }> {
  const store = openStore(dataDir);
  const { tokens, entries } = makeTokens();
  const logs = memoryLogger();
  const collector = await startCollector({ store, ownsStore: true, host: '127.0.0.1', port: 0, tokens: entries, log: logs.log, ...options });
  cleanups.push(() => collector.close());
  return { collector, store, read: tokens.read, logs };
}

describe('automatic heap diffs', () => {
  it('a pair uploaded by a real agent is diffed out of process; the finding, the snapshot and the diff endpoint carry the leaking class first; the CLI diffs by ids', async () => {
    const c: TestCollector = await startTestCollector({ heartbeatIntervalMs: 1_000 });
    cleanups.push(() => c.stop());
    const spoolDir = fresh('spool');
    const log = recordingLogger();
    const queue = new DiskQueue({ dir: spoolDir });
    const spool = new SnapshotSpool({ spoolDir, log });
    const uplink = new Uplink({ url: c.collector.url, token: c.tokens.agent, agentId: 'node-a', node: 'node-a', version: 'test', queue, log, backoffBaseMs: 50, backoffCapMs: 300, snapshotSpool: spool });
    cleanups.push(async () => {
      await uplink.close({ flushMs: 0 });
      queue.close();
    });
    const findingId = 'growth-node-a-4242-heapdiff';
    uplink.enqueue([{ change: 'open', finding: growthFinding(findingId, 'node-a', Date.now()) }]);
    uplink.start();
    const pairId = newId();
    const ids: string[] = [];
    for (const [index, file] of [pair.before, pair.after].entries()) {
      const meta = sampleMeta({ pairId, pairIndex: index, findingId, trigger: 'growth' });
      const path = join(spool.workDir, `${meta.snapshotId}.capture`);
      copyFileSync(file, path);
      const content = readFileSync(path);
      await spool.accept({ path, bytes: content.length, sha256: sha256Of(content), meta });
      ids.push(meta.snapshotId);
    }
    const [a, b] = ids as [string, string];

    const diff = await untilDiff(c.collector.url, c.tokens.read, `/api/v1/findings/${findingId}`, (j) => j.heapDiff);
    assert.equal(diff.status, 'done', diff.reason ?? '');
    assert.equal(diff.snapshotA, a);
    assert.equal(diff.snapshotB, b);
    assert.equal(diff.findingId, findingId);
    const top = diff.result!.growers[0]!;
    assert.equal(top.className, 'Session');
    assert.ok(top.countDelta >= 20_000 - 100 && top.sizeDeltaBytes > 0, JSON.stringify(top));
    assert.match(top.retainerPath ?? '', /^Session ← .*sessions/);
    assert.ok(c.logs.lines.some((l) => l.msg === 'heap diff done'), 'the collector logged the diff');

    // The snapshot names the diff it takes part in; the diff endpoint answers the stored one at once.
    const snap = await httpGet(c.collector.url, `/api/v1/snapshots/${b}`, c.tokens.read);
    assert.equal(snap.json.analysis[0].status, 'done');
    assert.equal(snap.json.analysis[0].snapshotA, a);
    const direct = await httpGet(c.collector.url, `/api/v1/snapshots/${a}/diff/${b}`, c.tokens.read);
    assert.equal(direct.status, 200);
    assert.equal(direct.json.heapDiff.result.growers[0].className, 'Session');
    // The list carries the top grower only.
    const list = await httpGet(c.collector.url, `/api/v1/findings?kind=growth`, c.tokens.read);
    const listed = list.json.findings.find((f: { id: string }) => f.id === findingId);
    assert.equal(listed.heapDiff.result.growers.length, 1);

    const env = { LEAKWATCH_URL: c.collector.url, LEAKWATCH_TOKEN: c.tokens.read };
    const cli = await runCli(['snapshots', 'diff', a, b], { env });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /Session/);
    assert.match(cli.stdout, /sessions/);
    const cliJson = await runCli(['snapshots', 'diff', a, b, '--json'], { env });
    assert.equal(JSON.parse(cliJson.stdout).result.growers[0].className, 'Session');
    const findings = await runCli(['findings', '--kind', 'growth'], { env });
    assert.equal(findings.status, 0, findings.stderr);
    assert.match(findings.stdout, new RegExp(`${findingId}.*top grower: Session`));
    // An id that is not stored: one line, non-zero exit.
    const missing = await runCli(['snapshots', 'diff', a, newId()], { env });
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /HTTP 404: not-found/);
  });

  it('after a restart, a pair stored but never diffed and a diff interrupted mid-run are both diffed', async () => {
    const dataDir = fresh('data');
    const offline = openStore(dataDir);
    const undiffed = plantPair(offline, 'growth-undiffed');
    const interrupted = plantPair(offline, 'growth-interrupted');
    offline.queueHeapDiff(interrupted.a, interrupted.b, 'growth-interrupted');
    offline.finishHeapDiff(interrupted.a, interrupted.b, { status: 'running' });
    offline.close();

    const { collector, read, logs } = await collectorOn(dataDir);
    for (const p of [undiffed, interrupted]) {
      const d = await untilDiff(collector.url, read, `/api/v1/snapshots/${p.a}/diff/${p.b}`, (j) => j.heapDiff);
      assert.equal(d.status, 'done', d.reason ?? '');
      assert.equal(d.result!.growers[0]!.className, 'Session');
    }
    assert.ok(logs.lines.some((l) => l.msg === 'heap snapshot pair stored without a diff: queued'));
    assert.ok(logs.lines.some((l) => l.msg === 'heap diffs interrupted by a restart are queued again'));
  });

  it('stopping mid-diff answers the waiting request, kills the child and leaves the diff queued for the next start', async () => {
    const dataDir = fresh('data');
    const first = await collectorOn(dataDir);
    const p = plantPair(first.store, 'growth-stopped');
    const answer = httpGet(first.collector.url, `/api/v1/snapshots/${p.a}/diff/${p.b}?wait=20000`, first.read);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && first.store.getHeapDiff(p.a, p.b)?.status !== 'running') await new Promise((r) => setTimeout(r, 10));
    await first.collector.close();
    const r = await answer;
    assert.ok([200, 202].includes(r.status), `answered, not hung: ${r.status}`);
    if (r.status === 202) assert.equal(r.json.heapDiff.status, 'running');
    const second = await collectorOn(dataDir);
    const d = await untilDiff(second.collector.url, second.read, `/api/v1/snapshots/${p.a}/diff/${p.b}`, (j) => j.heapDiff);
    assert.equal(d.status, 'done', d.reason ?? '');
    assert.equal(d.findingId, 'growth-stopped');
  });

  it('a data directory of the schema before heap_diffs is upgraded in place and its stored pair diffed', async () => {
    const dataDir = fresh('data');
    // Built as the previous leakwatch left it: the schema before heap_diffs, a pair stored, nothing diffed.
    const current = openStore(dataDir);
    const p = plantPair(current, 'growth-from-v2');
    current.close();
    const db = new Database(join(dataDir, 'leakwatch.db'));
    // Schema 3: what migrations 4 (heap_diffs) and 5 (targets.ppid) added is taken out again.
    db.exec('DROP INDEX snapshots_pair; DROP TABLE heap_diffs; ALTER TABLE targets DROP COLUMN ppid;');
    db.pragma('user_version = 3');
    assert.equal(db.pragma('application_id', { simple: true }), APPLICATION_ID);
    db.close();
    assert.equal(MIGRATIONS.length, SCHEMA_VERSION);
    assert.equal(SCHEMA_VERSION, 5, 'a new migration: say here what it adds, so schema 3 stays schema 3');
    const { store } = await collectorOn(dataDir);
    assert.equal(store.describe().schemaVersion, SCHEMA_VERSION);
    // Queued by the start-up scan (nothing asked for it over the API).
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !['done', 'failed'].includes(store.getHeapDiff(p.a, p.b)?.status ?? '')) await new Promise((r) => setTimeout(r, 200));
    const d = store.getHeapDiff(p.a, p.b)!;
    assert.equal(d.status, 'done', d.reason ?? '');
    assert.equal(d.findingId, 'growth-from-v2');
  });

  it('a truncated snapshot fails with a reason; the collector keeps serving and diffs the next pair', async () => {
    const dataDir = fresh('data');
    const offline = openStore(dataDir);
    const broken = plantPair(offline, 'growth-broken', { truncateAfter: true });
    offline.close();
    const { collector, store, read } = await collectorOn(dataDir);
    const failed = await untilDiff(collector.url, read, `/api/v1/snapshots/${broken.a}/diff/${broken.b}`, (j) => j.heapDiff);
    assert.equal(failed.status, 'failed');
    assert.match(failed.reason ?? '', /exited with 1: .+/);
    assert.equal(failed.result, null);
    // Still serving; still diffing.
    assert.equal((await httpGet(collector.url, '/healthz', null)).status, 200);
    const good = plantPair(store, null);
    const d = await untilDiff(collector.url, read, `/api/v1/snapshots/${good.a}/diff/${good.b}?wait=20000`, (j) => j.heapDiff);
    assert.equal(d.status, 'done');
    // An explicit retry queues the failed one again (and it fails again, for the same reason).
    const retried = await httpGet(collector.url, `/api/v1/snapshots/${broken.a}/diff/${broken.b}?retry=true`, read);
    assert.ok([200, 202].includes(retried.status));
    const again = await untilDiff(collector.url, read, `/api/v1/snapshots/${broken.a}/diff/${broken.b}`, (j) => j.heapDiff);
    assert.equal(again.status, 'failed');
    // The CLI by ids: the reason on one stderr line, a non-zero exit.
    const cli = await runCli(['snapshots', 'diff', broken.a, broken.b], { env: { LEAKWATCH_URL: collector.url, LEAKWATCH_TOKEN: read } });
    assert.equal(cli.status, 1);
    assert.match(cli.stderr, /^leakwatch: the collector could not diff these snapshots: the diff process exited with 1: .+\n$/);
  });

  it('a diff past its timeout is killed and recorded as failed; retention deletes diffs with their snapshots', async () => {
    const dataDir = fresh('data');
    const { collector, store, read } = await collectorOn(dataDir, { heapDiffs: { timeoutMs: 50 } });
    const p = plantPair(store, 'growth-slow');
    const first = await httpGet(collector.url, `/api/v1/snapshots/${p.a}/diff/${p.b}`, read);
    assert.equal(first.status, 202);
    assert.equal(first.headers['retry-after'], '2');
    const d = await untilDiff(collector.url, read, `/api/v1/snapshots/${p.a}/diff/${p.b}`, (j) => j.heapDiff);
    assert.equal(d.status, 'failed');
    assert.match(d.reason ?? '', /timed out/);
    store.applyRetention({ maxAgeMs: 1, maxBlobBytes: 1 << 30, maxSnapshotAgeMs: 0, maxSnapshotBytes: 1 << 30 }, Date.now() + 10_000, () => {});
    assert.equal(store.getHeapDiff(p.a, p.b), null);
    assert.deepEqual(store.listHeapDiffs({}), []);
  });

  it('the queue is bounded: past maxPending a diff is failed with "queue full" and the ones queued still run', async () => {
    const dataDir = fresh('data');
    const { collector, store, read } = await collectorOn(dataDir, { heapDiffs: { maxPending: 1 } });
    const [p1, p2, p3] = [plantPair(store, null), plantPair(store, null), plantPair(store, null)];
    const ask = (p: { a: string; b: string }) => httpGet(collector.url, `/api/v1/snapshots/${p.a}/diff/${p.b}`, read);
    assert.equal((await ask(p1)).json.heapDiff.status, 'running');
    assert.equal((await ask(p2)).json.heapDiff.status, 'pending');
    const refused = await ask(p3);
    assert.equal(refused.status, 200);
    assert.equal(refused.json.heapDiff.status, 'failed');
    assert.match(refused.json.heapDiff.reason, /queue is full \(1 waiting\)/);
    for (const p of [p1, p2]) assert.equal((await untilDiff(collector.url, read, `/api/v1/snapshots/${p.a}/diff/${p.b}`, (j) => j.heapDiff)).status, 'done');
  });

  it('bad ids and kinds are 400s naming the problem; unknown snapshots 404', async () => {
    const dataDir = fresh('data');
    const { collector, store, read } = await collectorOn(dataDir);
    const p = plantPair(store, null);
    const get = (path: string) => httpGet(collector.url, path, read);
    assert.equal((await get(`/api/v1/snapshots/${p.a}/diff/..%2F..%2Fetc`)).status, 400);
    assert.equal((await get(`/api/v1/snapshots/${p.a.toUpperCase()}/diff/${p.b}`)).json.error, 'bad-id');
    assert.equal((await get(`/api/v1/snapshots/${p.a}/diff/${p.a}`)).json.error, 'same-snapshot');
    assert.equal((await get(`/api/v1/snapshots/${p.a}/diff/${newId()}`)).status, 404);
    assert.equal((await get(`/api/v1/snapshots/${p.a}/diff/${p.b}?wait=99999999`)).json.error, 'bad-query');
    assert.equal((await get(`/api/v1/snapshots/${p.a}/diff/${p.b}?x=1`)).json.error, 'bad-query');
    assert.equal((await httpGet(collector.url, `/api/v1/snapshots/${p.a}/diff/${p.b}`, null)).status, 401);
  });
});
