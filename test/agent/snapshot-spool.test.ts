// The agent's snapshot spool on real files: bounded (the new capture is refused, the old ones
// stay), 0600, rescanned after a restart with half-written leftovers dropped and logged.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SpoolFullError } from '../../agent/capture/types.js';
import { SnapshotSpool } from '../../agent/snapshot-spool.js';
import { recordingLogger } from '../support/protocol-peer.js';
import { fakeCapture, newId } from '../support/snapshot-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'leakwatch-snapshot-spool-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(root, `spool-${++n}`);

describe('snapshot spool', () => {
  it('refuses a capture that would not fit with SpoolFullError and keeps the older ones', async () => {
    const spool = new SnapshotSpool({ spoolDir: fresh(), maxBytes: 250_000 });
    const a = fakeCapture(spool.workDir, 100_000);
    const b = fakeCapture(spool.workDir, 100_000);
    const c = fakeCapture(spool.workDir, 100_000);
    await spool.accept(a);
    await spool.accept(b);
    assert.equal(spool.freeBytes(), 50_000);
    await assert.rejects(spool.accept(c), (err: Error) => err instanceof SpoolFullError && /100000 bytes do not fit in the 50000 left of 250000/.test(err.message));
    assert.deepEqual(spool.list().map((e) => e.meta.snapshotId), [a.meta.snapshotId, b.meta.snapshotId], 'the oldest are not silently lost');
    assert.ok(existsSync(c.path), 'the refused capture is left to its owner (which reports spool-full)');
    for (const e of spool.list()) assert.equal(statSync(e.path).mode & 0o777, 0o600);
    spool.remove(a.meta.snapshotId, 'stored by the collector');
    assert.equal(spool.freeBytes(), 150_000);
    await spool.accept(c);
    assert.equal(spool.size, 2);
  });

  it('refuses a capture whose file disagrees with its size or whose meta is not valid', async () => {
    const spool = new SnapshotSpool({ spoolDir: fresh() });
    const a = fakeCapture(spool.workDir, 1000);
    await assert.rejects(spool.accept({ ...a, bytes: 999 }), /holds 1000 bytes, the capture said 999/);
    await assert.rejects(spool.accept({ ...a, meta: { ...a.meta, snapshotId: '../escape' } }), /snapshotId/);
    await assert.rejects(spool.accept({ ...a, sha256: 'nope' }), /sha256/);
    assert.equal(spool.size, 0);
    await spool.accept(a);
    await assert.rejects(spool.accept({ ...fakeCapture(spool.workDir, 10), meta: a.meta }), /already in the spool/);
  });

  it('survives a restart: complete snapshots come back oldest first; .tmp, work files and half pairs are dropped and logged', async () => {
    const dir = fresh();
    const first = new SnapshotSpool({ spoolDir: dir });
    const a = fakeCapture(first.workDir, 5000);
    const b = fakeCapture(first.workDir, 7000, { kind: 'heapprofile' });
    await first.accept(a);
    await first.accept(b);
    // What a crash can leave: a sidecar being written, a capture being written, and half pairs.
    writeFileSync(join(first.dir, `${newId()}.json.tmp`), '{"meta":');
    writeFileSync(join(first.workDir, 'capture-in-progress'), 'partial');
    const lonelySidecar = newId();
    writeFileSync(join(first.dir, `${lonelySidecar}.json`), '{}');
    const lonelyBytes = newId();
    writeFileSync(join(first.dir, `${lonelyBytes}.heapsnapshot`), 'bytes');

    const log = recordingLogger();
    const second = new SnapshotSpool({ spoolDir: dir, log });
    assert.deepEqual(second.list().map((e) => [e.meta.snapshotId, e.bytes, e.sha256]), [
      [a.meta.snapshotId, 5000, a.sha256],
      [b.meta.snapshotId, 7000, b.sha256],
    ]);
    assert.equal(second.bytes, 12_000);
    assert.deepEqual(readdirSync(second.workDir), []);
    assert.deepEqual(readdirSync(second.dir).sort(), [`${a.meta.snapshotId}.heapsnapshot`, `${a.meta.snapshotId}.json`, `${b.meta.snapshotId}.heapprofile`, `${b.meta.snapshotId}.json`, 'work'].sort());
    const dropped = log.lines.filter((l) => l.msg === 'snapshot spool: dropped a leftover file');
    assert.equal(dropped.length, 4);
    assert.ok(log.lines.some((l) => l.msg === 'snapshot spool recovered' && l.fields.snapshots === 2 && l.fields.droppedFiles === 4));
  });
});
