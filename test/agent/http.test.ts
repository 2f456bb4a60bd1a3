// The agent's HTTP endpoints over real loopback HTTP: /metrics, the probes, and what happens
// with wrong paths, wrong methods, a failing render and a port already taken.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createAgentMetrics } from '../../agent/metrics.js';
import { createLoopLiveness, startAgentHttp, type MetricsSource } from '../../agent/http.js';

const T0 = Date.UTC(2025, 9, 22, 8, 15, 32);

function realMetrics(): ReturnType<typeof createAgentMetrics> {
  const metrics = createAgentMetrics({ nodeName: 'node-h' });
  metrics.update({ atMs: T0, processes: [], containers: [], pods: [], durationMs: 2 }, [], 2);
  return metrics;
}

/** A raw request, so keep-alive and HEAD behave exactly as a scraper's would. */
function get(port: number, path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('/metrics serves the registry in Prometheus text format with its content type', async (t) => {
  const metrics = realMetrics();
  const http = await startAgentHttp({ host: '127.0.0.1', port: 0, metrics, ready: () => true, healthy: () => true });
  t.after(() => http.close());
  assert.ok(http.port > 0);

  const res = await get(http.port, '/metrics');
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], metrics.contentType);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  assert.match(res.body, /^leakwatch_agent_sampling_duration_seconds_count\{node="node-h"\} 1$/m);
  assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body));

  // Query strings are ignored; HEAD answers with headers only.
  assert.equal((await get(http.port, '/metrics?debug=1')).status, 200);
  const head = await get(http.port, '/metrics', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
});

test('/healthz and /readyz follow their callbacks: 200 when true, 503 when false', async (t) => {
  let healthy = true;
  let ready = false;
  const http = await startAgentHttp({ host: '127.0.0.1', port: 0, metrics: realMetrics(), ready: () => ready, healthy: () => healthy });
  t.after(() => http.close());

  assert.deepEqual([(await get(http.port, '/healthz')).status, (await get(http.port, '/readyz')).status], [200, 503]);
  ready = true;
  healthy = false;
  const sick = await get(http.port, '/healthz');
  assert.equal(sick.status, 503);
  assert.match(sick.body, /stalled/);
  assert.equal((await get(http.port, '/readyz')).status, 200);
});

test('unknown paths are 404 and other methods 405 with Allow', async (t) => {
  const http = await startAgentHttp({ host: '127.0.0.1', port: 0, metrics: realMetrics(), ready: () => true, healthy: () => true });
  t.after(() => http.close());

  for (const path of ['/', '/metrics/', '/../etc/passwd', '/constructor', '/__proto__', '/hasOwnProperty']) {
    const res = await get(http.port, path);
    assert.equal(res.status, 404, path);
    assert.match(res.body, /try \/metrics/);
  }
  const post = await get(http.port, '/metrics', 'POST');
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
});

test('a render that throws is a 500 with a warning, and the server keeps serving', async (t) => {
  const warnings: string[] = [];
  let fail = true;
  const metrics = realMetrics();
  // The interface the server takes, failing on demand: a collector callback that throws at scrape.
  const flaky: MetricsSource = {
    contentType: metrics.contentType,
    render: async () => {
      if (fail) throw new Error('collector exploded');
      return metrics.render();
    },
  };
  const http = await startAgentHttp({ host: '127.0.0.1', port: 0, metrics: flaky, ready: () => true, healthy: () => true, warn: (m) => warnings.push(m) });
  t.after(() => http.close());

  const res = await get(http.port, '/metrics');
  assert.equal(res.status, 500);
  assert.match(res.body, /collector exploded/);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? '', /GET \/metrics failed: collector exploded/);
  fail = false;
  assert.equal((await get(http.port, '/metrics')).status, 200);
});

test('a port already in use is a clear startup error', async (t) => {
  const first = await startAgentHttp({ host: '127.0.0.1', port: 0, metrics: realMetrics(), ready: () => true, healthy: () => true });
  t.after(() => first.close());
  await assert.rejects(
    startAgentHttp({ host: '127.0.0.1', port: first.port, metrics: realMetrics(), ready: () => true, healthy: () => true }),
    new RegExp(`agent http cannot listen on 127\\.0\\.0\\.1:${first.port}: EADDRINUSE`),
  );
});

test('close() returns although a scraper holds a keep-alive connection', async () => {
  const http = await startAgentHttp({ host: '127.0.0.1', port: 0, metrics: realMetrics(), ready: () => true, healthy: () => true });
  const res = await fetch(`http://127.0.0.1:${http.port}/metrics`, { headers: { connection: 'keep-alive' } });
  assert.equal(res.status, 200);
  await res.text();
  const closed = await Promise.race([http.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('hung'), 3000))]);
  assert.equal(closed, 'closed');
  await assert.rejects(fetch(`http://127.0.0.1:${http.port}/metrics`));
});

test('loop liveness: healthy until the loop misses its intervals, healthy again once it beats', () => {
  const live = createLoopLiveness({ intervalMs: 1000, missedIntervals: 3, nowMs: T0 });
  assert.equal(live.healthy(T0 + 2999), true, 'a slow first pass is within the grace');
  assert.equal(live.healthy(T0 + 3001), false);
  live.beat(T0 + 3500);
  assert.equal(live.healthy(T0 + 6000), true);
  assert.equal(live.healthy(T0 + 6501), false);
  assert.throws(() => createLoopLiveness({ intervalMs: 0 }), /intervalMs must be > 0/);
});
