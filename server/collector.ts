// The collector: one HTTP(S) server carrying both the JSON API and the agents' WebSocket. Agents
// are authenticated in the upgrade handler, before any WebSocket exists, so a peer without a
// valid `agent` token never gets to send a frame. Shutdown is ordered so nothing acknowledged is
// lost and nothing half-written is acknowledged: stop being ready, stop accepting, close agent
// sockets (1001, "come back later"), then close the store.
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createLogger, type Logger } from '../common/log.js';
import type { CommandMessage } from '../protocol/messages.js';
import { AGENT_WS_PATH, CloseCode } from '../protocol/messages.js';
import { AgentSession, type CommandResult, type LiveAgent, type SessionEnv } from './agent-session.js';
import { apiRoutes, compileRoutes, createRequestHandler, hasTokenInQuery, remoteOf, securityHeaders, splitTarget, type ApiEnv, type Route, type RouteContext } from './api.js';
import { createEventHub } from './events.js';
import { IngestBudget, type IngestBudgetStats } from './ingest-budget.js';
import { IngestQueue } from './ingest-queue.js';
import { defaultWebRoot, webRoutes } from './web-static.js';
import { createTokenAuth, hasScope, type Identity, type TokenAuth, type TokenEntry } from './auth.js';
import type { CollectorMetrics } from './metrics.js';
import type { Store } from './store/types.js';
import { snapshotDir } from './store/snapshot-files.js';
import { SnapshotReceiver } from './snapshots/snapshot-receiver.js';
import { snapshotRoutes } from './snapshots/snapshot-api.js';
import { DiffRunner, type DiffRunnerOptions } from './snapshots/diff-runner.js';
import { findingHeapDiff, heapDiffRoutes, snapshotAnalysis } from './snapshots/heap-diff-api.js';

export type { CommandResult, LiveAgent } from './agent-session.js';
export type { Reply, Route, RouteContext } from './api.js';

export interface CollectorOptions {
  store: Store;
  /** Close the store in close() (the caller opened it for the collector alone). Default false. */
  ownsStore?: boolean;
  host?: string;
  /** 0 picks a free port (tests); the chosen one is in the result. */
  port: number;
  /** PEM file paths, or PEM contents as Buffers. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Token entries (sha256 + scopes) or a ready authenticator. */
  tokens: readonly TokenEntry[] | TokenAuth;
  /** Largest WebSocket frame accepted; a larger one closes the connection with 1009. Default 16 MiB. */
  maxPayloadBytes?: number;
  /**
   * Bytes of agents' findings and series frames read but not yet stored, across agents, past
   * which the collector stops reading from agent sockets until the store has written an eighth
   * of them (backpressure: agents keep the rest in their in-flight window and queues). Default 8 MiB.
   */
  ingestBudgetBytes?: number;
  /** Server ping period (dead peers are dropped after missing one) and the heartbeat asked of agents. Default 15 s. */
  heartbeatIntervalMs?: number;
  /** Time an agent has to send hello after connecting. Default 10 s. */
  helloTimeoutMs?: number;
  /** Bad frames one connection may send before it is closed with 4400. Default 10. */
  maxBadMessages?: number;
  /** How long close() keeps serving (with /readyz at 503) before it stops accepting. Default 0. */
  drainDelayMs?: number;
  /** Reported to agents in `welcome`. */
  version?: string;
  log?: Logger;
  metrics?: CollectorMetrics;
  /** Snapshot uploads and their API: where the files go (default `<store.dataDir>/snapshots`) and the largest taken. */
  snapshots?: { dir?: string; maxSnapshotBytes?: number };
  /** The heap diff runner (child process per diff): timeout, queue bound, heap bound. */
  heapDiffs?: Pick<DiffRunnerOptions, 'timeoutMs' | 'maxPending' | 'maxOldSpaceMiB'>;
  /** More routes on the same server (e.g. /metrics). Checked after the built-in ones. */
  extraRoutes?: Route[];
  /** Directory of the built web page served at `/`; default: the one `npm run build` made; null: no page. */
  webRoot?: string | null;
}

export interface Collector {
  /** http(s)://host:port */
  url: string;
  /** ws(s)://host:port/api/v1/agents/connect */
  agentUrl: string;
  port: number;
  close(): Promise<void>;
  /** Agents connected right now (after their hello). */
  agents(): LiveAgent[];
  /** Agent frames held for the store right now, the peak, and whether reading is paused. */
  ingestBudget(): IngestBudgetStats;
  /** Send a command to a connected agent and wait for its result (rejects if it is not connected, disconnects or times out). */
  sendCommand(agentId: string, command: CommandMessage['command'], options?: { timeoutMs?: number }): Promise<CommandResult>;
}

const DEFAULTS = {
  host: '127.0.0.1',
  maxPayloadBytes: 16 * 1024 * 1024,
  ingestBudgetBytes: 8 * 1024 * 1024,
  heartbeatIntervalMs: 15_000,
  helloTimeoutMs: 10_000,
  maxBadMessages: 10,
  commandTimeoutMs: 60_000,
  /** How long close() waits for agents to finish the closing handshake before dropping them. */
  socketCloseGraceMs: 3_000,
  /** How long close() lets in-flight HTTP requests finish. */
  httpCloseGraceMs: 5_000,
};
/** Rejected upgrades written to the audit log per minute at most: a flood must not become a flood of fsyncs. */
const MAX_AUDITED_REJECTIONS_PER_MIN = 60;

export async function startCollector(options: CollectorOptions): Promise<Collector> {
  const log = options.log ?? createLogger();
  const store = options.store;
  const host = options.host ?? DEFAULTS.host;
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs;
  const auth: TokenAuth = 'authenticate' in options.tokens ? options.tokens : createTokenAuth(options.tokens);
  const tls = options.tls ? { cert: readPem(options.tls.cert, 'certificate'), key: readPem(options.tls.key, 'key') } : null;

  const sessions = new Map<string, AgentSession>();
  const sockets = new Set<AgentSession>();
  let closing: Promise<void> | null = null;

  const audit = (entry: { actor: string; action: string; subject: string; detail?: string; remote?: string }): void => {
    const write = () => store.audit({ atMs: Date.now(), ...entry });
    if (options.metrics) options.metrics.timeStoreWrite('audit', write);
    else write();
  };

  const ingest = new IngestQueue(store, options.metrics);
  const snapshotReceiver = new SnapshotReceiver({
    dir: options.snapshots?.dir ?? snapshotDir(store.dataDir),
    store,
    log,
    ...(options.snapshots?.maxSnapshotBytes !== undefined ? { maxSnapshotBytes: options.snapshots.maxSnapshotBytes } : {}),
  });
  // Automatic diffs: when the second snapshot of a pair is committed, its diff is queued.
  const diffRunner = new DiffRunner({ store, dir: snapshotReceiver.dir, log, ...options.heapDiffs });
  snapshotReceiver.onStored((row) => diffRunner.onSnapshotStored(row));
  const live = createEventHub();
  // Logged at most once a minute: under sustained overload reading pauses several times a second.
  let pausesLoggedAtMs = 0;
  let pausesLogged = 0;
  const budget = new IngestBudget(options.ingestBudgetBytes ?? DEFAULTS.ingestBudgetBytes, (paused, stats) => {
    if (!paused) return;
    options.metrics?.ingestPaused();
    if (Date.now() - pausesLoggedAtMs < 60_000) return;
    log.info('agents outpace the store: reading from agents paused until it catches up', {
      heldBytes: stats.heldBytes,
      limitBytes: stats.limitBytes,
      pausesSinceLastLog: stats.pauses - pausesLogged,
    });
    pausesLoggedAtMs = Date.now();
    pausesLogged = stats.pauses;
  });
  options.metrics?.watchIngestBudget(() => budget.stats());
  const sessionEnv: SessionEnv = {
    store,
    ingest,
    budget,
    log,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    collectorVersion: options.version ?? 'unknown',
    heartbeatIntervalMs,
    helloTimeoutMs: options.helloTimeoutMs ?? DEFAULTS.helloTimeoutMs,
    maxBadMessages: options.maxBadMessages ?? DEFAULTS.maxBadMessages,
    snapshots: snapshotReceiver,
    claim(session) {
      const id = session.agentId!;
      const previous = sessions.get(id);
      sessions.set(id, session);
      options.metrics?.setAgentsConnected(sessions.size);
      return previous;
    },
    release(session) {
      const id = session.agentId;
      if (id === null || sessions.get(id) !== session) return false;
      sessions.delete(id);
      options.metrics?.setAgentsConnected(sessions.size);
      return true;
    },
    onStored: (event) => live.publish(event),
  };

  const apiEnv: ApiEnv = {
    store,
    auth,
    log,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    tls: tls !== null,
    connectedAgents: () => new Set(sessions.keys()),
    ready() {
      if (closing) return { ok: false, reason: 'shutting down' };
      if (!server.listening) return { ok: false, reason: 'not listening' };
      try {
        store.listAgents();
        return { ok: true };
      } catch (err) {
        return { ok: false, reason: `store unavailable: ${err instanceof Error ? err.message : String(err)}` };
      }
    },
    audit(ctx: RouteContext, action, subject) {
      audit({ actor: ctx.identity?.name ?? 'anonymous', action, subject, remote: ctx.remote });
    },
    findingExtras: (finding, view) => findingHeapDiff(store, finding, view),
  };
  const snapshotApi = snapshotRoutes({
    api: apiEnv,
    receiver: snapshotReceiver,
    connectedAgents: () => [...sessions.values()].filter((s) => s.hello).map((s) => s.agentId!),
    agentsOnNode: (node) =>
      [...sessions.values()]
        .filter((s) => s.hello?.node === node)
        .sort((a, b) => b.connectedAtMs - a.connectedAtMs)
        .map((s) => s.agentId!),
    sendCommand: (agentId, command, timeoutMs) => {
      const s = sessions.get(agentId);
      if (!s) return Promise.reject(new Error(`agent ${agentId} is not connected`));
      return s.sendCommand(command as unknown as CommandMessage['command'], timeoutMs);
    },
    analysisOf: (id) => snapshotAnalysis(store, id),
  });
  const webRoot = options.webRoot === undefined ? defaultWebRoot() : options.webRoot;
  const routes = compileRoutes([...apiRoutes(apiEnv), ...snapshotApi, ...heapDiffRoutes(apiEnv, diffRunner), live.route(), ...(options.extraRoutes ?? []), ...(options.webRoot === null ? [] : webRoutes(webRoot))]);
  const handler = createRequestHandler(apiEnv, routes);

  let server: Server;
  try {
    server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key }, handler) : createHttpServer(handler);
  } catch (err) {
    throw new Error(`cannot use the TLS certificate and key: ${err instanceof Error ? err.message : String(err)}`);
  }
  // Slow-loris bounds: a client gets 10 s to send its headers and 30 s for the whole request.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxHeadersCount = 100;
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    if (err.code !== 'ECONNRESET') log.warn('bad HTTP request', { code: err.code, error: err.message, remote: socket.remoteAddress });
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: Socket) => {
    log.warn('TLS handshake failed', { code: err.code, error: err.message, remote: socket.remoteAddress });
  });

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayloadBytes ?? DEFAULTS.maxPayloadBytes,
    // Compression invites decompression bombs and buys little for JSON this size.
    perMessageDeflate: false,
    clientTracking: false,
  });

  // Rejection log entries for the audit trail, rate-limited per minute.
  let auditWindowStart = 0;
  let auditedInWindow = 0;
  const auditRejection = (status: number, reason: string, remote: string, tokenName?: string): void => {
    const now = Date.now();
    if (now - auditWindowStart >= 60_000) {
      auditWindowStart = now;
      auditedInWindow = 0;
    }
    if (auditedInWindow >= MAX_AUDITED_REJECTIONS_PER_MIN) return;
    auditedInWindow++;
    try {
      audit({ actor: tokenName ?? 'anonymous', action: 'token.rejected', subject: AGENT_WS_PATH, detail: `${status} ${reason}`, remote });
    } catch (err) {
      log.error('could not write audit entry', { error: err instanceof Error ? err.message : String(err) });
    }
  };

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', (err) => log.warn('upgrade socket error', { error: err.message, remote: remoteOf(req) }));
    const remote = remoteOf(req);
    try {
      const target = splitTarget(req.url);
      if (!target || target.pathname !== AGENT_WS_PATH) {
        rejectUpgrade(socket, 404, 'not-found', 'no WebSocket endpoint here; agents connect to ' + AGENT_WS_PATH);
        return;
      }
      if (hasTokenInQuery(target.query)) {
        log.warn('agent connection rejected', { status: 400, reason: 'credential in the URL', remote });
        rejectUpgrade(socket, 400, 'token-in-url', 'send the token in the Authorization header (Bearer), never in the URL');
        return;
      }
      if (closing) {
        rejectUpgrade(socket, 503, 'shutting-down', 'the collector is shutting down; reconnect later');
        return;
      }
      const header = req.headers.authorization;
      const identity: Identity | null = auth.authenticate(header);
      if (!identity) {
        const reason = header ? 'invalid token' : 'missing token';
        log.warn('agent connection rejected', { status: 401, reason, remote });
        auditRejection(401, reason, remote);
        rejectUpgrade(socket, 401, 'unauthorized', header ? 'the bearer token is not valid' : 'agents must send Authorization: Bearer <token>', {
          'WWW-Authenticate': header ? 'Bearer realm="leakwatch", error="invalid_token"' : 'Bearer realm="leakwatch"',
        });
        return;
      }
      if (!hasScope(identity, 'agent')) {
        log.warn('agent connection rejected', { status: 403, reason: 'token lacks the agent scope', tokenName: identity.name, remote });
        auditRejection(403, 'token lacks the agent scope', remote, identity.name);
        rejectUpgrade(socket, 403, 'forbidden', 'this token does not have the "agent" scope', {
          'WWW-Authenticate': 'Bearer realm="leakwatch", error="insufficient_scope", scope="agent"',
        });
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        const session = new AgentSession(ws, remote, identity.name, sessionEnv);
        sockets.add(session);
        ws.on('close', () => sockets.delete(session));
        // A collector that started shutting down during the handshake sends the agent away at once.
        if (closing) session.close(CloseCode.goingAway, 'collector shutting down');
      });
    } catch (err) {
      log.error('upgrade handler failed', { error: err instanceof Error ? err.message : String(err), remote });
      socket.destroy();
    }
  });

  const rejectUpgrade = (socket: Socket, status: number, code: string, message: string, extra: Record<string, string> = {}): void => {
    const body = JSON.stringify({ error: code, message });
    const headers = {
      ...securityHeaders(tls !== null),
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(body)),
      Connection: 'close',
      ...extra,
    };
    const reason = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 503: 'Service Unavailable' }[status] ?? 'Error';
    const lines = [`HTTP/1.1 ${status} ${reason}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    socket.once('finish', () => socket.destroy());
    socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  };

  // A peer that has not answered the previous ping (nor sent anything) since is gone: drop it.
  const pinger = setInterval(() => {
    for (const s of sockets) {
      if (s.ws.isPaused) {
        // Paused by the ingest budget: its pong is unread, not missing. Pinged again once resumed.
        s.alive = true;
        continue;
      }
      if (!s.alive) {
        log.warn('agent stopped answering pings; dropping it', { agentId: s.agentId ?? undefined, remote: s.remote });
        s.ws.terminate();
        continue;
      }
      s.alive = false;
      try {
        s.ws.ping();
      } catch {
        // Already closing: the close handler cleans up.
      }
    }
  }, heartbeatIntervalMs);
  pinger.unref();

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error & { code?: string }) => {
      clearInterval(pinger);
      reject(new Error(err.code === 'EADDRINUSE' ? `cannot listen on ${host}:${options.port}: the address is in use` : `cannot listen on ${host}:${options.port}: ${err.message}`));
    };
    server.once('error', onError);
    server.listen(options.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error('server error', { error: err.message }));

  // Agents the store believes connected are leftovers of a crash: none is connected to a process that just started.
  try {
    for (const a of store.listAgents()) {
      if (a.connected) store.recordAgent({ agentId: a.agentId, node: a.node, version: a.version, atMs: a.lastSeenMs, connected: false, droppedFindings: a.droppedFindings });
    }
  } catch (err) {
    log.warn('could not reset agents left marked connected', { error: err instanceof Error ? err.message : String(err) });
  }

  diffRunner.start();

  const port = (server.address() as AddressInfo).port;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  const url = `${tls ? 'https' : 'http'}://${hostInUrl}:${port}`;
  const agentUrl = `${tls ? 'wss' : 'ws'}://${hostInUrl}:${port}${AGENT_WS_PATH}`;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      log.info('collector shutting down', { agents: sessions.size });
      if (options.drainDelayMs) await sleep(options.drainDelayMs);
      clearInterval(pinger);
      // A diff in progress is killed (its row stays queued for the next start) and requests
      // waiting for one are answered now, so the HTTP server can close.
      await diffRunner.close();
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Live streams never end on their own: end them so the HTTP server can close.
      live.closeAll();
      // Writes already received are committed and acknowledged before the sockets close.
      await ingest.idle();
      for (const s of sockets) s.close(CloseCode.goingAway, 'collector shutting down');
      await waitUntil(() => sockets.size === 0, DEFAULTS.socketCloseGraceMs);
      for (const s of sockets) s.ws.terminate();
      await waitUntil(() => sockets.size === 0, 500);
      // The grace timer is cleared once the server closed: left running, it would hold the process open.
      let graceTimer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<false>((resolve) => (graceTimer = setTimeout(() => resolve(false), DEFAULTS.httpCloseGraceMs)));
      const httpDone = await Promise.race([serverClosed.then(() => true), graceOver]);
      clearTimeout(graceTimer);
      if (!httpDone) {
        server.closeAllConnections();
        await serverClosed;
      }
      // Frames that arrived while the sockets were closing are ignored, but writes queued before are flushed.
      await ingest.idle();
      if (options.ownsStore) {
        try {
          store.close();
        } catch (err) {
          log.error('closing the store failed', { error: err instanceof Error ? err.message : String(err) });
        }
      }
      log.info('collector stopped');
    })();
    return closing;
  };

  log.info('collector listening', { url, agentUrl, maxPayloadBytes: options.maxPayloadBytes ?? DEFAULTS.maxPayloadBytes, ingestBudgetBytes: budget.limitBytes });
  return {
    url,
    agentUrl,
    port,
    close,
    agents: () => [...sessions.values()].map((s) => s.describe()).filter((a): a is LiveAgent => a !== null),
    ingestBudget: () => budget.stats(),
    sendCommand(agentId, command, opts = {}) {
      const s = sessions.get(agentId);
      if (!s) return Promise.reject(new Error(`agent ${agentId} is not connected`));
      return s.sendCommand(command, opts.timeoutMs ?? DEFAULTS.commandTimeoutMs);
    },
  };
}

function readPem(value: string | Buffer, what: string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  try {
    return readFileSync(value);
  } catch (err) {
    throw new Error(`cannot read the TLS ${what} ${value}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await sleep(20);
}
