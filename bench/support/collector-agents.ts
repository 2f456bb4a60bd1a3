// The simulated agent fleet of the collector benchmark, in a process of its own (forked with an
// IPC channel) so the cost of making and sending findings is neither in the collector's process
// nor in the one that times the API. Each agent is a real `ws` client that says hello, then sends
// `findings` batches, `series` and heartbeats as the real uplink does: at most `maxInFlight`
// messages unacknowledged, a batch at most 500 events, and an event counts only once its batch
// is acknowledged (the collector acks after the commit, so acked means durable).
//
// Parent → child: {cmd:'connect', url, token}, {cmd:'mode', phase, mode}, {cmd:'drain', timeoutMs},
// {cmd:'disconnect'}, {cmd:'exit'}. Child → parent: 'connected', a 'tick' every second,
// 'drained', 'disconnected', 'fatal'.
import WebSocket from 'ws';
import { NodeFindings, type WireEvent } from './collector-findings.js';

export type FleetMode =
  | { kind: 'idle' }
  /** Each agent keeps maxInFlight batches of batchEvents in flight, sending the next on each ack. */
  | { kind: 'unpaced'; batchEvents: number; maxInFlight: number }
  /** The fleet makes ratePerSec events in all, each agent once a second (its own phase), sent as the uplink would. */
  | { kind: 'paced'; ratePerSec: number; maxInFlight: number };

export type FleetCommand =
  /** The token comes over IPC: on the command line every `ps` would show it. */
  | { cmd: 'connect'; url: string; token: string }
  | { cmd: 'mode'; phase: string; mode: FleetMode }
  | { cmd: 'drain'; timeoutMs: number }
  | { cmd: 'disconnect' }
  | { cmd: 'exit' };

export interface FleetTick {
  type: 'tick';
  atMs: number;
  phase: string;
  /** Since the previous tick. */
  ackedFindings: number;
  ackedFindingMessages: number;
  ackedSeriesPoints: number;
  madeFindings: number;
  /** Right now. */
  backlogEvents: number;
  inFlightEvents: number;
  connected: number;
  cpuUserMs: number;
  cpuSystemMs: number;
}

export interface PhaseSummary {
  phase: string;
  ackedFindings: number;
  ackedOpens: number;
  ackedSeriesPoints: number;
  madeFindings: number;
  droppedFromBacklog: number;
  /** Send → ack, findings messages. */
  ackLatencyMs: { count: number; p50: number; p90: number; p99: number; max: number };
  seriesAckLatencyMs: { count: number; p50: number; p99: number; max: number };
  bytesSent: number;
}

export interface FleetDrained {
  type: 'drained';
  clean: boolean;
  inFlightEvents: number;
  backlogEvents: number;
  phases: PhaseSummary[];
  /** Finding ids whose open was acknowledged, since the fleet started (each is a distinct finding). */
  ackedOpenIds: string[];
  errors: Record<string, number>;
}

const MAX_BATCH_EVENTS = 500;
const MAX_BATCH_BYTES = 512 * 1024;
const SERIES_INTERVAL_MS = 5_000;
const HEARTBEAT_INTERVAL_MS = 15_000;
/** Per agent: what the uplink's spool would hold before dropping the oldest (bounds this process). */
const MAX_BACKLOG_EVENTS = 20_000;

interface PhaseStats {
  phase: string;
  ackedFindings: number;
  ackedOpens: number;
  ackedSeriesPoints: number;
  madeFindings: number;
  droppedFromBacklog: number;
  ackMs: number[];
  seriesAckMs: number[];
  bytesSent: number;
}

const newPhase = (phase: string): PhaseStats => ({ phase, ackedFindings: 0, ackedOpens: 0, ackedSeriesPoints: 0, madeFindings: 0, droppedFromBacklog: 0, ackMs: [], seriesAckMs: [], bytesSent: 0 });

const agentCount = Number(process.argv[2] ?? 200);
let token = '';
if (!Number.isInteger(agentCount) || agentCount < 1) {
  process.stderr.write('usage: collector-agents <agents>\n');
  process.exit(2);
}
if (!process.send) {
  process.stderr.write('collector-agents must be started with an IPC channel (child_process.fork)\n');
  process.exit(2);
}

let mode: FleetMode = { kind: 'idle' };
const phases: PhaseStats[] = [];
let current = newPhase('setup');
phases.push(current);
const ackedOpenIds: string[] = [];
const errors: Record<string, number> = {};
const countError = (code: string) => (errors[code] = (errors[code] ?? 0) + 1);
// Per-tick deltas.
let tick = { ackedFindings: 0, ackedFindingMessages: 0, ackedSeriesPoints: 0, madeFindings: 0 };

interface InFlight {
  kind: 'findings' | 'series';
  events: number;
  opens: string[];
  points: number;
  sentAt: number;
  phase: PhaseStats;
}

class SimAgent {
  ws: WebSocket | null = null;
  welcomed = false;
  private seq = 0;
  readonly inFlight = new Map<number, InFlight>();
  findingsInFlight = 0;
  inFlightEvents = 0;
  backlog: WireEvent[] = [];
  private backlogHead = 0;
  private owed = 0;
  private timers: NodeJS.Timeout[] = [];
  private seriesInFlight = false;
  private readonly gen: NodeFindings;

  constructor(readonly index: number) {
    this.gen = new NodeFindings({ node: `bench-node-${String(index).padStart(3, '0')}`, nodeIndex: index });
  }

  get node(): string {
    return this.gen.node;
  }

  get backlogSize(): number {
    return this.backlog.length - this.backlogHead;
  }

  connect(url: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false, maxPayload: 4 * 1024 * 1024 });
      this.ws = ws;
      this.welcomed = false;
      const fail = (err: Error) => reject(err);
      ws.once('error', fail);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
      ws.on('open', () => {
        ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentId: this.node, node: this.node, version: 'bench', startedAtMs: Date.now() }));
      });
      ws.on('message', (data) => {
        let m: { type?: string; seq?: number; code?: string };
        try {
          m = JSON.parse(String(data)) as typeof m;
        } catch {
          countError('bad-json-from-collector');
          return;
        }
        if (m.type === 'welcome') {
          this.welcomed = true;
          ws.off('error', fail);
          ws.on('error', () => countError('socket-error'));
          this.startTimers();
          resolve();
          return;
        }
        if (m.type === 'ack' && typeof m.seq === 'number') this.onAck(m.seq);
        else if (m.type === 'error') {
          countError(`collector:${m.code ?? '?'}`);
          if (typeof m.seq === 'number') this.forget(m.seq);
        }
      });
      ws.on('close', (code) => {
        if (!this.welcomed) reject(new Error(`closed before welcome (${code})`));
        // A close of a previous connection must not touch the current one.
        if (this.ws !== ws) return;
        this.welcomed = false;
        this.stopTimers();
        if (code !== 1000 && code !== 1001 && code !== 1005) countError(`close:${code}`);
        // Unacknowledged messages are not counted; the bench drains before it closes, so none should be.
        for (const seq of [...this.inFlight.keys()]) this.forget(seq);
      });
    });
  }

  disconnect(): Promise<void> {
    this.stopTimers();
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000, 'bench done');
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 3000).unref();
    });
  }

  private startTimers(): void {
    this.stopTimers();
    // Each agent on its own phase within the period, as independent nodes would be.
    const every = (periodMs: number, fn: () => void) => {
      const first = setTimeout(() => {
        fn();
        this.timers.push(setInterval(fn, periodMs));
      }, Math.floor(Math.random() * periodMs));
      this.timers.push(first);
    };
    every(1000, () => this.onSecond());
    every(SERIES_INTERVAL_MS, () => this.sendSeries());
    every(HEARTBEAT_INTERVAL_MS, () =>
      this.send({ type: 'heartbeat', atMs: Date.now(), droppedFindings: 0, queuedFindings: this.backlogSize }),
    );
  }

  private stopTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  /** The agent's once-a-second pass: in paced mode it makes this second's share of events. */
  private onSecond(): void {
    if (mode.kind !== 'paced') return;
    this.owed += mode.ratePerSec / agentCount;
    const n = Math.floor(this.owed);
    this.owed -= n;
    const now = Date.now();
    for (let i = 0; i < n; i++) this.backlog.push(this.make(now));
    const excess = this.backlogSize - MAX_BACKLOG_EVENTS;
    if (excess > 0) {
      this.backlogHead += excess;
      current.droppedFromBacklog += excess;
    }
    this.pump();
  }

  private make(now: number): WireEvent {
    const e = this.gen.next(now);
    current.madeFindings++;
    tick.madeFindings++;
    return e;
  }

  pump(): void {
    if (!this.welcomed) return;
    if (mode.kind === 'unpaced') {
      while (this.findingsInFlight < mode.maxInFlight) {
        const now = Date.now();
        const events: WireEvent[] = [];
        for (let i = 0; i < mode.batchEvents; i++) events.push(this.make(now));
        this.sendFindings(events);
      }
      return;
    }
    // Paced and draining: what is queued goes out, in order, as the uplink sends it.
    const maxInFlight = mode.kind === 'paced' ? mode.maxInFlight : 4;
    while (this.findingsInFlight < maxInFlight && this.backlogSize > 0) {
      const events: WireEvent[] = [];
      let bytes = 0;
      while (this.backlogHead < this.backlog.length && events.length < MAX_BATCH_EVENTS) {
        const e = this.backlog[this.backlogHead]!;
        if (events.length > 0 && bytes + e.json.length > MAX_BATCH_BYTES) break;
        events.push(e);
        bytes += e.json.length;
        this.backlogHead++;
      }
      if (this.backlogHead > 4096 && this.backlogHead * 2 > this.backlog.length) {
        this.backlog = this.backlog.slice(this.backlogHead);
        this.backlogHead = 0;
      }
      this.sendFindings(events);
    }
  }

  private sendFindings(events: WireEvent[]): void {
    const seq = ++this.seq;
    const text = `{"type":"findings","seq":${seq},"events":[${events.map((e) => e.json).join(',')}]}`;
    const opens = events.flatMap((e) => (e.opened === null ? [] : [e.opened]));
    this.inFlight.set(seq, { kind: 'findings', events: events.length, opens, points: 0, sentAt: performance.now(), phase: current });
    this.findingsInFlight++;
    this.inFlightEvents += events.length;
    current.bytesSent += text.length;
    this.ws!.send(text);
  }

  private sendSeries(): void {
    if (!this.welcomed || mode.kind === 'idle' || this.seriesInFlight) return;
    const { targets, points } = this.gen.series(Date.now(), 60);
    if (points.length === 0) return;
    const seq = ++this.seq;
    this.inFlight.set(seq, { kind: 'series', events: 0, opens: [], points: points.length, sentAt: performance.now(), phase: current });
    this.seriesInFlight = true;
    const text = JSON.stringify({ type: 'series', seq, targets, points });
    current.bytesSent += text.length;
    this.ws!.send(text);
  }

  private send(message: unknown): void {
    if (this.welcomed && this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private onAck(seq: number): void {
    const f = this.inFlight.get(seq);
    if (!f) {
      countError('ack-for-unknown-seq');
      return;
    }
    const latency = performance.now() - f.sentAt;
    this.forget(seq);
    if (f.kind === 'findings') {
      f.phase.ackedFindings += f.events;
      f.phase.ackedOpens += f.opens.length;
      for (const id of f.opens) ackedOpenIds.push(id);
      f.phase.ackMs.push(latency);
      tick.ackedFindings += f.events;
      tick.ackedFindingMessages++;
    } else {
      f.phase.ackedSeriesPoints += f.points;
      f.phase.seriesAckMs.push(latency);
      tick.ackedSeriesPoints += f.points;
    }
    this.pump();
  }

  private forget(seq: number): void {
    const f = this.inFlight.get(seq);
    if (!f) return;
    this.inFlight.delete(seq);
    if (f.kind === 'findings') {
      this.findingsInFlight--;
      this.inFlightEvents -= f.events;
    } else this.seriesInFlight = false;
  }
}

const agents = Array.from({ length: agentCount }, (_, i) => new SimAgent(i));
const send = (m: unknown) => process.send!(m);

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

function summarize(p: PhaseStats): PhaseSummary {
  const ack = [...p.ackMs].sort((a, b) => a - b);
  const series = [...p.seriesAckMs].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    phase: p.phase,
    ackedFindings: p.ackedFindings,
    ackedOpens: p.ackedOpens,
    ackedSeriesPoints: p.ackedSeriesPoints,
    madeFindings: p.madeFindings,
    droppedFromBacklog: p.droppedFromBacklog,
    ackLatencyMs: { count: ack.length, p50: r(quantile(ack, 0.5)), p90: r(quantile(ack, 0.9)), p99: r(quantile(ack, 0.99)), max: r(ack.at(-1) ?? Number.NaN) },
    seriesAckLatencyMs: { count: series.length, p50: r(quantile(series, 0.5)), p99: r(quantile(series, 0.99)), max: r(series.at(-1) ?? Number.NaN) },
    bytesSent: p.bytesSent,
  };
}

const totals = () => ({
  inFlightEvents: agents.reduce((n, a) => n + a.inFlightEvents, 0),
  backlogEvents: agents.reduce((n, a) => n + a.backlogSize, 0),
  inFlightMessages: agents.reduce((n, a) => n + a.inFlight.size, 0),
});

let lastCpu = process.cpuUsage();
const ticker = setInterval(() => {
  const cpu = process.cpuUsage(lastCpu);
  lastCpu = process.cpuUsage();
  const t = totals();
  const message: FleetTick = {
    type: 'tick',
    atMs: Date.now(),
    phase: current.phase,
    ...tick,
    backlogEvents: t.backlogEvents,
    inFlightEvents: t.inFlightEvents,
    connected: agents.filter((a) => a.welcomed).length,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
  };
  tick = { ackedFindings: 0, ackedFindingMessages: 0, ackedSeriesPoints: 0, madeFindings: 0 };
  send(message);
}, 1000);

async function connectAll(url: string): Promise<void> {
  const t0 = performance.now();
  // A few at a time, as a fleet rolling out would (and the upgrade's token check is not free).
  let next = 0;
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next < agents.length) {
        const a = agents[next++]!;
        try {
          await a.connect(url);
        } catch (err) {
          failures.push(`${a.node}: ${(err as Error).message}`);
        }
      }
    }),
  );
  send({ type: 'connected', ms: Math.round(performance.now() - t0), connected: agents.filter((a) => a.welcomed).length, failures: failures.slice(0, 5) });
}

async function drain(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  mode = { kind: 'idle' };
  // Ticks from here on belong to the drain; acks still count for the phase that sent the batch.
  current = newPhase(`${current.phase}-drain`);
  phases.push(current);
  for (const a of agents) a.pump();
  while (Date.now() < deadline) {
    const t = totals();
    if (t.inFlightMessages === 0 && t.backlogEvents === 0) break;
    for (const a of agents) a.pump();
    await new Promise((r) => setTimeout(r, 50));
  }
  const t = totals();
  const message: FleetDrained = {
    type: 'drained',
    clean: t.inFlightMessages === 0 && t.backlogEvents === 0,
    inFlightEvents: t.inFlightEvents,
    backlogEvents: t.backlogEvents,
    phases: phases.filter((p) => p.madeFindings > 0 || p.ackedSeriesPoints > 0).map(summarize),
    ackedOpenIds,
    errors: { ...errors },
  };
  send(message);
}

process.on('message', (raw) => {
  const m = raw as FleetCommand;
  const run = async () => {
    switch (m.cmd) {
      case 'connect':
        token = m.token;
        await connectAll(m.url);
        return;
      case 'mode':
        current = newPhase(m.phase);
        phases.push(current);
        mode = m.mode;
        for (const a of agents) a.pump();
        return;
      case 'drain':
        await drain(m.timeoutMs);
        return;
      case 'disconnect':
        await Promise.all(agents.map((a) => a.disconnect()));
        send({ type: 'disconnected' });
        return;
      case 'exit':
        clearInterval(ticker);
        await Promise.all(agents.map((a) => a.disconnect()));
        process.exit(0);
    }
  };
  run().catch((err: unknown) => {
    send({ type: 'fatal', error: err instanceof Error ? err.stack ?? err.message : String(err) });
  });
});
// The parent going away (killed, crashed) must not leave this process behind.
process.on('disconnect', () => process.exit(0));
