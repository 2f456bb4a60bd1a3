// Snapshot chunk frames and the snapshot messages: what a malformed frame or message looks like
// to the decoder, each named in its error.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CHUNK_HEADER_BYTES, decodeChunkFrame, encodeChunkFrame } from '../../protocol/chunk-frame.js';
import { validateAgentMessage, validateCollectorMessage } from '../../protocol/validate.js';
import { newId, sampleMeta, sampleReport } from '../support/snapshot-fixtures.js';

const id = 'a'.repeat(32);

describe('chunk frames', () => {
  it('round-trips id, offset and payload', () => {
    const payload = Buffer.from('hello snapshot');
    const frame = encodeChunkFrame(id, 2 ** 40 + 3, payload);
    assert.equal(frame.length, CHUNK_HEADER_BYTES + payload.length);
    assert.equal(frame.subarray(0, 4).toString(), 'LWS1');
    const d = decodeChunkFrame(frame);
    assert.ok(d.ok);
    assert.equal(d.frame.snapshotId, id);
    assert.equal(d.frame.offset, 2 ** 40 + 3);
    assert.deepEqual(d.frame.payload, payload);
  });

  it('refuses a wrong magic, a short header, a bad id length, a non-hex id and an offset past 2^53', () => {
    const good = encodeChunkFrame(id, 0, Buffer.from('x'));
    const wrongMagic = Buffer.from(good);
    wrongMagic.write('LWS2', 0, 'ascii');
    assert.match(String(!decodeChunkFrame(wrongMagic).ok && (decodeChunkFrame(wrongMagic) as { error: string }).error), /does not start with "LWS1"/);
    const short = good.subarray(0, CHUNK_HEADER_BYTES - 1);
    assert.match((decodeChunkFrame(short) as { error: string }).error, /shorter than/);
    const badLen = Buffer.from(good);
    badLen.writeUInt8(31, 4);
    assert.match((decodeChunkFrame(badLen) as { error: string }).error, /id length is 31/);
    const badId = Buffer.from(good);
    badId.write('../../etc/passwd'.padEnd(32, 'x'), 5, 32, 'latin1');
    assert.match((decodeChunkFrame(badId) as { error: string }).error, /not 32 lowercase hex/);
    const upper = Buffer.from(good);
    upper.write('A'.repeat(32), 5, 32, 'latin1');
    assert.equal(decodeChunkFrame(upper).ok, false);
    const huge = Buffer.from(good);
    huge.writeBigUInt64BE(2n ** 63n, 37);
    assert.match((decodeChunkFrame(huge) as { error: string }).error, /beyond 2\^53/);
  });

  it('will not encode a bad id or a negative offset', () => {
    assert.throws(() => encodeChunkFrame('nothex', 0, Buffer.alloc(1)), /32 lowercase hex/);
    assert.throws(() => encodeChunkFrame(id, -1, Buffer.alloc(1)), /non-negative/);
  });
});

describe('snapshot messages', () => {
  const sha = 'b'.repeat(64);
  it('accepts begin, end, capture-report and the collector answers', () => {
    const meta = sampleMeta();
    const begin = validateAgentMessage({ type: 'snapshot-begin', meta, bytes: 10, sha256: sha });
    assert.ok(begin.ok);
    assert.deepEqual(begin.message, { type: 'snapshot-begin', meta, bytes: 10, sha256: sha });
    assert.ok(validateAgentMessage({ type: 'snapshot-end', snapshotId: id, bytes: 10, sha256: sha }).ok);
    assert.ok(validateAgentMessage({ type: 'capture-report', seq: 3, report: sampleReport() }).ok);
    assert.ok(validateCollectorMessage({ type: 'snapshot-offset', snapshotId: id, offset: 0 }).ok);
    assert.ok(validateCollectorMessage({ type: 'snapshot-stored', snapshotId: id, sha256: sha }).ok);
    assert.ok(validateCollectorMessage({ type: 'snapshot-rejected', snapshotId: id, code: 'truncated', reason: 'x', restart: true }).ok);
  });

  it('names the bad field: an id that is a path, a sha that is not hex, a negative size, an unknown kind', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ type: 'snapshot-begin', meta: sampleMeta({ snapshotId: '../../../etc/passwd' }), bytes: 1, sha256: sha }, /meta\.snapshotId: expected 32 lowercase hex/],
      [{ type: 'snapshot-begin', meta: sampleMeta(), bytes: 1, sha256: 'z'.repeat(64) }, /sha256: expected a sha256/],
      [{ type: 'snapshot-begin', meta: sampleMeta(), bytes: -1, sha256: sha }, /bytes: expected non-negative integer/],
      [{ type: 'snapshot-begin', meta: { ...sampleMeta(), kind: 'core' }, bytes: 1, sha256: sha }, /meta\.kind: expected one of/],
      [{ type: 'snapshot-end', snapshotId: newId().toUpperCase(), bytes: 1, sha256: sha }, /snapshotId: expected 32 lowercase hex/],
      [{ type: 'capture-report', seq: 1, report: { ...sampleReport(), outcome: 'maybe' } }, /report\.outcome: expected one of/],
      [{ type: 'capture-report', seq: 1, report: { ...sampleReport(), snapshotIds: ['x'] } }, /report\.snapshotIds\[0\]/],
    ];
    for (const [value, error] of cases) {
      const r = validateAgentMessage(value);
      assert.equal(r.ok, false, JSON.stringify(value).slice(0, 80));
      assert.match((r as { error: string }).error, error);
    }
    const rejected = validateCollectorMessage({ type: 'snapshot-rejected', snapshotId: id, code: 'x', reason: 'y' });
    assert.match((rejected as { error: string }).error, /restart: expected boolean/);
  });
});
