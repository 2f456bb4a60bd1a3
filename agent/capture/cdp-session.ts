// A minimal Chrome DevTools Protocol client on one WebSocket: commands with ids and timeouts,
// events by method, and a fast lane for heap snapshot chunks that hands their bytes on without
// building JS strings (see json-unescape.ts). The CDP has no flow control: pause() stops reading
// from the socket so that TCP pushes back on the target while our file catches up.
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { unescapeJsonStringInPlace } from './json-unescape.js';

export class CdpError extends Error {
  constructor(message: string, readonly code: 'closed' | 'timeout' | 'protocol' | 'aborted' = 'protocol') {
    super(message);
    this.name = 'CdpError';
  }
}

/**
 * Biggest message accepted: a 1 MiB chunk (Node 22+) escaped may grow a few times over for
 * strings full of quotes and control characters; a sampling profile arrives as one message.
 */
export const CDP_MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

const CHUNK_PREFIX = Buffer.from('{"method":"HeapProfiler.addHeapSnapshotChunk","params":{"chunk":"');
const CHUNK_SUFFIX = Buffer.from('"}}');

interface Pending {
  resolve: (result: Record<string, unknown>) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | null;
  method: string;
}

export type ChunkHandler = (bytes: Buffer) => void;

export class CdpSession {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Set<(params: Record<string, unknown>) => void>>();
  private chunkHandler: ChunkHandler | null = null;
  private closedError: CdpError | null = null;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('close', (code) => this.fail(new CdpError(`inspector connection closed (${code})`, 'closed')));
    ws.on('error', (err) => this.fail(new CdpError(`inspector connection failed: ${err.message}`, 'closed')));
  }

  /** Opens the WebSocket at url over the stream connect() gives (direct TCP or the netns relay). */
  static open(url: string, connect: () => Socket, timeoutMs = 10_000): Promise<CdpSession> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        createConnection: () => connect(),
        maxPayload: CDP_MAX_PAYLOAD_BYTES,
        perMessageDeflate: false,
        // The peer's text is decoded by JSON.parse or written out as bytes; validating it first is a second pass over every byte.
        skipUTF8Validation: true,
        handshakeTimeout: timeoutMs,
      });
      ws.once('open', () => resolve(new CdpSession(ws)));
      ws.once('error', (err) => reject(new CdpError(`inspector WebSocket ${url}: ${err.message}`, 'closed')));
    });
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { resolve: resolve as (r: Record<string, unknown>) => void, reject, timer: null, method };
      if (options.timeoutMs !== undefined) {
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new CdpError(`${method} got no answer within ${options.timeoutMs} ms`, 'timeout'));
        }, options.timeoutMs);
      }
      if (options.signal) {
        if (options.signal.aborted) return reject(new CdpError(`${method} aborted`, 'aborted'));
        options.signal.addEventListener('abort', () => {
          if (!this.pending.delete(id)) return;
          if (entry.timer) clearTimeout(entry.timer);
          reject(new CdpError(`${method} aborted`, 'aborted'));
        }, { once: true });
      }
      this.pending.set(id, entry);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  on(method: string, listener: (params: Record<string, unknown>) => void): () => void {
    let set = this.listeners.get(method);
    if (!set) this.listeners.set(method, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Receives the decoded bytes of every addHeapSnapshotChunk; the buffer is the handler's to keep. */
  onChunk(handler: ChunkHandler | null): void {
    this.chunkHandler = handler;
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  /** Evaluates an expression of ours in the target and returns its value (by value). */
  async evaluate(expression: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<unknown> {
    const r = await this.send<{ result?: { value?: unknown }; exceptionDetails?: { text?: string } }>(
      'Runtime.evaluate',
      { expression, returnByValue: true, silent: true, includeCommandLineAPI: false },
      options,
    );
    if (r.exceptionDetails) throw new CdpError(`evaluating ${expression} threw: ${r.exceptionDetails.text ?? 'exception'}`);
    return r.result?.value;
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 1000);
      this.ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.ws.close();
    });
  }

  /** Closes at once, without the closing handshake. */
  terminate(): void {
    this.ws.terminate();
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) return;
    if (this.chunkHandler && data.length >= CHUNK_PREFIX.length + CHUNK_SUFFIX.length && data.subarray(0, CHUNK_PREFIX.length).equals(CHUNK_PREFIX) && data.subarray(data.length - CHUNK_SUFFIX.length).equals(CHUNK_SUFFIX)) {
      const body = data.subarray(CHUNK_PREFIX.length, data.length - CHUNK_SUFFIX.length);
      const n = unescapeJsonStringInPlace(body);
      this.chunkHandler(body.subarray(0, n));
      return;
    }
    let m: { id?: number; method?: string; params?: Record<string, unknown>; result?: Record<string, unknown>; error?: { message?: string; code?: number } };
    try {
      m = JSON.parse(data.toString('utf8'));
    } catch {
      this.fail(new CdpError('the inspector sent a message that is not JSON'));
      this.ws.terminate();
      return;
    }
    if (typeof m.id === 'number') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (p.timer) clearTimeout(p.timer);
      if (m.error) p.reject(new CdpError(`${p.method} failed: ${m.error.message ?? 'error'} (${m.error.code ?? '?'})`));
      else p.resolve(m.result ?? {});
      return;
    }
    if (typeof m.method === 'string') {
      // A chunk in another shape (field order, a future field) still lands in the file.
      if (m.method === 'HeapProfiler.addHeapSnapshotChunk' && this.chunkHandler && typeof m.params?.chunk === 'string') {
        this.chunkHandler(Buffer.from(m.params.chunk, 'utf8'));
        return;
      }
      for (const l of this.listeners.get(m.method) ?? []) l(m.params ?? {});
    }
  }

  private fail(err: CdpError): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      if (p.timer) clearTimeout(p.timer);
      p.reject(err);
    }
  }
}
