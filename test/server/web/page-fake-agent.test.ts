/// <reference lib="dom" />
// The web page in Debian's Chromium against a real collector fed by a fake agent (a WebSocket
// speaking the protocol): evidence is shown as text (a `<script>` in a command line stays text),
// findings arrive live without a reload, the chart draws its limit and ETA, the process tree marks
// the fan-out and the OOM-killed child, and the snapshots panel follows the token's scopes. The
// snapshots behind the panel are real: a real Uplink on the same node uploads heap snapshots
// written by v8.writeHeapSnapshot() through the real upload path, reports a refused capture, and
// answers the page's "take" with a refused CaptureReport, as agent/capture does when a gate says no.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskQueue } from '../../../agent/disk-queue.js';
import { SnapshotSpool } from '../../../agent/snapshot-spool.js';
import { Uplink } from '../../../agent/uplink.js';
import type { Finding } from '../../../protocol/findings.js';
import type { SeriesPoint, TargetInfo } from '../../../protocol/messages.js';
import type { SnapshotCommand } from '../../../protocol/snapshots.js';
import type { CapturedFile } from '../../../agent/capture/types.js';
import { canvasPixels, browserUnavailable, launchBrowser, type Browser, signIn as signInPage } from '../../support/browser.js';
import { helloAgent, httpGet, startTestCollector, type TestAgent, type TestCollector } from '../../support/collector-harness.js';
import { recordingLogger, waitFor } from '../../support/protocol-peer.js';
import { fanoutFinding, growthFinding, oomFinding, spawnFinding } from '../../support/sample-findings.js';
import { realHeapSnapshot, sampleReport } from '../../support/snapshot-fixtures.js';
import { buildWebInto } from '../../support/web-build.js';

const unavailable = browserUnavailable();
if (unavailable) console.log(`SKIP: ${unavailable}`);

const MiB = 1024 * 1024;
const NODE = 'node-web';
const EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';

/** The headroom gate's wording (protocol/snapshots.ts): what a refusal tells the user. */
const HEADROOM_REFUSAL = 'cgroup headroom 20 MiB is below 2 × heap in use (2 × 40 MiB)';

describe('web page against a fake agent', { skip: unavailable ?? false, timeout: 90_000 }, () => {
  let web: ReturnType<typeof buildWebInto>;
  let tc: TestCollector;
  let agent: TestAgent;
  let browser: Browser;
  let snapshotAgent: { uplink: Uplink; queue: DiskQueue; dir: string } | undefined;
  /** What the snapshot agent was asked to do by the collector. */
  const snapshotCommands: SnapshotCommand[] = [];
  /** Stored through the real upload: one of the growing process, one of another process of the pod. */
  let ownSnapshot: CapturedFile;
  let otherSnapshot: CapturedFile;
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
  const container: TargetInfo = { targetKey: 'ctr:/kubepods/burstable/podweb/app', kind: 'container', pid: null, ppid: null, comm: null, cmdline: null, namespace: 'payments', pod: 'payment-processor-7d9f', podUid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', container: 'app', containerId: 'a'.repeat(64) };
  const proc: TargetInfo = { ...container, targetKey: 'proc:4242:1', kind: 'process', pid: 4242, ppid: null, comm: 'node', cmdline: 'node server.js' };

  before(async () => {
    web = buildWebInto();
    tc = await startTestCollector({ webRoot: web.dir });
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
    if (oom.kind === 'oom-kill') oom.details.victim = { pid: 5160, ppid: null, comm: 'python3', cmdline: 'python3 /tmp/tmpzz99.py', lastRssAnonBytes: 90 * MiB };
    await sendFindings([growth, spawn, fanout, oom]);
    await startSnapshotAgent();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    if (snapshotAgent) {
      await snapshotAgent.uplink.close({ flushMs: 0 });
      snapshotAgent.queue.close();
      rmSync(snapshotAgent.dir, { recursive: true, force: true });
    }
    agent?.ws.close();
    await tc?.stop();
    web?.remove();
  });

  /**
   * A second, real agent on the same node (the newest connection, so take-snapshot commands go to
   * it). It uploads two real heap snapshots of the pod, reports an automatic capture the headroom
   * gate refused, and answers `snapshot` commands with a refusal of the same gate.
   */
  const startSnapshotAgent = async () => {
    const dir = mkdtempSync(join(tmpdir(), 'leakwatch-web-snapshots-'));
    const log = recordingLogger();
    const queue = new DiskQueue({ dir });
    const spool = new SnapshotSpool({ spoolDir: dir, log });
    const uplink = new Uplink({ url: tc.collector.url, token: tc.tokens.agent, agentId: 'snap-agent', node: NODE, version: 'test', queue, log, backoffBaseMs: 50, backoffCapMs: 300, snapshotSpool: spool });
    snapshotAgent = { uplink, queue, dir };
    const pod = { namespace: 'payments', pod: 'payment-processor-7d9f', podUid: container.podUid, container: 'app', containerId: container.containerId };
    uplink.onCommand('snapshot', (command, { commandId }) => {
      const cmd = command as unknown as SnapshotCommand;
      snapshotCommands.push(cmd);
      const report = sampleReport({ node: NODE, targetKey: proc.targetKey, pid: cmd.pid ?? null, namespace: cmd.namespace, pod: cmd.pod, container: cmd.container ?? null, trigger: 'on-demand', commandId, requested: cmd.kind ?? 'heapsnapshot', outcome: 'refused', reason: HEADROOM_REFUSAL, reasonCode: 'headroom', snapshotIds: [] });
      uplink.reportCapture(report);
      return report;
    });
    uplink.start();
    await waitFor('snapshot agent connected', () => uplink.state().connected);
    const [own, other] = await Promise.all([
      realHeapSnapshot(spool.workDir, { ...pod, targetKey: proc.targetKey, trigger: 'growth', findingId: 'growth-web-1', takenAtMs: now - 60_000 }),
      realHeapSnapshot(spool.workDir, { ...pod, targetKey: 'proc:4343:1', pid: 4343, trigger: 'on-demand', takenAtMs: now - 45_000 }),
    ]);
    // realHeapSnapshot records the pid of the child that wrote it; these stand for the pod's processes.
    ownSnapshot = { ...own, meta: { ...own.meta, pid: 4242 } };
    otherSnapshot = { ...other, meta: { ...other.meta, pid: 4343 } };
    await spool.accept(ownSnapshot);
    await spool.accept(otherSnapshot);
    // The growth detector's automatic capture, refused by the headroom gate before the page opened.
    uplink.reportCapture(sampleReport({ node: NODE, targetKey: proc.targetKey, pid: 4242, ...pod, trigger: 'growth', findingId: 'growth-web-1', atMs: now - 30_000, reason: HEADROOM_REFUSAL, reasonCode: 'headroom' }));
    await waitFor('snapshots stored and the refusal recorded', () => tc.store.getSnapshot(ownSnapshot.meta.snapshotId) !== null && tc.store.getSnapshot(otherSnapshot.meta.snapshotId) !== null && tc.store.listCaptures({ findingId: 'growth-web-1' }).length === 1, 30_000);
  };

  const signIn = (token: string): Promise<void> => signInPage(browser.page, tc.collector.url, token);

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
    // Still on the process's target view, signed in with the read token.
    await page.waitForSelector('[data-testid=snapshot-row]');
    await page.waitForSelector('[data-testid=captures]');
    const table = (await page.textContent('[data-testid=snapshots-table]')) ?? '';
    assert.ok(table.includes(ownSnapshot.sha256), table);
    assert.match(table, /growth finding growth-web-1/);
    assert.match(table, /node \(pid 4242\)/);
    // The listing is of this process only: the pod's other process has its own.
    assert.equal(await page.$$eval('[data-testid=snapshot-row]', (rows) => rows.length), 1);
    assert.ok(!table.includes(otherSnapshot.sha256), 'the other process\'s snapshot is not listed here');
    const captures = (await page.textContent('[data-testid=captures]')) ?? '';
    assert.match(captures, /heapsnapshot · refused — cgroup headroom 20 MiB is below 2 × heap in use \(2 × 40 MiB\)/);
    assert.match(captures, /headroom/);
    assert.equal(await page.$('[data-testid=take-snapshot]'), null);
    assert.equal(await page.$('[data-testid=snapshot-row] button'), null);
    // The container view lists every snapshot of the pod.
    await page.goto(`${tc.collector.url}/#/target/${NODE}/${encodeURIComponent(container.targetKey)}`);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=snapshot-row]').length === 2);
  });

  test('with the snapshots scope: take shows the refusal reason, download hands over the bytes by blob', async () => {
    const { page } = browser;
    await signIn(tc.tokens.admin);
    await page.goto(`${tc.collector.url}/#/target/${NODE}/${encodeURIComponent(proc.targetKey)}`);
    await page.waitForSelector('[data-testid=snapshot-row] button');
    await page.click('[data-testid=take-snapshot]');
    await page.waitForFunction(() => /^refused: cgroup headroom 20 MiB/.test(document.querySelector('[data-testid=snapshot-message]')?.textContent ?? ''));
    // The collector routed the page's request to the agent of the pod's node, as asked.
    assert.deepEqual(snapshotCommands, [{ action: 'snapshot', namespace: 'payments', pod: 'payment-processor-7d9f', container: 'app', pid: 4242 }]);
    assert.ok(tc.store.listAudit({ action: 'snapshot.take' }).some((e) => e.actor === 'admin-token'));
    // The refusal is recorded and the panel, reloaded, lists it beside the earlier one.
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=captures] li.outcome-refused').length === 2);
    assert.equal(tc.store.listCaptures({ targetKey: proc.targetKey, outcome: 'refused' }).length, 2);

    const id = ownSnapshot.meta.snapshotId;
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=snapshot-row] button')]);
    assert.equal(download.suggestedFilename(), `payment-processor-7d9f-4242-${id}.heapsnapshot`);
    assert.ok(download.url().startsWith('blob:'), download.url());
    const path = await download.path();
    assert.ok(path, 'the download was saved');
    const bytes = readFileSync(path);
    assert.equal(bytes.length, ownSnapshot.bytes);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), ownSnapshot.sha256, 'exactly the stored bytes');
    JSON.parse(bytes.toString('utf8'));
    await page.waitForFunction(() => /^downloaded /.test(document.querySelector('[data-testid=snapshot-message]')?.textContent ?? ''));
    assert.doesNotMatch((await page.textContent('[data-testid=snapshot-message]')) ?? '', /DIFFERS/);
    assert.ok(tc.store.listAudit({ action: 'snapshot.download' }).some((e) => e.subject === id && e.actor === 'admin-token'));
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
