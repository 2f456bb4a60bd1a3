/// <reference lib="dom" />
// The web page in Debian's Chromium against a real collector fed by a fake agent (a WebSocket
// speaking the protocol): evidence is shown as text (a `<script>` in a command line stays text),
// findings arrive live without a reload, the chart draws its limit and ETA, the process tree marks
// the fan-out and the OOM-killed child, and the snapshots panel follows the token's scopes. The
// snapshot endpoints here are small fakes of the agreed contract (/work/briefs/snapshot-api.md)
// passed as extraRoutes, until the real ones are merged.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Finding } from '../../../protocol/findings.js';
import type { SeriesPoint, TargetInfo } from '../../../protocol/messages.js';
import type { CaptureReport } from '../../../protocol/snapshots.js';
import type { Route } from '../../../server/api.js';
import { canvasPixels, browserUnavailable, launchBrowser, type Browser } from '../../support/browser.js';
import { helloAgent, httpGet, startTestCollector, type TestAgent, type TestCollector } from '../../support/collector-harness.js';
import { fanoutFinding, growthFinding, oomFinding, spawnFinding } from '../../support/sample-findings.js';
import { buildWebInto } from '../../support/web-build.js';

const unavailable = browserUnavailable();
if (unavailable) console.log(`SKIP: ${unavailable}`);

const MiB = 1024 * 1024;
const NODE = 'node-web';
const EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';

const snapshotRow = {
  snapshotId: 'ab'.repeat(16), kind: 'heapsnapshot', targetKey: 'proc:4242:1', pid: 4242, nsPid: 1, comm: 'node', cmdline: 'node server.js',
  namespace: 'payments', pod: 'payment-processor-7d9f', podUid: null, container: 'app', containerId: null, nodeVersion: 'v20.20.2',
  trigger: 'growth', findingId: 'growth-web-1', commandId: null, pairId: null, pairIndex: null, via: 'inspector', takenAtMs: Date.now() - 60_000,
  durationMs: 900, heapUsedBytes: 40 * MiB, node: NODE, agentId: 'fake', bytes: 11, sha256: 'd'.repeat(64), storedAtMs: Date.now() - 50_000,
};
const refusal: CaptureReport = {
  captureId: 'cd'.repeat(16), atMs: Date.now() - 30_000, node: NODE, targetKey: 'proc:4242:1', pid: 4242, namespace: 'payments', pod: 'payment-processor-7d9f',
  container: 'app', trigger: 'on-demand', findingId: null, commandId: null, requested: 'heapsnapshot', outcome: 'refused',
  reason: 'cgroup headroom 20 MiB is below 2 × heap in use (2 × 40 MiB)', reasonCode: 'headroom', snapshotIds: [],
};

/** Fakes of the snapshot endpoints, shaped by the contract; they record what the page asked. */
function fakeSnapshotRoutes(calls: string[]): Route[] {
  return [
    { method: 'GET', path: '/api/v1/snapshots', scope: 'read', handle: ({ req }) => (calls.push(`GET ${req.url}`), { status: 200, json: { snapshots: [snapshotRow] } }) },
    { method: 'GET', path: '/api/v1/captures', scope: 'read', handle: ({ req }) => (calls.push(`GET ${req.url}`), { status: 200, json: { captures: [refusal] } }) },
    {
      method: 'GET', path: '/api/v1/snapshots/:id/download', scope: 'snapshots',
      handle: ({ params }) => (calls.push(`download ${params.id}`), {
        status: 200, text: Buffer.from('{"snapshot"}'), contentType: 'application/octet-stream',
        headers: { 'Content-Disposition': `attachment; filename="payment-processor-7d9f-4242-${params.id}.heapsnapshot"`, 'X-Content-SHA256': 'd'.repeat(64) },
      }),
    },
    {
      method: 'POST', path: '/api/v1/snapshots', scope: 'snapshots',
      handle: async ({ req }) => {
        let body = '';
        for await (const c of req) body += String(c);
        calls.push(`POST ${body}`);
        return { status: 200, json: { capture: { ...refusal, atMs: Date.now() }, snapshots: [] } };
      },
    },
  ];
}

describe('web page against a fake agent', { skip: unavailable ?? false, timeout: 90_000 }, () => {
  let web: ReturnType<typeof buildWebInto>;
  let tc: TestCollector;
  let agent: TestAgent;
  let browser: Browser;
  const snapshotCalls: string[] = [];
  let seq = 1;
  const now = Date.now();

  const sendFindings = async (findings: Finding[], change: 'open' | 'update' = 'open') => {
    const s = seq++;
    agent.send({ type: 'findings', seq: s, events: findings.map((finding) => ({ change, finding })) });
    await agent.next((m) => m.type === 'ack' && m.seq === s);
  };
  const sendSeries = async (targets: TargetInfo[], points: SeriesPoint[]) => {
    const s = seq++;
    agent.send({ type: 'series', seq: s, targets, points });
    await agent.next((m) => m.type === 'ack' && m.seq === s);
  };
  const container: TargetInfo = { targetKey: 'ctr:/kubepods/burstable/podweb/app', kind: 'container', pid: null, comm: null, cmdline: null, namespace: 'payments', pod: 'payment-processor-7d9f', podUid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', container: 'app', containerId: 'a'.repeat(64) };
  const proc: TargetInfo = { ...container, targetKey: 'proc:4242:1', kind: 'process', pid: 4242, comm: 'node', cmdline: 'node server.js' };

  before(async () => {
    web = buildWebInto();
    tc = await startTestCollector({ webRoot: web.dir, extraRoutes: fakeSnapshotRoutes(snapshotCalls) });
    agent = await helloAgent(tc.collector.agentUrl, tc.tokens.agent, 'fake', NODE);
    // Two minutes of a process growing 0.5 MiB/s toward its 256 MiB limit.
    const points: SeriesPoint[] = [];
    for (let i = 0; i <= 120; i += 2) {
      const at = now - (120 - i) * 1000;
      const anon = 150 * MiB + i * 0.5 * MiB + (i % 10) * 0.3 * MiB;
      points.push({ targetKey: proc.targetKey, atMs: at, anonBytes: anon, workingSetBytes: null, limitBytes: 256 * MiB });
      points.push({ targetKey: container.targetKey, atMs: at, anonBytes: anon + 10 * MiB, workingSetBytes: anon + 20 * MiB, limitBytes: 256 * MiB });
    }
    await sendSeries([container, proc], points);
    const growth = growthFinding('growth-web-1', NODE, now - 60_000);
    Object.assign(growth, { updatedAt: now });
    if (growth.kind === 'growth') Object.assign(growth.details, { slopeBytesPerSec: 0.5 * MiB, currentBytes: 210 * MiB, limitBytes: 256 * MiB, etaSec: 92, windowStartMs: now - 100_000, windowEndMs: now });
    const spawn = spawnFinding('spawn-web-1', NODE, now - 50_000, `import os\n# ${EVIL}\nglobal_memory = []\n`);
    spawn.target.cmdline = `python3 /tmp/tmpk3j1.py ${EVIL}`;
    if (spawn.kind === 'suspicious-spawn') spawn.details.argv = ['python3', '/tmp/tmpk3j1.py', EVIL];
    const fanout = fanoutFinding('fanout-web-1', NODE, now - 40_000);
    fanout.target = { ...fanout.target, pid: 4242, comm: 'node', cmdline: 'node server.js' };
    if (fanout.kind === 'fanout') {
      fanout.details.parent = { pid: 4242, comm: 'node', cmdline: 'node server.js' };
      fanout.details.sampleChildren = [{ pid: 5151, comm: 'python3', cmdline: 'python3 /tmp/tmpk3j1.py' }, { pid: 5152, comm: 'python3', cmdline: 'python3 /tmp/tmpa8b2.py' }];
    }
    const oom = oomFinding('oom-web-1', NODE, now - 20_000);
    oom.target = { ...oom.target, pid: 5160, comm: 'python3', cmdline: 'python3 /tmp/tmpzz99.py' };
    if (oom.kind === 'oom-kill') oom.details.victim = { pid: 5160, comm: 'python3', cmdline: 'python3 /tmp/tmpzz99.py', lastRssAnonBytes: 90 * MiB };
    await sendFindings([growth, spawn, fanout, oom]);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    agent?.ws.close();
    await tc?.stop();
    web?.remove();
  });

  const signIn = async (token: string) => {
    const { page } = browser;
    await page.goto(tc.collector.url + '/');
    await page.evaluate(() => sessionStorage.clear());
    await page.reload();
    await page.fill('[data-testid=token-input]', token);
    await page.click('[data-testid=signin-button]');
    await page.waitForSelector('[data-testid=live-state]');
  };

  test('the page is served with a CSP that forbids inline script, and assets with their types', async () => {
    const res = await httpGet(tc.collector.url, '/', null);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    const csp = String(res.headers['content-security-policy']);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(res.body)?.[1];
    assert.ok(js, res.body);
    const asset = await httpGet(tc.collector.url, js, null);
    assert.equal(asset.status, 200);
    assert.match(String(asset.headers['content-type']), /^text\/javascript/);
    assert.match(String(asset.headers['cache-control']), /immutable/);
    assert.doesNotMatch(res.body + asset.body, /https?:\/\/(?!www\.w3\.org)[a-z0-9.-]+\.[a-z]{2,}\//i, 'nothing fetched from the internet');
  });

  test('a wrong token is refused at sign-in and nothing is stored', async () => {
    const { page } = browser;
    await page.goto(tc.collector.url + '/');
    await page.fill('[data-testid=token-input]', 'lw_not-a-real-token');
    await page.click('[data-testid=signin-button]');
    await page.waitForFunction(() => /not valid/.test(document.querySelector('[data-testid=signin-error]')?.textContent ?? ''));
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(new URL(page.url()).search, '');
    // A stored token the collector no longer accepts is dropped and the page asks again.
    await page.evaluate(() => sessionStorage.setItem('leakwatch.token', 'lw_revoked-since'));
    await page.reload();
    await page.waitForFunction(() => /no longer/.test(document.querySelector('[data-testid=signin-error]')?.textContent ?? ''));
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  });

  test('overview lists the pod with its findings; a new finding arrives live without a reload', async () => {
    const { page } = browser;
    await signIn(tc.tokens.read);
    await page.waitForSelector('[data-testid=pod-row][data-pod="payment-processor-7d9f"]');
    await page.waitForFunction(() => document.querySelector('[data-testid=live-state]')?.textContent?.includes('live'));
    assert.ok(!page.url().includes(tc.tokens.read), 'token not in the URL');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('leakwatch.token') !== null), true);
    const loads = await page.evaluate(() => performance.getEntriesByType('navigation').length);
    // A series point first schedules the overview's slow refresh; the finding must not wait for it.
    await sendSeries([], [{ targetKey: container.targetKey, atMs: Date.now(), anonBytes: 220 * MiB, workingSetBytes: null, limitBytes: 256 * MiB }]);
    await new Promise((r) => setTimeout(r, 300));
    const late = oomFinding('oom-web-live', NODE, Date.now());
    late.summary = 'OOM kill arrived live';
    await sendFindings([late]);
    await page.waitForFunction(() => document.querySelector('[data-testid=latest-findings]')?.textContent?.includes('OOM kill arrived live'), null, { timeout: 3000 });
    assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), loads, 'no reload');
    await browser.screenshot('overview-fake-agent');
  });

  test('spawn evidence: rules, parent chain, script as text, sha256, provenance; <script> in a command line stays text', async () => {
    const { page } = browser;
    await page.goto(`${tc.collector.url}/#/finding/spawn-web-1`);
    await page.waitForSelector('[data-testid=spawn-evidence]');
    assert.equal(await page.textContent('[data-testid=target-cmdline]'), `python3 /tmp/tmpk3j1.py ${EVIL}`);
    assert.equal(await page.textContent('[data-testid=spawn-argv]'), `python3 /tmp/tmpk3j1.py ${EVIL}`);
    assert.equal(await page.textContent('[data-testid=script-content]'), `import os\n# ${EVIL}\nglobal_memory = []\n`);
    assert.equal(await page.textContent('[data-testid=script-sha256]'), 'b'.repeat(64));
    assert.match((await page.textContent('[data-testid=provenance]')) ?? '', /base64 decoding of \/app\/resources\.dat/);
    assert.match((await page.textContent('[data-testid=spawn-rules]')) ?? '', /script-in-world-writable-dir — the script lives in \/tmp/);
    assert.match((await page.textContent('[data-testid=parent-chain]')) ?? '', /node server\.js/);
    // The finding links to the charts of what it is about (here: its container).
    await page.waitForSelector('[data-testid=chart-links] a[href="#/target/node-web/ctr%3A%2Fkubepods%2Fburstable%2Fpodweb%2Fapp"]');
    const injected = await page.evaluate(() => ({ pwned: (window as unknown as { __pwned?: number }).__pwned ?? null, scripts: document.scripts.length, imgs: document.images.length }));
    assert.deepEqual(injected, { pwned: null, scripts: 1, imgs: 0 }, 'nothing from the evidence became markup');
    // Reading spawn evidence is audited by the collector.
    assert.ok(tc.store.listAudit({ action: 'finding.read' }).some((e) => e.subject === 'spawn-web-1' && e.actor === 'read-token'));
    await browser.screenshot('spawn-evidence');
  });

  test('target view: the chart is drawn with the limit line and the ETA label', async () => {
    const { page } = browser;
    await page.goto(`${tc.collector.url}/#/target/${NODE}/${encodeURIComponent(proc.targetKey)}`);
    await page.waitForSelector('[data-testid=target-chart] canvas');
    await page.waitForFunction(() => /OOM in \d/.test(document.querySelector('[data-testid=eta-label]')?.textContent ?? ''));
    assert.match((await page.textContent('[data-testid=limit-label]')) ?? '', /limit 256 MiB/);
    const px = await canvasPixels(page, '[data-testid=target-chart] canvas', [220, 38, 38]);
    assert.ok(px.drawn > px.total * 0.01, `drawn pixels ${px.drawn} of ${px.total}`);
    assert.ok(px.matching > 300, `limit-coloured pixels ${px.matching}`);
    const trend = await canvasPixels(page, '[data-testid=target-chart] canvas', [217, 119, 6]);
    assert.ok(trend.matching > 100, `trend/ETA pixels ${trend.matching}`);
    // A new point arrives live and the chart takes it without a reload.
    const before = await page.textContent('[data-testid=target-chart] + p');
    await sendSeries([], [{ targetKey: proc.targetKey, atMs: Date.now(), anonBytes: 230 * MiB, workingSetBytes: null, limitBytes: 256 * MiB }]);
    await page.waitForFunction((b) => document.querySelector('[data-testid=target-chart] + p')?.textContent !== b && /230 MiB/.test(document.querySelector('[data-testid=target-chart] + p')?.textContent ?? ''), before);
    await browser.screenshot('target-view');
  });

  test('snapshots panel: list, refusals with reasons; no take or download without the snapshots scope', async () => {
    const { page } = browser;
    await page.waitForSelector('[data-testid=snapshot-row]');
    assert.match((await page.textContent('[data-testid=snapshots-table]')) ?? '', new RegExp(`${'d'.repeat(64)}[\\s\\S]*|growth finding growth-web-1`));
    assert.match((await page.textContent('[data-testid=captures]')) ?? '', /refused — cgroup headroom 20 MiB/);
    assert.equal(await page.$('[data-testid=take-snapshot]'), null);
    assert.equal(await page.$('[data-testid=snapshot-row] button'), null);
    assert.ok(snapshotCalls.some((c) => c.startsWith('GET /api/v1/snapshots?targetKey=proc%3A4242%3A1')), snapshotCalls.join(' | '));
  });

  test('with the snapshots scope: take shows the refusal reason, download hands over the bytes by blob', async () => {
    const { page } = browser;
    await signIn(tc.tokens.admin);
    await page.goto(`${tc.collector.url}/#/target/${NODE}/${encodeURIComponent(proc.targetKey)}`);
    await page.click('[data-testid=take-snapshot]');
    await page.waitForFunction(() => /refused: cgroup headroom/.test(document.querySelector('[data-testid=snapshot-message]')?.textContent ?? ''));
    const post = snapshotCalls.find((c) => c.startsWith('POST '));
    assert.deepEqual(JSON.parse(post!.slice(5)), { namespace: 'payments', pod: 'payment-processor-7d9f', container: 'app', pid: 4242 });
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=snapshot-row] button')]);
    assert.equal(download.suggestedFilename(), `payment-processor-7d9f-4242-${'ab'.repeat(16)}.heapsnapshot`);
    assert.ok(download.url().startsWith('blob:'), download.url());
    await browser.screenshot('snapshots-panel');
  });

  test('process tree: the fan-out parent, its children and the OOM-killed child', async () => {
    const { page } = browser;
    await page.goto(`${tc.collector.url}/#/pod/${NODE}/payments/payment-processor-7d9f`);
    await page.waitForSelector('[data-testid=tree-node][data-pid="4242"]');
    const parent = await page.getAttribute('[data-testid=tree-node][data-pid="4242"]', 'class');
    assert.match(parent ?? '', /fanout-parent/);
    // Children are nested under the parent; the killed one is placed there by its command's shape.
    for (const pid of ['5151', '5152', '5160']) assert.ok(await page.$(`[data-testid=tree-node][data-pid="4242"] [data-testid=tree-node][data-pid="${pid}"]`), `child ${pid} under the parent`);
    assert.match((await page.getAttribute('[data-testid=tree-node][data-pid="5160"]', 'class')) ?? '', /oom-killed/);
    assert.match((await page.getAttribute('[data-testid=tree-node][data-pid="5151"]', 'class')) ?? '', /suspicious/);
    await browser.screenshot('process-tree');
    assert.deepEqual(browser.errors.filter((e) => /Content Security Policy|pageerror/.test(e)), [], 'no CSP violation or page error');
  });
});
