/// <reference lib="dom" />
// End to end as an engineer meets it: the collector and an agent for this machine, wired as
// `leakwatch up` wires them, with the metrics-app seed incident running in a pod-shaped memory
// cgroup (192 MiB limit). Signed in in Debian's Chromium before the incident starts, the page
// must show the findings as the agent reports them, draw the growth against the limit with the
// ETA, and show the spawned script as text with its provenance. data-processor (seed 003) runs
// beside it for a steady leak with an ETA.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type AgentRuntime } from '../../../agent/runtime.js';
import { demoAvailability, runScenario, scenarios, type ScenarioHandle } from '../../../demo/scenarios.js';
import type { Finding } from '../../../protocol/findings.js';
import { browserUnavailable, canvasPixels, launchBrowser, type Browser } from '../../support/browser.js';
import { startTestCollector, type TestCollector } from '../../support/collector-harness.js';
import { buildWebInto } from '../../support/web-build.js';

const demo = demoAvailability();
const skip = browserUnavailable() ?? (demo.ok ? null : demo.reason);
if (skip) console.log(`SKIP: ${skip}`);

const METRICS_POD = scenarios.get('metrics-app')!.podName;
const LEAK_POD = scenarios.get('data-processor')!.podName;
const NODE = 'web-e2e-node';

describe('web page with the metrics-app incident on this machine', { skip: skip ?? false, timeout: 150_000 }, () => {
  let web: ReturnType<typeof buildWebInto>;
  let tc: TestCollector;
  let runtime: AgentRuntime;
  const runs: ScenarioHandle[] = [];
  let browser: Browser;
  let logRoot: string;

  const waitForStored = async (what: string, pod: string, match: (f: Finding) => boolean, timeoutMs: number): Promise<Finding> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = tc.store.listFindings({ pod });
      const f = found.find(match);
      if (f) return f;
      if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms in ${pod}; have ${found.map((x) => x.summary).join(' | ').slice(0, 2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  before(async () => {
    web = buildWebInto();
    logRoot = mkdtempSync(join(tmpdir(), 'leakwatch-web-e2e-'));
    tc = await startTestCollector({ webRoot: web.dir });
    runtime = startAgent({
      nodeName: NODE,
      intervalSec: 1,
      sampler: { procRoot: '/proc', cgroupRoot: '/sys/fs/cgroup', podLogRoot: join(logRoot, 'pods') },
      kmsgPath: '/dev/kmsg',
      includeHost: false,
      collector: { url: tc.collector.url, token: tc.tokens.agent },
      spoolDir: join(logRoot, 'spool'),
      // Points every second instead of every 5 s, so the chart moves while the test watches.
      series: { intervalMs: 1000 },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await Promise.all(runs.map((r) => r.stop()));
    await browser?.close();
    await runtime?.close({ flushMs: 500 });
    await tc?.stop();
    web?.remove();
    rmSync(logRoot, { recursive: true, force: true });
  });

  test('findings appear live, the spawn evidence shows the script as text, the tree and the chart draw what happened', async () => {
    const { page } = browser;
    await page.goto(tc.collector.url + '/');
    await page.fill('[data-testid=token-input]', tc.tokens.read);
    await page.click('[data-testid=signin-button]');
    await page.waitForFunction(() => document.querySelector('[data-testid=live-state]')?.textContent?.includes('live'), null, { timeout: 10_000 });
    // The agent's first pass is the baseline for spawn judging, as in the seed tests.
    await new Promise((r) => setTimeout(r, 2500));
    // metrics-app (spawns, fan-out, OOM kills of children) beside data-processor (a steady leak
    // with an ETA): metrics-app's children die too young to be trended themselves.
    runs.push(await runScenario('metrics-app', { logRoot }));
    runs.push(await runScenario('data-processor', { logRoot }));

    // The first finding, as soon as the collector stored it, shows without a reload.
    const first = await waitForStored('finding', METRICS_POD, () => true, 60_000);
    const storedAt = Date.now();
    await page.waitForSelector(`[data-testid=pod-row][data-pod="${METRICS_POD}"] [data-testid=finding-badge]`, { timeout: 5_000 });
    const shownAfterMs = Date.now() - storedAt;
    assert.ok(shownAfterMs < 5_000, `shown ${shownAfterMs} ms after it was stored (${first.kind})`);
    assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1, 'no reload');

    // The spawned "metrics collector": its script as text, and where it came from.
    const spawn = await waitForStored('suspicious spawn with provenance', METRICS_POD, (f) => f.kind === 'suspicious-spawn' && f.details.provenance !== null, 60_000);
    await page.waitForSelector(`a[href="#/finding/${spawn.id}"]`, { timeout: 5_000 });
    await browser.screenshot('overview-metrics-app');
    await page.click(`[data-testid=pod-row][data-pod="${METRICS_POD}"] a[href="#/finding/${spawn.id}"]`);
    await page.waitForSelector('[data-testid=script-content]');
    assert.match((await page.textContent('[data-testid=script-content]')) ?? '', /global_memory/);
    assert.match((await page.textContent('[data-testid=provenance]')) ?? '', /base64 decoding of \S*resources\.dat/);
    assert.match((await page.textContent('[data-testid=spawn-rules]')) ?? '', /tmp-script/);
    assert.match((await page.textContent('[data-testid=parent-chain]')) ?? '', /app\.py/);
    await browser.screenshot('spawn-metrics-app');

    // The pod's process tree: the server as fan-out parent, its children, the OOM-killed ones.
    await waitForStored('fan-out', METRICS_POD, (f) => f.kind === 'fanout', 60_000);
    await waitForStored('OOM kill', METRICS_POD, (f) => f.kind === 'oom-kill', 60_000);
    await page.goto(`${tc.collector.url}/#/pod/${NODE}/default/${METRICS_POD}`);
    await page.waitForSelector('[data-testid=tree-node].fanout-parent [data-testid=tree-node].oom-killed', { timeout: 10_000 });
    await browser.screenshot('tree-metrics-app');

    // The leak's chart, opened from its sparkline in the overview: limit line, trend, ETA.
    await waitForStored('growth with an ETA', LEAK_POD, (f) => f.kind === 'growth' && f.details.etaSec !== null, 90_000);
    await page.goto(`${tc.collector.url}/#/`);
    await page.click(`[data-testid=pod-row][data-pod="${LEAK_POD}"] a[title="open the memory chart"]`);
    await page.waitForSelector('[data-testid=target-chart] canvas');
    await page.waitForFunction(() => /OOM in \d/.test(document.querySelector('[data-testid=eta-label]')?.textContent ?? ''), null, { timeout: 10_000 });
    assert.match((await page.textContent('[data-testid=limit-label]')) ?? '', /limit 128 MiB/);
    const limit = await canvasPixels(page, '[data-testid=target-chart] canvas', [220, 38, 38]);
    assert.ok(limit.drawn > limit.total * 0.01, `drawn pixels ${limit.drawn} of ${limit.total}`);
    assert.ok(limit.matching > 200, `limit-line pixels ${limit.matching}`);
    const trend = await canvasPixels(page, '[data-testid=target-chart] canvas', [217, 119, 6]);
    assert.ok(trend.matching > 50, `trend and ETA pixels ${trend.matching}`);
    // Points keep arriving over the stream while the view is open.
    const before = (await page.textContent('[data-testid=target-chart] + p')) ?? '';
    await page.waitForFunction((b) => (document.querySelector('[data-testid=target-chart] + p')?.textContent ?? b) !== b, before, { timeout: 10_000 });
    const shot = await browser.screenshot('target-data-processor');
    if (process.env.LEAKWATCH_UPDATE_DOCS_SCREENSHOT) {
      // The README's picture: half a minute more of the leak, up to its kill.
      await new Promise((r) => setTimeout(r, 30_000));
      await browser.screenshot('target-data-processor');
      mkdirSync('docs', { recursive: true });
      copyFileSync(shot, join('docs', 'web-target-view.png'));
    }
    assert.deepEqual(browser.errors.filter((e) => /Content Security Policy|pageerror/.test(e)), []);
  });
});
