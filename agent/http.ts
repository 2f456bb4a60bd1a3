// The agent's small HTTP face: /metrics for Prometheus, /healthz and /readyz for kubelet's probes.
//
// No authentication, on purpose: Prometheus and kubelet reach it on the pod network without
// credentials, and what it serves is names and numbers only (namespaces, pods, containers, pids,
// comm, byte counts). Command lines, scripts and evidence never go here: they travel to the
// collector over the authenticated WebSocket. Bind it to the pod IP (or 127.0.0.1), not to a
// public interface.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MetricsSource {
  readonly contentType: string;
  render(): Promise<string>;
}

export interface AgentHttpOptions {
  host: string;
  /** 0 picks a free port (tests); the bound port is on the result. */
  port: number;
  metrics: MetricsSource;
  /** Readiness: e.g. the first pass is done. 503 until it says true. */
  ready: () => boolean;
  /** Liveness: the sampling loop is still turning (see createLoopLiveness). 503 when it is not. */
  healthy: () => boolean;
  warn?: (msg: string) => void;
}

export interface AgentHttp {
  readonly host: string;
  readonly port: number;
  /** Stops listening and drops open connections (Prometheus keeps one alive between scrapes). */
  close(): Promise<void>;
}

export async function startAgentHttp(options: AgentHttpOptions): Promise<AgentHttp> {
  const warn = options.warn ?? (() => {});
  const server = createServer((req, res) => {
    handle(req, res, options).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      warn(`agent http ${req.method ?? '?'} ${req.url ?? '?'} failed: ${message}`);
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `error: ${message}\n`, req.method === 'HEAD');
      else res.destroy();
    });
  });
  // Probes and scrapes are tiny: a client that dribbles headers is cut off rather than held.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await listen(server, options.host, options.port);
  const address = server.address() as AddressInfo;
  return {
    host: options.host,
    port: address.port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, options: AgentHttpOptions): Promise<void> {
  const head = req.method === 'HEAD';
  const path = (req.url ?? '/').split('?', 1)[0];
  const routes: Record<string, () => Promise<void> | void> = {
    '/metrics': async () => send(res, 200, options.metrics.contentType, await options.metrics.render(), head),
    '/healthz': () => probe(res, options.healthy(), 'ok', 'sampling loop stalled', head),
    '/readyz': () => probe(res, options.ready(), 'ready', 'not ready', head),
  };
  const route = path !== undefined && Object.hasOwn(routes, path) ? routes[path] : undefined;
  if (!route) {
    send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /readyz\n', head);
    return;
  }
  if (req.method !== 'GET' && !head) {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed: use GET\n', false);
    return;
  }
  await route();
}

function probe(res: ServerResponse, ok: boolean, good: string, bad: string, head: boolean): void {
  send(res, ok ? 200 : 503, 'text/plain; charset=utf-8', `${ok ? good : bad}\n`, head);
}

function send(res: ServerResponse, status: number, contentType: string, body: string, head: boolean): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(head ? undefined : body);
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new Error(`agent http cannot listen on ${host}:${port}: ${err.code ?? err.message}`));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

export interface LoopLiveness {
  /** Call at the end of every pass. */
  beat(atMs?: number): void;
  /** True until the loop has missed `missedIntervals` intervals in a row. */
  healthy(nowMs?: number): boolean;
}

/**
 * Liveness of a periodic loop. A pass stuck in a hung read (a D-state /proc file, a wedged
 * cgroup) stops the beats: kubelet then restarts the agent instead of it silently going blind.
 * Counts as alive from creation for the same grace, so a slow first pass is not a failure.
 */
export function createLoopLiveness(options: { intervalMs: number; missedIntervals?: number; nowMs?: number }): LoopLiveness {
  if (!(options.intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${options.intervalMs}`);
  const graceMs = options.intervalMs * (options.missedIntervals ?? 3);
  let lastBeatMs = options.nowMs ?? Date.now();
  return {
    beat(atMs = Date.now()) {
      lastBeatMs = atMs;
    },
    healthy(nowMs = Date.now()) {
      return nowMs - lastBeatMs <= graceMs;
    },
  };
}
