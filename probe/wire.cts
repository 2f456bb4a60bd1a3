// The probe's wire format, shared by the probe (CommonJS, loaded with --require into a target) and
// the agent's probe server (ESM). A frame is a u32 big-endian length of what follows, a u8 kind,
// then the body: kind 1 carries one JSON message (control), kind 2 carries raw capture bytes
// belonging to the capture in flight on that connection (one at a time). Lengths are bounded so
// a peer cannot make the other side buffer without limit.

export const FRAME_JSON = 1;
export const FRAME_BYTES = 2;
export const FRAME_HEADER_BYTES = 5;
/** JSON messages are small; a longer one is a malformed or hostile peer. */
export const MAX_JSON_FRAME_BYTES = 64 * 1024;
/** Capture bytes travel in chunks of at most this (the probe sends 64 KiB). */
export const MAX_BYTES_FRAME_BYTES = 4 * 1024 * 1024;
export const PROBE_PROTOCOL_VERSION = 1;
export const DEFAULT_PROBE_SOCKET = '/run/leakwatch/probe.sock';

export type ProbeVia = 'probe-v8-profiler-next' | 'probe-node-inspector';
export type ProbeCaptureKind = 'heapsnapshot' | 'heapprofile';

/** probe → agent, first frame: who it claims to be; the agent checks it against /proc. */
export interface HelloMessage {
  type: 'hello';
  version: number;
  token: string;
  /** process.pid: the pid in the target's own pid namespace (last NSpid). */
  nsPid: number;
  /** /proc/self/stat field 22: start time in clock ticks since boot, the same in every pid namespace. */
  startTicks: number;
  /** Inode of the probe's end of this connection (socket:[N]), so the agent can find it in /proc/<pid>/fd. */
  socketInode: number | null;
  nodeVersion: string;
  via: ProbeVia;
  /** Why v8-profiler-next was not used, when it was not. */
  viaReason: string | null;
}

export type AgentMessage =
  | { type: 'welcome'; pid: number }
  | { type: 'error'; code: string; message: string }
  | { type: 'heap-used'; id: number }
  | { type: 'capture'; id: number; kind: ProbeCaptureKind; sampleMs?: number }
  | { type: 'cancel'; id: number };

export type ProbeMessage =
  | HelloMessage
  | { type: 'heap-used-result'; id: number; heapUsedBytes: number }
  | { type: 'capture-begin'; id: number; kind: ProbeCaptureKind; via: ProbeVia }
  | { type: 'capture-end'; id: number; bytes: number; durationMs: number }
  | { type: 'capture-error'; id: number; message: string };

export function encodeJsonFrame(message: object): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  if (body.length > MAX_JSON_FRAME_BYTES) throw new Error(`message of ${body.length} bytes exceeds the ${MAX_JSON_FRAME_BYTES}-byte frame bound`);
  return Buffer.concat([frameHeader(FRAME_JSON, body.length), body]);
}

/** The header of a bytes frame; the payload is written after it unchanged (no copy). */
export function bytesFrameHeader(payloadBytes: number): Buffer {
  if (payloadBytes > MAX_BYTES_FRAME_BYTES) throw new Error(`chunk of ${payloadBytes} bytes exceeds the frame bound`);
  return frameHeader(FRAME_BYTES, payloadBytes);
}

function frameHeader(kind: number, bodyBytes: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(bodyBytes + 1, 0);
  header.writeUInt8(kind, 4);
  return header;
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export type DecodedFrame = { kind: 'json'; message: Record<string, unknown> } | { kind: 'bytes'; payload: Buffer };

/**
 * Splits a byte stream into frames. push() returns the complete frames so far and throws
 * FrameError on anything malformed (unknown kind, oversized, not a JSON object); the caller
 * then closes the connection: after a framing error nothing that follows can be trusted.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  push(data: Buffer): DecodedFrame[] {
    this.pending.push(data);
    this.pendingBytes += data.length;
    const frames: DecodedFrame[] = [];
    for (;;) {
      if (this.pendingBytes < FRAME_HEADER_BYTES) break;
      const head = this.peek(FRAME_HEADER_BYTES);
      const length = head.readUInt32BE(0);
      const kind = head.readUInt8(4);
      if (length < 1) throw new FrameError('frame length 0');
      if (kind === FRAME_JSON) {
        if (length - 1 > MAX_JSON_FRAME_BYTES) throw new FrameError(`JSON frame of ${length - 1} bytes exceeds ${MAX_JSON_FRAME_BYTES}`);
      } else if (kind === FRAME_BYTES) {
        if (length - 1 > MAX_BYTES_FRAME_BYTES) throw new FrameError(`bytes frame of ${length - 1} bytes exceeds ${MAX_BYTES_FRAME_BYTES}`);
      } else {
        throw new FrameError(`unknown frame kind ${kind}`);
      }
      if (this.pendingBytes < 4 + length) break;
      const frame = this.take(4 + length).subarray(FRAME_HEADER_BYTES);
      if (kind === FRAME_BYTES) {
        frames.push({ kind: 'bytes', payload: frame });
        continue;
      }
      let message: unknown;
      try {
        message = JSON.parse(frame.toString('utf8'));
      } catch {
        throw new FrameError('JSON frame does not parse');
      }
      if (message === null || typeof message !== 'object' || Array.isArray(message) || typeof (message as { type?: unknown }).type !== 'string') {
        throw new FrameError('JSON frame is not an object with a string "type"');
      }
      frames.push({ kind: 'json', message: message as Record<string, unknown> });
    }
    return frames;
  }

  /** The first n bytes, copied across pieces without joining them all (a trickle of tiny reads stays linear). */
  private peek(n: number): Buffer {
    if (this.pending[0]!.length >= n) return this.pending[0]!.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (const piece of this.pending) {
      filled += piece.copy(out, filled, 0, Math.min(piece.length, n - filled));
      if (filled === n) break;
    }
    return out;
  }

  /** Removes and returns the first n bytes; the pieces are joined only once a frame is complete. */
  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return out;
  }
}
