// The collector's metrics: what each recording function puts in the registry, that labels fed
// from the network cannot grow without bound, and that the exposition passes promtool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCollectorMetrics, type CollectorMetrics } from '../../server/metrics.js';
import { missingBinary, promtoolCheckMetrics } from '../support/promtool.js';

type Labels = Record<string, string | number>;
async function series(metrics: CollectorMetrics, name: string): Promise<Array<{ labels: Labels; value: number }>> {
  const metric = metrics.registry.getSingleMetric(name);
  assert.ok(metric, `metric ${name} is registered`);
  return (await metric.get()).values.map((v) => ({ labels: v.labels as Labels, value: v.value }));
}

async function valueOf(metrics: CollectorMetrics, name: string, labels: Labels): Promise<number | undefined> {
  const all = await series(metrics, name);
  return all.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

test('each recording function lands in its metric', async () => {
  const metrics = createCollectorMetrics();
  metrics.setAgentsConnected(3);
  metrics.messageReceived('findings', 'ok');
  metrics.messageReceived('findings', 'ok');
  metrics.messageReceived('series', 'store-failed');
  metrics.messageReceived('binary', 'ok');
  metrics.findingsIngested('growth', 5);
  metrics.findingsIngested('oom-kill');
  metrics.httpRequest('/api/v1/findings/:id', 200);
  metrics.httpRequest('/api/v1/findings/:id', 404);
  metrics.httpRequest('/api/v1/findings/:id', 404);
  metrics.observeStoreWrite('findings', 0.004);
  const stored = metrics.timeStoreWrite('series', () => 'written');
  assert.equal(stored, 'written');
  assert.throws(() => metrics.timeStoreWrite('blob', () => { throw new Error('disk full'); }), /disk full/);

  assert.deepEqual((await series(metrics, 'leakwatch_collector_agents_connected')).map((s) => s.value), [3]);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_messages_total', { type: 'findings', result: 'ok' }), 2);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_messages_total', { type: 'series', result: 'store-failed' }), 1);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_messages_total', { type: 'binary', result: 'ok' }), 1);
  // Every message type starts at 0, so rate() works from the first message on.
  assert.equal(await valueOf(metrics, 'leakwatch_collector_messages_total', { type: 'heartbeat', result: 'ok' }), 0);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_findings_ingested_total', { kind: 'growth' }), 5);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_findings_ingested_total', { kind: 'oom-kill' }), 1);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_findings_ingested_total', { kind: 'fanout' }), 0);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_http_requests_total', { route: '/api/v1/findings/:id', code: '404' }), 2);

  const text = await metrics.render();
  assert.match(text, /^leakwatch_collector_store_write_seconds_count\{op="findings"\} 1$/m);
  assert.match(text, /^leakwatch_collector_store_write_seconds_bucket\{le="0\.005",op="findings"\} 1$/m);
  assert.match(text, /^leakwatch_collector_store_write_seconds_bucket\{le="0\.0025",op="findings"\} 0$/m);
  assert.match(text, /^leakwatch_collector_store_write_seconds_count\{op="series"\} 1$/m);
  // A write that threw still took time, and is recorded.
  assert.match(text, /^leakwatch_collector_store_write_seconds_count\{op="blob"\} 1$/m);
  assert.match(text, /^leakwatch_collector_process_resident_memory_bytes [1-9]\d*$/m);
});

test('agents_connected can be read live from the collector at scrape time', async () => {
  let connected = 7;
  const metrics = createCollectorMetrics({ agentsConnected: () => connected });
  assert.match(await metrics.render(), /^leakwatch_collector_agents_connected 7$/m);
  connected = 2;
  assert.match(await metrics.render(), /^leakwatch_collector_agents_connected 2$/m);
});

test('labels from the network are clamped: junk types, kinds, results, routes and codes stay bounded', async () => {
  const metrics = createCollectorMetrics({ maxResults: 8, maxRoutes: 16 });
  for (let i = 0; i < 1000; i++) {
    metrics.messageReceived(`type-${i}`, `code-${i}`);
    metrics.findingsIngested(`kind-${i}`);
    metrics.httpRequest(`/api/v1/findings/${i}`, 200 + (i % 3));
  }
  metrics.messageReceived({ toString: () => 'findings' }, 'ok');
  metrics.messageReceived('hello', 'Bad Result\n"quoted"');
  metrics.httpRequest('not a route', 999);
  metrics.httpRequest('/x', Number.NaN);

  const messages = await series(metrics, 'leakwatch_collector_messages_total');
  const types = new Set(messages.map((s) => s.labels.type));
  assert.deepEqual(types, new Set(['hello', 'findings', 'series', 'heartbeat', 'command-result', 'snapshot-begin', 'snapshot-end', 'capture-report', 'unknown']));
  const results = new Set(messages.map((s) => s.labels.result));
  assert.ok(results.size <= 8 + 2, `results: ${[...results].join(' ')}`); // the cap, plus 'ok' and 'other'
  assert.ok(results.has('other'));
  assert.equal(await valueOf(metrics, 'leakwatch_collector_messages_total', { type: 'unknown', result: 'other' }), 1000 - 8);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_messages_total', { type: 'unknown', result: 'ok' }), 1);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_messages_total', { type: 'hello', result: 'other' }), 1);

  assert.equal(await valueOf(metrics, 'leakwatch_collector_findings_ingested_total', { kind: 'unknown' }), 1000);
  assert.equal((await series(metrics, 'leakwatch_collector_findings_ingested_total')).length, 5);

  const http = await series(metrics, 'leakwatch_collector_http_requests_total');
  const routes = new Set(http.map((s) => s.labels.route));
  assert.equal(routes.size, 17);
  assert.ok(routes.has('other'));
  assert.ok(http.length <= 17 * 4, `http series: ${http.length}`);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_http_requests_total', { route: 'other', code: 'other' }), 2);

  // Nonsense amounts and durations are not recorded rather than corrupting the sums.
  metrics.findingsIngested('growth', Number.NaN);
  metrics.findingsIngested('growth', -3);
  metrics.observeStoreWrite('findings', Number.POSITIVE_INFINITY);
  metrics.observeStoreWrite('nonsense' as never, 0.001);
  metrics.setAgentsConnected(-1);
  assert.equal(await valueOf(metrics, 'leakwatch_collector_findings_ingested_total', { kind: 'growth' }), 0);
  const text = await metrics.render();
  assert.doesNotMatch(text, /op="findings"/);
  assert.match(text, /^leakwatch_collector_store_write_seconds_count\{op="other"\} 1$/m);
  assert.match(text, /^leakwatch_collector_agents_connected 0$/m);
});

test('the collector exposition passes promtool check metrics', async (t) => {
  const missing = missingBinary('promtool');
  if (missing) {
    console.log(`SKIP: ${missing}`);
    t.skip(`SKIP: ${missing}`);
    return;
  }
  const metrics = createCollectorMetrics();
  metrics.setAgentsConnected(1);
  metrics.messageReceived('hello', 'ok');
  metrics.messageReceived('???', 'bad-json');
  metrics.findingsIngested('suspicious-spawn', 2);
  metrics.timeStoreWrite('findings', () => undefined);
  metrics.httpRequest('/api/v1/findings', 200);
  metrics.httpRequest('/api/v1/snapshots/:sha256', 403);
  const text = await metrics.render();
  assert.match(text, /^leakwatch_collector_/m);
  const r = promtoolCheckMetrics(text);
  assert.ok(r.ok, `promtool check metrics (exit ${r.status}):\n${r.output}`);
});
