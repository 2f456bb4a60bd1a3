import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Finding } from '../../protocol/findings.js';
import { AGENT_WS_PATH, CloseCode, type CollectorMessage } from '../../protocol/messages.js';
import { generateToken, hashToken } from '../../server/auth.js';
import { startCollector } from '../../server/collector.js';
import { createCollectorMetrics } from '../../server/metrics.js';
import { openStore } from '../../server/store/sqlite-store.js';
import { connectAgent, helloAgent, httpGet, makeTokens, memoryLogger, sleep, startTestCollector, type TestAgent, type TestCollector } from '../support/collector-harness.js';
import { copy, fanoutFinding, growthFinding, oomFinding, spawnFinding } from '../support/sample-findings.js';

const isError = (code: string) => (m: CollectorMessage) => m.type === 'error' && m.code === code;
const isAck = (seq: number) => (m: CollectorMessage) => m.type === 'ack' && m.seq === seq;

function findingsMessage(seq: number, findings: Finding[]) {
  return { type: 'findings', seq, events: findings.map((finding) => ({ change: 'open', finding })) };
}

describe('collector: ingest and API round trip', () => {
  let t: TestCollector;
  before(async () => {
    t = await startTestCollector();
  });
  after(() => t.stop());

  it('acks findings after storing them and serves them over the API', async () => {
    const agent = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-a');
    const welcome = agent.received.find((m) => m.type === 'welcome');
    assert.deepEqual(welcome && { ...welcome, collectorVersion: 'x' }, { type: 'welcome', protocolVersion: 1, collectorVersion: 'x', heartbeatIntervalMs: 15000 });
    const findings = [growthFinding('growth-aaaa'), fanoutFinding('fanout-bbbb'), spawnFinding('suspicious-spawn-cccc'), oomFinding('oom-kill-dddd')];
    agent.send(findingsMessage(1, findings));
    await agent.next(isAck(1));
    // The ack means stored: the store (not the API) already has every one.
    for (const f of findings) assert.deepEqual(t.store.getFinding(f.id), f);

    const list = await httpGet(t.collector.url, '/api/v1/findings', t.tokens.read);
    assert.equal(list.status, 200);
    assert.deepEqual(new Set(list.json.findings.map((f: Finding) => f.id)), new Set(findings.map((f) => f.id)));
    const one = await httpGet(t.collector.url, '/api/v1/findings/growth-aaaa', t.tokens.read);
    assert.equal(one.status, 200);
    assert.deepEqual(one.json, findings[0]);
    const spawns = await httpGet(t.collector.url, '/api/v1/findings?kind=suspicious-spawn&node=node-a', t.tokens.read);
    assert.deepEqual(spawns.json.findings.map((f: Finding) => f.id), ['suspicious-spawn-cccc']);
    // Script content is read through /findings/:id (audited), not through the list.
    assert.equal(spawns.json.findings[0].details.script.content, null);
    assert.equal(spawns.json.findings[0].details.script.sha256, 'b'.repeat(64));

    const agents = await httpGet(t.collector.url, '/api/v1/agents', t.tokens.read);
    assert.equal(agents.status, 200);
    const row = agents.json.agents.find((a: { agentId: string }) => a.agentId === 'node-a');
    assert.equal(row.connected, true);
    assert.equal(row.version, 'test');
    assert.deepEqual(t.collector.agents().map((a) => [a.agentId, a.tokenName]), [['node-a', 'agent-token']]);
    agent.ws.close();
    await agent.closed;
  });

  it('stores series and targets, acked, and serves them', async () => {
    const agent = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-s');
    const now = Date.now();
    const target = { targetKey: 'proc:4242:1700000000000', kind: 'process', pid: 4242, comm: 'node', cmdline: 'node server.js', namespace: 'payments', pod: 'pp-1', podUid: 'uid-1', container: 'app', containerId: 'c'.repeat(64) };
    const points = [0, 1, 2].map((i) => ({ targetKey: target.targetKey, atMs: now - 3000 + i * 1000, anonBytes: 1000 + i, workingSetBytes: null, limitBytes: 5000 }));
    agent.send({ type: 'series', seq: 9, targets: [target], points });
    await agent.next(isAck(9));
    const series = await httpGet(t.collector.url, `/api/v1/series?node=node-s&targetKey=${encodeURIComponent(target.targetKey)}`, t.tokens.read);
    assert.equal(series.status, 200);
    assert.deepEqual(series.json.points, points);
    const targets = await httpGet(t.collector.url, '/api/v1/targets?node=node-s&namespace=payments', t.tokens.read);
    assert.deepEqual(targets.json.targets.map((x: { targetKey: string }) => x.targetKey), [target.targetKey]);
    assert.equal(targets.json.nextOffset, null);

    // The list is paged: a full page says where the next one starts.
    const more = [1, 2, 3].map((i) => ({ ...target, targetKey: `proc:${5000 + i}:1700000000000`, pid: 5000 + i }));
    agent.send({ type: 'series', seq: 10, targets: more, points: more.map((m, i) => ({ targetKey: m.targetKey, atMs: now - 10_000 + i, anonBytes: 1, workingSetBytes: null, limitBytes: null })) });
    await agent.next(isAck(10));
    const first = await httpGet(t.collector.url, '/api/v1/targets?node=node-s&limit=2', t.tokens.read);
    assert.equal(first.json.targets.length, 2);
    assert.equal(first.json.nextOffset, 2);
    const second = await httpGet(t.collector.url, '/api/v1/targets?node=node-s&limit=2&offset=2', t.tokens.read);
    assert.equal(second.json.targets.length, 2);
    assert.equal(second.json.nextOffset, 2 + 2);
    const last = await httpGet(t.collector.url, '/api/v1/targets?node=node-s&limit=2&offset=4', t.tokens.read);
    assert.deepEqual(last.json, { targets: [], nextOffset: null });
    const keys = [...first.json.targets, ...second.json.targets].map((x: { targetKey: string }) => x.targetKey);
    assert.deepEqual(new Set(keys), new Set([target.targetKey, ...more.map((m) => m.targetKey)]));
    agent.ws.close();
  });

  it('records heartbeats and sends commands to agents', async () => {
    const agent = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-h');
    agent.send({ type: 'heartbeat', atMs: Date.now(), droppedFindings: 17, queuedFindings: 3 });
    // Heartbeats have no ack: wait until the store shows it.
    for (let i = 0; i < 100 && t.store.listAgents().find((a) => a.agentId === 'node-h')?.droppedFindings !== 17; i++) await sleep(10);
    assert.equal(t.store.listAgents().find((a) => a.agentId === 'node-h')?.droppedFindings, 17);

    agent.ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'command') agent.send({ type: 'command-result', commandId: m.commandId, ok: true, result: { echoed: m.command } });
    });
    const r = await t.collector.sendCommand('node-h', { action: 'snapshot', pid: 42 });
    assert.deepEqual(r, { ok: true, result: { echoed: { action: 'snapshot', pid: 42 } } });
    await assert.rejects(t.collector.sendCommand('no-such-agent', { action: 'snapshot' }), /not connected/);
    agent.ws.removeAllListeners('message');
    await assert.rejects(t.collector.sendCommand('node-h', { action: 'ignored' }, { timeoutMs: 100 }), /did not answer/);
    const pending = t.collector.sendCommand('node-h', { action: 'never' }, { timeoutMs: 5000 });
    agent.ws.close();
    await assert.rejects(pending, /disconnected/);
  });

  it('replaces an older connection of the same agent with 4409', async () => {
    const first = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-r');
    const second = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-r');
    const closed = await first.closed;
    assert.equal(closed.code, CloseCode.replaced);
    assert.ok(first.received.some(isError('replaced')));
    // The newer connection carries on, and the agent stays marked connected.
    second.send(findingsMessage(1, [growthFinding('growth-rrrr', 'node-r')]));
    await second.next(isAck(1));
    assert.equal(t.store.listAgents().find((a) => a.agentId === 'node-r')?.connected, true);
    assert.equal(t.collector.agents().filter((a) => a.agentId === 'node-r').length, 1);
    second.ws.close();
    await second.closed;
    for (let i = 0; i < 100 && t.store.listAgents().find((a) => a.agentId === 'node-r')?.connected; i++) await sleep(10);
    assert.equal(t.store.listAgents().find((a) => a.agentId === 'node-r')?.connected, false);
  });

  it('re-sent batches (a lost ack) change nothing', async () => {
    const agent = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-i');
    const f = growthFinding('growth-idem', 'node-i');
    agent.send(findingsMessage(1, [f]));
    agent.send(findingsMessage(1, [f]));
    await agent.next(isAck(1));
    await sleep(50);
    assert.equal(agent.received.filter(isAck(1)).length, 2);
    assert.deepEqual(t.store.getFinding('growth-idem'), f);
    agent.ws.close();
  });
});

describe('collector: bad input', () => {
  let t: TestCollector;
  let before_: Finding[];
  before(async () => {
    t = await startTestCollector({ maxPayloadBytes: 64 * 1024 });
    const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-good');
    a.send(findingsMessage(1, [growthFinding('growth-keep1', 'node-good'), spawnFinding('suspicious-spawn-keep2', 'node-good')]));
    await a.next(isAck(1));
    a.ws.close();
    await a.closed;
    before_ = t.store.listFindings();
  });
  after(async () => {
    // Whatever was thrown at it, the collector still serves and the stored data is as it was.
    const health = await httpGet(t.collector.url, '/readyz', null);
    assert.equal(health.status, 200);
    const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-after');
    a.send(findingsMessage(5, [growthFinding('growth-after', 'node-after')]));
    await a.next(isAck(5));
    a.ws.close();
    assert.deepEqual(t.store.listFindings({ node: 'node-good' }), before_);
    await t.stop();
  });

  it('answers malformed JSON, unknown types and wrong field types with an error and keeps the connection', async () => {
    const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-bad1');
    a.sendRaw('{"type": "findings", "seq": 1, ');
    const badJson = await a.next(isError('bad-json'));
    assert.match((badJson as { message: string }).message, /not valid JSON/);

    a.send({ type: 'teleport', seq: 2 });
    const unknown = await a.next(isError('unknown-type'));
    assert.equal((unknown as { seq?: number }).seq, 2);
    assert.match((unknown as { message: string }).message, /teleport/);

    const broken = copy(findingsMessage(3, [growthFinding('growth-x1', 'node-bad1'), oomFinding('oom-kill-x2', 'node-bad1')])) as any;
    broken.events[1].finding.target.pid = 'forty-two';
    a.send(broken);
    const bad = (await a.next(isError('bad-message'))) as { message: string; seq?: number };
    assert.equal(bad.seq, 3);
    assert.match(bad.message, /^events\[1\]\.finding\.target\.pid: expected .* or null, got string$/);
    // A rejected batch is rejected whole: its valid first finding was not stored either.
    assert.equal(t.store.getFinding('growth-x1'), null);

    // Binary frames carry snapshot chunks: three bytes are not one.
    a.sendRaw(Buffer.from([1, 2, 3]), true);
    await a.next(isError('bad-frame'));

    // Still connected and useful after all that.
    a.send(findingsMessage(4, [growthFinding('growth-x3', 'node-bad1')]));
    await a.next(isAck(4));
    const logged = t.logs.lines.filter((l) => l.msg === 'bad message from agent' && l.agentId === 'node-bad1').map((l) => l.code);
    assert.deepEqual(logged, ['bad-json', 'unknown-type', 'bad-message', 'bad-frame']);
    a.ws.close();
  });

  it('closes with 4400 after too many bad messages', async () => {
    const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-bad2');
    for (let i = 0; i < 10; i++) a.sendRaw('nope');
    const closed = await a.closed;
    assert.equal(closed.code, CloseCode.badMessage);
    assert.equal(a.received.filter(isError('bad-json')).length, 10);
  });

  it('requires hello first', async () => {
    const a = await connectAgent(t.collector.agentUrl, t.tokens.agent);
    a.send(findingsMessage(1, [growthFinding('growth-nohello', 'node-x')]));
    const closed = await a.closed;
    assert.equal(closed.code, CloseCode.badMessage);
    assert.ok(a.received.some(isError('not-hello')));
    assert.equal(t.store.getFinding('growth-nohello'), null);

    const b = await connectAgent(t.collector.agentUrl, t.tokens.agent);
    b.send({ type: 'hello', protocolVersion: 99, agentId: 'n', node: 'n', version: 'v', startedAtMs: 1 });
    assert.equal((await b.closed).code, CloseCode.badMessage);
    assert.ok(b.received.some(isError('protocol-version')));

    const c = await connectAgent(t.collector.agentUrl, t.tokens.agent);
    c.send({ type: 'hello', protocolVersion: 1, agentId: '', node: 'n', version: 'v', startedAtMs: 1 });
    assert.equal((await c.closed).code, CloseCode.badMessage);
    assert.match((c.received.find(isError('bad-message')) as { message: string }).message, /^agentId:/);
  });

  it('drops an agent that never says hello', async () => {
    const quick = await startTestCollector({ helloTimeoutMs: 100 });
    try {
      const a = await connectAgent(quick.collector.agentUrl, quick.tokens.agent);
      assert.equal((await a.closed).code, CloseCode.badMessage);
      assert.ok(a.received.some(isError('hello-timeout')));
    } finally {
      await quick.stop();
    }
  });

  it('closes with 1009 on a frame past maxPayload and logs it', async () => {
    const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-big');
    const big = spawnFinding('suspicious-spawn-big', 'node-big', Date.now(), 'x'.repeat(100 * 1024));
    a.send(findingsMessage(1, [big]));
    const closed = await a.closed;
    assert.equal(closed.code, CloseCode.tooBig);
    assert.equal(t.store.getFinding('suspicious-spawn-big'), null);
    for (let i = 0; i < 50 && !t.logs.lines.some((l) => l.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'); i++) await sleep(10);
    assert.ok(t.logs.lines.some((l) => l.msg === 'agent connection error' && l.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' && l.agentId === 'node-big'));
  });

  it('refuses findings filed under another node', async () => {
    const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-m');
    a.send(findingsMessage(1, [growthFinding('growth-m1', 'node-m'), growthFinding('growth-m2', 'node-good')]));
    const err = (await a.next(isError('node-mismatch'))) as { message: string; seq?: number };
    assert.equal(err.seq, 1);
    assert.match(err.message, /events\[1\]\.finding\.node is "node-good"/);
    assert.equal(t.store.getFinding('growth-m1'), null);
    a.ws.close();
  });

  it('rejects a missing or wrong token with 401, a token without the agent scope with 403, and logs without the token', async () => {
    const wrong = generateToken();
    const cases: Array<[string | null, number, RegExp]> = [
      [null, 401, /Bearer/],
      [wrong, 401, /invalid_token/],
      [t.tokens.read, 403, /insufficient_scope/],
      [t.tokens.snapshots, 403, /insufficient_scope/],
    ];
    for (const [token, status, wwwAuth] of cases) {
      const err = (await connectAgent(t.collector.agentUrl, token).then(
        () => assert.fail('connected'),
        (e) => e,
      )) as { status: number; headers: Record<string, string>; body: string };
      assert.equal(err.status, status);
      assert.match(err.headers['www-authenticate'] ?? '', wwwAuth);
      assert.equal(err.headers['x-content-type-options'], 'nosniff');
      const body = JSON.parse(err.body);
      assert.equal(body.error, status === 401 ? 'unauthorized' : 'forbidden');
      assert.equal(typeof body.message, 'string');
    }
    const rejections = t.logs.lines.filter((l) => l.msg === 'agent connection rejected');
    assert.deepEqual(rejections.slice(-4).map((l) => l.status), [401, 401, 403, 403]);
    assert.ok(!t.logs.text().includes(wrong) && !t.logs.text().includes(t.tokens.read), 'a token reached the log');
    const audited = t.store.listAudit({ action: 'token.rejected' });
    assert.ok(audited.length >= 4);
    assert.ok(audited.some((e) => e.actor === 'read-token'));
  });

  it('refuses tokens in the URL and unknown WebSocket paths', async () => {
    const inUrl = await connectAgent(`${t.collector.agentUrl}?token=${t.tokens.agent}`, null).catch((e) => e);
    assert.equal(inUrl.status, 400);
    assert.ok(!t.logs.text().includes(t.tokens.agent), 'the token reached the log');
    const elsewhere = await connectAgent(t.collector.agentUrl.replace(AGENT_WS_PATH, '/api/v1/other'), t.tokens.agent).catch((e) => e);
    assert.equal(elsewhere.status, 404);
  });
});

describe('collector: HTTP API', () => {
  let t: TestCollector;
  before(async () => {
    t = await startTestCollector();
    const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-api');
    a.send(findingsMessage(1, [growthFinding('growth-api1', 'node-api'), spawnFinding('suspicious-spawn-api2', 'node-api')]));
    await a.next(isAck(1));
    a.ws.close();
  });
  after(() => t.stop());

  it('enforces each route\'s scope', async () => {
    const routes: Array<[string, 'read' | 'admin']> = [
      ['/api/v1/agents', 'read'],
      ['/api/v1/targets', 'read'],
      ['/api/v1/findings', 'read'],
      ['/api/v1/findings/growth-api1', 'read'],
      ['/api/v1/series?node=node-api&targetKey=x', 'read'],
      ['/api/v1/audit', 'admin'],
    ];
    const wrong = generateToken();
    for (const [path, scope] of routes) {
      const expect = async (token: string | null, status: number) => {
        const r = await httpGet(t.collector.url, path, token);
        assert.equal(r.status, status, `${path} with ${token === null ? 'no token' : 'a token'} → ${r.status}, expected ${status}`);
        assert.equal(r.headers['x-content-type-options'], 'nosniff');
        assert.equal(r.headers['cache-control'], 'no-store');
        assert.match(String(r.headers['content-type']), /^application\/json/);
        if (status === 401) assert.match(String(r.headers['www-authenticate']), /^Bearer/);
      };
      await expect(null, 401);
      await expect(wrong, 401);
      await expect(t.tokens.agent, 403);
      await expect(t.tokens.snapshots, 403);
      await expect(t.tokens.read, scope === 'read' ? 200 : 403);
      await expect(t.tokens.agentRead, scope === 'read' ? 200 : 403);
      await expect(t.tokens.admin, 200);
    }
    // Probes need no token.
    assert.equal((await httpGet(t.collector.url, '/healthz', null)).status, 200);
    assert.equal((await httpGet(t.collector.url, '/readyz', null)).status, 200);
    assert.equal((await httpGet(t.collector.url, '/readyz', null)).headers['x-content-type-options'], 'nosniff');
  });

  it('validates ids and never follows a path', async () => {
    const cases: Array<[string, number]> = [
      ['/api/v1/findings/..%2f..%2fetc%2fpasswd', 400],
      ['/api/v1/findings/%2e%2e', 400],
      ['/api/v1/findings/..', 400],
      ['/api/v1/findings/../../etc/passwd', 404],
      ['/api/v1/findings/growth-api1%2f..', 400],
      ['/api/v1/findings/GROWTH-API1', 400],
      ['/api/v1/findings/%zz', 400],
      ['/api/v1/findings/%00', 400],
      [`/api/v1/findings/${'a'.repeat(81)}`, 400],
      ['/api/v1/findings/growth-nope', 404],
      ['/api/v1/findings/growth-api1/', 404],
      ['//api/v1/findings', 404],
      ['/api/v1/nothing', 404],
    ];
    for (const [path, status] of cases) {
      const r = await httpGet(t.collector.url, path, t.tokens.read);
      assert.equal(r.status, status, `${path} → ${r.status}`);
      assert.equal(typeof r.json?.error, 'string', `${path}: JSON error body`);
      assert.ok(!r.body.includes('root:'), 'served a file');
    }
  });

  it('answers bad query values with 400 and a message', async () => {
    const cases: Array<[string, RegExp]> = [
      ['/api/v1/findings?kind=leak', /kind: expected one of/],
      ['/api/v1/findings?status=closed', /status: expected one of/],
      ['/api/v1/findings?limit=0', /limit: expected an integer/],
      ['/api/v1/findings?limit=abc', /limit/],
      ['/api/v1/findings?offset=-1', /offset/],
      ['/api/v1/findings?since=yesterday', /since: expected epoch milliseconds/],
      ['/api/v1/findings?nmespace=x', /unknown query parameter "nmespace"/],
      ['/api/v1/findings?node=a&node=b', /more than once/],
      ['/api/v1/findings?node=', /node: expected 1-512/],
      ['/api/v1/series?node=node-api', /node and targetKey are required/],
      ['/api/v1/series?node=n&targetKey=k&since=20&until=10', /until is before since/],
      ['/api/v1/targets?limit=100000', /limit/],
      ['/api/v1/targets?limit=1001', /limit: expected an integer from 1 to 1000/],
      ['/api/v1/targets?offset=-5', /offset/],
    ];
    for (const [path, message] of cases) {
      const r = await httpGet(t.collector.url, path, t.tokens.admin);
      assert.equal(r.status, 400, path);
      assert.match(r.json.message, message, path);
    }
    const iso = await httpGet(t.collector.url, `/api/v1/findings?since=${new Date(0).toISOString()}&limit=1`, t.tokens.read);
    assert.equal(iso.status, 200);
    assert.equal(iso.json.findings.length, 1);
    assert.equal(iso.json.nextOffset, 1);
    const tokenInUrl = await httpGet(t.collector.url, `/api/v1/findings?token=${t.tokens.read}`, null);
    assert.equal(tokenInUrl.status, 400);
    assert.ok(!t.logs.text().includes(t.tokens.read));
    const post = await httpGet(t.collector.url, '/api/v1/findings', t.tokens.read, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET');
    const plainGetOnWs = await httpGet(t.collector.url, AGENT_WS_PATH, t.tokens.agent);
    assert.equal(plainGetOnWs.status, 426);
  });

  it('writes evidence reads to the audit log, with the token name as actor', async () => {
    const beforeCount = t.store.listAudit({ action: 'finding.read' }).length;
    const spawn = await httpGet(t.collector.url, '/api/v1/findings/suspicious-spawn-api2', t.tokens.read);
    assert.equal(spawn.status, 200);
    assert.equal(spawn.json.details.script.content, 'import os\nprint(os.getpid())\n');
    const growth = await httpGet(t.collector.url, '/api/v1/findings/growth-api1', t.tokens.read);
    assert.equal(growth.status, 200);
    const reads = t.store.listAudit({ action: 'finding.read' });
    assert.equal(reads.length, beforeCount + 1, 'only the evidence read is audited');
    assert.equal(reads[0]!.actor, 'read-token');
    assert.equal(reads[0]!.subject, 'suspicious-spawn-api2');
    assert.match(reads[0]!.remote ?? '', /^127\.0\.0\.1:\d+$/);
    // And an admin sees it through the API; a read token does not.
    const audit = await httpGet(t.collector.url, '/api/v1/audit?action=finding.read', t.tokens.admin);
    assert.equal(audit.json.entries[0].subject, 'suspicious-spawn-api2');
  });

  it('serves extra routes with their own scope', async () => {
    const extra = await startTestCollector({
      extraRoutes: [{ method: 'GET', path: '/metrics', scope: null, handle: () => ({ status: 200, text: 'up 1\n', contentType: 'text/plain; version=0.0.4' }) }],
    });
    try {
      const r = await httpGet(extra.collector.url, '/metrics', null);
      assert.equal(r.status, 200);
      assert.equal(r.body, 'up 1\n');
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
    } finally {
      await extra.stop();
    }
  });
});

describe('collector: dead peers and garbage', () => {
  it('drops an agent that stops answering pings', async () => {
    const t = await startTestCollector({ heartbeatIntervalMs: 100 });
    try {
      const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-dead');
      assert.equal((a.received.find((m) => m.type === 'welcome') as { heartbeatIntervalMs: number }).heartbeatIntervalMs, 100);
      // A peer that stops reading (hung process, cable pulled) never answers the pings.
      (a.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
      for (let i = 0; i < 100 && t.collector.agents().length > 0; i++) await sleep(20);
      assert.equal(t.collector.agents().length, 0);
      assert.ok(t.logs.lines.some((l) => l.msg === 'agent stopped answering pings; dropping it' && l.agentId === 'node-dead'));
      assert.equal(t.store.listAgents().find((x) => x.agentId === 'node-dead')?.connected, false);
      // A live agent on the same collector stays: ws answers pings on its own.
      const live = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-live');
      await sleep(400);
      assert.deepEqual(t.collector.agents().map((x) => x.agentId), ['node-live']);
      live.ws.close();
    } finally {
      await t.stop();
    }
  });

  it('answers a garbage HTTP request with 400 and keeps serving', async () => {
    const t = await startTestCollector();
    try {
      const { port } = new URL(t.collector.url);
      const reply = await new Promise<string>((resolve, reject) => {
        const sock = connect(Number(port), '127.0.0.1', () => sock.write('\x00\x01 NOT HTTP AT ALL\r\n\r\n'));
        let data = '';
        sock.on('data', (c) => (data += c.toString()));
        sock.on('close', () => resolve(data));
        sock.on('error', reject);
      });
      assert.match(reply, /^HTTP\/1\.1 400 /);
      assert.equal((await httpGet(t.collector.url, '/healthz', null)).status, 200);
    } finally {
      await t.stop();
    }
  });
});

describe('collector: metrics hooks', () => {
  it('counts messages by outcome, findings by kind, requests by route pattern', async () => {
    const metrics = createCollectorMetrics();
    const t = await startTestCollector({
      metrics,
      extraRoutes: [{ method: 'GET', path: '/metrics', scope: null, handle: async () => ({ status: 200, text: await metrics.render(), contentType: metrics.contentType }) }],
    });
    try {
      const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-metrics');
      a.send(findingsMessage(1, [growthFinding('growth-m1', 'node-metrics'), growthFinding('growth-m2', 'node-metrics'), oomFinding('oom-kill-m3', 'node-metrics')]));
      await a.next(isAck(1));
      a.sendRaw('{oops');
      await a.next(isError('bad-json'));
      await httpGet(t.collector.url, '/api/v1/findings/growth-m1', t.tokens.read);
      await httpGet(t.collector.url, '/api/v1/findings/growth-m2', null);
      const text = (await httpGet(t.collector.url, '/metrics', null)).body;
      const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
      assert.equal(value('leakwatch_collector_findings_ingested_total{kind="growth"}'), 2);
      assert.equal(value('leakwatch_collector_findings_ingested_total{kind="oom-kill"}'), 1);
      assert.equal(value('leakwatch_collector_messages_total{type="findings",result="ok"}'), 1);
      assert.equal(value('leakwatch_collector_messages_total{type="unknown",result="bad-json"}'), 1);
      assert.equal(value('leakwatch_collector_agents_connected'), 1);
      assert.equal(value('leakwatch_collector_http_requests_total{route="/api/v1/findings/:id",code="200"}'), 1);
      assert.equal(value('leakwatch_collector_http_requests_total{route="/api/v1/findings/:id",code="401"}'), 1);
      assert.ok(value('leakwatch_collector_store_write_seconds_count{op="findings"}') >= 1);
      a.ws.close();
    } finally {
      await t.stop();
    }
  });
});

describe('collector: store failures', () => {
  it('does not ack what it could not store, says store-failed, keeps running and reports not ready', async () => {
    const t = await startTestCollector();
    try {
      const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-f');
      // The database going away under the collector (disk gone, file deleted) is the real failure.
      t.store.close();
      a.send(findingsMessage(3, [growthFinding('growth-lost', 'node-f')]));
      const err = (await a.next(isError('store-failed'))) as { seq?: number };
      assert.equal(err.seq, 3);
      await sleep(50);
      assert.equal(a.received.filter((m) => m.type === 'ack').length, 0);
      assert.ok(t.logs.lines.some((l) => l.msg === 'store write failed; not acknowledged' && l.seq === 3));
      assert.equal((await httpGet(t.collector.url, '/healthz', null)).status, 200);
      const ready = await httpGet(t.collector.url, '/readyz', null);
      assert.equal(ready.status, 503);
      assert.match(ready.json.reason, /store unavailable/);
      const api = await httpGet(t.collector.url, '/api/v1/findings', t.tokens.read);
      assert.equal(api.status, 500);
      assert.equal(api.json.error, 'internal');
      a.ws.close();
    } finally {
      await t.collector.close();
      rmSync(t.dataDir, { recursive: true, force: true });
    }
  });
});

describe('collector: shutdown', () => {
  it('reports not ready while draining, closes agents with 1001 and flushes their writes', async () => {
    const t = await startTestCollector({ drainDelayMs: 400 });
    const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-z');
    a.send(findingsMessage(1, [growthFinding('growth-z1', 'node-z')]));
    const closing = t.collector.close();
    await sleep(50);
    const ready = await httpGet(t.collector.url, '/readyz', null);
    assert.equal(ready.status, 503);
    assert.equal(ready.json.reason, 'shutting down');
    assert.equal((await httpGet(t.collector.url, '/healthz', null)).status, 200);
    const late = await connectAgent(t.collector.agentUrl, t.tokens.agent).catch((e) => e);
    assert.equal(late.status, 503);
    assert.equal((await a.closed).code, CloseCode.goingAway);
    assert.ok(a.received.some(isAck(1)));
    await closing;
    await assert.rejects(httpGet(t.collector.url, '/healthz', null), /ECONNREFUSED/);
    // The store was closed by the collector that owned it; the finding is on disk.
    const reopened = openStore(t.dataDir);
    assert.equal(reopened.getFinding('growth-z1')?.id, 'growth-z1');
    assert.equal(reopened.listAgents().find((x) => x.agentId === 'node-z')?.connected, false);
    reopened.close();
    rmSync(t.dataDir, { recursive: true, force: true });
  });
});

describe('collector: close leaves nothing running', () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

  it('clears its own timers, so the process can exit as soon as close() resolved', async () => {
    const before = timers();
    const t = await startTestCollector();
    const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-q');
    await httpGet(t.collector.url, '/healthz', null);
    await t.stop();
    await a.closed;
    // The HTTP grace period (5 s) must not stay behind as a pending timer once the server closed.
    assert.equal(timers(), before, `timers left: ${process.getActiveResourcesInfo().join(', ')}`);
  });
});

describe('collector: 200 agents at once', () => {
  it('acks every agent\'s findings and lists them all', async () => {
    const t = await startTestCollector();
    try {
      const n = 200;
      const perAgent = 5;
      const started = performance.now();
      const agents: TestAgent[] = await Promise.all(Array.from({ length: n }, (_, i) => helloAgent(t.collector.agentUrl, t.tokens.agent, `node-${i}`)));
      await Promise.all(
        agents.map(async (a, i) => {
          const findings = Array.from({ length: perAgent }, (_, j) => growthFinding(`growth-n${i}-f${j}`, `node-${i}`, 1_700_000_000_000 + j));
          a.send(findingsMessage(1, findings.slice(0, 3)));
          a.send(findingsMessage(2, findings.slice(3)));
          await a.next(isAck(2), 20_000);
          // Acks come in the order the agent sent.
          assert.deepEqual(a.received.filter((m) => m.type === 'ack').map((m) => (m as { seq: number }).seq), [1, 2]);
        }),
      );
      const elapsedMs = performance.now() - started;
      console.log(`200 agents: connected, sent ${n * perAgent} findings and got every ack in ${elapsedMs.toFixed(0)} ms`);
      assert.equal(t.collector.agents().length, n);
      const listed = await httpGet(t.collector.url, '/api/v1/agents', t.tokens.read);
      assert.equal(listed.json.agents.filter((x: { connected: boolean }) => x.connected).length, n);
      const all = await httpGet(t.collector.url, '/api/v1/findings?limit=10000', t.tokens.read);
      assert.equal(all.json.findings.length, n * perAgent);
      await Promise.all(agents.map((a) => (a.ws.close(), a.closed)));
    } finally {
      await t.stop();
    }
  });
});

describe('collector: TLS', () => {
  it('serves https and wss with a certificate and key', async (ctx) => {
    const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
    if (!hasOpenssl) {
      console.log('SKIP: openssl is not installed');
      ctx.skip('SKIP: openssl is not installed');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'leakwatch-tls-'));
    try {
      const cert = join(dir, 'cert.pem');
      const key = join(dir, 'key.pem');
      const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const ca = readFileSync(cert);
      const t = await startTestCollector({ tls: { cert, key } });
      try {
        assert.match(t.collector.url, /^https:\/\/127\.0\.0\.1:\d+$/);
        assert.match(t.collector.agentUrl, /^wss:\/\//);
        const a = await helloAgent(t.collector.agentUrl, t.tokens.agent, 'node-tls', 'node-tls', { ca });
        a.send(findingsMessage(1, [growthFinding('growth-tls', 'node-tls')]));
        await a.next(isAck(1));
        const got = await httpGet(t.collector.url, '/api/v1/findings/growth-tls', t.tokens.read, { ca });
        assert.equal(got.status, 200);
        assert.match(String(got.headers['strict-transport-security']), /max-age=/);
        // Without trusting the certificate, the client refuses: it really is TLS.
        await assert.rejects(httpGet(t.collector.url, '/healthz', null), /self-signed|self signed|certificate/);
        a.ws.close();
      } finally {
        await t.stop();
      }
      await assert.rejects(
        startCollector({ store: openStore(join(dir, 'data')), ownsStore: true, port: 0, tokens: [], tls: { cert: join(dir, 'missing.pem'), key }, log: memoryLogger().log }),
        /cannot read the TLS certificate .*missing\.pem: ENOENT/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('collector: killed with SIGKILL', () => {
  const child = fileURLToPath(new URL('../support/collector-child.ts', import.meta.url));

  function startChild(dataDir: string, tokensFile: string): Promise<{ proc: ChildProcess; url: string; agentUrl: string; stderr: () => string }> {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, 'collector', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--tokens-file', tokensFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`collector did not start: ${stderr}`)), 20_000);
      proc.stderr!.on('data', (c: Buffer) => {
        stderr += c.toString();
        for (const line of stderr.split('\n')) {
          if (!line.includes('"collector listening"')) continue;
          const m = JSON.parse(line) as { url: string; agentUrl: string };
          clearTimeout(timer);
          resolve({ proc, url: m.url, agentUrl: m.agentUrl, stderr: () => stderr });
          return;
        }
      });
      proc.on('exit', (code) => reject(new Error(`collector exited ${code}: ${stderr}`)));
    });
  }

  it('serves every acknowledged finding after a restart on the same data dir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'leakwatch-kill-'));
    const dataDir = join(dir, 'data');
    const tokensFile = join(dir, 'tokens.json');
    const { tokens, entries } = makeTokens();
    writeFileSync(tokensFile, JSON.stringify(entries));
    let proc: ChildProcess | undefined;
    try {
      const first = await startChild(dataDir, tokensFile);
      proc = first.proc;
      const acked = new Map<string, number>(); // id → updatedAt acknowledged
      let sent = 0;
      const agents = await Promise.all(Array.from({ length: 8 }, (_, i) => helloAgent(first.agentUrl, tokens.agent, `kill-${i}`)));
      let stop = false;
      const streams = agents.map(async (a, i) => {
        const inFlight = new Map<number, Finding[]>();
        a.ws.on('message', (data) => {
          const m = JSON.parse(String(data)) as CollectorMessage;
          if (m.type !== 'ack') return;
          for (const f of inFlight.get(m.seq) ?? []) acked.set(f.id, f.updatedAt);
          inFlight.delete(m.seq);
        });
        for (let seq = 1; !stop && a.ws.readyState === a.ws.OPEN; seq++) {
          // New findings and updates of earlier ones, as a real agent sends.
          const batch = Array.from({ length: 10 }, (_, j) => {
            const f = growthFinding(`growth-k${i}-${(seq * 10 + j) % 300}`, `kill-${i}`, 1_700_000_000_000);
            f.updatedAt = 1_700_000_000_000 + seq;
            return f;
          });
          inFlight.set(seq, batch);
          a.send(findingsMessage(seq, batch));
          sent += batch.length;
          await sleep(2);
        }
      });
      // Let acks pile up, then kill it mid-stream.
      while (acked.size < 500) await sleep(20);
      first.proc.kill('SIGKILL');
      await Promise.all(agents.map((a) => a.closed));
      stop = true;
      await Promise.all(streams);
      assert.ok(sent > acked.size, 'the kill happened mid-stream');

      const second = await startChild(dataDir, tokensFile);
      proc = second.proc;
      const served = new Map<string, number>();
      for (let offset: number | null = 0; offset !== null; ) {
        const page = await httpGet(second.url, `/api/v1/findings?limit=1000&offset=${offset}`, tokens.read);
        assert.equal(page.status, 200);
        for (const f of page.json.findings as Finding[]) served.set(f.id, f.updatedAt);
        offset = page.json.nextOffset;
      }
      let missing = 0;
      for (const [id, updatedAt] of acked) {
        const got = served.get(id);
        if (got === undefined || got < updatedAt) missing++;
      }
      console.log(`SIGKILL: ${sent} findings sent, ${acked.size} distinct acked, ${served.size} served after restart, ${missing} acked but missing`);
      assert.equal(missing, 0);

      // SIGTERM drains and exits 0.
      const exited = new Promise<number | null>((resolve) => second.proc.on('exit', (code) => resolve(code)));
      second.proc.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.match(second.stderr(), /"collector stopped"/);
      proc = undefined;
    } finally {
      if (proc && proc.exitCode === null) proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('collector: token hygiene in the upgrade', () => {
  it('authenticates against sha256 entries only and takes tokens from the header only', async () => {
    const token = generateToken();
    const t = await startTestCollector({ tokens: [{ name: 'only', sha256: hashToken(token), scopes: ['agent'] }] });
    try {
      const a = await helloAgent(t.collector.agentUrl, token, 'node-tok');
      assert.equal(t.collector.agents()[0]?.tokenName, 'only');
      a.ws.close();
      // The sha256 itself is not a token.
      const err = await connectAgent(t.collector.agentUrl, hashToken(token)).catch((e) => e);
      assert.equal(err.status, 401);
      // Nor is a Basic header or a cookie carrying the token.
      const basic = await connectAgent(t.collector.agentUrl, null, { headers: { Authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` } }).catch((e) => e);
      assert.equal(basic.status, 401);
      const cookie = await connectAgent(t.collector.agentUrl, null, { headers: { Cookie: `token=${token}` } }).catch((e) => e);
      assert.equal(cookie.status, 401);
    } finally {
      await t.stop();
    }
  });
});
