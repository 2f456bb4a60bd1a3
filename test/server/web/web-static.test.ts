// The collector's side of the web page, without a browser: static files from a fixed map (no
// traversal), their types, cache headers and CSP; GET /api/v1/whoami; the live event stream's
// authentication and what it carries.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { helloAgent, httpGet, startTestCollector, type TestCollector } from '../../support/collector-harness.js';
import { growthFinding, spawnFinding } from '../../support/sample-findings.js';

function fakeBuild(): string {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-webroot-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><script type="module" src="/assets/main-AAAA.js"></script>');
  writeFileSync(join(dir, 'assets', 'main-AAAA.js'), 'console.log(1)');
  writeFileSync(join(dir, 'assets', 'main-AAAA.css'), 'body{}');
  writeFileSync(join(dir, 'secret.txt'), 'not served');
  // A link planted in the build output must not lead out of it.
  symlinkSync('/etc/passwd', join(dir, 'assets', 'passwd.js'));
  return dir;
}

/** Reads an SSE stream until `until` matches the text so far (or times out). */
function readStream(url: string, token: string | null, until: (text: string) => boolean, timeoutMs = 5000): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
    const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent: false }, (res) => {
      let text = '';
      const done = () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text });
      };
      const timer = setTimeout(() => (req.destroy(), reject(new Error(`stream did not match in ${timeoutMs} ms: ${text.slice(0, 500)}`))), timeoutMs);
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        if (until(text)) done();
      });
      res.on('end', done);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web page routes', () => {
  let tc: TestCollector;
  let root: string;
  before(async () => {
    root = fakeBuild();
    tc = await startTestCollector({ webRoot: root });
  });
  after(async () => {
    await tc.stop();
    rmSync(root, { recursive: true, force: true });
  });

  test('/ is the page, with the CSP and revalidation; assets are immutable with their types', async () => {
    const page = await httpGet(tc.collector.url, '/', null);
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['cache-control'], 'no-cache');
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'; style-src 'self'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    const again = await httpGet(tc.collector.url, '/', null, { headers: { 'If-None-Match': String(page.headers.etag) } });
    assert.equal(again.status, 304);
    const js = await httpGet(tc.collector.url, '/assets/main-AAAA.js', null);
    assert.equal(js.status, 200);
    assert.equal(js.body, 'console.log(1)');
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    const css = await httpGet(tc.collector.url, '/assets/main-AAAA.css', null);
    assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
  });

  test('nothing outside the built files is reachable: traversal, encoded traversal, symlinks, other files', async () => {
    for (const path of ['/assets/../secret.txt', '/assets/..%2fsecret.txt', '/assets/%2e%2e%2fsecret.txt', '/assets/..%2f..%2fpackage.json', '/secret.txt', '/assets/passwd.js', '/assets/', '/index.html', '/assets/%00', '/assets/main-AAAA.js%00.png']) {
      const r = await httpGet(tc.collector.url, path, null);
      assert.ok(r.status === 404 || r.status === 400, `${path} → ${r.status}`);
      assert.doesNotMatch(r.body, /not served|root:/, path);
    }
  });

  test('a collector without a built page says how to build it', async () => {
    const bare = await startTestCollector({ webRoot: join(root, 'missing') });
    try {
      const r = await httpGet(bare.collector.url, '/', null);
      assert.equal(r.status, 503);
      assert.match(r.body, /npm run build/);
    } finally {
      await bare.stop();
    }
    const none = await startTestCollector({ webRoot: null });
    try {
      assert.equal((await httpGet(none.collector.url, '/', null)).status, 404);
    } finally {
      await none.stop();
    }
  });

  test('whoami names the token and its scopes; a bad or missing token is 401', async () => {
    const read = await httpGet(tc.collector.url, '/api/v1/whoami', tc.tokens.read);
    assert.equal(read.status, 200);
    assert.deepEqual(read.json, { name: 'read-token', scopes: ['read'], effectiveScopes: ['read'] });
    const admin = await httpGet(tc.collector.url, '/api/v1/whoami', tc.tokens.admin);
    assert.deepEqual(admin.json.effectiveScopes, ['agent', 'read', 'snapshots', 'admin']);
    assert.equal((await httpGet(tc.collector.url, '/api/v1/whoami', null)).status, 401);
    assert.equal((await httpGet(tc.collector.url, '/api/v1/whoami', 'lw_nope')).status, 401);
    assert.equal((await httpGet(tc.collector.url, '/api/v1/whoami?token=x', null)).status, 400);
  });

  test('the event stream needs a read token in the header, never in the URL', async () => {
    assert.equal((await httpGet(tc.collector.url, '/api/v1/events', null)).status, 401);
    assert.equal((await httpGet(tc.collector.url, '/api/v1/events', tc.tokens.agent)).status, 403);
    assert.equal((await httpGet(tc.collector.url, `/api/v1/events?access_token=${tc.tokens.read}`, null)).status, 400);
    assert.equal((await httpGet(tc.collector.url, '/api/v1/events?x=1', tc.tokens.read)).status, 400);
    assert.ok(!tc.logs.text().includes(tc.tokens.read), 'the token is never logged');
  });

  test('stored findings and series reach the stream, script content stripped', async () => {
    const agent = await helloAgent(tc.collector.agentUrl, tc.tokens.agent, 'stream-agent', 'node-a');
    try {
      const stream = readStream(`${tc.collector.url}/api/v1/events`, tc.tokens.read, (t) => t.includes('event: findings') && t.includes('event: series'));
      // Wait for the subscription before sending.
      await new Promise((r) => setTimeout(r, 200));
      agent.send({ type: 'findings', seq: 1, events: [{ change: 'open', finding: growthFinding('g-stream-1') }, { change: 'open', finding: spawnFinding('s-stream-1', 'node-a', Date.now(), 'SECRET_SCRIPT_BODY') }] });
      agent.send({ type: 'series', seq: 2, targets: [], points: [{ targetKey: 'proc:1:1', atMs: Date.now(), anonBytes: 5, workingSetBytes: null, limitBytes: null }] });
      const r = await stream;
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/event-stream/);
      const events = r.text
        .split('\n\n')
        .filter((b) => b.includes('data: ') && !b.includes('event: hello'))
        .map((b) => ({ type: /event: (\w+)/.exec(b)![1], data: JSON.parse(/data: (.*)/.exec(b)![1]!) }));
      const findings = events.find((e) => e.type === 'findings')!.data;
      assert.deepEqual(findings.events.map((e: { finding: { id: string } }) => e.finding.id), ['g-stream-1', 's-stream-1']);
      assert.equal(findings.events[1].finding.details.script.content, null);
      assert.ok(!r.text.includes('SECRET_SCRIPT_BODY'));
      assert.equal(events.find((e) => e.type === 'series')!.data.points[0].anonBytes, 5);
    } finally {
      agent.ws.close();
    }
  });

  test('a bad message from an agent publishes nothing', async () => {
    const agent = await helloAgent(tc.collector.agentUrl, tc.tokens.agent, 'bad-agent', 'node-b');
    try {
      const stream = readStream(`${tc.collector.url}/api/v1/events`, tc.tokens.read, (t) => t.includes('event: findings'), 1500).catch((e: Error) => e);
      await new Promise((r) => setTimeout(r, 200));
      // Claims another node: refused by the session, never stored, so never shown.
      agent.send({ type: 'findings', seq: 1, events: [{ change: 'open', finding: growthFinding('g-wrong-node', 'node-zzz') }] });
      await agent.next((m) => m.type === 'error');
      const r = await stream;
      assert.ok(r instanceof Error && /did not match/.test(r.message), 'nothing published');
    } finally {
      agent.ws.close();
    }
  });
});
