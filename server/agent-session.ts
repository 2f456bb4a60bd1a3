// One agent's WebSocket, from hello to close. Every frame is parsed and validated before it
// touches the store; a bad frame gets an `error` reply naming what was wrong and counts against
// the connection, which is closed once it has sent too many. Findings and series are
// acknowledged only after the store's write returned (durable on return, see IngestQueue), so an
// ack always means "on disk" and a missing ack means "send it again".
import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { Logger } from '../common/log.js';
import type { AgentMessage, CollectorMessage, CommandMessage, FindingsMessage, HelloMessage, SeriesMessage } from '../protocol/messages.js';
import { CloseCode, PROTOCOL_VERSION } from '../protocol/messages.js';
import { seqOf, validateAgentMessage } from '../protocol/validate.js';
import type { LiveEvent } from './events.js';
import type { IngestBudget } from './ingest-budget.js';
import type { IngestQueue } from './ingest-queue.js';
import type { CollectorMetrics } from './metrics.js';
import type { Store } from './store/types.js';
import type { AgentUploads, SnapshotReceiver } from './snapshots/snapshot-receiver.js';
import type { CaptureReportMessage } from '../protocol/messages.js';

export interface CommandResult {
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** A live agent connection as `agents()` reports it. */
export interface LiveAgent {
  agentId: string;
  node: string;
  version: string;
  /** Name of the token it connected with. */
  tokenName: string;
  remote: string;
  connectedAtMs: number;
  lastMessageMs: number;
}

export interface SessionEnv {
  store: Store;
  log: Logger;
  metrics?: CollectorMetrics;
  collectorVersion: string;
  heartbeatIntervalMs: number;
  helloTimeoutMs: number;
  maxBadMessages: number;
  /** Findings and series go through here: committed in groups, answered in order. */
  ingest: IngestQueue;
  /** Snapshot uploads; without it binary frames are refused. */
  snapshots?: SnapshotReceiver;
  /** Bytes of frames read but not yet stored, across agents; pauses reading when over. */
  budget: IngestBudget;
  /** Make this session the one for its agent id; returns the session it replaces, if any. */
  claim(session: AgentSession): AgentSession | undefined;
  /** Forget this session (only if it is still the current one for its agent id). */
  release(session: AgentSession): boolean;
  /** Told what was just stored durably (the web page's live stream). */
  onStored?: (event: LiveEvent) => void;
}

/** Error texts sent back are bounded: a validation error may quote a long field path. */
const MAX_ERROR_TEXT = 1000;

export class AgentSession {
  hello: HelloMessage | null = null;
  /** Cleared before each ping; a pong or any message sets it again. */
  alive = true;
  readonly connectedAtMs = Date.now();
  lastMessageMs = Date.now();
  private badMessages = 0;
  private uploads: AgentUploads | null = null;
  private closed = false;
  private replaced = false;
  private readonly helloTimer: NodeJS.Timeout;
  private readonly pending = new Map<string, { resolve: (r: CommandResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  constructor(
    readonly ws: WebSocket,
    readonly remote: string,
    readonly tokenName: string,
    private readonly env: SessionEnv,
  ) {
    this.helloTimer = setTimeout(() => {
      if (this.hello || this.closed) return;
      this.sendError('hello-timeout', `no hello within ${env.helloTimeoutMs} ms`);
      this.close(CloseCode.badMessage, 'no hello');
    }, env.helloTimeoutMs);
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer | Buffer[] | ArrayBuffer, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // ws reports frames past maxPayload (WS_ERR_UNSUPPORTED_MESSAGE_LENGTH) here, then closes with 1009.
      env.log.warn('agent connection error', { ...this.who(), code: err.code, error: err.message });
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') env.metrics?.messageReceived('unknown', 'too-big');
    });
    ws.on('close', (code, reason) => this.onClose(code, reason.toString('utf8')));
  }

  get agentId(): string | null {
    return this.hello?.agentId ?? null;
  }

  describe(): LiveAgent | null {
    const h = this.hello;
    if (!h) return null;
    return { agentId: h.agentId, node: h.node, version: h.version, tokenName: this.tokenName, remote: this.remote, connectedAtMs: this.connectedAtMs, lastMessageMs: this.lastMessageMs };
  }

  /** Send a command and wait for the agent's `command-result`. */
  sendCommand(command: CommandMessage['command'], timeoutMs: number): Promise<CommandResult> {
    if (this.closed) return Promise.reject(new Error(`agent ${this.agentId ?? '?'} is disconnected`));
    const commandId = randomUUID();
    return new Promise<CommandResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(commandId);
        reject(new Error(`agent ${this.agentId ?? '?'} did not answer command ${command.action} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(commandId, { resolve, reject, timer });
      this.send({ type: 'command', commandId, command });
    });
  }

  /** Another connection took over this agent id. */
  replace(): void {
    this.replaced = true;
    this.sendError('replaced', 'another connection with the same agent id took over');
    this.close(CloseCode.replaced, 'replaced by a newer connection');
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.helloTimer);
    this.ws.close(code, reason);
  }

  private who(): Record<string, unknown> {
    return { agentId: this.agentId ?? undefined, node: this.hello?.node, remote: this.remote, tokenName: this.tokenName };
  }

  private send(message: CollectorMessage): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(JSON.stringify(message));
  }

  private sendError(code: string, text: string, seq?: number): void {
    const message = text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}…` : text;
    this.send(seq === undefined ? { type: 'error', code, message } : { type: 'error', code, message, seq });
  }

  /** A frame the agent should not have sent: reply, log, count, and give up on the peer after too many. */
  private bad(type: unknown, code: string, text: string, seq?: number): void {
    this.badMessages++;
    this.env.metrics?.messageReceived(type, code);
    this.env.log.warn('bad message from agent', { ...this.who(), code, error: text.slice(0, MAX_ERROR_TEXT), seq, badMessages: this.badMessages });
    this.sendError(code, text, seq);
    if (this.badMessages >= this.env.maxBadMessages) {
      this.env.log.warn('closing agent connection after too many bad messages', { ...this.who(), badMessages: this.badMessages });
      this.close(CloseCode.badMessage, 'too many bad messages');
    }
  }

  private onFrame(data: Buffer | Buffer[] | ArrayBuffer, isBinary: boolean): void {
    if (this.closed) return;
    this.alive = true;
    this.lastMessageMs = Date.now();
    // Held from now until stored and answered, or until this frame's handling ends if nothing was queued.
    const release = this.env.budget.hold(frameBytes(data));
    let queued = false;
    try {
      if (isBinary) {
        if (!this.uploads) {
          this.bad('binary', this.hello ? 'unsupported-binary' : 'not-hello', 'binary frames carry snapshot chunks, after hello, to a collector that stores snapshots');
          return;
        }
        const frame = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        const outcome = this.uploads.chunk(frame);
        if (!outcome.ok) this.bad('binary', outcome.code, outcome.error);
        else this.env.metrics?.messageReceived('binary', 'ok');
        return;
      }
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        this.bad('unknown', 'bad-json', `frame is not valid JSON: ${(err as Error).message}`);
        return;
      }
      const result = validateAgentMessage(parsed);
      const rawType = typeof parsed === 'object' && parsed !== null ? (parsed as { type?: unknown }).type : undefined;
      if (!this.hello) {
        this.expectHello(parsed, rawType, result);
        return;
      }
      if (!result.ok) {
        this.bad(rawType, result.code, result.error, seqOf(parsed));
        return;
      }
      queued = this.handle(result.message, release);
    } catch (err) {
      // Whatever went wrong with this frame stays with this frame: the collector keeps serving.
      this.env.log.error('agent message handler failed', { ...this.who(), error: err instanceof Error ? err.message : String(err) });
      this.sendError('internal', 'the collector failed to handle this message');
    } finally {
      if (!queued) release();
    }
  }

  private expectHello(parsed: unknown, rawType: unknown, result: ReturnType<typeof validateAgentMessage>): void {
    if (rawType !== 'hello') {
      this.env.metrics?.messageReceived(rawType, 'not-hello');
      this.env.log.warn('agent did not start with hello', { ...this.who(), type: typeof rawType === 'string' ? rawType.slice(0, 40) : typeof rawType });
      this.sendError('not-hello', 'the first message must be a hello', seqOf(parsed));
      this.close(CloseCode.badMessage, 'first message must be hello');
      return;
    }
    if (!result.ok) {
      this.env.metrics?.messageReceived(rawType, result.code);
      this.env.log.warn('bad hello from agent', { ...this.who(), error: result.error });
      this.sendError(result.code, result.error);
      this.close(CloseCode.badMessage, 'bad hello');
      return;
    }
    const hello = result.message as HelloMessage;
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      this.env.metrics?.messageReceived('hello', 'protocol-version');
      this.env.log.warn('agent speaks another protocol version', { ...this.who(), agentId: hello.agentId, protocolVersion: hello.protocolVersion });
      this.sendError('protocol-version', `this collector speaks protocol ${PROTOCOL_VERSION}, the agent sent ${hello.protocolVersion}`);
      this.close(CloseCode.badMessage, 'protocol version mismatch');
      return;
    }
    clearTimeout(this.helloTimer);
    this.hello = hello;
    // From hello on, this socket is read only while the ingest budget allows (before it, a peer
    // has a single small frame to send, and pausing it would only run out its hello timer).
    this.env.budget.add(this.ws);
    const previous = this.env.claim(this);
    if (previous) {
      this.env.log.info('agent reconnected; closing its previous connection', { ...this.who(), previousRemote: previous.remote });
      previous.replace();
    }
    this.recordAgent(true);
    if (this.env.snapshots) this.uploads = this.env.snapshots.forAgent(hello.agentId, hello.node, (m) => this.send(m));
    this.env.metrics?.messageReceived('hello', 'ok');
    this.env.log.info('agent connected', { ...this.who(), version: hello.version });
    this.send({ type: 'welcome', protocolVersion: PROTOCOL_VERSION, collectorVersion: this.env.collectorVersion, heartbeatIntervalMs: this.env.heartbeatIntervalMs });
  }

  /** True when the message was queued for the store, which then owns `release`. */
  private handle(message: AgentMessage, release: () => void): boolean {
    switch (message.type) {
      case 'hello':
        this.bad('hello', 'bad-message', 'hello was already received on this connection');
        return false;
      case 'findings':
        return this.ingestFindings(message, release);
      case 'series':
        return this.ingestSeries(message, release);
      case 'heartbeat':
        this.recordAgent(true, message.droppedFindings);
        this.env.metrics?.messageReceived('heartbeat', 'ok');
        return false;
      case 'snapshot-begin':
        if (!this.uploads) {
          this.bad('snapshot-begin', 'unsupported', 'this collector does not store snapshots');
          return false;
        }
        this.env.metrics?.messageReceived('snapshot-begin', 'ok');
        void this.uploads.begin(message);
        return false;
      case 'snapshot-end':
        if (!this.uploads) {
          this.bad('snapshot-end', 'unsupported', 'this collector does not store snapshots');
          return false;
        }
        this.env.metrics?.messageReceived('snapshot-end', 'ok');
        this.uploads.end(message);
        return false;
      case 'capture-report':
        this.recordCapture(message);
        return false;
      case 'command-result': {
        const p = this.pending.get(message.commandId);
        this.env.metrics?.messageReceived('command-result', 'ok');
        if (!p) {
          // A result that arrives after its command timed out is not the agent's fault.
          this.env.log.info('command result for no pending command', { ...this.who(), commandId: message.commandId });
          return false;
        }
        this.pending.delete(message.commandId);
        clearTimeout(p.timer);
        const r: CommandResult = { ok: message.ok };
        if (message.result !== undefined) r.result = message.result;
        if (message.error !== undefined) r.error = message.error;
        p.resolve(r);
        return false;
      }
    }
  }

  private ingestFindings(m: FindingsMessage, release: () => void): boolean {
    const node = this.hello!.node;
    // An agent writes its own node's findings only: a mislabelled batch would file them under another node.
    const stray = m.events.findIndex((e) => e.finding.node !== node);
    if (stray >= 0) {
      this.bad('findings', 'node-mismatch', `events[${stray}].finding.node is "${m.events[stray]!.finding.node}", but this agent said hello as node "${node}"`, m.seq);
      return false;
    }
    if (m.events.length === 0) {
      this.stored('findings', m.seq, null);
      return false;
    }
    this.env.ingest.findings(node, m.events, (err) => {
      release();
      if (!err) this.publish({ type: 'findings', node, events: m.events });
      this.stored('findings', m.seq, err);
    });
    return true;
  }

  private ingestSeries(m: SeriesMessage, release: () => void): boolean {
    const node = this.hello!.node;
    if (m.targets.length === 0 && m.points.length === 0) {
      this.stored('series', m.seq, null);
      return false;
    }
    this.env.ingest.series(node, m.targets, m.points, (err) => {
      release();
      if (!err) this.publish({ type: 'series', node, targets: m.targets, points: m.points });
      this.stored('series', m.seq, err);
    });
    return true;
  }

  /** A listener's failure must not cost the agent its ack. */
  private publish(event: LiveEvent): void {
    try {
      this.env.onStored?.(event);
    } catch (err) {
      this.env.log.warn('live event listener failed', { ...this.who(), error: err instanceof Error ? err.message : String(err) });
    }
  }

  private recordCapture(m: CaptureReportMessage): void {
    const node = this.hello!.node;
    if (m.report.node !== node) {
      this.bad('capture-report', 'node-mismatch', `report.node is "${m.report.node}", but this agent said hello as node "${node}"`, m.seq);
      return;
    }
    let err: Error | null = null;
    try {
      this.env.store.recordCapture(m.report);
    } catch (e) {
      err = e instanceof Error ? e : new Error(String(e));
    }
    this.stored('capture-report', m.seq, err);
  }

  /** After the store returned: ack, or tell the agent it failed (no ack, so it sends again). */
  private stored(op: 'findings' | 'series' | 'capture-report', seq: number, err: Error | null): void {
    if (err) {
      this.env.metrics?.messageReceived(op, 'store-failed');
      this.env.log.error('store write failed; not acknowledged', { ...this.who(), op, seq, error: err.message });
      this.sendError('store-failed', 'the collector could not store this message; send it again later', seq);
      return;
    }
    this.env.metrics?.messageReceived(op, 'ok');
    this.send({ type: 'ack', seq });
  }

  private recordAgent(connected: boolean, droppedFindings?: number): void {
    const h = this.hello;
    if (!h) return;
    try {
      const write = () => this.env.store.recordAgent({ agentId: h.agentId, node: h.node, version: h.version, atMs: Date.now(), connected, ...(droppedFindings === undefined ? {} : { droppedFindings }) });
      if (this.env.metrics) this.env.metrics.timeStoreWrite('agent', write);
      else write();
    } catch (err) {
      this.env.log.error('could not record agent', { ...this.who(), connected, error: err instanceof Error ? err.message : String(err) });
    }
  }

  private onClose(code: number, reason: string): void {
    this.closed = true;
    clearTimeout(this.helloTimer);
    this.env.budget.delete(this.ws);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`agent ${this.agentId ?? '?'} disconnected before answering command ${id}`));
    }
    this.pending.clear();
    this.uploads?.close();
    if (!this.hello) {
      this.env.log.info('connection closed before hello', { remote: this.remote, tokenName: this.tokenName, code, reason });
      return;
    }
    const wasCurrent = this.env.release(this);
    // A replaced session's agent is still connected, through the newer session.
    if (wasCurrent && !this.replaced) this.recordAgent(false);
    this.env.log.info('agent disconnected', { ...this.who(), code, reason });
  }
}

function frameBytes(data: Buffer | Buffer[] | ArrayBuffer): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data.byteLength;
}
