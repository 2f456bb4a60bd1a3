// The collector's side of the agent protocol, small and explicit, on a real WebSocket server on
// loopback: hello → welcome, ack, error, command. Tests of the agent make it misbehave in exactly
// one way each (refuse the token, never ack, stop reading, vanish); the real collector
// (server/collector.ts) is exercised end to end in test/agent/uplink-collector.test.ts.
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { LogFields, Logger } from '../../common/log.js';
import { AGENT_WS_PATH, PROTOCOL_VERSION, type AgentMessage, type CollectorMessage } from '../../protocol/messages.js';
import { validateAgentMessage } from '../../protocol/validate.js';

export async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  msg: string;
  fields: LogFields;
}
export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: LogLine['level']) => (msg: string, fields: LogFields = {}) => void lines.push({ level, msg, fields });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

export const PEER_TOKEN = 'agent-token-5f1c9e0b7d';

export interface PeerOptions {
  token?: string;
  /** Answer every upgrade with this HTTP status instead of accepting it. */
  refuse?: 401 | 403 | 404;
  ack?: 'auto' | 'never';
  heartbeatIntervalMs?: number;
  protocolVersion?: number;
  maxPayload?: number;
  tls?: { cert: Buffer; key: Buffer };
  /** Stop reading from each agent's socket right after sending welcome. */
  pauseAfterWelcome?: boolean;
  /** Runs on every valid agent message; return false to skip the default handling. */
  onMessage?: (message: AgentMessage, ws: WebSocket) => boolean | void;
}

export interface PeerConnection {
  ws: WebSocket;
  socket: Duplex;
  url: string;
  headers: IncomingHttpHeaders;
  messages: AgentMessage[];
}

export class ProtocolPeer {
  readonly connections: PeerConnection[] = [];
  readonly upgrades: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
  readonly invalid: string[] = [];
  private constructor(
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    readonly port: number,
    readonly options: PeerOptions,
  ) {}

  static async start(options: PeerOptions = {}, port = 0): Promise<ProtocolPeer> {
    const server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }) : createHttpServer();
    const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload ?? 16 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    const collector = new ProtocolPeer(server, wss, address.port, options);
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => collector.onUpgrade(req, socket, head));
    return collector;
  }

  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  get messages(): AgentMessage[] {
    return this.connections.flatMap((c) => c.messages);
  }

  /** Ids of every finding event received, in arrival order, over all connections. */
  findingIds(): string[] {
    return this.messages.flatMap((m) => (m.type === 'findings' ? m.events.map((e) => e.finding.id) : []));
  }

  ofType<T extends AgentMessage['type']>(type: T): Array<Extract<AgentMessage, { type: T }>> {
    return this.messages.filter((m): m is Extract<AgentMessage, { type: T }> => m.type === type);
  }

  send(ws: WebSocket, message: CollectorMessage): void {
    ws.send(JSON.stringify(message));
  }

  /** Gone like a crashed collector: connections cut, port closed. */
  async stop(): Promise<void> {
    for (const c of this.connections) c.ws.terminate();
    this.server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.wss.close();
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.upgrades.push({ url: req.url ?? '', headers: req.headers });
    const refuse = (status: number, text: string): void => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (this.options.refuse) return refuse(this.options.refuse, { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' }[this.options.refuse]);
    if (req.url !== AGENT_WS_PATH) return refuse(404, 'Not Found');
    if (req.headers.authorization !== `Bearer ${this.options.token ?? PEER_TOKEN}`) return refuse(401, 'Unauthorized');
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const connection: PeerConnection = { ws, socket, url: req.url ?? '', headers: req.headers, messages: [] };
      this.connections.push(connection);
      // A frame past maxPayload is an error on this side too (ws closes with 1009 on its own).
      ws.on('error', () => {});
      ws.on('message', (data) => this.onMessage(connection, data.toString()));
    });
  }

  private onMessage(c: PeerConnection, text: string): void {
    const checked = validateAgentMessage(JSON.parse(text));
    if (!checked.ok) {
      this.invalid.push(checked.error);
      return;
    }
    const m = checked.message;
    c.messages.push(m);
    if (this.options.onMessage?.(m, c.ws) === false) return;
    if (m.type === 'hello') {
      this.send(c.ws, {
        type: 'welcome',
        protocolVersion: this.options.protocolVersion ?? PROTOCOL_VERSION,
        collectorVersion: 'test',
        heartbeatIntervalMs: this.options.heartbeatIntervalMs ?? 15_000,
      });
      if (this.options.pauseAfterWelcome) c.socket.pause();
    } else if ((m.type === 'findings' || m.type === 'series') && this.options.ack !== 'never') {
      this.send(c.ws, { type: 'ack', seq: m.seq });
    }
  }
}

