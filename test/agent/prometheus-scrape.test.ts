// A real Prometheus scrapes a real agent on loopback: the watcher samples this machine, the agent
// serves /metrics, and Prometheus's own API then says the target is up and answers queries on
// what it ingested. This is what a Kubernetes deployment does, minus the service discovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeSampler } from '../../agent/host/node-sampler.js';
import { Watcher } from '../../agent/watch/watcher.js';
import { createAgentMetrics } from '../../agent/metrics.js';
import { createLoopLiveness, startAgentHttp, type AgentHttp } from '../../agent/http.js';
import { missingBinary } from '../support/promtool.js';
import { freePort } from '../support/net.js';

const topN = 5;
const deadlineMs = 60_000;

interface PromResponse<T> {
  status: string;
  data: T;
}
interface TargetsData {
  activeTargets: Array<{ health: string; lastError: string; scrapeUrl: string; labels: Record<string, string> }>;
}
interface QueryData {
  resultType: string;
  result: Array<{ metric: Record<string, string>; value: [number, string] }>;
}

async function promApi<T>(base: string, path: string): Promise<T | null> {
  try {
    const res = await fetch(`${base}${path}`);
    if (!res.ok) return null;
    const body = (await res.json()) as PromResponse<T>;
    return body.status === 'success' ? body.data : null;
  } catch {
    return null; // Prometheus not listening yet.
  }
}

/** Polls until `probe` returns a value, or fails with what was last seen. */
async function eventually<T>(what: string, probe: () => Promise<T | null>, lastSeen: () => string): Promise<T> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const got = await probe();
    if (got !== null) return got;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}; last seen: ${lastSeen()}`);
}

test('Prometheus scrapes the agent: target up, sampling histogram and process gauges queryable', { timeout: deadlineMs * 2 }, async (t) => {
  const missing = missingBinary('prometheus');
  if (missing) {
    console.log(`SKIP: ${missing}`);
    t.skip(`SKIP: ${missing}`);
    return;
  }

  // The agent: a real sampler and watcher on this machine, passes every 250 ms.
  const sampler = new NodeSampler();
  const watcher = new Watcher({ sampler, kmsg: null, nodeName: 'scrape-test' });
  // This machine has no pods: rank host processes too, so the process gauge has real series.
  const metrics = createAgentMetrics({ nodeName: 'scrape-test', topN, includeHost: true });
  const liveness = createLoopLiveness({ intervalMs: 250 });
  let passes = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = performance.now();
      const events = await watcher.tick();
      const sample = watcher.latestSample;
      if (sample) metrics.update(sample, watcher.openFindings(), performance.now() - started, { events });
      passes++;
      liveness.beat();
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const http: AgentHttp = await startAgentHttp({ host: '127.0.0.1', port: 0, metrics, ready: () => passes > 0, healthy: () => liveness.healthy() });

  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-prom-'));
  const promPort = await freePort();
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 900ms',
    'scrape_configs:',
    '  - job_name: leakwatch-agent',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${http.port}']`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config);
  let promLog = '';
  // GOMEMLIMIT keeps this shared machine's Prometheus small; it holds a few hundred series here.
  const prometheus: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, GOMEMLIMIT: '200MiB' } },
  );
  prometheus.stderr?.setEncoding('utf8');
  prometheus.stderr?.on('data', (chunk: string) => (promLog = (promLog + chunk).slice(-4000)));
  const exited = new Promise<void>((resolve) => prometheus.once('exit', () => resolve()));

  t.after(async () => {
    stopped = true;
    if (prometheus.exitCode === null && prometheus.signalCode === null) {
      prometheus.kill('SIGTERM');
      const killer = setTimeout(() => prometheus.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    await loop;
    await http.close();
    watcher.close();
    sampler.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const base = `http://127.0.0.1:${promPort}`;
  let lastTargets = 'nothing';
  const target = await eventually(
    'the agent target to be up',
    async () => {
      if (prometheus.exitCode !== null) throw new Error(`prometheus exited ${prometheus.exitCode}: ${promLog}`);
      const data = await promApi<TargetsData>(base, '/api/v1/targets');
      lastTargets = JSON.stringify(data?.activeTargets ?? null);
      return data?.activeTargets.find((a) => a.health === 'up') ?? null;
    },
    () => `${lastTargets}; prometheus log: ${promLog}`,
  );
  assert.equal(target.scrapeUrl, `http://127.0.0.1:${http.port}/metrics`);
  assert.equal(target.labels.job, 'leakwatch-agent');

  let lastQuery = 'nothing';
  const query = (q: string) => async (): Promise<QueryData['result'] | null> => {
    const data = await promApi<QueryData>(base, `/api/v1/query?query=${encodeURIComponent(q)}`);
    lastQuery = JSON.stringify(data);
    return data && data.result.length > 0 ? data.result : null;
  };
  const count = await eventually('the sampling histogram count', query('leakwatch_agent_sampling_duration_seconds_count'), () => lastQuery);
  assert.equal(count.length, 1);
  assert.equal(count[0]?.metric.node, 'scrape-test');
  assert.ok(Number(count[0]?.value[1]) >= 1, `passes counted: ${count[0]?.value[1]}`);

  // Per-process series reached Prometheus, bounded by the top N.
  const processes = await eventually('process series', query('count(leakwatch_process_memory_anon_bytes)'), () => lastQuery);
  const n = Number(processes[0]?.value[1]);
  assert.ok(n >= 1 && n <= topN, `process series in Prometheus: ${n}`);

  // The agent's own RSS, from prom-client's default collectors, as Prometheus stored it.
  const rss = await eventually('the agent RSS', query('leakwatch_agent_process_resident_memory_bytes'), () => lastQuery);
  assert.ok(Number(rss[0]?.value[1]) > 1024 * 1024);

  // A line Prometheus cannot parse fails the whole scrape (up 0): the last scrape was whole.
  const up = await eventually('up', query('up{job="leakwatch-agent"}'), () => lastQuery);
  assert.equal(up[0]?.value[1], '1');
  const scraped = await eventually('scrape sample stats', query('scrape_samples_scraped{job="leakwatch-agent"}'), () => lastQuery);
  assert.ok(Number(scraped[0]?.value[1]) > 20, `samples per scrape: ${scraped[0]?.value[1]}`);
});
