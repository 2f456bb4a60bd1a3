// Backpressure: agents that send faster than the store writes are held back at their sockets,
// so what the collector holds in memory stays near its budget, and nothing is lost or left unacked.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Finding } from '../../protocol/findings.js';
import type { CollectorMessage } from '../../protocol/messages.js';
import { IngestBudget, type Pausable } from '../../server/ingest-budget.js';
import { createCollectorMetrics, metricsRoute } from '../../server/metrics.js';
import { helloAgent, httpGet, startTestCollector, type TestAgent } from '../support/collector-harness.js';
import { growthFinding } from '../support/sample-findings.js';

class FakeSocket implements Pausable {
  paused = false;
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

describe('IngestBudget', () => {
  it('pauses every socket past the limit, new ones too, and resumes them at 7/8 of it', () => {
    const changes: boolean[] = [];
    const budget = new IngestBudget(1000, (paused) => changes.push(paused));
    const a = new FakeSocket();
    const b = new FakeSocket();
    budget.add(a);
    budget.add(b);
    const r1 = budget.hold(600);
    assert.equal(a.paused || b.paused, false);
    const r2 = budget.hold(300);
    const r3 = budget.hold(200);
    assert.deepEqual([a.paused, b.paused, budget.paused], [true, true, true]);
    const late = new FakeSocket();
    budget.add(late);
    assert.equal(late.paused, true, 'a socket added while over starts paused');
    r3();
    // 900 held: under the limit, but above 7/8 of it: still paused (no flapping on every frame).
    assert.deepEqual([a.paused, budget.paused], [true, true]);
    r3();
    assert.equal(budget.stats().heldBytes, 900, 'a release counts once');
    r2();
    assert.deepEqual([a.paused, b.paused, late.paused, budget.paused], [false, false, false, false]);
    budget.delete(b);
    r1();
    const r4 = budget.hold(5000);
    assert.deepEqual([a.paused, b.paused], [true, false], 'a deleted socket is left alone');
    r4();
    assert.deepEqual(changes, [true, false, true, false]);
    assert.deepEqual(budget.stats(), { limitBytes: 1000, heldBytes: 0, peakHeldBytes: 5000, heldFrames: 0, paused: false, pauses: 2 });
  });

  it('refuses a limit that is not a positive number of bytes', () => {
    for (const bad of [0, -1, Number.NaN, 1.5, Number.POSITIVE_INFINITY]) assert.throws(() => new IngestBudget(bad), /positive number of bytes/);
  });
});

/** Blocks the thread for `ms`: a store on a slow disk (better-sqlite3 writes are synchronous too). */
function blockFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe('collector backpressure', () => {
  it('holds agents back at their sockets while the store is slow; memory held stays bounded and every batch is stored and acked', async (t) => {
    const BUDGET = 64 * 1024;
    const AGENTS = 4;
    const MESSAGES = 150;
    const EVENTS = 10;
    const metrics = createCollectorMetrics();
    const tc = await startTestCollector({ ingestBudgetBytes: BUDGET, metrics, extraRoutes: [metricsRoute(metrics)] });
    t.after(() => tc.stop());
    // Every write takes 15 ms more than it would: the agents below send far faster than that.
    for (const method of ['ingestFindings', 'ingestFindingBatches'] as const) {
      const write = tc.store[method].bind(tc.store) as (...args: unknown[]) => unknown;
      (tc.store as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        blockFor(15);
        return write(...args);
      };
    }

    const agents: TestAgent[] = [];
    for (let i = 0; i < AGENTS; i++) agents.push(await helloAgent(tc.collector.agentUrl, tc.tokens.agent, `node-flood-${i}`));
    let sentBytes = 0;
    let largestFrame = 0;
    const ids: string[] = [];
    // Each agent sends everything at once, ignoring any in-flight window: only the collector can hold it back.
    for (const [i, a] of agents.entries()) {
      for (let seq = 1; seq <= MESSAGES; seq++) {
        const findings: Finding[] = [];
        for (let e = 0; e < EVENTS; e++) {
          const f = growthFinding(`growth-flood-${i}-${seq}-${e}`, `node-flood-${i}`);
          findings.push(f);
          ids.push(f.id);
        }
        const frame = JSON.stringify({ type: 'findings', seq, events: findings.map((finding) => ({ change: 'open', finding })) });
        sentBytes += Buffer.byteLength(frame);
        largestFrame = Math.max(largestFrame, Buffer.byteLength(frame));
        a.sendRaw(frame);
      }
    }
    for (const a of agents) await a.next((m: CollectorMessage) => m.type === 'ack' && m.seq === MESSAGES, 60_000);

    // Nothing lost: every message acked once, in order, and every finding stored.
    for (const a of agents) {
      const acks = a.received.filter((m) => m.type === 'ack').map((m) => (m as { seq: number }).seq);
      assert.deepEqual(acks, Array.from({ length: MESSAGES }, (_, k) => k + 1));
      assert.equal(a.received.filter((m) => m.type === 'error').length, 0);
    }
    const missing = ids.filter((id) => tc.store.getFinding(id) === null);
    assert.deepEqual(missing, []);

    // Bounded: past the budget, each socket can still deliver what it had read (one read of at
    // most 64 KiB, plus a frame begun before it). Without backpressure the collector would hold
    // most of what was sent.
    const stats = tc.collector.ingestBudget();
    const bound = BUDGET + AGENTS * (64 * 1024 + largestFrame);
    assert.ok(sentBytes > 4 * bound, `the flood (${sentBytes} B) must dwarf the bound (${bound} B) for this test to mean anything`);
    assert.ok(stats.pauses > 0, 'reading was paused at least once');
    assert.ok(stats.peakHeldBytes <= bound, `peak held ${stats.peakHeldBytes} B, bound ${bound} B`);
    assert.deepEqual([stats.heldBytes, stats.heldFrames, stats.paused], [0, 0, false], 'all released once stored');
    // Every agent is still connected: being paused is not being dead.
    assert.equal(tc.collector.agents().length, AGENTS);

    const text = (await httpGet(tc.collector.url, '/metrics', null)).body;
    assert.match(text, /^leakwatch_collector_ingest_budget_bytes 65536$/m);
    assert.match(text, /^leakwatch_collector_ingest_held_bytes 0$/m);
    assert.match(text, /^leakwatch_collector_ingest_paused 0$/m);
    assert.equal(Number(/^leakwatch_collector_ingest_pauses_total (\d+)$/m.exec(text)?.[1]), stats.pauses);
    for (const a of agents) a.ws.close();
  });
});
