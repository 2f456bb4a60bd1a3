// Engineers reading the collector while agents write to it: `concurrency` clients, each starting a
// request every `intervalMs` (or at once when the previous took longer; 0 = closed loop without
// think time, as much as the collector will serve), cycling through the
// finding list, one finding (with evidence: spawn reads are audited, so they write), targets and
// agents. Latency is request start to last body byte, on kept-alive connections like a CLI or UI
// session's; the body is parsed after the clock stops.
import { Agent, request } from 'node:http';

export const API_ROUTES = ['findings?limit=100', 'findings/:id', 'targets', 'agents'] as const;
/**
 * The target list is fetched as `leakwatch targets` does (no query: the API's first page of 100);
 * LEAKWATCH_BENCH_TARGETS_QUERY (e.g. "limit=1000") adds a query, to compare another page size.
 */
const TARGETS_QUERY = process.env.LEAKWATCH_BENCH_TARGETS_QUERY ?? '';
export const TARGETS_PATH = TARGETS_QUERY ? `/api/v1/targets?${TARGETS_QUERY}` : '/api/v1/targets';
export type ApiRoute = (typeof API_ROUTES)[number];

export interface RouteLatency {
  requests: number;
  errors: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ApiPhaseResult {
  phase: string;
  seconds: number;
  requests: number;
  requestsPerSec: number;
  errors: number;
  errorSamples: string[];
  all: RouteLatency;
  byRoute: Record<ApiRoute, RouteLatency>;
}

interface PhaseSamples {
  phase: string;
  startMs: number;
  endMs: number | null;
  ms: Record<ApiRoute, number[]>;
  errors: Record<ApiRoute, number>;
  errorSamples: string[];
}

export class ApiLoad {
  private readonly agent: Agent;
  private readonly base: URL;
  private running = false;
  private workers: Promise<void>[] = [];
  private phase: PhaseSamples | null = null;
  private readonly finished: PhaseSamples[] = [];
  /** Ids from the latest list, for the single-finding reads. */
  private ids: string[] = [];

  constructor(
    url: string,
    private readonly token: string,
    private readonly concurrency: number,
    private readonly intervalMs: number,
  ) {
    this.base = new URL(url);
    this.agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  }

  start(phase: string): void {
    this.beginPhase(phase);
    if (this.running) return;
    this.running = true;
    this.workers = Array.from({ length: this.concurrency }, (_, w) => this.worker(w));
  }

  /** Starts a new measurement window without stopping the clients. */
  beginPhase(phase: string): void {
    this.endPhase();
    const empty = <T>(v: () => T) => Object.fromEntries(API_ROUTES.map((r) => [r, v()])) as Record<ApiRoute, T>;
    this.phase = { phase, startMs: performance.now(), endMs: null, ms: empty(() => [] as number[]), errors: empty(() => 0), errorSamples: [] };
  }

  private endPhase(): void {
    if (this.phase) {
      this.phase.endMs = performance.now();
      this.finished.push(this.phase);
      this.phase = null;
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
    this.endPhase();
    this.agent.destroy();
  }

  results(): ApiPhaseResult[] {
    return this.finished.map(summarizePhase);
  }

  private async worker(w: number): Promise<void> {
    // Workers start at different routes, and spread over the interval, so all four are exercised alike.
    if (this.intervalMs > 0) await sleep((this.intervalMs * w) / this.concurrency);
    let nextStart = performance.now();
    for (let i = w; this.running; i++) {
      if (this.intervalMs > 0) {
        const wait = nextStart - performance.now();
        if (wait > 0) await sleep(wait);
        nextStart = Math.max(nextStart + this.intervalMs, performance.now());
      }
      const route = API_ROUTES[i % API_ROUTES.length]!;
      let path: string;
      if (route === 'findings/:id') {
        const id = this.ids[Math.floor(Math.random() * this.ids.length)];
        if (id === undefined) continue;
        path = `/api/v1/findings/${id}`;
      } else path = route === 'targets' ? TARGETS_PATH : `/api/v1/${route}`;
      const phase = this.phase;
      const t0 = performance.now();
      let status = 0;
      let body = '';
      let failure: string | null = null;
      try {
        ({ status, body } = await this.get(path));
      } catch (err) {
        failure = (err as Error).message;
      }
      const ms = performance.now() - t0;
      if (!phase) continue;
      if (failure === null && status === 200) {
        phase.ms[route].push(ms);
        if (route === 'findings?limit=100') {
          try {
            const ids = (JSON.parse(body) as { findings: Array<{ id: string }> }).findings.map((f) => f.id);
            if (ids.length > 0) this.ids = ids;
          } catch {
            failure = 'list body is not JSON';
          }
        }
      }
      if (failure !== null || status !== 200) {
        phase.errors[route]++;
        if (phase.errorSamples.length < 5) phase.errorSamples.push(`${path}: ${failure ?? `HTTP ${status} ${body.slice(0, 200)}`}`);
        // A failing collector must not be hammered in a tight loop.
        await sleep(100);
      }
    }
  }

  private get(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: this.base.hostname, port: this.base.port, path, method: 'GET', agent: this.agent, headers: { authorization: `Bearer ${this.token}`, accept: 'application/json' }, timeout: 30_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out after 30 s')));
      req.on('error', reject);
      req.end();
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function latency(samples: number[], errors: number): RouteLatency {
  const s = [...samples].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return { requests: s.length + errors, errors, p50Ms: r(quantile(s, 0.5)), p90Ms: r(quantile(s, 0.9)), p99Ms: r(quantile(s, 0.99)), maxMs: r(s.at(-1) ?? Number.NaN) };
}

function summarizePhase(p: PhaseSamples): ApiPhaseResult {
  const seconds = ((p.endMs ?? performance.now()) - p.startMs) / 1000;
  const byRoute = Object.fromEntries(API_ROUTES.map((r) => [r, latency(p.ms[r], p.errors[r])])) as Record<ApiRoute, RouteLatency>;
  const allMs = API_ROUTES.flatMap((r) => p.ms[r]);
  const errors = API_ROUTES.reduce((n, r) => n + p.errors[r], 0);
  const all = latency(allMs, errors);
  return { phase: p.phase, seconds: Math.round(seconds * 10) / 10, requests: all.requests, requestsPerSec: Math.round(all.requests / seconds), errors, errorSamples: p.errorSamples, all, byRoute };
}
