// Binary WebSocket frames carrying snapshot bytes (see protocol/snapshots.ts): 'LWS1', u8 id
// length (32), the id in ASCII, u64 big-endian offset, then the payload. The header names the
// snapshot and the offset so that the receiver appends a chunk only where it expects one: a
// frame that arrives for another snapshot or at another offset is detected, never written blind.
import { CHUNK_FRAME_MAGIC, SNAPSHOT_ID_PATTERN } from './snapshots.js';

const MAGIC = Buffer.from(CHUNK_FRAME_MAGIC, 'ascii');
const ID_LENGTH = 32;
export const CHUNK_HEADER_BYTES = MAGIC.length + 1 + ID_LENGTH + 8;

export interface ChunkFrame {
  snapshotId: string;
  offset: number;
  /** A view into the frame (no copy). */
  payload: Buffer;
}

export type ChunkDecodeResult = { ok: true; frame: ChunkFrame } | { ok: false; error: string };

/** Header and payload as one buffer (ws would copy them together anyway). */
export function encodeChunkFrame(snapshotId: string, offset: number, payload: Buffer): Buffer {
  if (!SNAPSHOT_ID_PATTERN.test(snapshotId)) throw new RangeError('snapshot id must be 32 lowercase hex characters');
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`chunk offset must be a non-negative safe integer, got ${offset}`);
  const frame = Buffer.allocUnsafe(CHUNK_HEADER_BYTES + payload.length);
  MAGIC.copy(frame, 0);
  frame.writeUInt8(ID_LENGTH, MAGIC.length);
  frame.write(snapshotId, MAGIC.length + 1, ID_LENGTH, 'ascii');
  frame.writeBigUInt64BE(BigInt(offset), MAGIC.length + 1 + ID_LENGTH);
  payload.copy(frame, CHUNK_HEADER_BYTES);
  return frame;
}

export function decodeChunkFrame(frame: Buffer): ChunkDecodeResult {
  if (frame.length < CHUNK_HEADER_BYTES) return { ok: false, error: `chunk frame of ${frame.length} bytes is shorter than its ${CHUNK_HEADER_BYTES}-byte header` };
  if (!frame.subarray(0, MAGIC.length).equals(MAGIC)) return { ok: false, error: `chunk frame does not start with "${CHUNK_FRAME_MAGIC}"` };
  const idLength = frame.readUInt8(MAGIC.length);
  if (idLength !== ID_LENGTH) return { ok: false, error: `chunk frame id length is ${idLength}, expected ${ID_LENGTH}` };
  const snapshotId = frame.toString('latin1', MAGIC.length + 1, MAGIC.length + 1 + ID_LENGTH);
  if (!SNAPSHOT_ID_PATTERN.test(snapshotId)) return { ok: false, error: 'chunk frame id is not 32 lowercase hex characters' };
  const offset = frame.readBigUInt64BE(MAGIC.length + 1 + ID_LENGTH);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, error: 'chunk frame offset is beyond 2^53' };
  return { ok: true, frame: { snapshotId, offset: Number(offset), payload: frame.subarray(CHUNK_HEADER_BYTES) } };
}
