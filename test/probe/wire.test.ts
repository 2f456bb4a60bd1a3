// The probe's framing: frames survive any split of the byte stream; anything malformed is a
// FrameError (the connection is then closed), never a silent skip.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { FrameDecoder, FrameError, MAX_JSON_FRAME_BYTES, bytesFrameHeader, encodeJsonFrame } from '../../probe/wire.cjs';

test('frames come out whole however the stream is cut', () => {
  const payload = Buffer.from('x'.repeat(70_000));
  const stream = Buffer.concat([encodeJsonFrame({ type: 'a', n: 1 }), bytesFrameHeader(payload.length), payload, encodeJsonFrame({ type: 'b' })]);
  for (const step of [1, 3, 5, 4096, stream.length]) {
    const decoder = new FrameDecoder();
    const frames = [];
    for (let i = 0; i < stream.length; i += step) frames.push(...decoder.push(stream.subarray(i, i + step)));
    assert.equal(frames.length, 3, `step ${step}`);
    assert.deepEqual(frames[0], { kind: 'json', message: { type: 'a', n: 1 } });
    assert.equal(frames[1]!.kind, 'bytes');
    assert.ok(frames[1]!.kind === 'bytes' && frames[1]!.payload.equals(payload));
    assert.deepEqual(frames[2], { kind: 'json', message: { type: 'b' } });
  }
});

test('malformed frames are errors', () => {
  const jsonFrame = (text: string): Buffer => {
    const body = Buffer.from(text);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(body.length + 1);
    head[4] = 1;
    return Buffer.concat([head, body]);
  };
  const bad: Array<[string, Buffer]> = [
    ['zero length', Buffer.from([0, 0, 0, 0, 1])],
    ['unknown kind', Buffer.from([0, 0, 0, 1, 7])],
    ['oversized JSON', Buffer.from([0, 2, 0, 0, 1])],
    ['oversized bytes', Buffer.from([0x7f, 0, 0, 0, 2])],
    ['not JSON', jsonFrame('{nope')],
    ['JSON array', jsonFrame('[1]')],
    ['no type', jsonFrame('{"a":1}')],
  ];
  for (const [name, bytes] of bad) assert.throws(() => new FrameDecoder().push(bytes), FrameError, name);
  assert.throws(() => encodeJsonFrame({ type: 'big', pad: 'x'.repeat(MAX_JSON_FRAME_BYTES) }), /exceeds/);
});
