// Snapshot upload end to end: the agent's spool and uplink against the real collector (real
// WebSocket on loopback, real SQLite, real files). A real heap snapshot arrives verified, 0600
// and listed; findings keep flowing during a long upload; capture reports are delivered even
// when the collector was away or the agent restarted.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { CaptureReportQueue } from '../../agent/capture-report-queue.js';
import { DiskQueue } from '../../agent/disk-queue.js';
import { SnapshotSpool } from '../../agent/snapshot-spool.js';
import { Uplink } from '../../agent/uplink.js';
import { snapshotDir, snapshotFilePath } from '../../server/store/snapshot-files.js';
import { httpGet, startTestCollector, type TestCollector } from '../support/collector-harness.js';
import { recordingLogger, waitFor } from '../support/protocol-peer.js';
import { growthFinding } from '../support/sample-findings.js';
import { fakeCapture, realHeapSnapshot, sampleReport } from '../support/snapshot-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'leakwatch-snapshot-upload-'));
after(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const fresh = (name: string): string => join(root, `${name}-${++count}`);
const NODE = 'node-a';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function collector(options: Parameters<typeof startTestCollector>[0] = {}): Promise<TestCollector> {
  const c = await startTestCollector({ heartbeatIntervalMs: 1_000, ...options });
  let stopped = false;
  cleanups.push(async () => {
    if (!stopped) await c.stop();
    stopped = true;
  });
  return c;
}

function agent(url: string, token: string, spoolDir = fresh('spool'), options: { spoolMaxBytes?: number; chunkBytes?: number } = {}) {
  const log = recordingLogger();
  const queue = new DiskQueue({ dir: spoolDir });
  const spool = new SnapshotSpool({ spoolDir, log, ...(options.spoolMaxBytes ? { maxBytes: options.spoolMaxBytes } : {}) });
  const uplink = new Uplink({
    url,
    token,
    agentId: NODE,
    node: NODE,
    version: 'test',
    queue,
    log,
    backoffBaseMs: 50,
    backoffCapMs: 300,
    snapshotSpool: spool,
    captureReports: new CaptureReportQueue({ spoolDir, log }),
    ...(options.chunkBytes ? { snapshotUpload: { chunkBytes: options.chunkBytes } } : {}),
  });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await uplink.close({ flushMs: 0 });
    queue.close();
  };
  cleanups.push(close);
  return { spool, uplink, queue, log, spoolDir, close };
}

const sha256File = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('snapshot upload → real collector', () => {
  it('delivers a real heap snapshot: sha256 verified, 0600, listed, downloadable with the snapshots scope only, audited', async () => {
    const c = await collector();
    const a = agent(c.collector.url, c.tokens.agent);
    const capture = await realHeapSnapshot(a.spool.workDir);
    assert.ok(capture.bytes > 100_000, `a real snapshot is sizeable (${capture.bytes} bytes)`);
    a.uplink.start();
    await a.spool.accept(capture);
    const id = capture.meta.snapshotId;
    await waitFor('snapshot listed', () => c.store.getSnapshot(id) !== null, 20_000);
    await waitFor('spool emptied', () => a.spool.size === 0);

    const stored = snapshotFilePath(snapshotDir(c.dataDir), id, 'heapsnapshot');
    assert.equal(statSync(stored).mode & 0o777, 0o600);
    assert.equal(sha256File(stored), capture.sha256);
    assert.deepEqual(readdirSync(snapshotDir(c.dataDir)), [`${id}.heapsnapshot`], 'no .part or sidecar left behind');
    assert.ok(!existsSync(join(a.spool.dir, `${id}.heapsnapshot`)), 'the agent deleted its copy after snapshot-stored');
    JSON.parse(readFileSync(stored, 'utf8'));

    const list = await httpGet(c.collector.url, '/api/v1/snapshots?namespace=shop&pod=cart-7d9f', c.tokens.read);
    assert.equal(list.status, 200);
    assert.equal(list.json.snapshots.length, 1);
    assert.equal(list.json.snapshots[0].snapshotId, id);
    assert.equal(list.json.snapshots[0].sha256, capture.sha256);
    assert.equal(list.json.snapshots[0].bytes, capture.bytes);
    assert.equal(list.json.snapshots[0].node, NODE);
    const one = await httpGet(c.collector.url, `/api/v1/snapshots/${id}`, c.tokens.read);
    assert.equal(one.status, 200);
    assert.equal(one.json.pid, capture.meta.pid);

    const denied = await httpGet(c.collector.url, `/api/v1/snapshots/${id}/download`, c.tokens.read);
    assert.equal(denied.status, 403);
    const dl = await httpGet(c.collector.url, `/api/v1/snapshots/${id}/download`, c.tokens.snapshots);
    assert.equal(dl.status, 200);
    assert.equal(dl.headers['x-content-sha256'], capture.sha256);
    assert.equal(dl.headers['content-type'], 'application/octet-stream');
    assert.equal(dl.headers['content-disposition'], `attachment; filename="cart-7d9f-${capture.meta.pid}-${id}.heapsnapshot"`);
    assert.equal(createHash('sha256').update(dl.body, 'utf8').digest('hex'), capture.sha256);
    const audit = c.store.listAudit({ action: 'snapshot.download' });
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.subject, id);
    assert.equal(audit[0]!.actor, 'snapshots-token');
  });

  it('keeps findings flowing while a long upload is under way', async () => {
    const c = await collector();
    const a = agent(c.collector.url, c.tokens.agent, fresh('spool'), { chunkBytes: 64 * 1024 });
    a.uplink.start();
    await waitFor('connected', () => a.uplink.state().connected);
    const big = fakeCapture(a.spool.workDir, 96 * 1024 * 1024);
    await a.spool.accept(big);
    await waitFor('upload under way', () => (a.uplink.state().snapshots?.bytesSent ?? 0) > 0);
    a.uplink.enqueue([{ change: 'open', finding: growthFinding('growth-during-upload', NODE, Date.now()) }]);
    await waitFor('finding acknowledged', () => a.uplink.state().ackedFindings === 1, 20_000);
    const during = a.uplink.state().snapshots!;
    assert.equal(during.uploading, big.meta.snapshotId, 'the finding was acknowledged before the upload finished');
    assert.ok(during.bytesSent < big.bytes);
    await waitFor('snapshot listed', () => c.store.getSnapshot(big.meta.snapshotId) !== null, 60_000);
    assert.equal(sha256File(snapshotFilePath(snapshotDir(c.dataDir), big.meta.snapshotId, 'heapsnapshot')), big.sha256);
  });

  it('delivers capture reports queued while the collector was away, after an agent restart too', async () => {
    const c = await collector();
    const spoolDir = fresh('spool');
    // The collector's port is known but no agent connects yet: a wrong token keeps it out.
    const first = agent(c.collector.url, 'not-a-token', spoolDir);
    first.uplink.start();
    const refused = sampleReport({ node: NODE, outcome: 'refused', reasonCode: 'sigusr1-not-caught', reason: 'SIGUSR1 is not caught by pid 4242: sending it would kill the target' });
    first.uplink.reportCapture(refused);
    assert.equal(first.uplink.state().captureReportsQueued, 1);
    first.uplink.reportCapture({ ...refused, captureId: 'not-hex' });
    assert.equal(first.uplink.state().captureReportsQueued, 1, 'a malformed report is refused at the door');
    assert.ok(first.log.lines.some((l) => l.msg === 'capture report not sent'));
    await first.close();

    const second = agent(c.collector.url, c.tokens.agent, spoolDir);
    assert.equal(second.uplink.state().captureReportsQueued, 1, 'the report survived the restart on disk');
    second.uplink.start();
    await waitFor('report acknowledged', () => second.uplink.state().captureReportsQueued === 0);
    assert.deepEqual(readdirSync(join(spoolDir, 'capture-reports')), []);
    const r = await httpGet(c.collector.url, '/api/v1/captures?outcome=refused', c.tokens.read);
    assert.equal(r.status, 200);
    assert.equal(r.json.captures.length, 1);
    assert.deepEqual(r.json.captures[0], refused);
    const bad = await httpGet(c.collector.url, '/api/v1/captures?outcome=maybe', c.tokens.read);
    assert.equal(bad.status, 400);
  });

  it('uploads what an earlier run of the agent spooled, after its restart', async () => {
    const c = await collector();
    const spoolDir = fresh('spool');
    const first = agent(c.collector.url, 'not-a-token', spoolDir);
    first.uplink.start();
    const capture = fakeCapture(first.spool.workDir, 700_000);
    await first.spool.accept(capture);
    await first.close();
    assert.equal(c.store.getSnapshot(capture.meta.snapshotId), null);

    const second = agent(c.collector.url, c.tokens.agent, spoolDir);
    assert.equal(second.spool.size, 1);
    second.uplink.start();
    await waitFor('snapshot listed', () => c.store.getSnapshot(capture.meta.snapshotId) !== null);
    await waitFor('spool emptied', () => second.spool.size === 0);
  });

  it('drops a snapshot the collector refuses for good (too big), logs why, and goes on with the next', async () => {
    const c = await collector({ snapshots: { maxSnapshotBytes: 500_000 } });
    const a = agent(c.collector.url, c.tokens.agent);
    const big = fakeCapture(a.spool.workDir, 600_000);
    const small = fakeCapture(a.spool.workDir, 400_000);
    await a.spool.accept(big);
    await a.spool.accept(small);
    a.uplink.start();
    await waitFor('small one listed', () => c.store.getSnapshot(small.meta.snapshotId) !== null);
    await waitFor('spool emptied', () => a.spool.size === 0);
    assert.equal(c.store.getSnapshot(big.meta.snapshotId), null);
    const dropped = a.log.lines.find((l) => l.msg === 'snapshot dropped from the spool: it can never be delivered');
    assert.ok(dropped);
    assert.equal(dropped.fields.snapshotId, big.meta.snapshotId);
    assert.match(String(dropped.fields.why), /too-big/);
    assert.equal(a.uplink.state().snapshots!.dropped, 1);
  });
});
