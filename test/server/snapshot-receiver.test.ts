// The collector's side of the snapshot upload, driven by a hand-written agent on a real WebSocket
// so that each test can misbehave in exactly one way: a flipped byte, a gap, an overlap, a chunk
// past the end, a truncated upload, a frame for no upload. Whatever goes wrong, nothing that is
// not verified is ever listed, and the agent can always begin again from the held offset.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { encodeChunkFrame } from '../../protocol/chunk-frame.js';
import type { CollectorMessage } from '../../protocol/messages.js';
import type { SnapshotMeta } from '../../protocol/snapshots.js';
import { startCollector } from '../../server/collector.js';
import { snapshotDir, snapshotFilePath, snapshotPartMetaPath, snapshotPartPath } from '../../server/store/snapshot-files.js';
import { openStore } from '../../server/store/sqlite-store.js';
import { helloAgent, makeTokens, memoryLogger, startTestCollector, type TestAgent, type TestCollector } from '../support/collector-harness.js';
import { sampleMeta, sha256Of } from '../support/snapshot-fixtures.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function collector(): Promise<TestCollector> {
  const c = await startTestCollector();
  cleanups.push(() => c.stop());
  return c;
}

async function agentOf(c: { collector: { agentUrl: string } }, token: string, agentId = 'node-a'): Promise<TestAgent> {
  const a = await helloAgent(c.collector.agentUrl, token, agentId);
  cleanups.push(() => a.ws.terminate());
  return a;
}

const CHUNK = 64 * 1024;

interface Upload {
  meta: SnapshotMeta;
  content: Buffer;
  sha256: string;
}

function upload(bytes = 5 * CHUNK + 123): Upload {
  const content = randomBytes(bytes);
  return { meta: sampleMeta(), content, sha256: sha256Of(content) };
}

/** Messages about one snapshot received from now on. */
function nextAbout(a: TestAgent, id: string, type: CollectorMessage['type'], after = a.received.length): Promise<CollectorMessage> {
  return a.next((m) => a.received.indexOf(m) >= after && m.type === type && (m as { snapshotId?: string }).snapshotId === id, 10_000);
}

async function begin(a: TestAgent, u: Upload): Promise<number> {
  const mark = a.received.length;
  a.send({ type: 'snapshot-begin', meta: u.meta, bytes: u.content.length, sha256: u.sha256 });
  const m = await a.next((x) => a.received.indexOf(x) >= mark && (x.type === 'snapshot-offset' || x.type === 'snapshot-rejected'), 10_000);
  assert.equal(m.type, 'snapshot-offset', JSON.stringify(m));
  return (m as { offset: number }).offset;
}

function sendChunks(a: TestAgent, u: Upload, from: number, to = u.content.length, mutate?: (offset: number, payload: Buffer) => Buffer): void {
  for (let pos = from; pos < to; pos += CHUNK) {
    let payload = u.content.subarray(pos, Math.min(to, pos + CHUNK));
    if (mutate) payload = mutate(pos, payload);
    a.sendRaw(encodeChunkFrame(u.meta.snapshotId, pos, payload), true);
  }
}

async function end(a: TestAgent, u: Upload): Promise<CollectorMessage> {
  const mark = a.received.length;
  a.send({ type: 'snapshot-end', snapshotId: u.meta.snapshotId, bytes: u.content.length, sha256: u.sha256 });
  return a.next((x) => a.received.indexOf(x) >= mark && (x.type === 'snapshot-stored' || x.type === 'snapshot-rejected') && (x as { snapshotId: string }).snapshotId === u.meta.snapshotId, 10_000);
}

const listed = (c: TestCollector, id: string): boolean => c.store.getSnapshot(id) !== null;

describe('snapshot receiver', () => {
  it('a flipped byte is rejected at the end, never listed, and the upload sent again from 0 is stored', async () => {
    const c = await collector();
    const a = await agentOf(c, c.tokens.agent);
    const u = upload();
    assert.equal(await begin(a, u), 0);
    sendChunks(a, u, 0, u.content.length, (offset, payload) => {
      if (offset !== 2 * CHUNK) return payload;
      const copy = Buffer.from(payload);
      copy[100] = copy[100]! ^ 0xff;
      return copy;
    });
    const r = await end(a, u);
    assert.equal(r.type, 'snapshot-rejected');
    assert.equal((r as { code: string }).code, 'sha-mismatch');
    assert.equal((r as { restart: boolean }).restart, true);
    assert.equal(listed(c, u.meta.snapshotId), false);
    const dir = snapshotDir(c.dataDir);
    assert.equal(existsSync(snapshotPartPath(dir, u.meta.snapshotId)), false, 'damaged bytes are not kept to resume from');
    assert.equal((await httpList(c)).length, 0);

    assert.equal(await begin(a, u), 0);
    sendChunks(a, u, 0);
    const ok = await end(a, u);
    assert.equal(ok.type, 'snapshot-stored');
    assert.equal((ok as { sha256: string }).sha256, u.sha256);
    assert.ok(listed(c, u.meta.snapshotId));
    assert.deepEqual(readFileSync(snapshotFilePath(dir, u.meta.snapshotId, 'heapsnapshot')), u.content);
    assert.ok(!a.received.some((m) => m.type === 'error'), 'a damaged upload is not the agent misbehaving');
  });

  it('a truncated upload is never listed; after a reconnect it resumes from the bytes held', async () => {
    const c = await collector();
    const a = await agentOf(c, c.tokens.agent);
    const u = upload();
    await begin(a, u);
    const half = 3 * CHUNK;
    sendChunks(a, u, 0, half);
    const r = await end(a, u);
    assert.equal((r as { code: string }).code, 'truncated');
    assert.equal(listed(c, u.meta.snapshotId), false);
    assert.equal(statSync(snapshotPartPath(snapshotDir(c.dataDir), u.meta.snapshotId)).mode & 0o777, 0o600);
    a.ws.close();
    await a.closed;

    const again = await agentOf(c, c.tokens.agent);
    assert.equal(await begin(again, u), half, 'the collector says how much it holds');
    sendChunks(again, u, half);
    assert.equal((await end(again, u)).type, 'snapshot-stored');
    assert.deepEqual(readFileSync(snapshotFilePath(snapshotDir(c.dataDir), u.meta.snapshotId, 'heapsnapshot')), u.content);
  });

  it('a gap and an overlap are rejected with restart; chunks still in flight are dropped quietly; begin resumes at the held offset', async () => {
    const c = await collector();
    const a = await agentOf(c, c.tokens.agent);
    const u = upload();
    await begin(a, u);
    sendChunks(a, u, 0, CHUNK);
    // A gap: skip the second chunk.
    let mark = a.received.length;
    sendChunks(a, u, 2 * CHUNK, 4 * CHUNK);
    let r = await nextAbout(a, u.meta.snapshotId, 'snapshot-rejected', mark);
    assert.equal((r as { code: string }).code, 'offset-mismatch');
    assert.match((r as { reason: string }).reason, /gap/);
    assert.equal((r as { restart: boolean }).restart, true);
    assert.equal(await begin(a, u), CHUNK);
    // An overlap: the first chunk again.
    mark = a.received.length;
    sendChunks(a, u, 0, CHUNK);
    r = await nextAbout(a, u.meta.snapshotId, 'snapshot-rejected', mark);
    assert.match((r as { reason: string }).reason, /overlap/);
    assert.equal(await begin(a, u), CHUNK);
    sendChunks(a, u, CHUNK);
    assert.equal((await end(a, u)).type, 'snapshot-stored');
    assert.ok(!a.received.some((m) => m.type === 'error'), `no error for in-flight chunks: ${JSON.stringify(a.received.filter((m) => m.type === 'error'))}`);
  });

  it('a chunk past the declared size is rejected; a malformed frame or one for no upload is an error naming why', async () => {
    const c = await collector();
    const a = await agentOf(c, c.tokens.agent);
    const u = upload(CHUNK);
    await begin(a, u);
    let mark = a.received.length;
    a.sendRaw(encodeChunkFrame(u.meta.snapshotId, 0, Buffer.concat([u.content, Buffer.from('extra')])), true);
    const r = await nextAbout(a, u.meta.snapshotId, 'snapshot-rejected', mark);
    assert.equal((r as { code: string }).code, 'past-end');
    assert.equal(listed(c, u.meta.snapshotId), false);

    mark = a.received.length;
    const wrongMagic = encodeChunkFrame(u.meta.snapshotId, 0, Buffer.from('x'));
    wrongMagic.write('XXXX', 0, 'ascii');
    a.sendRaw(wrongMagic, true);
    let e = await a.next((m) => a.received.indexOf(m) >= mark && m.type === 'error');
    assert.equal((e as { code: string }).code, 'bad-frame');
    assert.match((e as { message: string }).message, /LWS1/);

    mark = a.received.length;
    a.sendRaw(encodeChunkFrame('f'.repeat(32), 0, Buffer.from('x')), true);
    e = await a.next((m) => a.received.indexOf(m) >= mark && m.type === 'error');
    assert.equal((e as { code: string }).code, 'unknown-snapshot');

    mark = a.received.length;
    a.send({ type: 'snapshot-begin', meta: { ...u.meta, snapshotId: '../../etc/passwd' }, bytes: 1, sha256: u.sha256 });
    e = await a.next((m) => a.received.indexOf(m) >= mark && m.type === 'error');
    assert.equal((e as { code: string }).code, 'bad-message');
    assert.deepEqual(readdirSync(snapshotDir(c.dataDir)).filter((n) => !n.startsWith(u.meta.snapshotId)), []);
  });

  it('an id already stored answers with its full size and stores nothing twice; another agent cannot take over an id', async () => {
    const c = await collector();
    const a = await agentOf(c, c.tokens.agent);
    const u = upload(CHUNK + 5);
    await begin(a, u);
    sendChunks(a, u, 0);
    assert.equal((await end(a, u)).type, 'snapshot-stored');
    assert.equal(await begin(a, u), u.content.length);
    assert.equal((await end(a, u)).type, 'snapshot-stored');
    assert.equal((await httpList(c)).length, 1);

    const other = await agentOf(c, c.tokens.agent, 'node-b');
    const v = upload(CHUNK);
    await begin(a, v);
    sendChunks(a, v, 0, 10);
    const mark = other.received.length;
    other.send({ type: 'snapshot-begin', meta: v.meta, bytes: v.content.length, sha256: v.sha256 });
    const r = await nextAbout(other, v.meta.snapshotId, 'snapshot-rejected', mark);
    assert.equal((r as { code: string }).code, 'id-conflict');
    assert.equal((r as { restart: boolean }).restart, false);
  });

  it('a .part survives a collector restart: the sha256 is recomputed over it and the upload resumes', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-receiver-restart-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const { tokens, entries } = makeTokens();
    const start = async () => {
      const logs = memoryLogger();
      const col = await startCollector({ store: openStore(dataDir), ownsStore: true, host: '127.0.0.1', port: 0, tokens: entries, log: logs.log });
      return { collector: col, logs };
    };
    const first = await start();
    const u = upload();
    let a = await helloAgent(first.collector.agentUrl, tokens.agent, 'node-a');
    await begin(a, u);
    sendChunks(a, u, 0, 2 * CHUNK);
    const part = snapshotPartPath(snapshotDir(dataDir), u.meta.snapshotId);
    const deadline = Date.now() + 5000;
    while ((existsSync(part) ? statSync(part).size : 0) < 2 * CHUNK && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    a.ws.terminate();
    await first.collector.close();

    const second = await start();
    cleanups.push(() => second.collector.close());
    a = await helloAgent(second.collector.agentUrl, tokens.agent, 'node-a');
    cleanups.push(() => a.ws.terminate());
    assert.equal(await begin(a, u), 2 * CHUNK);
    sendChunks(a, u, 2 * CHUNK);
    assert.equal((await end(a, u)).type, 'snapshot-stored');
    assert.ok(second.logs.lines.some((l) => l.msg === 'snapshot upload resumes' && l.offset === 2 * CHUNK));
  });

  it('orphan .part files older than a day are deleted at start, logged; retention deletes snapshots by bytes and age, logged', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-receiver-retention-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const dir = snapshotDir(dataDir);
    const store = openStore(dataDir);
    const oldId = 'a'.repeat(32);
    const freshId = 'b'.repeat(32);
    writeFileSync(snapshotPartPath(dir, oldId), 'half', { mode: 0o600 });
    writeFileSync(snapshotPartMetaPath(dir, oldId), '{}', { mode: 0o600 });
    writeFileSync(snapshotPartPath(dir, freshId), 'half', { mode: 0o600 });
    const twoDaysAgo = (Date.now() - 2 * 86_400_000) / 1000;
    utimesSync(snapshotPartPath(dir, oldId), twoDaysAgo, twoDaysAgo);
    utimesSync(snapshotPartMetaPath(dir, oldId), twoDaysAgo, twoDaysAgo);
    const { entries } = makeTokens();
    const logs = memoryLogger();
    const col = await startCollector({ store, ownsStore: true, host: '127.0.0.1', port: 0, tokens: entries, log: logs.log });
    cleanups.push(() => col.close());
    assert.equal(existsSync(snapshotPartPath(dir, oldId)), false);
    assert.equal(existsSync(snapshotPartMetaPath(dir, oldId)), false);
    assert.equal(existsSync(snapshotPartPath(dir, freshId)), true, 'an upload touched recently stays');
    assert.equal(logs.lines.filter((l) => l.msg === 'deleted orphan snapshot upload').length, 2);

    const now = Date.now();
    const rows = [0, 1, 2].map((i) => {
      const meta = sampleMeta();
      const content = randomBytes(1000);
      writeFileSync(snapshotFilePath(dir, meta.snapshotId, 'heapsnapshot'), content, { mode: 0o600 });
      const row = { ...meta, node: 'node-a', agentId: 'node-a', bytes: 1000, sha256: sha256Of(content), storedAtMs: now - (3 - i) * 3_600_000 };
      store.insertSnapshot(row);
      return row;
    });
    const lines: Array<{ msg: string; fields: Record<string, unknown> }> = [];
    const report = store.applyRetention({ maxAgeMs: 2.5 * 3_600_000, maxBlobBytes: 10 ** 9, maxSnapshotBytes: 1000 }, now, (msg, fields) => lines.push({ msg, fields }));
    assert.equal(report.snapshotsDeleted, 2);
    assert.deepEqual(store.listSnapshots().map((r) => r.snapshotId), [rows[2]!.snapshotId]);
    const deleted = lines.filter((l) => l.msg === 'retention: deleted snapshot');
    assert.deepEqual(deleted.map((l) => [l.fields.snapshotId, l.fields.reason]), [
      [rows[0]!.snapshotId, 'age'],
      [rows[1]!.snapshotId, 'bytes'],
    ]);
    assert.equal(existsSync(snapshotFilePath(dir, rows[0]!.snapshotId, 'heapsnapshot')), false);
    assert.equal(existsSync(snapshotFilePath(dir, rows[2]!.snapshotId, 'heapsnapshot')), true);
  });
});

async function httpList(c: TestCollector): Promise<unknown[]> {
  const res = await fetch(`${c.collector.url}/api/v1/snapshots`, { headers: { authorization: `Bearer ${c.tokens.read}` } });
  const body = (await res.json()) as { snapshots: unknown[] };
  return body.snapshots;
}

