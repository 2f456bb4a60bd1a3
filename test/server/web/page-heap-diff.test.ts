/// <reference lib="dom" />
// The finding view of a growth finding in Debian's Chromium: the top growers table of the heap
// diff the collector computed from a real snapshot pair (uploaded by a real Uplink), and a failed
// diff's reason. The leaking objects' shape is named by a property key holding markup, so the
// class name is `{<img src=x onerror=...>, n}` (values that are heap objects: a Smi has no edge,
// so no shape): it must stay text.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DiskQueue } from '../../../agent/disk-queue.js';
import { SnapshotSpool } from '../../../agent/snapshot-spool.js';
import { Uplink } from '../../../agent/uplink.js';
import { snapshotDir, snapshotFilePath } from '../../../server/store/snapshot-files.js';
import { browserUnavailable, launchBrowser, type Browser, signIn as signInPage } from '../../support/browser.js';
import { httpGet, startTestCollector, type TestCollector } from '../../support/collector-harness.js';
import { recordingLogger, waitFor } from '../../support/protocol-peer.js';
import { growthFinding } from '../../support/sample-findings.js';
import { newId, sampleMeta, sha256Of } from '../../support/snapshot-fixtures.js';
import { buildWebInto } from '../../support/web-build.js';

const unavailable = browserUnavailable();
if (unavailable) console.log(`SKIP: ${unavailable}`);

const NODE = 'node-diff';
const EVIL_KEY = '<img src=x onerror=window.__pwned=3>';

describe('web page: heap diff of a growth finding', { skip: unavailable ?? false, timeout: 120_000 }, () => {
  let web: ReturnType<typeof buildWebInto>;
  let tc: TestCollector;
  let browser: Browser;
  let uplink: Uplink;
  let queue: DiskQueue;
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-web-heapdiff-'));

  before(async () => {
    // Two snapshots of one process, 30000 objects of the evil shape leaked between them (bounded heap).
    const a = join(dir, 'a.heapsnapshot');
    const b = join(dir, 'b.heapsnapshot');
    const script = `const v8 = require('v8'); const [a, b, key] = process.argv.slice(1); const kept = []; v8.writeHeapSnapshot(a); for (let i = 0; i < 30000; i++) kept.push({ [key]: true, n: null }); v8.writeHeapSnapshot(b);`;
    execFileSync(process.execPath, ['--max-old-space-size=128', '-e', script, a, b, EVIL_KEY], { timeout: 60_000 });

    web = buildWebInto();
    tc = await startTestCollector({ webRoot: web.dir });
    const spoolDir = join(dir, 'spool');
    const log = recordingLogger();
    queue = new DiskQueue({ dir: spoolDir });
    const spool = new SnapshotSpool({ spoolDir, log });
    uplink = new Uplink({ url: tc.collector.url, token: tc.tokens.agent, agentId: NODE, node: NODE, version: 'test', queue, log, backoffBaseMs: 50, backoffCapMs: 300, snapshotSpool: spool });
    uplink.enqueue([
      { change: 'open', finding: growthFinding('growth-diffed', NODE, Date.now()) },
      { change: 'open', finding: growthFinding('growth-broken-diff', NODE, Date.now()) },
    ]);
    uplink.start();
    const pairId = newId();
    for (const [index, file] of [a, b].entries()) {
      const meta = sampleMeta({ pairId, pairIndex: index, findingId: 'growth-diffed', trigger: 'growth' });
      const path = join(spool.workDir, `${meta.snapshotId}.capture`);
      copyFileSync(file, path);
      const content = readFileSync(path);
      await spool.accept({ path, bytes: content.length, sha256: sha256Of(content), meta });
    }
    // The second finding's pair is stored with its later file cut in half: its diff fails.
    const brokenPair = newId();
    for (const [index, file] of [a, b].entries()) {
      const meta = sampleMeta({ pairId: brokenPair, pairIndex: index, findingId: 'growth-broken-diff', trigger: 'growth' });
      const dest = snapshotFilePath(snapshotDir(tc.dataDir), meta.snapshotId, 'heapsnapshot');
      copyFileSync(file, dest);
      if (index === 1) truncateSync(dest, Math.floor(statSync(dest).size / 2));
      const content = readFileSync(dest);
      tc.store.insertSnapshot({ ...meta, node: NODE, agentId: NODE, bytes: content.length, sha256: sha256Of(content), storedAtMs: Date.now() });
    }
    // Planted without an upload, so nothing queued it: asking for it queues it (for its finding).
    const broken = tc.store.listSnapshots({ findingId: 'growth-broken-diff' }).sort((x, y) => (x.pairIndex ?? 0) - (y.pairIndex ?? 0));
    await httpGet(tc.collector.url, `/api/v1/snapshots/${broken[0]!.snapshotId}/diff/${broken[1]!.snapshotId}`, tc.tokens.read);
    await waitFor(
      'both diffs finished',
      () => ['growth-diffed', 'growth-broken-diff'].every((id) => ['done', 'failed'].includes(tc.store.listHeapDiffs({ findingId: id })[0]?.status ?? '')),
      60_000,
    ).catch(() => {});
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await uplink?.close({ flushMs: 0 });
    queue?.close();
    await tc?.stop();
    web?.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  const signIn = (token: string): Promise<void> => signInPage(browser.page, tc.collector.url, token);

  test('the growers table: the leaking shape first, its markup-bearing name as text, deltas and retainer path', async () => {
    const { page } = browser;
    await signIn(tc.tokens.read);
    await page.goto(`${tc.collector.url}/#/finding/growth-diffed`);
    await page.waitForSelector('[data-testid=heap-growers]', { timeout: 30_000 });
    assert.match((await page.textContent('[data-testid=heap-diff-status]')) ?? '', /^done — \+\d+ objects/);
    const first = await page.$$eval('[data-testid=heap-grower]', (rows) => rows.map((r) => Array.from(r.querySelectorAll('td'), (td) => td.textContent ?? '')));
    assert.ok(first[0], 'a grower row');
    const [cls, count, size, path] = first[0];
    assert.equal(cls, `{${EVIL_KEY}, n}`);
    assert.ok(Number(count) >= 30_000, count);
    assert.match(size ?? '', /^\+[\d.]+ (KiB|MiB)$/);
    assert.match(path ?? '', /← .*kept/);
    const injected = await page.evaluate(() => ({ pwned: (window as unknown as { __pwned?: number }).__pwned ?? null, imgs: document.images.length }));
    assert.deepEqual(injected, { pwned: null, imgs: 0 }, 'the class name did not become markup');
    await browser.screenshot('heap-diff-growers');
  });

  test('a failed diff shows its reason and no table', async () => {
    const { page } = browser;
    await page.goto(`${tc.collector.url}/#/finding/growth-broken-diff`);
    await page.waitForFunction(() => /^failed: /.test(document.querySelector('[data-testid=heap-diff-status]')?.textContent ?? ''), null, { timeout: 30_000 });
    assert.match((await page.textContent('[data-testid=heap-diff-status]')) ?? '', /exited with 1: .+/);
    assert.equal(await page.$('[data-testid=heap-growers]'), null);
    assert.deepEqual(browser.errors.filter((e) => /Content Security Policy|pageerror/.test(e)), [], 'no CSP violation or page error');
  });
});
