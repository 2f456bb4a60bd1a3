// A collector on loopback with a real SQLite store in a temp dir, tokens of every scope, a log
// the test can read, and a small WebSocket agent that records what the collector sends back.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { createLogger, type Logger } from '../../common/log.js';
import type { CollectorMessage } from '../../protocol/messages.js';
import { generateToken, hashToken, type Scope, type TokenEntry } from '../../server/auth.js';
import { startCollector, type Collector, type CollectorOptions } from '../../server/collector.js';
import { openStore, type SqliteStore } from '../../server/store/sqlite-store.js';

export interface TestTokens {
  admin: string;
  agent: string;
  read: string;
  snapshots: string;
  /** agent + read, what `leakwatch up` would hand a local agent. */
  agentRead: string;
}

export function makeTokens(): { tokens: TestTokens; entries: TokenEntry[] } {
  const tokens: TestTokens = { admin: generateToken(), agent: generateToken(), read: generateToken(), snapshots: generateToken(), agentRead: generateToken() };
  const scopes: Record<keyof TestTokens, Scope[]> = { admin: ['admin'], agent: ['agent'], read: ['read'], snapshots: ['snapshots'], agentRead: ['agent', 'read'] };
  const entries = (Object.keys(tokens) as Array<keyof TestTokens>).map((name) => ({ name: `${name}-token`, sha256: hashToken(tokens[name]), scopes: scopes[name] }));
  return { tokens, entries };
}

/** A logger whose lines the test can inspect (parsed JSON objects). */
export function memoryLogger(): { log: Logger; lines: Array<Record<string, unknown>>; text: () => string } {
  const raw: string[] = [];
  const log = createLogger({ write: (chunk: string) => raw.push(chunk) });
  return {
    log,
    get lines() {
      return raw.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    text: () => raw.join(''),
  };
}

export interface TestCollector {
  collector: Collector;
  store: SqliteStore;
  dataDir: string;
  tokens: TestTokens;
  logs: ReturnType<typeof memoryLogger>;
  stop(): Promise<void>;
}

export async function startTestCollector(options: Partial<CollectorOptions> = {}): Promise<TestCollector> {
  const dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-collector-'));
  const store = openStore(dataDir);
  const { tokens, entries } = makeTokens();
  const logs = memoryLogger();
  const collector = await startCollector({ store, ownsStore: true, host: '127.0.0.1', port: 0, tokens: entries, log: logs.log, ...options });
  return {
    collector,
    store,
    dataDir,
    tokens,
    logs,
    async stop() {
      await collector.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestAgent {
  ws: WebSocket;
  received: CollectorMessage[];
  /** Resolves with the first message (already received or future) that matches. */
  next(match: (m: CollectorMessage) => boolean, timeoutMs?: number): Promise<CollectorMessage>;
  send(message: unknown): void;
  sendRaw(data: string | Buffer, binary?: boolean): void;
  closed: Promise<{ code: number; reason: string }>;
}

export function connectAgent(url: string, token: string | null, options: { ca?: Buffer; headers?: Record<string, string> } = {}): Promise<TestAgent> {
  const headers: Record<string, string> = { ...options.headers };
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  const ws = new WebSocket(url, { headers, ...(options.ca ? { ca: options.ca } : {}), maxPayload: 64 * 1024 * 1024 });
  const received: CollectorMessage[] = [];
  const waiters: Array<{ match: (m: CollectorMessage) => boolean; resolve: (m: CollectorMessage) => void }> = [];
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as CollectorMessage;
    received.push(m);
    for (const w of [...waiters]) {
      if (w.match(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once('open', () =>
      resolve({
        ws,
        received,
        closed,
        next(match, timeoutMs = 5000) {
          const already = received.find(match);
          if (already) return Promise.resolve(already);
          return new Promise((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(received).slice(0, 500)}`)), timeoutMs);
            waiters.push({ match, resolve: (m) => (clearTimeout(timer), res(m)) });
          });
        },
        send: (message) => ws.send(JSON.stringify(message)),
        sendRaw: (data, binary = false) => ws.send(data, { binary }),
      }),
    );
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => reject(Object.assign(new Error(`upgrade rejected: ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body })));
    });
  });
}

/** Connect and say hello; resolves after the welcome. */
export async function helloAgent(url: string, token: string, agentId: string, node = agentId, options: { ca?: Buffer } = {}): Promise<TestAgent> {
  const a = await connectAgent(url, token, options);
  a.send({ type: 'hello', protocolVersion: 1, agentId, node, version: 'test', startedAtMs: Date.now() });
  await a.next((m) => m.type === 'welcome');
  return a;
}

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json: any;
}

/** GET (or another method) with a raw, unnormalised path: what an attacker can send. */
export function httpGet(base: string, path: string, token: string | null, options: { method?: string; ca?: Buffer; headers?: Record<string, string> } = {}): Promise<HttpResult> {
  const u = new URL(base);
  const headers: Record<string, string> = { ...options.headers };
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  const request = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: options.method ?? 'GET', headers, ...(options.ca ? { ca: options.ca } : {}), agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let json: unknown = undefined;
        try {
          json = JSON.parse(body);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
