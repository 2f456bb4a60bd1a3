// The agent's end of the opt-in in-process probe: a unix-socket server that targets started with
// `--require leakwatch/probe` connect to. Each connection must say hello with the token first (compared
// in constant time) and prove which host process it is (agent/capture/probe-identity.ts); after
// that the agent asks it for heap usage and captures, and writes what streams back straight to a
// file (0600, sha256 on the way, fsynced), reading the socket only as fast as the disk takes it,
// so the probe's blocking writes keep the target's memory bounded. A bad token or a malformed
// frame ends that one connection with an error frame and a log line; the server keeps serving.
import { createHash, randomBytes, timingSafeEqual, type Hash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from '../../common/log.js';
import type { SnapshotKind } from '../../protocol/snapshots.js';
import type { ProbeConnection, ProbeRegistry } from './types.js';
import { resolveProbePid } from './probe-identity.js';
import { FrameDecoder, FrameError, PROBE_PROTOCOL_VERSION, encodeJsonFrame, type ProbeVia } from '../../probe/wire.cjs';

export interface ProbeServerOptions {
  socketPath: string;
  token: string;
  log: Logger;
  /** Host /proc (`/host/proc` in the DaemonSet). */
  procRoot?: string;
  /** Mode of the socket file; 0600 lets only root's targets in. */
  socketMode?: number;
  helloTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export interface ProbeServer extends ProbeRegistry {
  readonly socketPath: string;
  connections(): ProbeConnection[];
  close(): Promise<void>;
}

/** Why a probe request failed, as a stable code the capturer can put in its report. */
export class ProbeError extends Error {
  constructor(
    readonly code: 'probe-closed' | 'probe-error' | 'probe-busy' | 'truncated' | 'aborted' | 'timeout' | 'protocol',
    message: string,
  ) {
    super(message);
    this.name = 'ProbeError';
  }
}

const DEFAULT_HELLO_TIMEOUT_MS = 5_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** Bytes waiting for the disk before the socket stops being read (and the probe waits). */
const PAUSE_ABOVE_BYTES = 8 * 1024 * 1024;
const RESUME_BELOW_BYTES = 2 * 1024 * 1024;

/** The token file beside the socket: a fresh token per agent start, unless one is given. */
export function prepareProbeToken(socketPath: string, tokenFile?: string): { token: string; tokenPath: string } {
  if (tokenFile) {
    const token = readFileSync(tokenFile, 'utf8').trim();
    if (!token) throw new Error(`the probe token file ${tokenFile} is empty`);
    if (/\s/.test(token)) throw new Error(`the probe token in ${tokenFile} contains whitespace; a token is one word`);
    return { token, tokenPath: tokenFile };
  }
  ensureSocketDir(socketPath);
  const token = randomBytes(32).toString('hex');
  const tokenPath = join(dirname(socketPath), 'probe.token');
  try {
    unlinkSync(tokenPath); // a symlink planted here must not redirect the write
  } catch {
    // absent
  }
  writeFileSync(tokenPath, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { token, tokenPath };
}

function ensureSocketDir(socketPath: string): void {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
}

export async function startProbeServer(options: ProbeServerOptions): Promise<ProbeServer> {
  const { socketPath, log } = options;
  const procRoot = options.procRoot ?? '/proc';
  const expectedDigest = digest(options.token);
  const byPid = new Map<number, ProbeClient>();
  const sockets = new Set<Socket>();
  ensureSocketDir(socketPath);
  removeStaleSocket(socketPath);

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', (err) => log.warn('probe connection error', { error: (err as NodeJS.ErrnoException).code ?? err.message }));
    const decoder = new FrameDecoder();
    let client: ProbeClient | null = null;
    let handshaking = false;
    let rejected = false;
    const helloTimer = setTimeout(() => reject('hello-timeout', 'no hello within the time allowed'), options.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS);
    helloTimer.unref();

    const reject = (code: string, message: string): void => {
      if (rejected) return;
      rejected = true;
      clearTimeout(helloTimer);
      log.warn('probe connection rejected', { code, reason: message, pid: client?.pid ?? null });
      if (!socket.destroyed) {
        try {
          socket.end(encodeJsonFrame({ type: 'error', code, message }));
        } catch {
          // already gone
        }
        setTimeout(() => socket.destroy(), 1_000).unref();
      }
      socket.removeAllListeners('data');
      client?.closed(new ProbeError('protocol', `connection rejected: ${message}`));
    };

    socket.on('data', (data: Buffer) => {
      let frames;
      try {
        frames = decoder.push(data);
      } catch (err) {
        reject('malformed-frame', err instanceof FrameError ? err.message : String(err));
        return;
      }
      for (const frame of frames) {
        if (client) {
          try {
            client.onFrame(frame);
          } catch (err) {
            reject('protocol', err instanceof Error ? err.message : String(err));
            return;
          }
          continue;
        }
        if (handshaking || frame.kind !== 'json' || frame.message.type !== 'hello') {
          reject('protocol', 'the first frame must be a hello, and nothing may follow it before the welcome');
          return;
        }
        handshaking = true;
        void handshake(frame.message);
      }
    });

    const handshake = async (hello: Record<string, unknown>): Promise<void> => {
      const { token, nsPid, startTicks, socketInode, nodeVersion, via, version } = hello;
      if (typeof token !== 'string' || !timingSafeEqual(digest(token), expectedDigest)) {
        reject('bad-token', 'the probe token is wrong');
        return;
      }
      if (version !== PROBE_PROTOCOL_VERSION) {
        reject('protocol', `probe protocol version ${String(version)} is not ${PROBE_PROTOCOL_VERSION}`);
        return;
      }
      if (!isCount(nsPid) || !isCount(startTicks) || !isCount(socketInode) || typeof nodeVersion !== 'string' || (via !== 'probe-v8-profiler-next' && via !== 'probe-node-inspector')) {
        reject('protocol', 'hello lacks nsPid, startTicks, socketInode, nodeVersion or a known via');
        return;
      }
      const identity = await resolveProbePid(procRoot, { nsPid, startTicks, socketInode });
      // The hello timer may have fired, or the peer gone, while /proc was read.
      if (rejected || socket.destroyed) return;
      if (!identity.ok) {
        reject('unknown-peer', identity.reason);
        return;
      }
      clearTimeout(helloTimer);
      client = new ProbeClient(socket, identity.pid, via, nodeVersion.slice(0, 32), options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
      const previous = byPid.get(identity.pid);
      byPid.set(identity.pid, client);
      previous?.socket.destroy();
      const registered = client;
      socket.on('close', () => {
        registered.closed(new ProbeError('probe-closed', `the probe of pid ${registered.pid} disconnected (the target exited or closed it)`));
        if (byPid.get(registered.pid) === registered) byPid.delete(registered.pid);
        log.info('probe disconnected', { pid: registered.pid });
      });
      socket.write(encodeJsonFrame({ type: 'welcome', pid: identity.pid }));
      log.info('probe connected', { pid: identity.pid, nsPid, nodeVersion, via, viaReason: typeof hello.viaReason === 'string' ? hello.viaReason : null });
    };
  });
  server.on('error', (err) => log.error('probe server error', { error: err.message }));

  await new Promise<void>((resolve, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(socketPath, () => {
      server.off('error', rejectListen);
      resolve();
    });
  });
  chmodSync(socketPath, options.socketMode ?? 0o600);
  log.info('probe server listening', { socketPath });

  return {
    socketPath,
    find: (pid) => byPid.get(pid) ?? null,
    connections: () => [...byPid.values()],
    close: async () => {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closing;
      try {
        unlinkSync(socketPath);
      } catch {
        // already gone
      }
    },
  };
}

/** A leftover socket from an earlier agent is removed; anything else at that path is not ours to delete. */
function removeStaleSocket(socketPath: string): void {
  let stat;
  try {
    stat = lstatSync(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new Error(`${socketPath} exists and is not a socket; not replacing it`);
  unlinkSync(socketPath);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

interface PendingRequest {
  resolve(value: number): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

interface ActiveCapture {
  id: number;
  kind: SnapshotKind;
  outPath: string;
  file: FileHandle | null;
  opening: Promise<FileHandle>;
  hash: Hash;
  bytes: number;
  began: boolean;
  /** Disk writes in order; queuedBytes is what they still hold. */
  writes: Promise<unknown>;
  queuedBytes: number;
  resolve(result: { bytes: number; sha256: string }): void;
  reject(err: Error): void;
  detach(): void;
}

class ProbeClient implements ProbeConnection {
  private nextId = 1;
  private readonly requests = new Map<number, PendingRequest>();
  private capturing: ActiveCapture | null = null;
  /** A capture given up on (aborted): its remaining bytes are read and dropped until it ends. */
  private discardId: number | null = null;
  /** Waiters for the discarded capture's end, so a new capture can follow an aborted one. */
  private afterDiscard: Array<() => void> = [];
  private ended: Error | null = null;

  constructor(
    readonly socket: Socket,
    readonly pid: number,
    readonly via: ProbeVia,
    readonly nodeVersion: string,
    private readonly requestTimeoutMs: number,
  ) {}

  heapUsedBytes(signal?: AbortSignal): Promise<number> {
    if (this.ended) return Promise.reject(this.ended);
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      const onAbort = (): void => finish(new ProbeError('aborted', 'heap usage request aborted'));
      const finish = (err: Error | null, value?: number): void => {
        clearTimeout(timer);
        this.requests.delete(id);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(value!);
      };
      const timer = setTimeout(() => finish(new ProbeError('timeout', `the probe of pid ${this.pid} did not answer within ${this.requestTimeoutMs} ms`)), this.requestTimeoutMs);
      if (signal?.aborted) return finish(new ProbeError('aborted', 'heap usage request aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.requests.set(id, { resolve: (v) => finish(null, v), reject: (e) => finish(e), timer });
      this.send({ type: 'heap-used', id });
    });
  }

  async capture(kind: SnapshotKind, outPath: string, options: { sampleMs?: number; signal?: AbortSignal }): Promise<{ bytes: number; sha256: string }> {
    // The probe finishes an aborted capture first (it stops at its next check); then it is free.
    if (this.discardId !== null && !this.capturing) await new Promise<void>((resolve) => this.afterDiscard.push(resolve));
    return this.startCapture(kind, outPath, options);
  }

  private startCapture(kind: SnapshotKind, outPath: string, options: { sampleMs?: number; signal?: AbortSignal }): Promise<{ bytes: number; sha256: string }> {
    if (this.ended) return Promise.reject(this.ended);
    if (this.capturing || this.discardId !== null) return Promise.reject(new ProbeError('probe-busy', `a capture of pid ${this.pid} is already running`));
    if (options.signal?.aborted) return Promise.reject(new ProbeError('aborted', 'capture aborted before it started'));
    const id = this.nextId++;
    const signal = options.signal;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => this.fail(new ProbeError('aborted', 'capture aborted'), { probeStillSending: true });
      // 'wx': never write through a file or link that is already there.
      const opening = open(outPath, 'wx', 0o600);
      const capture: ActiveCapture = {
        id,
        kind,
        outPath,
        file: null,
        opening,
        hash: createHash('sha256'),
        bytes: 0,
        began: false,
        writes: opening.then((fh) => {
          capture.file = fh;
          return fh.chmod(0o600);
        }),
        queuedBytes: 0,
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      this.capturing = capture;
      signal?.addEventListener('abort', onAbort, { once: true });
      capture.writes.catch((err: Error) => this.fail(new ProbeError('probe-error', `cannot write ${outPath}: ${err.message}`), { probeStillSending: true }));
      this.send({ type: 'capture', id, kind, ...(options.sampleMs !== undefined ? { sampleMs: options.sampleMs } : {}) });
    });
  }

  onFrame(frame: { kind: 'json'; message: Record<string, unknown> } | { kind: 'bytes'; payload: Buffer }): void {
    if (frame.kind === 'bytes') {
      const capture = this.capturing;
      if (capture?.began) return this.writeChunk(capture, frame.payload);
      if (this.discardId !== null) return;
      throw new Error('capture bytes outside a capture');
    }
    const message = frame.message;
    const id = message.id;
    const capture = this.capturing;
    switch (message.type) {
      case 'heap-used-result': {
        const request = typeof id === 'number' ? this.requests.get(id) : undefined;
        if (!request) return;
        if (typeof message.heapUsedBytes === 'number' && message.heapUsedBytes >= 0) request.resolve(message.heapUsedBytes);
        else request.reject(new ProbeError('protocol', 'heap usage answer without a number'));
        return;
      }
      case 'capture-begin':
        if (capture && capture.id === id) capture.began = true;
        else if (this.discardId !== id) throw new Error(`capture-begin for unknown capture ${String(id)}`);
        return;
      case 'capture-end':
      case 'capture-error':
        if (this.discardId === id) {
          this.endDiscard();
          return;
        }
        if (!capture || capture.id !== id) {
          // An error about a capture the agent never asked for (e.g. refused as busy): nothing waits for it.
          if (message.type === 'capture-error') return;
          throw new Error(`capture-end for unknown capture ${String(id)}`);
        }
        if (message.type === 'capture-error') {
          this.fail(new ProbeError('probe-error', `the probe failed: ${String(message.message).slice(0, 500)}`));
          return;
        }
        void this.finish(capture, Number(message.bytes));
        return;
      default:
        throw new Error(`unknown message type ${String(message.type).slice(0, 40)}`);
    }
  }

  private endDiscard(): void {
    this.discardId = null;
    for (const resume of this.afterDiscard.splice(0)) resume();
  }

  /** The connection ended: everything waiting on it fails, a partial file is removed. */
  closed(err: Error): void {
    if (this.ended) return;
    this.ended = err;
    this.endDiscard();
    for (const request of this.requests.values()) request.reject(err);
    this.requests.clear();
    this.fail(err);
  }

  private writeChunk(capture: ActiveCapture, payload: Buffer): void {
    capture.hash.update(payload);
    capture.bytes += payload.length;
    capture.queuedBytes += payload.length;
    if (capture.queuedBytes > PAUSE_ABOVE_BYTES) this.socket.pause();
    capture.writes = capture.writes.then(async () => {
      if (this.capturing !== capture) return;
      await capture.file!.write(payload);
      capture.queuedBytes -= payload.length;
      if (capture.queuedBytes < RESUME_BELOW_BYTES && this.socket.isPaused()) this.socket.resume();
    });
    capture.writes.catch(() => {});
  }

  private async finish(capture: ActiveCapture, announcedBytes: number): Promise<void> {
    try {
      await capture.writes;
      if (this.capturing !== capture) return;
      if (announcedBytes !== capture.bytes) {
        this.fail(new ProbeError('truncated', `the probe announced ${announcedBytes} bytes, ${capture.bytes} arrived`));
        return;
      }
      if (capture.bytes === 0) {
        this.fail(new ProbeError('truncated', 'the probe sent an empty capture'));
        return;
      }
      await capture.file!.sync();
      await capture.file!.close();
      capture.file = null;
    } catch (err) {
      if (this.capturing === capture) this.fail(new ProbeError('probe-error', `cannot write ${capture.outPath}: ${(err as Error).message}`));
      return;
    }
    if (this.capturing !== capture) return;
    this.capturing = null;
    capture.detach();
    capture.resolve({ bytes: capture.bytes, sha256: capture.hash.digest('hex') });
  }

  /**
   * Gives up on the capture in flight. When the probe is still streaming it is told to stop and
   * what it still sends is dropped until its capture-end or capture-error.
   */
  private fail(err: Error, { probeStillSending = false } = {}): void {
    const capture = this.capturing;
    if (!capture) return;
    this.capturing = null;
    capture.detach();
    if (probeStillSending && !this.ended) {
      this.discardId = capture.id;
      this.send({ type: 'cancel', id: capture.id });
    }
    if (this.socket.isPaused()) this.socket.resume();
    // The partial file goes: a capture is either complete or absent. Only a file this capture
    // created is removed ('wx' failing means someone else's file is there).
    void capture.writes
      .catch(() => {})
      .then(async () => {
        const file = await capture.opening.catch(() => null);
        if (!file) return;
        await file.close().catch(() => {});
        await unlink(capture.outPath).catch(() => {});
      })
      .finally(() => capture.reject(err));
  }

  private send(message: object): void {
    if (this.socket.destroyed) return;
    this.socket.write(encodeJsonFrame(message));
  }
}
