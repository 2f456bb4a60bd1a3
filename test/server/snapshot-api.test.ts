// The snapshot HTTP API on a real collector: ids that try to be paths are 400s, a read token
// cannot download or take, and POST /api/v1/snapshots routes a command to the agent of the
// pod's node (a real Uplink whose `snapshot` handler stands in for agent/capture), waits for its
// report and for the upload, and answers with both.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { DiskQueue } from '../../agent/disk-queue.js';
import { SnapshotSpool } from '../../agent/snapshot-spool.js';
import { Uplink } from '../../agent/uplink.js';
import type { TargetInfo } from '../../protocol/messages.js';
import type { CaptureReport, SnapshotCommand } from '../../protocol/snapshots.js';
import { httpGet, startTestCollector, type TestCollector } from '../support/collector-harness.js';
import { recordingLogger, waitFor } from '../support/protocol-peer.js';
import { fakeCapture, newId, sampleReport } from '../support/snapshot-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'leakwatch-snapshot-api-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function collector(): Promise<TestCollector> {
  const c = await startTestCollector({ heartbeatIntervalMs: 1_000 });
  cleanups.push(() => c.stop());
  return c;
}

function post(c: TestCollector, token: string | null, body: unknown, query = ''): Promise<{ status: number; json: any }> {
  return fetch(`${c.collector.url}/api/v1/snapshots${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, json: await r.json() }));
}

const target = (pod: string): TargetInfo => ({
  targetKey: `proc:${1000 + n}:1700000000000`,
  kind: 'process',
  pid: 1000 + n,
  ppid: 1,
  comm: 'node',
  cmdline: 'node server.js',
  namespace: 'shop',
  pod,
  podUid: null,
  container: 'app',
  containerId: null,
});

/** A real agent on node-a whose `snapshot` command takes a fake capture (what agent/capture will do). */
async function agentOn(c: TestCollector, pods: string[], behaviour: 'capture' | 'refuse' | 'slow-upload' = 'capture') {
  const spoolDir = join(root, `spool-${++n}`);
  const log = recordingLogger();
  const queue = new DiskQueue({ dir: spoolDir });
  const spool = new SnapshotSpool({ spoolDir, log });
  const uplink = new Uplink({ url: c.collector.url, token: c.tokens.agent, agentId: 'agent-a', node: 'node-a', version: 'test', queue, log, backoffBaseMs: 50, backoffCapMs: 300, snapshotSpool: spool });
  const commands: SnapshotCommand[] = [];
  uplink.onCommand('snapshot', async (command, { commandId }) => {
    const cmd = command as unknown as SnapshotCommand;
    commands.push(cmd);
    const kind = cmd.kind ?? 'heapsnapshot';
    const report: CaptureReport = sampleReport({
      node: 'node-a',
      namespace: cmd.namespace,
      pod: cmd.pod,
      commandId,
      requested: kind,
      outcome: behaviour === 'refuse' ? 'refused' : 'captured',
      reason: behaviour === 'refuse' ? 'SIGUSR1 is not caught: sending it would kill the target' : null,
      reasonCode: behaviour === 'refuse' ? 'sigusr1-not-caught' : null,
    });
    if (behaviour !== 'refuse') {
      const capture = fakeCapture(spool.workDir, 300_000, { namespace: cmd.namespace, pod: cmd.pod, kind, commandId });
      report.snapshotIds = [capture.meta.snapshotId];
      // A slow upload: the capture lands in the spool only after the command answered and the API gave up.
      if (behaviour === 'slow-upload') setTimeout(() => void spool.accept(capture), 1_500);
      else await spool.accept(capture);
    }
    uplink.reportCapture(report);
    return report;
  });
  uplink.start();
  uplink.sendSeries(pods.map(target), []);
  cleanups.push(async () => {
    await uplink.close({ flushMs: 0 });
    queue.close();
  });
  await waitFor('targets known to the collector', () => pods.every((p) => c.store.listTargets({ pod: p }).length > 0));
  return { uplink, spool, commands };
}

describe('snapshot API', () => {
  it('answers 400 to ids that are not 32 lowercase hex, whatever they try to reach', async () => {
    const c = await collector();
    for (const path of [
      '/api/v1/snapshots/..%2f..%2fleakwatch.db',
      '/api/v1/snapshots/..%2f..%2fleakwatch.db/download',
      '/api/v1/snapshots/%2e%2e/download',
      '/api/v1/snapshots/..%2F..%2F..%2Fetc%2Fpasswd/download',
      `/api/v1/snapshots/${'A'.repeat(32)}/download`,
      `/api/v1/snapshots/${'a'.repeat(31)}`,
      `/api/v1/snapshots/${'a'.repeat(32)}%00/download`,
    ]) {
      const r = await httpGet(c.collector.url, path, c.tokens.admin);
      assert.equal(r.status, 400, path);
      assert.equal(r.json.error, 'bad-id', path);
    }
    const unknown = await httpGet(c.collector.url, `/api/v1/snapshots/${'a'.repeat(32)}/download`, c.tokens.snapshots);
    assert.equal(unknown.status, 404);
    const raw = await httpGet(c.collector.url, '/api/v1/snapshots/../../leakwatch.db', c.tokens.admin);
    assert.equal(raw.status, 404, 'a raw .. segment matches no route');
    const badQuery = await httpGet(c.collector.url, '/api/v1/snapshots?color=red', c.tokens.read);
    assert.equal(badQuery.status, 400);
  });

  it('a read token can list but not download or take; no token is 401', async () => {
    const c = await collector();
    assert.equal((await httpGet(c.collector.url, '/api/v1/snapshots', c.tokens.read)).status, 200);
    assert.equal((await httpGet(c.collector.url, '/api/v1/snapshots', null)).status, 401);
    assert.equal((await httpGet(c.collector.url, `/api/v1/snapshots/${'a'.repeat(32)}/download`, c.tokens.read)).status, 403);
    const take = await post(c, c.tokens.read, { namespace: 'shop', pod: 'cart' });
    assert.equal(take.status, 403);
    assert.equal(take.json.error, 'forbidden');
    assert.equal(c.store.listAudit({ action: 'snapshot.take' }).length, 0);
  });

  it('takes a snapshot through the agent of the pod\'s node, waits for the upload and answers with report and rows; audited', async () => {
    const c = await collector();
    const a = await agentOn(c, ['cart-1']);
    const r = await post(c, c.tokens.snapshots, { namespace: 'shop', pod: 'cart-1', kind: 'heapsnapshot' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(a.commands, [{ action: 'snapshot', namespace: 'shop', pod: 'cart-1', kind: 'heapsnapshot' }]);
    assert.equal(r.json.capture.outcome, 'captured');
    assert.equal(r.json.snapshots.length, 1);
    assert.equal(r.json.snapshots[0].snapshotId, r.json.capture.snapshotIds[0]);
    assert.equal(r.json.snapshots[0].node, 'node-a');
    assert.ok(c.store.getSnapshot(r.json.capture.snapshotIds[0]), 'listed before the API answered');
    const audit = c.store.listAudit({ action: 'snapshot.take' });
    assert.equal(audit.length, 1);
    assert.match(audit[0]!.subject, /^shop\/cart-1 on node-a$/);
    const captures = await httpGet(c.collector.url, '/api/v1/captures?pod=cart-1', c.tokens.read);
    assert.equal(captures.json.captures.length, 1);
  });

  it('a refusal is a 200 with outcome refused and no snapshots; the refusal is listed with its reason', async () => {
    const c = await collector();
    await agentOn(c, ['cart-2'], 'refuse');
    const r = await post(c, c.tokens.snapshots, { namespace: 'shop', pod: 'cart-2' });
    assert.equal(r.status, 200);
    assert.equal(r.json.capture.outcome, 'refused');
    assert.equal(r.json.capture.reasonCode, 'sigusr1-not-caught');
    assert.deepEqual(r.json.snapshots, []);
    const listed = await httpGet(c.collector.url, '/api/v1/captures?outcome=refused', c.tokens.read);
    assert.equal(listed.json.captures[0].reason, 'SIGUSR1 is not caught: sending it would kill the target');
  });

  it('504 with the captureId when the upload does not land in time; it is listed once it does', async () => {
    const c = await collector();
    await agentOn(c, ['cart-3'], 'slow-upload');
    const r = await post(c, c.tokens.snapshots, { namespace: 'shop', pod: 'cart-3' }, '?timeoutMs=500');
    assert.equal(r.status, 504);
    assert.equal(r.json.error, 'timeout');
    assert.match(r.json.captureId, /^[0-9a-f]{32}$/);
    assert.match(r.json.message, /may still land/);
    const id = r.json.capture.snapshotIds[0] as string;
    await waitFor('the late snapshot listed', () => c.store.getSnapshot(id) !== null);
  });

  it('404 for a pod nobody knows, 503 when its agent is offline, 400 for a bad body', async () => {
    const c = await collector();
    const unknown = await post(c, c.tokens.snapshots, { namespace: 'shop', pod: 'nobody' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error, 'unknown-pod');
    // The pod is known (a target on node-z) but no agent of node-z is connected.
    c.store.ingestSeries('node-z', [target('orphan')], []);
    const offline = await post(c, c.tokens.snapshots, { namespace: 'shop', pod: 'orphan' });
    assert.equal(offline.status, 503);
    assert.match(offline.json.message, /node-z/);
    for (const [body, error] of [
      [{ namespace: 'shop' }, /pod: expected a Kubernetes name/],
      [{ namespace: 'shop', pod: '../x' }, /pod: expected a Kubernetes name/],
      [{ namespace: 'shop', pod: 'a', pid: -1 }, /pid: expected a positive integer/],
      [{ namespace: 'shop', pod: 'a', kind: 'core' }, /kind: expected one of/],
      [{ namespace: 'shop', pod: 'a', extra: 1 }, /unknown field "extra"/],
      ['{not json', /not valid JSON/],
    ] as const) {
      const r = await post(c, c.tokens.snapshots, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.json.message, error);
    }
  });
});
