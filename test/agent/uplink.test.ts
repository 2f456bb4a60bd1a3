// The uplink against a real WebSocket peer on loopback that speaks the collector's side of the
// protocol (test/support/protocol-peer.ts), made to misbehave in exactly one way per test.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer as createNetServer, type Socket } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { DiskQueue, type QueuedEvent } from '../../agent/disk-queue.js';
import { agentSocketUrl, Uplink, type UplinkOptions } from '../../agent/uplink.js';
import { AGENT_WS_PATH, PROTOCOL_VERSION } from '../../protocol/messages.js';
import { PEER_TOKEN, ProtocolPeer, recordingLogger, sleep, waitFor, type PeerOptions } from '../support/protocol-peer.js';
import { growthFinding, spawnFinding } from '../support/sample-findings.js';

const root = mkdtempSync(join(tmpdir(), 'leakwatch-uplink-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (): string => join(root, `spool-${++dirCount}`);

const TOKEN = PEER_TOKEN;
const event = (n: number): QueuedEvent => ({ change: 'open', finding: growthFinding(`growth-${String(n).padStart(6, '0')}`) });
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
const idsOf = (ns: number[]): string[] => ns.map((n) => event(n).finding.id);

// ---- fixtures

const uplinks: Uplink[] = [];
const queues: DiskQueue[] = [];
const collectors: ProtocolPeer[] = [];
afterEach(async () => {
  await Promise.all(uplinks.splice(0).map((u) => u.close({ flushMs: 0 })));
  for (const q of queues.splice(0)) q.close();
  await Promise.all(collectors.splice(0).map((c) => c.stop().catch(() => {})));
});

async function collectorWith(options: PeerOptions = {}, port = 0): Promise<ProtocolPeer> {
  const c = await ProtocolPeer.start(options, port);
  collectors.push(c);
  return c;
}

function uplinkTo(url: string, options: Partial<UplinkOptions> & { queueOptions?: { maxEvents?: number; maxBytes?: number } } = {}) {
  const queue = new DiskQueue({ dir: freshDir(), ...options.queueOptions });
  queues.push(queue);
  const log = recordingLogger();
  const uplink = new Uplink({ url, token: TOKEN, agentId: 'node-a', node: 'node-a', version: '0.1.0-test', queue, log, backoffBaseMs: 20, backoffCapMs: 200, ...options });
  uplinks.push(uplink);
  return { uplink, queue, log };
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

// ---- tests

describe('agentSocketUrl', () => {
  it('maps http(s) to ws(s), keeps a path prefix, and refuses credentials in the URL or other schemes', () => {
    assert.equal(agentSocketUrl('http://c:7070'), `ws://c:7070${AGENT_WS_PATH}`);
    assert.equal(agentSocketUrl('https://c.example/leakwatch/'), `wss://c.example/leakwatch${AGENT_WS_PATH}`);
    assert.equal(agentSocketUrl('wss://c:443'), `wss://c${AGENT_WS_PATH}`);
    assert.throws(() => agentSocketUrl('https://agent:secret@c'), /carries credentials: pass the token with --token/);
    assert.throws(() => agentSocketUrl('ftp://c'), /must start with http:\/\/, https:\/\/, ws:\/\/ or wss:\/\//);
    assert.throws(() => agentSocketUrl('collector:7070/x y'), /must start with|is not a URL/);
    assert.throws(() => agentSocketUrl('not a url'), /is not a URL/);
  });
});

describe('Uplink: connecting', () => {
  it('sends the token in the Authorization header at the upgrade, never in the URL, then hello; welcome makes it connected', async () => {
    const collector = await collectorWith();
    const { uplink } = uplinkTo(collector.url, { startedAtMs: 1234 });
    uplink.start();
    await waitFor('connected', () => uplink.state().connected);
    const [upgrade] = collector.upgrades;
    assert.ok(upgrade);
    assert.equal(upgrade.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(upgrade.url, AGENT_WS_PATH);
    assert.ok(!upgrade.url.includes(TOKEN) && !uplink.url.includes(TOKEN));
    assert.deepEqual(collector.messages[0], { type: 'hello', protocolVersion: PROTOCOL_VERSION, agentId: 'node-a', node: 'node-a', version: '0.1.0-test', startedAtMs: 1234 });
    assert.equal(uplink.state().sessions, 1);
  });

  it('sends heartbeats at the interval the welcome gives, the first at once, with queued and dropped counts', async () => {
    const collector = await collectorWith({ heartbeatIntervalMs: 1_000, ack: 'never' });
    const { uplink, queue } = uplinkTo(collector.url, { queueOptions: { maxEvents: 5 }, maxInFlight: 1, batchMaxEvents: 1 });
    // Filled while the collector was "away": 3 of 8 dropped.
    uplink.enqueue(range(0, 8).map(event));
    assert.equal(queue.droppedTotal, 3);
    uplink.start();
    await waitFor('first heartbeat', () => collector.ofType('heartbeat').length >= 1, 3_000);
    const started = Date.now();
    const first = collector.ofType('heartbeat')[0];
    assert.equal(first?.droppedFindings, 3);
    assert.equal(first?.queuedFindings, 5);
    await waitFor('three heartbeats', () => collector.ofType('heartbeat').length >= 3, 5_000);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1_800 && elapsed < 3_500, `two more heartbeats took ${elapsed} ms at a 1 s interval`);
  });

  it('a collector speaking another protocol version is a configuration error, retried at the cap interval', async () => {
    const collector = await collectorWith({ protocolVersion: PROTOCOL_VERSION + 1 });
    const { uplink, log } = uplinkTo(collector.url, { backoffCapMs: 300 });
    uplink.start();
    await waitFor('two attempts', () => collector.upgrades.length >= 2);
    assert.equal(uplink.state().connected, false);
    assert.ok(log.lines.some((l) => l.level === 'error' && /another protocol version/.test(l.msg)));
    const retry = log.lines.find((l) => l.msg === 'reconnecting to the collector');
    assert.equal(retry?.fields.delayMs, 300);
  });

  it('a collector that never welcomes is dropped after the handshake timeout and retried', async () => {
    const collector = await collectorWith({ onMessage: (m) => (m.type === 'hello' ? false : undefined) });
    const { uplink, log } = uplinkTo(collector.url, { handshakeTimeoutMs: 200 });
    uplink.start();
    await waitFor('a second attempt', () => collector.upgrades.length >= 2, 5_000);
    assert.ok(log.lines.some((l) => /did not welcome/.test(l.msg)));
  });
});

describe('Uplink: findings', () => {
  it('drains the queue in findings batches with increasing seq, and forgets events once acknowledged', async () => {
    const collector = await collectorWith();
    const { uplink, queue } = uplinkTo(collector.url, { batchMaxEvents: 500 });
    uplink.enqueue(range(0, 1200).map(event));
    assert.equal(queue.size, 1200);
    uplink.start();
    await waitFor('all acknowledged', () => queue.size === 0 && uplink.state().inFlight === 0);
    const batches = collector.ofType('findings');
    assert.deepEqual(
      batches.map((b) => b.events.length),
      [500, 500, 200],
    );
    for (let i = 1; i < batches.length; i++) assert.ok((batches[i]?.seq ?? 0) > (batches[i - 1]?.seq ?? 0), 'seq increases');
    assert.deepEqual(collector.findingIds(), idsOf(range(0, 1200)));
    assert.equal(uplink.state().ackedFindings, 1200);
    assert.ok((uplink.state().lastAckMs ?? 0) > 0);
  });

  it('the collector away: events queue on disk; back on the same port: all delivered exactly once, in order', async () => {
    const first = await collectorWith();
    const port = first.port;
    const { uplink, queue } = uplinkTo(first.url);
    uplink.start();
    uplink.enqueue(range(0, 10).map(event));
    await waitFor('first ten acknowledged', () => queue.size === 0);

    await first.stop();
    await waitFor('disconnected', () => !uplink.state().connected);
    for (let n = 10; n < 60; n += 10) {
      uplink.enqueue(range(n, n + 10).map(event));
      await sleep(30);
    }
    assert.equal(queue.size, 50);
    assert.equal(uplink.state().connected, false);

    const second = await collectorWith({}, port);
    await waitFor('queue drained to the new collector', () => queue.size === 0, 10_000);
    assert.deepEqual(first.findingIds(), idsOf(range(0, 10)));
    assert.deepEqual(second.findingIds(), idsOf(range(10, 60)));
    assert.ok(uplink.state().reconnects >= 1);
  });

  it('batches sent but never acknowledged go again on the next connection, in order', async () => {
    const first = await collectorWith({ ack: 'never' });
    const { uplink, queue } = uplinkTo(first.url, { batchMaxEvents: 10, maxInFlight: 3 });
    uplink.enqueue(range(0, 50).map(event));
    uplink.start();
    await waitFor('three batches in flight', () => first.ofType('findings').length === 3);
    await sleep(100);
    assert.equal(first.ofType('findings').length, 3, 'no more than maxInFlight unacknowledged');
    assert.equal(queue.size, 50, 'nothing leaves the queue without an ack');

    const port = first.port;
    await first.stop();
    const second = await collectorWith({}, port);
    await waitFor('all delivered', () => queue.size === 0);
    assert.deepEqual(second.findingIds(), idsOf(range(0, 50)));
  });

  it('acks that come back out of order free the queue only up to the oldest unacknowledged batch', async () => {
    const held: number[] = [];
    const collector = await collectorWith({
      onMessage: (m) => {
        if (m.type !== 'findings') return undefined;
        held.push(m.seq);
        return false;
      },
    });
    const { uplink, queue } = uplinkTo(collector.url, { batchMaxEvents: 5, maxInFlight: 3 });
    uplink.enqueue(range(0, 15).map(event));
    uplink.start();
    await waitFor('three batches', () => held.length === 3);
    const ws = collector.connections[0]?.ws;
    assert.ok(ws);
    collector.send(ws, { type: 'ack', seq: held[1] as number });
    collector.send(ws, { type: 'ack', seq: held[2] as number });
    await sleep(100);
    assert.equal(queue.size, 15, 'batch 1 is not acknowledged, so nothing after it is forgotten');
    collector.send(ws, { type: 'ack', seq: held[0] as number });
    await waitFor('all forgotten', () => queue.size === 0);
  });

  it('respects backpressure: nothing more is handed to the socket while its buffer is full', async () => {
    const collector = await collectorWith({ pauseAfterWelcome: true });
    const maxBufferedBytes = 256 * 1024;
    const { uplink, queue } = uplinkTo(collector.url, { batchMaxEvents: 1, maxInFlight: 10_000, maxBufferedBytes });
    // ~64 KiB events: 400 of them (~26 MB) are far more than loopback's socket buffers hold.
    const script = 'x'.repeat(64 * 1024);
    const big = range(0, 400).map((n): QueuedEvent => ({ change: 'open', finding: spawnFinding(`suspicious-spawn-${n}`, 'node-a', 1_700_000_000_000, script) }));
    uplink.enqueue(big);
    uplink.start();
    await waitFor('connected', () => uplink.state().connected);
    await sleep(500);
    const stalled = uplink.state();
    await sleep(300);
    const later = uplink.state();
    assert.ok(stalled.sentFindings < 400, `sent ${stalled.sentFindings} of 400 to a collector that reads nothing`);
    assert.equal(later.sentFindings, stalled.sentFindings, 'no more sends while the buffer stays full');
    assert.ok(later.bufferedBytes >= maxBufferedBytes, `the buffer is what stopped it (${later.bufferedBytes} bytes)`);
    assert.ok(later.bufferedBytes < maxBufferedBytes + 2 * 70 * 1024, `at most one message beyond the bound is buffered (${later.bufferedBytes} bytes)`);

    for (const c of collector.connections) c.socket.resume();
    await waitFor('everything delivered once the collector reads again', () => queue.size === 0, 20_000);
    assert.equal(collector.findingIds().length, 400);
  });

  it('refuses, logs and counts an event that does not match the protocol; the rest go through', async () => {
    const collector = await collectorWith();
    const { uplink, queue, log } = uplinkTo(collector.url);
    const bad = { change: 'open', finding: { ...growthFinding('growth-bad'), id: 'Not An Id!' } } as QueuedEvent;
    uplink.enqueue([event(0), bad, event(1)]);
    assert.equal(queue.size, 2);
    assert.equal(uplink.state().rejectedFindings, 1);
    assert.equal(uplink.state().droppedFindings, 1);
    assert.ok(log.lines.some((l) => l.level === 'error' && /does not match the protocol.*id/.test(l.msg)));
    uplink.start();
    await waitFor('delivered', () => queue.size === 0);
    assert.deepEqual(collector.findingIds(), idsOf([0, 1]));
    assert.deepEqual(collector.invalid, []);
  });

  it('a batch the collector refuses as invalid is dropped and counted instead of blocking the queue', async () => {
    let refused = false;
    const collector = await collectorWith({
      onMessage: (m, ws) => {
        if (m.type !== 'findings' || refused) return undefined;
        refused = true;
        ws.send(JSON.stringify({ type: 'error', code: 'bad-message', message: 'events[0].finding: nope', seq: m.seq }));
        return false;
      },
    });
    const { uplink, queue, log } = uplinkTo(collector.url, { batchMaxEvents: 2, maxInFlight: 1 });
    uplink.enqueue(range(0, 6).map(event));
    uplink.start();
    await waitFor('drained', () => queue.size === 0);
    assert.equal(uplink.state().rejectedFindings, 2);
    assert.ok(log.lines.some((l) => l.level === 'error' && /refused a batch/.test(l.msg)));
    assert.deepEqual(collector.findingIds(), idsOf(range(0, 6)));
    assert.equal(uplink.state().ackedFindings, 4);
  });

  it('a batch the collector could not store goes again on a fresh connection', async () => {
    let failed = false;
    const collector = await collectorWith({
      onMessage: (m, ws) => {
        if (m.type !== 'findings' || failed) return undefined;
        failed = true;
        ws.send(JSON.stringify({ type: 'error', code: 'store-failed', message: 'disk I/O error', seq: m.seq }));
        return false;
      },
    });
    const { uplink, queue } = uplinkTo(collector.url, { maxInFlight: 1 });
    uplink.enqueue(range(0, 3).map(event));
    uplink.start();
    await waitFor('drained', () => queue.size === 0);
    assert.equal(collector.connections.length, 2);
    assert.deepEqual(collector.connections[1]?.messages.flatMap((m) => (m.type === 'findings' ? m.events.map((e) => e.finding.id) : [])), idsOf(range(0, 3)));
    assert.equal(uplink.state().rejectedFindings, 0);
  });

  it('frames too big for the collector (close 1009): batches shrink; one event too big on its own is dropped and counted', async () => {
    const collector = await collectorWith({ maxPayload: 40 * 1024 });
    const { uplink, queue, log } = uplinkTo(collector.url, { batchMaxBytes: 512 * 1024, batchMaxEvents: 10_000 });
    const small = range(0, 60).map(event);
    const huge: QueuedEvent = { change: 'open', finding: spawnFinding('suspicious-spawn-huge', 'node-a', 1_700_000_000_000, 'y'.repeat(60 * 1024)) };
    uplink.enqueue([...small.slice(0, 30), huge, ...small.slice(30)]);
    uplink.start();
    await waitFor('drained', () => queue.size === 0, 15_000);
    assert.deepEqual(collector.findingIds().filter((id, i, all) => all.indexOf(id) === i), idsOf(range(0, 60)));
    assert.equal(uplink.state().rejectedFindings, 1);
    assert.ok(uplink.state().batchMaxBytes <= 40 * 1024);
    assert.ok(log.lines.some((l) => l.level === 'error' && /too big even on its own/.test(l.msg)));
  });

  it('close() delivers what it can within the flush time; what is left stays in the spool for the next start', async () => {
    const collector = await collectorWith();
    const { uplink, queue } = uplinkTo(collector.url, { batchMaxEvents: 50 });
    uplink.start();
    await waitFor('connected', () => uplink.state().connected);
    uplink.enqueue(range(0, 300).map(event));
    await uplink.close({ flushMs: 5_000 });
    assert.equal(queue.size, 0);
    assert.equal(collector.findingIds().length, 300);

    const silent = await collectorWith({ ack: 'never' });
    const other = uplinkTo(silent.url);
    other.uplink.start();
    await waitFor('connected', () => other.uplink.state().connected);
    other.uplink.enqueue(range(0, 20).map(event));
    const started = Date.now();
    await other.uplink.close({ flushMs: 300 });
    const took = Date.now() - started;
    assert.ok(took >= 280 && took < 1_500, `close took ${took} ms with a 300 ms flush`);
    assert.equal(other.queue.size, 20);
  });
});

describe('Uplink: reconnecting', () => {
  it('backs off exponentially from the base to the cap, with full jitter', async () => {
    const port = await freePort();
    const draws = [0.9, 0.1, 0.5, 0.99, 0.3, 0.7, 0.0];
    let i = 0;
    const { uplink, log } = uplinkTo(`http://127.0.0.1:${port}`, { backoffBaseMs: 10, backoffCapMs: 160, random: () => draws[i++ % draws.length] as number });
    uplink.start();
    await waitFor('seven retries', () => log.lines.filter((l) => l.msg === 'reconnecting to the collector').length >= 7, 5_000);
    const retries = log.lines.filter((l) => l.msg === 'reconnecting to the collector').slice(0, 7);
    assert.deepEqual(
      retries.map((l) => l.fields.ceilingMs),
      [10, 20, 40, 80, 160, 160, 160],
    );
    assert.deepEqual(
      retries.map((l) => l.fields.delayMs),
      retries.map((l, k) => Math.round((draws[k] as number) * (l.fields.ceilingMs as number))),
    );
  });

  it('with real randomness the delays stay within their ceilings and are not all the ceiling', async () => {
    const port = await freePort();
    const { uplink, log } = uplinkTo(`http://127.0.0.1:${port}`, { backoffBaseMs: 5, backoffCapMs: 40 });
    uplink.start();
    await waitFor('ten retries', () => log.lines.filter((l) => l.msg === 'reconnecting to the collector').length >= 10, 5_000);
    const retries = log.lines.filter((l) => l.msg === 'reconnecting to the collector').slice(0, 10);
    for (const r of retries) assert.ok((r.fields.delayMs as number) >= 0 && (r.fields.delayMs as number) <= (r.fields.ceilingMs as number));
    assert.ok(retries.some((r) => r.fields.delayMs !== r.fields.ceilingMs), 'jittered');
  });

  it('waits the delay it logs between attempts', async () => {
    const attempts: number[] = [];
    const server = createNetServer((socket: Socket) => {
      attempts.push(Date.now());
      socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    try {
      const { uplink, log } = uplinkTo(`http://127.0.0.1:${port}`, { backoffBaseMs: 40, backoffCapMs: 320, random: () => 1 });
      uplink.start();
      await waitFor('five attempts', () => attempts.length >= 5, 5_000);
      const delays = log.lines.filter((l) => l.msg === 'reconnecting to the collector').map((l) => l.fields.delayMs as number);
      assert.deepEqual(delays.slice(0, 4), [40, 80, 160, 320]);
      for (let k = 1; k < 5; k++) {
        const gap = (attempts[k] as number) - (attempts[k - 1] as number);
        assert.ok(gap >= (delays[k - 1] as number) - 5, `attempt ${k} came ${gap} ms after the previous one, delay was ${delays[k - 1]} ms`);
      }
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('401 at the upgrade: a clear configuration error, retried at the cap interval, not in a tight loop', async () => {
    const collector = await collectorWith({ refuse: 401 });
    const { uplink, log } = uplinkTo(collector.url, { backoffBaseMs: 1, backoffCapMs: 250 });
    uplink.start();
    await sleep(900);
    const attempts = collector.upgrades.length;
    assert.ok(attempts >= 3 && attempts <= 5, `${attempts} attempts in 900 ms at a 250 ms cap`);
    assert.ok(log.lines.some((l) => l.level === 'error' && /refused the token \(HTTP 401\): check --token/.test(l.msg)));
    assert.ok(log.lines.filter((l) => l.msg === 'reconnecting to the collector').every((l) => l.fields.delayMs === 250 && l.fields.configError === true));
    assert.ok(!JSON.stringify(log.lines).includes(TOKEN), 'the token is never logged');
    assert.equal(uplink.state().connected, false);
    assert.match(uplink.state().lastError ?? '', /401/);
  });

  it('403 at the upgrade names the missing agent scope', async () => {
    const collector = await collectorWith({ refuse: 403 });
    const { uplink, log } = uplinkTo(collector.url);
    uplink.start();
    await waitFor('refused once', () => log.lines.some((l) => l.level === 'error'));
    assert.ok(log.lines.some((l) => /lacks the "agent" scope \(HTTP 403\)/.test(l.msg)));
  });

  it('a wrong token is refused by the collector (401) and never reaches a session', async () => {
    const collector = await collectorWith({ token: 'the-right-one' });
    const { uplink, log } = uplinkTo(collector.url);
    uplink.start();
    await waitFor('refused', () => log.lines.some((l) => /HTTP 401/.test(l.msg)));
    assert.equal(collector.connections.length, 0);
  });
});

describe('Uplink: commands and odd collectors', () => {
  it('dispatches commands to their handler and answers with command-result; unknown actions and failures are ok:false', async () => {
    const collector = await collectorWith();
    const { uplink } = uplinkTo(collector.url);
    uplink.onCommand('echo', (command, { commandId }) => ({ echoed: command.value, commandId }));
    uplink.onCommand('slow', async () => {
      await sleep(50);
      return 'done';
    });
    uplink.onCommand('fail', () => {
      throw new Error('target pid 7 is gone');
    });
    uplink.start();
    await waitFor('connected', () => uplink.state().connected);
    const ws = collector.connections[0]?.ws;
    assert.ok(ws);
    collector.send(ws, { type: 'command', commandId: 'c1', command: { action: 'echo', value: 42 } });
    collector.send(ws, { type: 'command', commandId: 'c2', command: { action: 'slow' } });
    collector.send(ws, { type: 'command', commandId: 'c3', command: { action: 'snapshot', pid: 1 } });
    collector.send(ws, { type: 'command', commandId: 'c4', command: { action: 'fail' } });
    await waitFor('four results', () => collector.ofType('command-result').length === 4);
    const byId = new Map(collector.ofType('command-result').map((r) => [r.commandId, r]));
    assert.deepEqual(byId.get('c1'), { type: 'command-result', commandId: 'c1', ok: true, result: { echoed: 42, commandId: 'c1' } });
    assert.deepEqual(byId.get('c2'), { type: 'command-result', commandId: 'c2', ok: true, result: 'done' });
    assert.equal(byId.get('c3')?.ok, false);
    assert.match(byId.get('c3')?.error ?? '', /unknown action "snapshot" \(this agent knows echo, slow, fail\)/);
    assert.deepEqual(byId.get('c4'), { type: 'command-result', commandId: 'c4', ok: false, error: 'target pid 7 is gone' });
  });

  it('logs collector errors, and ignores garbage frames and unknown message types without disconnecting', async () => {
    const collector = await collectorWith();
    const { uplink, queue, log } = uplinkTo(collector.url);
    uplink.start();
    await waitFor('connected', () => uplink.state().connected);
    const ws = collector.connections[0]?.ws;
    assert.ok(ws);
    ws.send('{not json');
    ws.send(JSON.stringify({ type: 'teleport', to: 'mars' }));
    ws.send(JSON.stringify({ type: 'ack', seq: 'seven' }));
    ws.send(Buffer.from([1, 2, 3]));
    ws.send(JSON.stringify({ type: 'error', code: 'not-hello', message: 'say hello first' }));
    ws.send(JSON.stringify({ type: 'ack', seq: 999_999 }));
    uplink.enqueue([event(1)]);
    await waitFor('still delivers', () => queue.size === 0);
    assert.equal(collector.connections.length, 1, 'no reconnect');
    const said = log.lines.map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.fields)}`).join('\n');
    assert.match(said, /warn collector sent a frame that is not JSON/);
    assert.match(said, /warn collector sent a message the agent does not understand.*unknown-type/);
    assert.match(said, /warn collector sent a message the agent does not understand.*seq/);
    assert.match(said, /warn collector sent a binary frame/);
    assert.match(said, /warn collector reported an error.*not-hello/);
    assert.match(said, /acknowledged a message the agent did not send/);
  });

  it('series go out with their targets, are acknowledged, and wait (bounded) while the collector is away', async () => {
    const port = await freePort();
    const { uplink } = uplinkTo(`http://127.0.0.1:${port}`, { maxSeriesBacklogPoints: 10 });
    uplink.start();
    const target = { targetKey: 'proc:1:2', kind: 'process' as const, pid: 1, ppid: null, comm: 'node', cmdline: 'node app.js', namespace: 'ns', pod: 'p', podUid: 'u', container: 'c', containerId: 'id' };
    const point = (atMs: number) => ({ targetKey: 'proc:1:2', atMs, anonBytes: atMs * 10, workingSetBytes: null, limitBytes: 1000 });
    uplink.sendSeries([target], [point(1), point(2), point(3), point(4)]);
    uplink.sendSeries([target], [point(5), point(6), point(7), point(8)]);
    uplink.sendSeries([target], [point(9), point(10), point(11), point(12)]);
    assert.equal(uplink.state().seriesPointsQueued, 8);
    assert.equal(uplink.state().seriesPointsDropped, 4);
    const collector = await collectorWith({}, port);
    await waitFor('series delivered', () => uplink.state().seriesPointsQueued === 0, 5_000);
    const series = collector.ofType('series');
    assert.deepEqual(
      series.flatMap((s) => s.points.map((p) => p.atMs)),
      [5, 6, 7, 8, 9, 10, 11, 12],
    );
    assert.deepEqual(series[0]?.targets, [target]);
  });
});

describe('Uplink: TLS', () => {
  const dir = mkdtempSync(join(root, 'tls-'));
  let tls: { cert: Buffer; key: Buffer } | null = null;
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
      { stdio: 'ignore' },
    );
    tls = { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
  } catch {
    tls = null;
  }

  it('a self-signed collector without --ca: a configuration error naming --ca; with --ca: connected over wss', async (t) => {
    if (!tls) {
      console.log('SKIP: openssl could not make a test certificate');
      t.skip('SKIP: openssl could not make a test certificate');
      return;
    }
    const collector = await collectorWith({ tls });
    const untrusted = uplinkTo(collector.url, { backoffCapMs: 5_000 });
    untrusted.uplink.start();
    await waitFor('refused', () => untrusted.log.lines.some((l) => l.level === 'error'));
    assert.ok(untrusted.log.lines.some((l) => /not trusted: pass its CA with --ca/.test(l.msg)));
    await waitFor('retry scheduled', () => untrusted.uplink.state().nextRetryDelayMs !== null);
    assert.equal(untrusted.uplink.state().nextRetryDelayMs, 5_000, 'retried at the cap, as a configuration error');

    const trusted = uplinkTo(collector.url, { ca: tls.cert });
    assert.match(trusted.uplink.url, /^wss:/);
    trusted.uplink.start();
    trusted.uplink.enqueue([event(1)]);
    await waitFor('delivered over TLS', () => trusted.queue.size === 0);
    assert.equal(collector.upgrades.at(-1)?.headers.authorization, `Bearer ${TOKEN}`);
  });
});
