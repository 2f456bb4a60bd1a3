// The agent's one connection to the collector, and the only code in the agent that talks to it.
//
// One WebSocket to <collector>/api/v1/agents/connect, authenticated at the upgrade with
// `Authorization: Bearer <token>` (never in the URL: URLs end up in proxy and access logs).
// After `hello` → `welcome` it drains the disk queue in `findings` batches, at most a few
// unacknowledged at a time and never while the socket's send buffer is full; the collector's
// `ack` (sent once the batch is durable) is what removes events from the queue. A lost
// connection re-sends whatever was not acknowledged: the collector's ingest is idempotent per
// finding id and updatedAt, so a batch that arrived but whose ack was lost changes nothing.
//
// Reconnects back off exponentially with full jitter (a fleet of agents whose collector restarts
// must not come back in lockstep). A refused token or an untrusted certificate is a configuration
// error: it is logged as one, and retried at the cap interval rather than in a tight loop.
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import {
  AGENT_WS_PATH,
  CloseCode,
  PROTOCOL_VERSION,
  type AgentMessage,
  type CommandMessage,
  type SeriesPoint,
  type TargetInfo,
} from '../protocol/messages.js';
import { validateCollectorMessage, validateFinding } from '../protocol/validate.js';
import type { DiskQueue, QueuedEvent } from './disk-queue.js';
import type { CaptureReport } from '../protocol/snapshots.js';
import { CaptureReportQueue } from './capture-report-queue.js';
import type { SnapshotSpool } from './snapshot-spool.js';
import { SnapshotUploader, type SnapshotUploaderOptions, type SnapshotUploadState, type UploadChannel } from './snapshot-upload.js';

export interface UplinkOptions {
  /** Collector base URL: http(s):// or ws(s)://, optionally with a path prefix. */
  url: string;
  token: string;
  /** PEM of the CA (or self-signed certificate) the collector's certificate must chain to. */
  ca?: string | Buffer;
  agentId: string;
  node: string;
  version: string;
  startedAtMs?: number;
  queue: DiskQueue;
  log?: Logger;
  /** Events per `findings` message. Default 500 (the protocol allows 10,000). */
  batchMaxEvents?: number;
  /** Bytes of events per `findings` message. Default 512 KiB; halved when the collector says a frame was too big. */
  batchMaxBytes?: number;
  /** Messages sent and not yet acknowledged. Default 4. */
  maxInFlight?: number;
  /** Nothing more is sent while the socket holds this many unsent bytes. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** One finding event larger than this (as JSON) is refused at enqueue. Default 4 MiB. */
  maxEventBytes?: number;
  /** Series points held for the collector while it is away; the oldest go first. Default 50,000. */
  maxSeriesBacklogPoints?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** A connection that stayed up this long resets the back-off. Default 10 s. */
  stableAfterMs?: number;
  /** Connect, upgrade and welcome must all happen within this. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** A message unacknowledged this long means the collector is stuck: reconnect. Default 60 s. */
  ackTimeoutMs?: number;
  /** Largest frame accepted from the collector. Default 4 MiB (commands are small). */
  maxPayloadBytes?: number;
  /** Source of jitter, [0, 1). Default Math.random. */
  random?: () => number;
  /** Spooled snapshots to upload (agent/snapshot-spool.ts); without it none are sent. */
  snapshotSpool?: SnapshotSpool;
  /** Chunk size, high-water mark and timeouts of the snapshot upload. */
  snapshotUpload?: Omit<SnapshotUploaderOptions, 'spool' | 'log'>;
  /** Where capture reports wait for their ack (disk-backed in the runtime). Default: in memory. */
  captureReports?: CaptureReportQueue;
}

export interface UplinkState {
  /** Welcomed by the collector right now. */
  connected: boolean;
  queuedFindings: number;
  queuedBytes: number;
  /** Dropped by the full queue plus refused as malformed or oversized, since the spool began. */
  droppedFindings: number;
  /** Of droppedFindings: events refused before or by the collector (invalid, too big). */
  rejectedFindings: number;
  inFlight: number;
  /** Connection attempts after the first. */
  reconnects: number;
  connectAttempts: number;
  /** Connections that got a welcome. */
  sessions: number;
  lastAckMs: number | null;
  lastConnectedMs: number | null;
  lastError: string | null;
  /** Delay before the pending reconnect, null when none is pending. */
  nextRetryDelayMs: number | null;
  sentFindings: number;
  ackedFindings: number;
  seriesPointsQueued: number;
  seriesPointsDropped: number;
  bufferedBytes: number;
  batchMaxBytes: number;
  /** Null without a snapshot spool. */
  snapshots: SnapshotUploadState | null;
  captureReportsQueued: number;
}

export type CommandHandler = (command: CommandMessage['command'], context: { commandId: string }) => unknown;

interface FindingsBatch {
  /** Wire seq; null for a batch that held only unreadable events (acknowledged locally). */
  wireSeq: number | null;
  /** Queue seq of the batch's last event. */
  queueSeq: number;
  events: number;
  bytes: number;
  sentAtMs: number;
  acked: boolean;
  /** Refused by the collector for good: passed in the queue, but not counted as delivered. */
  rejected: boolean;
}

interface SeriesItem {
  targets: TargetInfo[];
  points: SeriesPoint[];
  /** Wire seq while sent on the current session and not acknowledged. */
  wireSeq: number | null;
  sentAtMs: number;
  bytes: number;
}

interface Session {
  ws: WebSocket;
  openedAtMs: number | null;
  welcomedAtMs: number | null;
  findingsInFlight: FindingsBatch[];
  /** Queue seq of the last event sent on this session. */
  sentThroughSeq: number;
  heartbeatTimer: NodeJS.Timeout | null;
  handshakeTimer: NodeJS.Timeout | null;
  heartbeatIntervalMs: number;
  lastHeardMs: number;
  /** Status of a refused upgrade (401, 403, ...). */
  httpStatus: number | null;
  httpReason: string | null;
  /** A configuration problem: retry at the cap interval. */
  configError: boolean;
}

const DEFAULT_HEARTBEAT_MS = 15_000;
/** Collector errors that mean "this batch will never be accepted": re-sending it would loop. */
const PERMANENT_REJECTIONS: ReadonlySet<string> = new Set(['bad-json', 'bad-message', 'unknown-type']);
const TLS_TRUST_ERRORS: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const MIN_BATCH_BYTES = 16 * 1024;
const SERIES_POINTS_PER_MESSAGE = 5_000;

/** The WebSocket URL agents connect to, from the collector's base URL. */
export function agentSocketUrl(collectorUrl: string): string {
  let url: URL;
  try {
    url = new URL(collectorUrl);
  } catch {
    throw new Error(`collector URL "${collectorUrl}" is not a URL (expected e.g. https://collector:7070)`);
  }
  if (url.username || url.password) throw new Error('collector URL carries credentials: pass the token with --token or --token-file instead');
  const scheme = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }[url.protocol];
  if (!scheme) throw new Error(`collector URL "${collectorUrl}" must start with http://, https://, ws:// or wss://`);
  url.protocol = scheme;
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${AGENT_WS_PATH}`;
  url.hash = '';
  return url.toString();
}

/** Reads a --ca file, with an error that names the flag. */
export function readCaFile(path: string): Buffer {
  try {
    const pem = readFileSync(path);
    if (!pem.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate in it');
    return pem;
  } catch (err) {
    throw new Error(`--ca ${path}: ${errorText(err)}`);
  }
}

export class Uplink {
  private readonly socketUrl: string;
  private readonly token: string;
  private readonly ca: string | Buffer | undefined;
  private readonly agentId: string;
  private readonly node: string;
  private readonly version: string;
  private readonly startedAtMs: number;
  private readonly queue: DiskQueue;
  private readonly log: Logger;
  private readonly batchMaxEvents: number;
  private batchMaxBytes: number;
  private readonly maxInFlight: number;
  private readonly maxBufferedBytes: number;
  private readonly maxEventBytes: number;
  private readonly maxSeriesBacklogPoints: number;
  private readonly backoffBaseMs: number;
  private readonly backoffCapMs: number;
  private readonly stableAfterMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly ackTimeoutMs: number;
  private readonly maxPayloadBytes: number;
  private readonly random: () => number;
  private readonly handlers = new Map<string, CommandHandler>();
  private readonly uploader: SnapshotUploader | null;
  private readonly reports: CaptureReportQueue;

  private session: Session | null = null;
  private started = false;
  private stopping = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** Failed attempts in a row (drives the back-off). */
  private failures = 0;
  private nextWireSeq = 1;
  /** After a frame was too big: one message at a time until one is acknowledged. */
  private probing = false;
  private readonly series: SeriesItem[] = [];
  private seriesPoints = 0;
  private drainWaiters: Array<() => void> = [];
  private stats = {
    reconnects: 0,
    connectAttempts: 0,
    sessions: 0,
    lastAckMs: null as number | null,
    lastConnectedMs: null as number | null,
    lastError: null as string | null,
    nextRetryDelayMs: null as number | null,
    sentFindings: 0,
    ackedFindings: 0,
    rejectedFindings: 0,
    seriesPointsDropped: 0,
  };

  constructor(options: UplinkOptions) {
    this.socketUrl = agentSocketUrl(options.url);
    if (!options.token) throw new Error('no token for the collector');
    this.token = options.token;
    this.ca = options.ca;
    this.agentId = options.agentId;
    this.node = options.node;
    this.version = options.version;
    this.startedAtMs = options.startedAtMs ?? Date.now();
    this.queue = options.queue;
    this.log = options.log ?? silentLogger;
    this.batchMaxEvents = Math.min(10_000, options.batchMaxEvents ?? 500);
    this.batchMaxBytes = options.batchMaxBytes ?? 512 * 1024;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 4);
    this.maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
    this.maxEventBytes = options.maxEventBytes ?? 4 * 1024 * 1024;
    this.maxSeriesBacklogPoints = options.maxSeriesBacklogPoints ?? 50_000;
    this.backoffBaseMs = options.backoffBaseMs ?? 500;
    this.backoffCapMs = options.backoffCapMs ?? 30_000;
    this.stableAfterMs = options.stableAfterMs ?? 10_000;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 60_000;
    this.maxPayloadBytes = options.maxPayloadBytes ?? 4 * 1024 * 1024;
    this.random = options.random ?? Math.random;
    this.uploader = options.snapshotSpool ? new SnapshotUploader({ ...options.snapshotUpload, spool: options.snapshotSpool, log: this.log }) : null;
    this.reports = options.captureReports ?? new CaptureReportQueue({ log: this.log });
  }

  /**
   * The CaptureReportSink for agent/capture: every capture attempt, refusals included, goes to
   * the collector through an acknowledged, disk-backed queue. A report that does not match the
   * protocol is logged and not sent (it would be refused forever).
   */
  reportCapture(report: CaptureReport): void {
    try {
      this.reports.add(report);
    } catch (err) {
      this.log.error('capture report not sent', { captureId: (report as { captureId?: unknown })?.captureId as string | undefined, error: errorText(err) });
      return;
    }
    this.pump();
  }

  /** Where it connects (for logs and tests): never carries the token. */
  get url(): string {
    return this.socketUrl;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.connect();
  }

  /** Register what a collector `command` with this action does; its return value is the result. */
  onCommand(action: string, handler: CommandHandler): void {
    this.handlers.set(action, handler);
  }

  /**
   * Hand finding events to the collector: validated against the protocol (an event the collector
   * would refuse would otherwise block the queue forever), then queued on disk and sent.
   */
  enqueue(events: readonly QueuedEvent[]): void {
    const accepted: QueuedEvent[] = [];
    for (const e of events) {
      const checked = validateFinding(e.finding);
      if (!checked.ok) {
        this.reject(1, `finding ${describeId(e.finding)} does not match the protocol and is not sent: ${checked.error}`);
        continue;
      }
      if (e.change !== 'open' && e.change !== 'update' && e.change !== 'resolve') {
        this.reject(1, `finding ${checked.finding.id}: unknown change "${String(e.change)}"; not sent`);
        continue;
      }
      const bytes = Buffer.byteLength(JSON.stringify(checked.finding));
      if (bytes > this.maxEventBytes) {
        this.reject(1, `finding ${checked.finding.id} is ${bytes} bytes, more than the ${this.maxEventBytes} one event may take; not sent`);
        continue;
      }
      accepted.push({ change: e.change, finding: checked.finding });
    }
    if (accepted.length > 0) this.queue.append(accepted);
    this.pump();
  }

  /** Memory points for the collector's charts. Held (bounded) while the collector is away. */
  sendSeries(targets: TargetInfo[], points: SeriesPoint[]): void {
    if (points.length === 0 && targets.length === 0) return;
    // The protocol bounds arrays at 10,000 items: split rather than be refused.
    const chunks: SeriesPoint[][] = points.length === 0 ? [[]] : [];
    for (let i = 0; i < points.length; i += SERIES_POINTS_PER_MESSAGE) chunks.push(points.slice(i, i + SERIES_POINTS_PER_MESSAGE));
    for (const chunk of chunks) {
      const keys = new Set(chunk.map((p) => p.targetKey));
      const item: SeriesItem = {
        targets: chunks.length === 1 ? targets : targets.filter((t) => keys.has(t.targetKey)),
        points: chunk,
        wireSeq: null,
        sentAtMs: 0,
        bytes: 0,
      };
      this.series.push(item);
      this.seriesPoints += chunk.length;
    }
    // Over the backlog bound the oldest unsent points go (charts lose their oldest stretch first).
    while (this.seriesPoints > this.maxSeriesBacklogPoints) {
      const oldest = this.series.find((item) => item.wireSeq === null && item !== this.series[this.series.length - 1]);
      if (!oldest) break;
      this.dropSeries(oldest);
    }
    this.pump();
  }

  /** Send what is waiting now (enqueue, sendSeries and acks already do). */
  kick(): void {
    this.pump();
  }

  state(): UplinkState {
    const s = this.session;
    const welcomed = s !== null && s.welcomedAtMs !== null && s.ws.readyState === WebSocket.OPEN;
    return {
      connected: welcomed,
      queuedFindings: this.queue.size,
      queuedBytes: this.queue.bytes,
      droppedFindings: this.queue.droppedTotal + this.stats.rejectedFindings,
      rejectedFindings: this.stats.rejectedFindings,
      inFlight: s ? s.findingsInFlight.length + this.seriesInFlight() : 0,
      reconnects: this.stats.reconnects,
      connectAttempts: this.stats.connectAttempts,
      sessions: this.stats.sessions,
      lastAckMs: this.stats.lastAckMs,
      lastConnectedMs: this.stats.lastConnectedMs,
      lastError: this.stats.lastError,
      nextRetryDelayMs: this.stats.nextRetryDelayMs,
      sentFindings: this.stats.sentFindings,
      ackedFindings: this.stats.ackedFindings,
      seriesPointsQueued: this.seriesPoints,
      seriesPointsDropped: this.stats.seriesPointsDropped,
      bufferedBytes: s ? s.ws.bufferedAmount : 0,
      batchMaxBytes: this.batchMaxBytes,
      snapshots: this.uploader?.state() ?? null,
      captureReportsQueued: this.reports.size,
    };
  }

  /**
   * Stop: deliver what can be delivered within `flushMs` (if connected), then close the socket.
   * Whatever is not acknowledged stays in the spool for the next start.
   */
  async close(options: { flushMs?: number } = {}): Promise<void> {
    const flushMs = options.flushMs ?? 2_000;
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stats.nextRetryDelayMs = null;
    const s = this.session;
    if (!s) return;
    if (s.welcomedAtMs !== null && s.ws.readyState === WebSocket.OPEN && flushMs > 0) {
      this.pump();
      await this.waitDrained(flushMs);
    }
    await closeSocket(s.ws, 1000, 'agent stopping', 500);
    this.endSession(s);
  }

  // -- connecting

  private connect(): void {
    if (this.stopping) return;
    this.stats.nextRetryDelayMs = null;
    if (this.stats.connectAttempts > 0) this.stats.reconnects++;
    this.stats.connectAttempts++;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.socketUrl, {
        headers: { Authorization: `Bearer ${this.token}` },
        ...(this.ca !== undefined ? { ca: this.ca } : {}),
        handshakeTimeout: this.handshakeTimeoutMs,
        maxPayload: this.maxPayloadBytes,
        perMessageDeflate: false,
        followRedirects: false,
      });
    } catch (err) {
      this.stats.lastError = errorText(err);
      this.log.error('cannot connect to the collector', { url: this.socketUrl, error: errorText(err) });
      this.scheduleReconnect(true);
      return;
    }
    const s: Session = {
      ws,
      openedAtMs: null,
      welcomedAtMs: null,
      findingsInFlight: [],
      sentThroughSeq: this.queue.consumed,
      heartbeatTimer: null,
      handshakeTimer: null,
      heartbeatIntervalMs: DEFAULT_HEARTBEAT_MS,
      lastHeardMs: Date.now(),
      httpStatus: null,
      httpReason: null,
      configError: false,
    };
    this.session = s;
    // Covers the time from open to welcome (the ws option covers connect + upgrade).
    s.handshakeTimer = setTimeout(() => {
      if (s.welcomedAtMs !== null) return;
      this.stats.lastError = `no welcome within ${this.handshakeTimeoutMs} ms`;
      this.log.warn('collector did not welcome the agent in time; reconnecting', { url: this.socketUrl, timeoutMs: this.handshakeTimeoutMs });
      ws.terminate();
    }, this.handshakeTimeoutMs + 1_000);

    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      s.httpStatus = res.statusCode ?? null;
      s.httpReason = res.statusMessage ?? null;
      res.resume();
      // Aborts the request and its socket; ws then emits error and close.
      ws.terminate();
    });
    ws.on('open', () => {
      s.openedAtMs = Date.now();
      s.lastHeardMs = Date.now();
      this.sendMessage(s, {
        type: 'hello',
        protocolVersion: PROTOCOL_VERSION,
        agentId: this.agentId,
        node: this.node,
        version: this.version,
        startedAtMs: this.startedAtMs,
      });
    });
    ws.on('message', (data, isBinary) => {
      s.lastHeardMs = Date.now();
      if (isBinary) {
        this.log.warn('collector sent a binary frame the agent does not expect; ignored', { bytes: byteLength(data) });
        return;
      }
      this.onMessage(s, rawText(data));
    });
    ws.on('pong', () => {
      s.lastHeardMs = Date.now();
    });
    ws.on('error', (err: Error & { code?: string }) => {
      if (s.httpStatus !== null) return;
      this.stats.lastError = errorText(err);
      if (err.code && TLS_TRUST_ERRORS.has(err.code)) {
        s.configError = true;
        this.log.error("the collector's TLS certificate is not trusted: pass its CA with --ca <file>, or fix the certificate", {
          url: this.socketUrl,
          error: errorText(err),
          code: err.code,
        });
      }
    });
    ws.on('close', (code, reason) => this.onClose(s, code, reason.toString('utf8')));
  }

  private onClose(s: Session, code: number, reason: string): void {
    if (this.session !== s) return;
    const lived = s.welcomedAtMs !== null ? Date.now() - s.welcomedAtMs : 0;
    // Before endSession: it forgets which series messages were in flight.
    if (code === CloseCode.tooBig && !this.stopping) this.onTooBig(s);
    this.endSession(s);
    if (this.stopping) return;
    let configError = s.configError;
    if (s.httpStatus === 401 || code === CloseCode.unauthorized) {
      configError = true;
      this.stats.lastError = 'collector refused the token (401)';
      this.log.error('the collector refused the token (HTTP 401): check --token / --token-file (LEAKWATCH_TOKEN)', { url: this.socketUrl });
    } else if (s.httpStatus === 403 || code === CloseCode.forbidden) {
      configError = true;
      this.stats.lastError = 'token lacks the agent scope (403)';
      this.log.error('the collector accepted the token but it lacks the "agent" scope (HTTP 403): issue an agent token', { url: this.socketUrl });
    } else if (s.httpStatus !== null) {
      this.stats.lastError = `collector answered the upgrade with HTTP ${s.httpStatus}`;
      this.log.warn('the collector refused the WebSocket upgrade', { url: this.socketUrl, status: s.httpStatus, reason: s.httpReason });
    } else if (code === CloseCode.replaced) {
      this.stats.lastError = 'another connection took over this agent id';
      this.log.warn('the collector closed this connection: another agent connected with the same agent id (two agents named alike?)', {
        agentId: this.agentId,
      });
    } else if (code === CloseCode.tooBig) {
      this.stats.lastError = 'the collector found a frame too big (1009)';
    } else if (s.welcomedAtMs !== null) {
      this.log.warn('lost the collector', { url: this.socketUrl, code, reason: reason || undefined, queuedFindings: this.queue.size });
    }
    if (s.welcomedAtMs !== null && lived >= this.stableAfterMs) this.failures = 0;
    this.scheduleReconnect(configError);
  }

  /** Full jitter: a random delay in [0, min(cap, base·2^n)]; configuration errors wait the cap. */
  private scheduleReconnect(configError: boolean): void {
    if (this.stopping || this.reconnectTimer) return;
    const ceiling = Math.min(this.backoffCapMs, this.backoffBaseMs * 2 ** Math.min(this.failures, 30));
    const delayMs = configError ? this.backoffCapMs : Math.round(this.random() * ceiling);
    this.failures++;
    this.stats.nextRetryDelayMs = delayMs;
    const level = this.failures === 1 && !configError ? 'info' : 'warn';
    this.log[level]('reconnecting to the collector', {
      url: this.socketUrl,
      attempt: this.failures,
      delayMs,
      ceilingMs: configError ? this.backoffCapMs : ceiling,
      configError,
      lastError: this.stats.lastError ?? undefined,
    });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delayMs);
  }

  private endSession(s: Session): void {
    if (s.heartbeatTimer) clearInterval(s.heartbeatTimer);
    if (s.handshakeTimer) clearTimeout(s.handshakeTimer);
    s.heartbeatTimer = null;
    s.handshakeTimer = null;
    // Unacknowledged series and reports go out again on the next connection; an upload resumes there.
    for (const item of this.series) item.wireSeq = null;
    this.reports.resetInFlight();
    this.uploader?.detach();
    if (this.session === s) this.session = null;
    this.notifyDrained();
  }

  // -- receiving

  private onMessage(s: Session, text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.log.warn('collector sent a frame that is not JSON; ignored', { bytes: text.length });
      return;
    }
    const checked = validateCollectorMessage(value);
    if (!checked.ok) {
      this.log.warn('collector sent a message the agent does not understand; ignored', { code: checked.code, error: checked.error });
      return;
    }
    const m = checked.message;
    switch (m.type) {
      case 'welcome':
        this.onWelcome(s, m.protocolVersion, m.heartbeatIntervalMs, m.collectorVersion);
        return;
      case 'ack':
        this.onAck(s, m.seq);
        return;
      case 'error':
        this.onCollectorError(s, m.code, m.message, m.seq);
        return;
      case 'command':
        void this.onCommandMessage(s, m);
        return;
      case 'snapshot-offset':
      case 'snapshot-stored':
      case 'snapshot-rejected':
        if (this.uploader) this.uploader.onMessage(m);
        else this.log.warn('collector sent a snapshot message but this agent uploads none; ignored', { type: m.type });
        return;
    }
  }

  private onWelcome(s: Session, protocolVersion: number, heartbeatIntervalMs: number, collectorVersion: string): void {
    if (s.welcomedAtMs !== null) return;
    if (protocolVersion !== PROTOCOL_VERSION) {
      s.configError = true;
      this.stats.lastError = `collector speaks protocol ${protocolVersion}, agent ${PROTOCOL_VERSION}`;
      this.log.error('the collector speaks another protocol version: upgrade the agent or the collector', {
        agentProtocol: PROTOCOL_VERSION,
        collectorProtocol: protocolVersion,
        collectorVersion,
      });
      s.ws.close(1002, 'protocol version mismatch');
      return;
    }
    s.welcomedAtMs = Date.now();
    if (s.handshakeTimer) clearTimeout(s.handshakeTimer);
    s.handshakeTimer = null;
    this.stats.sessions++;
    this.stats.lastConnectedMs = s.welcomedAtMs;
    this.stats.lastError = null;
    s.heartbeatIntervalMs = heartbeatIntervalMs > 0 ? Math.min(300_000, Math.max(1_000, heartbeatIntervalMs)) : DEFAULT_HEARTBEAT_MS;
    this.log.info('connected to the collector', {
      url: this.socketUrl,
      collectorVersion,
      heartbeatIntervalMs: s.heartbeatIntervalMs,
      queuedFindings: this.queue.size,
      droppedFindings: this.queue.droppedTotal + this.stats.rejectedFindings,
    });
    // The first heartbeat goes at once: drops that happened while away are reported now.
    this.heartbeat(s);
    s.heartbeatTimer = setInterval(() => this.heartbeat(s), s.heartbeatIntervalMs);
    s.heartbeatTimer.unref();
    this.pump();
    this.uploader?.attach(this.uploadChannel(s));
  }

  private uploadChannel(s: Session): UploadChannel {
    return {
      sendMessage: (message) => {
        if (this.session === s && s.ws.readyState === WebSocket.OPEN) this.sendMessage(s, message);
      },
      sendBinary: (frame, done) => {
        if (this.session !== s || s.ws.readyState !== WebSocket.OPEN) {
          done(new Error('connection closed'));
          return;
        }
        s.ws.send(frame, { binary: true }, (err) => {
          done(err ?? undefined);
          if (!err && this.session === s) this.pump();
        });
      },
      bufferedAmount: () => s.ws.bufferedAmount,
      reset: (reason) => {
        if (this.session !== s) return;
        this.stats.lastError = reason;
        s.ws.terminate();
      },
    };
  }

  private onAck(s: Session, seq: number): void {
    this.stats.lastAckMs = Date.now();
    this.probing = false;
    const report = this.reports.findBySeq(seq);
    if (report) {
      this.reports.settle(report);
      this.pump();
      this.notifyDrained();
      return;
    }
    const batch = s.findingsInFlight.find((b) => b.wireSeq === seq);
    if (batch) {
      batch.acked = true;
      this.settleFindings(s);
    } else {
      const index = this.series.findIndex((item) => item.wireSeq === seq);
      const item = index >= 0 ? this.series[index] : undefined;
      if (!item) {
        this.log.warn('collector acknowledged a message the agent did not send on this connection; ignored', { seq });
        return;
      }
      this.series.splice(index, 1);
      this.seriesPoints -= item.points.length;
    }
    this.pump();
    this.notifyDrained();
  }

  /** The queue forgets events once every batch up to them is acknowledged (acks may come out of order). */
  private settleFindings(s: Session): void {
    let through: number | null = null;
    while (s.findingsInFlight.length > 0 && (s.findingsInFlight[0] as FindingsBatch).acked) {
      const b = s.findingsInFlight.shift() as FindingsBatch;
      through = b.queueSeq;
      if (b.wireSeq !== null && !b.rejected) this.stats.ackedFindings += b.events;
    }
    if (through !== null) this.queue.ack(through);
  }

  private onCollectorError(s: Session, code: string, message: string, seq: number | undefined): void {
    const report = seq !== undefined ? this.reports.findBySeq(seq) : null;
    if (report && PERMANENT_REJECTIONS.has(code)) {
      this.log.error('the collector refused a capture report; it is dropped', { code, message, seq, captureId: report.report.captureId });
      this.reports.settle(report);
      this.pump();
      return;
    }
    if (report) {
      this.log.warn('the collector could not take a capture report; reconnecting to send it again', { code, message, seq });
      this.stats.lastError = `collector error ${code}: ${message}`;
      s.ws.close(1011, 'retry after collector error');
      return;
    }
    const batch = seq !== undefined ? s.findingsInFlight.find((b) => b.wireSeq === seq) : undefined;
    const seriesItem = seq !== undefined ? this.series.find((item) => item.wireSeq === seq) : undefined;
    if (batch && PERMANENT_REJECTIONS.has(code)) {
      // The collector will never take this batch: re-sending it would block the queue forever.
      this.log.error('the collector refused a batch of findings; they are dropped', { code, message, seq, events: batch.events });
      this.stats.rejectedFindings += batch.events;
      batch.acked = true;
      batch.rejected = true;
      this.settleFindings(s);
      this.pump();
      return;
    }
    if (seriesItem && PERMANENT_REJECTIONS.has(code)) {
      this.log.warn('the collector refused a series message; its points are dropped', { code, message, seq, points: seriesItem.points.length });
      this.dropSeries(seriesItem);
      this.pump();
      return;
    }
    if (batch || seriesItem) {
      // A failure on the collector's side (its store, say): send again on a fresh connection.
      this.log.warn('the collector could not take a message; reconnecting to send it again', { code, message, seq });
      this.stats.lastError = `collector error ${code}: ${message}`;
      s.ws.close(1011, 'retry after collector error');
      return;
    }
    this.log.warn('collector reported an error', { code, message, seq });
  }

  private async onCommandMessage(s: Session, m: CommandMessage): Promise<void> {
    const action = m.command.action;
    const handler = this.handlers.get(action);
    let reply: AgentMessage;
    if (!handler) {
      const known = [...this.handlers.keys()];
      reply = { type: 'command-result', commandId: m.commandId, ok: false, error: `unknown action "${action}"${known.length ? ` (this agent knows ${known.join(', ')})` : ''}` };
    } else {
      try {
        const result = await handler(m.command, { commandId: m.commandId });
        reply = { type: 'command-result', commandId: m.commandId, ok: true, ...(result !== undefined ? { result } : {}) };
      } catch (err) {
        reply = { type: 'command-result', commandId: m.commandId, ok: false, error: errorText(err) };
      }
    }
    if (this.session !== s || s.ws.readyState !== WebSocket.OPEN) {
      this.log.warn('command finished after the connection it came on closed; its result is lost', { commandId: m.commandId, action });
      return;
    }
    this.sendMessage(s, reply);
  }

  // -- sending

  private pump(): void {
    const s = this.session;
    if (!s || s.welcomedAtMs === null || s.ws.readyState !== WebSocket.OPEN) return;
    for (;;) {
      const limit = this.probing ? 1 : this.maxInFlight;
      if (s.findingsInFlight.length + this.seriesInFlight() + this.reports.inFlight() >= limit) return;
      // Backpressure: the send callback pumps again once the socket has taken the bytes.
      if (s.ws.bufferedAmount >= this.maxBufferedBytes) return;
      if (this.sendFindings(s)) continue;
      if (this.sendNextSeries(s)) continue;
      if (this.sendNextReport(s)) continue;
      return;
    }
  }

  private sendFindings(s: Session): boolean {
    const batch = this.queue.peek(this.batchMaxEvents, this.batchMaxBytes, s.sentThroughSeq);
    if (batch.seq <= s.sentThroughSeq) return false;
    s.sentThroughSeq = batch.seq;
    if (batch.events.length === 0) {
      // Only unreadable events (the queue warned): nothing to send, but they must be passed.
      s.findingsInFlight.push({ wireSeq: null, queueSeq: batch.seq, events: 0, bytes: 0, sentAtMs: Date.now(), acked: true, rejected: false });
      this.settleFindings(s);
      return true;
    }
    const wireSeq = this.nextWireSeq++;
    const text = JSON.stringify({ type: 'findings', seq: wireSeq, events: batch.events });
    const bytes = Buffer.byteLength(text);
    s.findingsInFlight.push({ wireSeq, queueSeq: batch.seq, events: batch.events.length, bytes, sentAtMs: Date.now(), acked: false, rejected: false });
    this.stats.sentFindings += batch.events.length;
    this.sendText(s, text);
    return true;
  }

  private sendNextSeries(s: Session): boolean {
    const item = this.series.find((i) => i.wireSeq === null);
    if (!item) return false;
    item.wireSeq = this.nextWireSeq++;
    item.sentAtMs = Date.now();
    const text = JSON.stringify({ type: 'series', seq: item.wireSeq, targets: item.targets, points: item.points });
    item.bytes = Buffer.byteLength(text);
    this.sendText(s, text);
    return true;
  }

  private sendNextReport(s: Session): boolean {
    const item = this.reports.nextUnsent();
    if (!item) return false;
    item.wireSeq = this.nextWireSeq++;
    item.sentAtMs = Date.now();
    this.sendMessage(s, { type: 'capture-report', seq: item.wireSeq, report: item.report });
    return true;
  }

  private seriesInFlight(): number {
    let n = 0;
    for (const item of this.series) if (item.wireSeq !== null) n++;
    return n;
  }

  private dropSeries(item: SeriesItem): void {
    const index = this.series.indexOf(item);
    if (index < 0) return;
    this.series.splice(index, 1);
    this.seriesPoints -= item.points.length;
    this.stats.seriesPointsDropped += item.points.length;
  }

  private sendMessage(s: Session, message: AgentMessage): void {
    this.sendText(s, JSON.stringify(message));
  }

  private sendText(s: Session, text: string): void {
    s.ws.send(text, (err) => {
      if (err) return; // the close handler deals with a broken socket
      if (this.session === s) this.pump();
      this.uploader?.notifyDrained();
    });
  }

  private heartbeat(s: Session): void {
    if (this.session !== s || s.ws.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    const silentForMs = now - s.lastHeardMs;
    if (silentForMs > 2 * s.heartbeatIntervalMs + 5_000) {
      this.stats.lastError = `collector silent for ${silentForMs} ms`;
      this.log.warn('the collector stopped answering (no pong, no message); reconnecting', { silentForMs });
      s.ws.terminate();
      return;
    }
    const oldest = Math.min(s.findingsInFlight[0]?.sentAtMs ?? Infinity, this.reports.oldestInFlightMs(), ...this.series.filter((i) => i.wireSeq !== null).map((i) => i.sentAtMs));
    if (now - oldest > this.ackTimeoutMs) {
      this.stats.lastError = `no ack within ${this.ackTimeoutMs} ms`;
      this.log.warn('the collector has not acknowledged a message in time; reconnecting to send it again', { ackTimeoutMs: this.ackTimeoutMs });
      s.ws.terminate();
      return;
    }
    this.sendMessage(s, {
      type: 'heartbeat',
      atMs: now,
      droppedFindings: this.queue.droppedTotal + this.stats.rejectedFindings,
      queuedFindings: this.queue.size,
    });
    s.ws.ping();
  }

  /**
   * A frame the collector found too big (close 1009). Batches shrink; after that, one message at
   * a time until one is acknowledged, so that the one that is too big is known for sure. A single
   * event that is too big even alone can never be delivered: it is dropped, and counted.
   */
  private onTooBig(s: Session): void {
    const front = s.findingsInFlight.find((b) => !b.acked);
    if (this.probing && front && front.events === 1) {
      this.log.error('the collector refuses a finding event as too big even on its own; it is dropped', { bytes: front.bytes });
      this.stats.rejectedFindings += 1;
      this.queue.ack(front.queueSeq);
    } else if (this.probing && !front) {
      const item = this.series.find((i) => i.wireSeq !== null);
      if (item) {
        this.log.warn('the collector refuses a series message as too big; its points are dropped', { bytes: item.bytes });
        this.dropSeries(item);
      }
    } else {
      const largest = Math.max(MIN_BATCH_BYTES * 2, ...s.findingsInFlight.map((b) => b.bytes));
      this.batchMaxBytes = Math.max(MIN_BATCH_BYTES, Math.min(this.batchMaxBytes, Math.floor(largest / 2)));
      this.log.warn('the collector closed the connection on a frame too big for it: sending smaller batches', { batchMaxBytes: this.batchMaxBytes });
    }
    this.probing = true;
  }

  // -- flushing

  private drained(): boolean {
    const s = this.session;
    if (!s || s.welcomedAtMs === null || s.ws.readyState !== WebSocket.OPEN) return true;
    return s.findingsInFlight.length === 0 && this.queue.size === 0 && this.seriesInFlight() === 0 && this.series.length === 0 && this.reports.size === 0;
  }

  private waitDrained(timeoutMs: number): Promise<void> {
    if (this.drained()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const waiter = (): void => {
        if (this.drained()) done();
      };
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.drainWaiters = self.drainWaiters.filter((w) => w !== waiter);
        resolve();
      }
      this.drainWaiters.push(waiter);
    });
  }

  private notifyDrained(): void {
    for (const w of [...this.drainWaiters]) w();
  }

  private reject(events: number, msg: string): void {
    this.stats.rejectedFindings += events;
    this.log.error(msg);
  }
}

function closeSocket(ws: WebSocket, code: number, reason: string, timeoutMs: number): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      ws.terminate();
      resolve();
    }, timeoutMs);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close(code, reason);
  });
}

function rawText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function byteLength(data: WebSocket.RawData): number {
  if (Buffer.isBuffer(data)) return data.length;
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data.byteLength;
}

function describeId(finding: unknown): string {
  const id = typeof finding === 'object' && finding !== null ? (finding as { id?: unknown }).id : undefined;
  return typeof id === 'string' ? JSON.stringify(id.slice(0, 100)) : '(no id)';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
