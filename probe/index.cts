// The opt-in in-process probe: `node --require leakwatch/probe app.js` (or NODE_OPTIONS=--require=
// leakwatch/probe). For targets that disable SIGUSR1 or forbid the inspector port, it connects to
// the node's agent over a unix socket and takes heap snapshots and sampling heap profiles on the
// agent's command. It is a guest in someone else's process: it never throws into the target,
// never keeps it alive (every handle is unref()'d), retries quietly with back-off when the agent
// is away, and prints nothing unless LEAKWATCH_PROBE_DEBUG is set.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { selectEngine, type CaptureEngine } from './engines.cjs';
import {
  DEFAULT_PROBE_SOCKET,
  FrameDecoder,
  PROBE_PROTOCOL_VERSION,
  bytesFrameHeader,
  encodeJsonFrame,
  type HelloMessage,
  type ProbeCaptureKind,
} from './wire.cjs';

const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;
/** Bytes per frame of capture data: small enough that the probe never holds more than this. */
const CHUNK_FRAME_BYTES = 64 * 1024;
/** A snapshot blocks the target while it streams; a reader that takes nothing for this long is given up on. */
const STALL_LIMIT_MS = Number(process.env.LEAKWATCH_PROBE_STALL_MS) || 30_000;
const MAX_SAMPLE_MS = 10 * 60_000;

const debugEnabled = Boolean(process.env.LEAKWATCH_PROBE_DEBUG);

function debug(message: string): void {
  if (!debugEnabled) return;
  try {
    process.stderr.write(`[leakwatch-probe ${process.pid}] ${message}\n`);
  } catch {
    // stderr closed: nothing to say it on.
  }
}

interface ProbeState {
  socketPath: string;
  retryMs: number;
  engine: { engine: CaptureEngine; reason: string | null } | null;
  /** Capture in flight on the current connection (one at a time). */
  busy: boolean;
  cancelled: Set<number>;
}

function start(): void {
  const socketPath = process.env.LEAKWATCH_PROBE_SOCKET || DEFAULT_PROBE_SOCKET;
  const state: ProbeState = { socketPath, retryMs: RETRY_FIRST_MS, engine: null, busy: false, cancelled: new Set() };
  connect(state);
}

function scheduleReconnect(state: ProbeState): void {
  // Jitter so a node full of probes does not reconnect in lockstep after an agent restart.
  const delay = Math.round(state.retryMs * (0.75 + Math.random() * 0.5));
  state.retryMs = Math.min(state.retryMs * 2, RETRY_MAX_MS);
  debug(`reconnecting in ${delay} ms`);
  setTimeout(() => connect(state), delay).unref();
}

function readToken(socketPath: string): string | null {
  if (process.env.LEAKWATCH_PROBE_TOKEN) return process.env.LEAKWATCH_PROBE_TOKEN.trim();
  const file = process.env.LEAKWATCH_PROBE_TOKEN_FILE || path.join(path.dirname(socketPath), 'probe.token');
  try {
    return fs.readFileSync(file, 'utf8').trim() || null;
  } catch (err) {
    debug(`no token: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    return null;
  }
}

function connect(state: ProbeState): void {
  try {
    openConnection(state);
  } catch (err) {
    debug(`connect failed: ${String(err)}`);
    scheduleReconnect(state);
  }
}

function openConnection(state: ProbeState): void {
  const token = readToken(state.socketPath);
  if (!token) {
    scheduleReconnect(state);
    return;
  }
  const socket = net.createConnection({ path: state.socketPath });
  socket.unref();
  socket.setNoDelay?.(true);
  let closed = false;
  socket.on('error', (err) => debug(`socket: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
  socket.on('close', () => {
    closed = true;
    state.busy = false;
    state.cancelled.clear();
    scheduleReconnect(state);
  });
  socket.on('connect', () => {
    try {
      state.engine ??= selectEngine(process.env);
      if (state.engine.reason) debug(`using node:inspector: ${state.engine.reason}`);
      const hello: HelloMessage = {
        type: 'hello',
        version: PROBE_PROTOCOL_VERSION,
        token,
        nsPid: process.pid,
        startTicks: ownStartTicks(),
        socketInode: socketInode(socket),
        nodeVersion: process.version,
        via: state.engine.engine.via,
        viaReason: state.engine.reason,
      };
      socket.write(encodeJsonFrame(hello));
    } catch (err) {
      debug(`hello failed: ${String(err)}`);
      socket.destroy();
    }
  });
  const decoder = new FrameDecoder();
  socket.on('data', (data: Buffer) => {
    let frames;
    try {
      frames = decoder.push(data);
    } catch (err) {
      debug(`bad frame from agent: ${String(err)}`);
      socket.destroy();
      return;
    }
    for (const frame of frames) {
      if (closed) return;
      if (frame.kind !== 'json') {
        debug('unexpected bytes frame from agent');
        socket.destroy();
        return;
      }
      try {
        handleCommand(state, socket, frame.message);
      } catch (err) {
        // Nothing the agent asks may throw into the target's event loop.
        debug(`command ${String(frame.message.type)} failed: ${String(err)}`);
      }
    }
  });
}

function handleCommand(state: ProbeState, socket: net.Socket, message: Record<string, unknown>): void {
  const id = typeof message.id === 'number' ? message.id : -1;
  switch (message.type) {
    case 'welcome':
      state.retryMs = RETRY_FIRST_MS;
      debug(`connected to ${state.socketPath} as host pid ${String(message.pid)} via ${state.engine?.engine.via}`);
      return;
    case 'error':
      // Said by the agent before it closes (bad token, unknown peer): retried slowly, the token may rotate.
      debug(`agent refused: ${String(message.code)}: ${String(message.message)}`);
      state.retryMs = RETRY_MAX_MS;
      return;
    case 'heap-used':
      send(socket, { type: 'heap-used-result', id, heapUsedBytes: process.memoryUsage().heapUsed });
      return;
    case 'cancel':
      state.cancelled.add(id);
      return;
    case 'capture': {
      const kind = message.kind;
      if (kind !== 'heapsnapshot' && kind !== 'heapprofile') {
        send(socket, { type: 'capture-error', id, message: `unknown capture kind ${String(kind)}` });
        return;
      }
      if (state.busy || !state.engine) {
        send(socket, { type: 'capture-error', id, message: 'a capture is already running in this process' });
        return;
      }
      const sampleMs = Math.min(Math.max(Number(message.sampleMs) || 0, 0), MAX_SAMPLE_MS);
      state.busy = true;
      runCapture(state, state.engine.engine, socket, id, kind, sampleMs)
        .catch((err) => {
          debug(`capture ${id} failed: ${String(err)}`);
          send(socket, { type: 'capture-error', id, message: err instanceof Error ? err.message : String(err) });
        })
        .finally(() => {
          state.busy = false;
          state.cancelled.delete(id);
        });
      return;
    }
    default:
      debug(`ignoring unknown command ${String(message.type)}`);
  }
}

async function runCapture(state: ProbeState, engine: CaptureEngine, socket: net.Socket, id: number, kind: ProbeCaptureKind, sampleMs: number): Promise<void> {
  const startedAt = Date.now();
  await sendAndFlush(socket, { type: 'capture-begin', id, kind, via: engine.via });
  if (kind === 'heapsnapshot') {
    const bytes = await streamSnapshot(engine, socket);
    send(socket, { type: 'capture-end', id, bytes, durationMs: Date.now() - startedAt });
    return;
  }
  await engine.startSampling();
  let profile: object;
  try {
    await cancellableDelay(sampleMs, () => state.cancelled.has(id) || socket.destroyed);
  } finally {
    // Sampling costs the target on every allocation: it stops whatever happened.
    profile = await engine.stopSampling();
  }
  if (socket.destroyed) throw new Error('connection closed while sampling');
  const bytes = await streamBuffered(socket, Buffer.from(JSON.stringify(profile), 'utf8'));
  send(socket, { type: 'capture-end', id, bytes, durationMs: Date.now() - startedAt });
}

/**
 * V8 serializes a snapshot synchronously: while it runs the event loop cannot drain a socket, so
 * socket.write() would queue the whole snapshot in this process. Instead each chunk is written
 * straight to the socket's descriptor, waiting while the kernel's buffer is full (the reader is
 * slower). The target is paused by the snapshot anyway; this makes it wait for the reader rather
 * than grow by the size of the file.
 */
async function streamSnapshot(engine: CaptureEngine, socket: net.Socket): Promise<number> {
  const fd = socketFd(socket);
  const writer = new BlockingFrameWriter(fd);
  let failure: Error | null = null;
  const raw = { socket, deferred: [] as object[] };
  rawWriting = raw;
  try {
    await engine.heapSnapshot((chunk) => {
      if (failure) return false;
      try {
        writer.write(chunk);
        return true;
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
        return false;
      }
    });
  } finally {
    rawWriting = null;
  }
  if (!failure) {
    try {
      writer.flush();
    } catch (err) {
      failure = err as Error;
    }
  }
  if (failure) {
    // A frame may be half written: the stream cannot be resynchronised, so the connection goes.
    socket.destroy();
    throw failure;
  }
  for (const message of raw.deferred) send(socket, message);
  return writer.bytes;
}

class BlockingFrameWriter {
  bytes = 0;
  private buffer = Buffer.allocUnsafe(CHUNK_FRAME_BYTES);
  private used = 0;
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));

  constructor(private readonly fd: number) {}

  /**
   * Copies the chunk into the one frame buffer (V8 writes snapshots as ASCII, so latin1 is exact):
   * no Buffer per chunk, so nothing piles up between garbage collections.
   */
  write(chunk: string): void {
    let offset = 0;
    while (offset < chunk.length) {
      const room = this.buffer.length - this.used;
      const piece = offset === 0 && chunk.length <= room ? chunk : chunk.slice(offset, offset + room);
      this.used += this.buffer.write(piece, this.used, 'latin1');
      offset += piece.length;
      if (this.used === this.buffer.length) this.flush();
    }
  }

  flush(): void {
    if (this.used === 0) return;
    this.writeAll(bytesFrameHeader(this.used));
    this.writeAll(this.buffer.subarray(0, this.used));
    this.bytes += this.used;
    this.used = 0;
  }

  private writeAll(data: Buffer): void {
    let offset = 0;
    let lastProgress = Date.now();
    let waitMs = 1;
    while (offset < data.length) {
      let written = 0;
      try {
        written = fs.writeSync(this.fd, data, offset, data.length - offset);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      }
      if (written > 0) {
        offset += written;
        lastProgress = Date.now();
        waitMs = 1;
        continue;
      }
      if (Date.now() - lastProgress > STALL_LIMIT_MS) throw new Error(`the agent took nothing for ${STALL_LIMIT_MS} ms`);
      Atomics.wait(this.sleeper, 0, 0, waitMs);
      waitMs = Math.min(waitMs * 2, 20);
    }
  }
}

/** A small capture (a sampling profile) goes through socket.write, following 'drain'. */
async function streamBuffered(socket: net.Socket, data: Buffer): Promise<number> {
  for (let offset = 0; offset < data.length; offset += CHUNK_FRAME_BYTES) {
    const piece = data.subarray(offset, offset + CHUNK_FRAME_BYTES);
    if (socket.destroyed) throw new Error('connection closed while sending');
    socket.write(bytesFrameHeader(piece.length));
    if (!socket.write(piece)) await drained(socket);
  }
  return data.length;
}

function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      if (socket.destroyed) reject(new Error('connection closed while sending'));
      else resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/**
 * While a snapshot is written straight to the descriptor, socket.write() must not put bytes in
 * between (newer Node runs the event loop between inspector chunks): answers wait here.
 */
let rawWriting: { socket: net.Socket; deferred: object[] } | null = null;

function send(socket: net.Socket, message: object): void {
  if (socket.destroyed) return;
  if (rawWriting?.socket === socket) {
    rawWriting.deferred.push(message);
    return;
  }
  try {
    socket.write(encodeJsonFrame(message));
  } catch (err) {
    debug(`send failed: ${String(err)}`);
  }
}

/** Resolves once the frame has left for the kernel, so the descriptor can be written directly after it. */
function sendAndFlush(socket: net.Socket, message: object): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    socket.write(encodeJsonFrame(message), (err) => (err ? reject(err) : resolve()));
  }).then(() => (socket.writableLength === 0 ? undefined : drained(socket)));
}

function cancellableDelay(ms: number, stop: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const until = Date.now() + ms;
    const tick = (): void => {
      if (stop() || Date.now() >= until) resolve();
      else setTimeout(tick, Math.min(100, until - Date.now())).unref();
    };
    tick();
  });
}

function socketFd(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the connection has no descriptor');
  return fd;
}

function socketInode(socket: net.Socket): number | null {
  try {
    const link = fs.readlinkSync(`/proc/self/fd/${socketFd(socket)}`);
    const match = /^socket:\[(\d+)\]$/.exec(link);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** /proc/self/stat field 22; the command name (field 2) may hold spaces and parentheses, so split after the last ')'. */
function ownStartTicks(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[22 - 3]);
}

try {
  // Workers share the process: one probe per process, in the main thread. LEAKWATCH_PROBE=off
  // turns it off for a process that inherited NODE_OPTIONS.
  if (isMainThread && process.env.LEAKWATCH_PROBE !== 'off') start();
} catch (err) {
  debug(`probe did not start: ${String(err)}`);
}
