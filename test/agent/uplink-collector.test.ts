// The agent's uplink against the real collector (server/collector.ts) and its real SQLite store:
// an agent that loses its collector for a while and delivers its queue after, drops reported on
// the agent's row, series charted, commands answered.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { DiskQueue, type QueuedEvent } from '../../agent/disk-queue.js';
import { Uplink } from '../../agent/uplink.js';
import type { Finding } from '../../protocol/findings.js';
import { startCollector, type Collector } from '../../server/collector.js';
import { openStore } from '../../server/store/sqlite-store.js';
import type { Store } from '../../server/store/types.js';
import { makeTokens, memoryLogger } from '../support/collector-harness.js';
import { recordingLogger, sleep, waitFor } from '../support/protocol-peer.js';
import { growthFinding } from '../support/sample-findings.js';

const root = mkdtempSync(join(tmpdir(), 'leakwatch-uplink-collector-'));
after(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const fresh = (name: string): string => join(root, `${name}-${++count}`);

const { tokens, entries } = makeTokens();
const NODE = 'node-e2e';

const finding = (n: number, updatedAt = 1_700_000_000_000, status: Finding['status'] = 'open'): Finding => ({
  ...growthFinding(`growth-${String(n).padStart(6, '0')}`, NODE, 1_700_000_000_000),
  updatedAt,
  status,
});
const opened = (n: number): QueuedEvent => ({ change: 'open', finding: finding(n) });

interface Running {
  collector: Collector;
  store: Store;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function collectorOn(dataDir: string, port = 0): Promise<Running> {
  const store = openStore(dataDir);
  const collector = await startCollector({ store, ownsStore: true, host: '127.0.0.1', port, tokens: entries, log: memoryLogger().log, heartbeatIntervalMs: 1_000 });
  let closed = false;
  const close = collector.close.bind(collector);
  collector.close = async () => {
    if (closed) return;
    closed = true;
    await close();
  };
  cleanups.push(() => collector.close());
  return { collector, store };
}

function agentFor(url: string, options: { maxEvents?: number; token?: string } = {}) {
  const queue = new DiskQueue({ dir: fresh('spool'), ...(options.maxEvents ? { maxEvents: options.maxEvents } : {}) });
  const log = recordingLogger();
  const uplink = new Uplink({ url, token: options.token ?? tokens.agent, agentId: NODE, node: NODE, version: '0.1.0-e2e', queue, log, backoffBaseMs: 50, backoffCapMs: 500 });
  cleanups.push(async () => {
    await uplink.close({ flushMs: 0 });
    queue.close();
  });
  return { queue, uplink, log };
}

/** Reads the store with a fresh connection: what a restarted collector would serve. */
function storedFindings(dataDir: string): Finding[] {
  const store = openStore(dataDir);
  try {
    return store.listFindings({ limit: 10_000 });
  } finally {
    store.close();
  }
}

describe('uplink → real collector', () => {
  it('loses its collector for a while, queues on disk, and delivers everything once the collector is back on the same data dir', async () => {
    const dataDir = fresh('data');
    const first = await collectorOn(dataDir);
    const port = first.collector.port;
    const { uplink, queue } = agentFor(first.collector.url);
    uplink.start();
    uplink.enqueue(range(0, 20).map(opened));
    await waitFor('first findings stored', () => queue.size === 0, 10_000);
    assert.equal(first.store.listFindings({ limit: 1000 }).length, 20);

    await first.collector.close();
    await waitFor('agent notices', () => !uplink.state().connected, 5_000);

    // While it is away: new findings, and changes to ones it already has.
    uplink.enqueue(range(20, 120).map(opened));
    await sleep(300);
    uplink.enqueue(range(0, 10).map((n): QueuedEvent => ({ change: 'update', finding: finding(n, 1_700_000_060_000) })));
    uplink.enqueue(range(10, 15).map((n): QueuedEvent => ({ change: 'resolve', finding: finding(n, 1_700_000_090_000, 'resolved') })));
    assert.equal(queue.size, 115);
    assert.ok(uplink.state().connectAttempts >= 2, 'it kept trying');

    const second = await collectorOn(dataDir, port);
    await waitFor('queue delivered', () => queue.size === 0 && uplink.state().inFlight === 0, 15_000);
    assert.equal(uplink.state().droppedFindings, 0);
    await second.collector.close();

    const stored = storedFindings(dataDir);
    assert.equal(stored.length, 120);
    const byId = new Map(stored.map((f) => [f.id, f]));
    for (const n of range(0, 120)) assert.ok(byId.has(finding(n).id), `finding ${n} stored`);
    for (const n of range(0, 10)) assert.equal(byId.get(finding(n).id)?.updatedAt, 1_700_000_060_000, `update of ${n} applied`);
    for (const n of range(10, 15)) assert.equal(byId.get(finding(n).id)?.status, 'resolved', `resolve of ${n} applied`);
    for (const n of range(15, 120)) assert.equal(byId.get(finding(n).id)?.status, 'open');
  });

  it('drops past the spool bound while away are reported on the agent row once it is back', async () => {
    const dataDir = fresh('data');
    const running = await collectorOn(dataDir);
    const port = running.collector.port;
    await running.collector.close();
    const { uplink, queue } = agentFor(`http://127.0.0.1:${port}`, { maxEvents: 10 });
    uplink.start();
    uplink.enqueue(range(0, 30).map(opened));
    assert.equal(queue.droppedTotal, 20);

    const back = await collectorOn(dataDir, port);
    await waitFor('delivered', () => queue.size === 0, 10_000);
    await waitFor('drop count on the agent row', () => back.store.listAgents().some((a) => a.agentId === NODE && a.droppedFindings === 20), 5_000);
    const ids = back.store.listFindings({ limit: 100 }).map((f) => f.id).sort();
    assert.deepEqual(ids, range(20, 30).map((n) => finding(n).id), 'the newest were kept');
  });

  it('series reach the store and the target is listed; a command from the collector is answered', async () => {
    const dataDir = fresh('data');
    const { collector, store } = await collectorOn(dataDir);
    const { uplink } = agentFor(collector.url);
    uplink.onCommand('echo', (command) => ({ echoed: command.text }));
    uplink.start();
    await waitFor('connected', () => uplink.state().connected && collector.agents().length === 1, 5_000);
    const target = { targetKey: 'ctr:/kubepods/burstable/podx/abc', kind: 'container' as const, pid: null, ppid: null, comm: null, cmdline: null, namespace: 'shop', pod: 'cart-1', podUid: 'x', container: 'cart', containerId: 'abc' };
    const points = range(0, 30).map((i) => ({ targetKey: target.targetKey, atMs: 1_700_000_000_000 + i * 1000, anonBytes: 1e6 + i * 1e4, workingSetBytes: 2e6, limitBytes: 1e8 }));
    uplink.sendSeries([target], points);
    await waitFor('series acknowledged', () => uplink.state().seriesPointsQueued === 0, 5_000);
    const stored = store.series(NODE, target.targetKey);
    assert.ok(stored.length > 0, 'points stored');
    assert.ok(stored.every((p) => p.targetKey === target.targetKey && p.limitBytes === 1e8));
    assert.ok(store.listTargets({ node: NODE }).some((t) => t.targetKey === target.targetKey && t.pod === 'cart-1'));

    const result = await collector.sendCommand(NODE, { action: 'echo', text: 'hi' }, { timeoutMs: 5_000 });
    assert.deepEqual(result, { ok: true, result: { echoed: 'hi' } });
    const unknown = await collector.sendCommand(NODE, { action: 'snapshot', pid: 1 }, { timeoutMs: 5_000 });
    assert.equal(unknown.ok, false);
    assert.match(unknown.error ?? '', /unknown action "snapshot"/);
  });

  it('a token without the agent scope is refused at the upgrade and logged as a configuration error', async () => {
    const { collector } = await collectorOn(fresh('data'));
    const { uplink, log } = agentFor(collector.url, { token: tokens.read });
    uplink.start();
    await waitFor('refused', () => log.lines.some((l) => l.level === 'error'), 5_000);
    assert.ok(log.lines.some((l) => /lacks the "agent" scope \(HTTP 403\)/.test(l.msg)), JSON.stringify(log.lines));
    assert.equal(collector.agents().length, 0);
  });
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}
