// The collector's own /metrics. Several label values start as input from the network (a message
// type an agent sent, a route someone requested), and every distinct value is a series
// Prometheus keeps: each label is clamped to a known set or capped in how many values it takes,
// so nobody can grow the collector's (or Prometheus's) memory by sending junk.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FindingKind } from '../protocol/findings.js';
import type { Route } from './api.js';
import type { IngestBudgetStats } from './ingest-budget.js';
import type { AgentMessage } from '../protocol/messages.js';

/** What a store write was for; one histogram series each. */
export type StoreWriteOp = 'findings' | 'series' | 'agent' | 'blob' | 'audit' | 'retention' | 'other';

export interface CollectorMetricsOptions {
  /** Read at each scrape when given (the collector's live connection count); else use setAgentsConnected. */
  agentsConnected?: () => number;
  /** Distinct `result` values kept before the rest count as `other`. Default 32. */
  maxResults?: number;
  /** Distinct `route` values kept before the rest count as `other`. Default 64. */
  maxRoutes?: number;
}

export interface CollectorMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  render(): Promise<string>;
  setAgentsConnected(count: number): void;
  /**
   * One message from an agent. `type` is its `type` field as received (anything not in the
   * protocol counts as `unknown`; binary frames are `binary`); `result` is `ok` or the error code
   * sent back (`bad-json`, `bad-message`, `store-failed`, ...).
   */
  messageReceived(type: unknown, result: string): void;
  /** Findings stored (after the transaction committed), by kind. */
  findingsIngested(kind: unknown, count?: number): void;
  observeStoreWrite(op: StoreWriteOp, seconds: number): void;
  /** Runs a synchronous store write and records how long it took, thrown or not. */
  timeStoreWrite<T>(op: StoreWriteOp, write: () => T): T;
  /** `route` is the route's pattern (`/api/v1/findings/:id`), never the raw path: ids would be series. */
  httpRequest(route: string, code: number): void;
  /** The collector's ingest budget, read at each scrape (held bytes, limit, paused). */
  watchIngestBudget(read: () => IngestBudgetStats): void;
  /** Reading from agents was paused because the store is behind. */
  ingestPaused(): void;
}

const agentMessageTypes = ['hello', 'findings', 'series', 'heartbeat', 'command-result', 'snapshot-begin', 'snapshot-end', 'capture-report'] as const satisfies readonly AgentMessage['type'][];
const typesListed: Exclude<AgentMessage['type'], (typeof agentMessageTypes)[number]> extends never ? true : never = true;
void typesListed;
const findingKinds = ['growth', 'fanout', 'suspicious-spawn', 'oom-kill'] as const satisfies readonly FindingKind[];
const kindsListed: Exclude<FindingKind, (typeof findingKinds)[number]> extends never ? true : never = true;
void kindsListed;
const storeOps: readonly StoreWriteOp[] = ['findings', 'series', 'agent', 'blob', 'audit', 'retention', 'other'];

export function createCollectorMetrics(options: CollectorMetricsOptions = {}): CollectorMetrics {
  const registry = new Registry();
  const registers = [registry];
  const readAgentsConnected = options.agentsConnected;

  const agentsConnected = new Gauge({
    name: 'leakwatch_collector_agents_connected',
    help: 'Agents with an open WebSocket to this collector.',
    registers,
    ...(readAgentsConnected
      ? {
          collect(this: Gauge) {
            const n = readAgentsConnected();
            if (Number.isFinite(n)) this.set(n);
          },
        }
      : {}),
  });
  const messages = new Counter<'type' | 'result'>({
    name: 'leakwatch_collector_messages_total',
    help: 'Messages received from agents, by type and outcome (ok or the error code sent back).',
    labelNames: ['type', 'result'],
    registers,
  });
  const findingsIngested = new Counter<'kind'>({
    name: 'leakwatch_collector_findings_ingested_total',
    help: 'Finding changes stored durably, by kind.',
    labelNames: ['kind'],
    registers,
  });
  const storeWrite = new Histogram<'op'>({
    name: 'leakwatch_collector_store_write_seconds',
    help: 'Time of one durable store write (transaction and WAL fsync), by what it wrote.',
    labelNames: ['op'],
    // An fsynced SQLite transaction takes ~0.1-10 ms on a local disk; seconds means trouble.
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const httpRequests = new Counter<'route' | 'code'>({
    name: 'leakwatch_collector_http_requests_total',
    help: 'HTTP requests served, by route pattern and status code.',
    labelNames: ['route', 'code'],
    registers,
  });
  let readBudget: (() => IngestBudgetStats) | null = null;
  new Gauge({
    name: 'leakwatch_collector_ingest_held_bytes',
    help: 'Bytes of agent frames read but not yet stored (the ingest budget in use).',
    registers,
    collect(this: Gauge) {
      if (readBudget) this.set(readBudget().heldBytes);
    },
  });
  new Gauge({
    name: 'leakwatch_collector_ingest_budget_bytes',
    help: 'Held bytes past which the collector stops reading from agents.',
    registers,
    collect(this: Gauge) {
      if (readBudget) this.set(readBudget().limitBytes);
    },
  });
  new Gauge({
    name: 'leakwatch_collector_ingest_paused',
    help: '1 while reading from agents is paused because the store is behind, else 0.',
    registers,
    collect(this: Gauge) {
      if (readBudget) this.set(readBudget().paused ? 1 : 0);
    },
  });
  const ingestPauses = new Counter({
    name: 'leakwatch_collector_ingest_pauses_total',
    help: 'Times reading from agents was paused because the store was behind.',
    registers,
  });
  collectDefaultMetrics({ register: registry, prefix: 'leakwatch_collector_' });
  // prom-client exports these three gauges with a counter's `_total` suffix, which promtool's lint
  // rejects; the same counts stay available per handle type in `leakwatch_collector_nodejs_active_handles` etc.
  for (const misnamed of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
    registry.removeSingleMetric(`leakwatch_collector_nodejs_${misnamed}`);
  }

  for (const type of agentMessageTypes) messages.inc({ type, result: 'ok' }, 0);
  for (const kind of findingKinds) findingsIngested.inc({ kind }, 0);

  // 'ok' is always kept: junk error codes filling the cap must not hide the healthy traffic.
  const results = new CappedLabel(options.maxResults ?? 32, (v) => /^[a-z][a-z0-9_-]{0,39}$/.test(v), ['ok']);
  const routes = new CappedLabel(options.maxRoutes ?? 64, (v) => /^\/[\x21-\x7e]{0,119}$/.test(v));
  const opOf = (op: StoreWriteOp): StoreWriteOp => (storeOps.includes(op) ? op : 'other');

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    setAgentsConnected(count) {
      if (Number.isFinite(count) && count >= 0) agentsConnected.set(count);
    },
    messageReceived(type, result) {
      const known = type === 'binary' || (agentMessageTypes as readonly unknown[]).includes(type);
      messages.inc({ type: known ? (type as string) : 'unknown', result: results.value(result) });
    },
    findingsIngested(kind, count = 1) {
      if (!Number.isFinite(count) || count <= 0) return;
      const known = (findingKinds as readonly unknown[]).includes(kind);
      findingsIngested.inc({ kind: known ? (kind as string) : 'unknown' }, count);
    },
    observeStoreWrite(op, seconds) {
      if (Number.isFinite(seconds) && seconds >= 0) storeWrite.observe({ op: opOf(op) }, seconds);
    },
    timeStoreWrite(op, write) {
      const started = performance.now();
      try {
        return write();
      } finally {
        storeWrite.observe({ op: opOf(op) }, (performance.now() - started) / 1000);
      }
    },
    watchIngestBudget(read) {
      readBudget = read;
    },
    ingestPaused() {
      ingestPauses.inc();
    },
    httpRequest(route, code) {
      const status = Number.isInteger(code) && code >= 100 && code <= 599 ? String(code) : 'other';
      httpRequests.inc({ route: routes.value(route), code: status });
    },
  };
}

/**
 * GET /metrics without a token, as Prometheus scrapes any exporter: names and numbers only, no
 * command lines or finding text. `extra` renders more expositions to append (the local agent's
 * under `leakwatch up`).
 */
export function metricsRoute(metrics: CollectorMetrics, ...extra: Array<() => Promise<string>>): Route {
  return {
    method: 'GET',
    path: '/metrics',
    scope: null,
    handle: async () => {
      const parts = [await metrics.render()];
      for (const render of extra) parts.push(await render());
      return { status: 200, contentType: metrics.contentType, text: parts.join('\n') };
    },
  };
}

/**
 * A label that keeps the first `max` well-formed values it sees, besides the `always` ones, and
 * folds the rest into `other`.
 */
class CappedLabel {
  private readonly seen = new Set<string>();
  private readonly always: ReadonlySet<string>;

  constructor(
    private readonly max: number,
    private readonly wellFormed: (value: string) => boolean,
    always: readonly string[] = [],
  ) {
    this.always = new Set(always);
  }

  value(raw: unknown): string {
    if (typeof raw !== 'string' || !this.wellFormed(raw)) return 'other';
    if (this.always.has(raw) || this.seen.has(raw)) return raw;
    if (this.seen.size >= this.max) return 'other';
    this.seen.add(raw);
    return raw;
  }
}
