import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { HeapDiff } from '../../../protocol/heap-diff.js';
import { runCli } from '../../support/cli.js';
import { takeSnapshotPair } from '../../support/heap-targets.js';

test('snapshots diff: table with growers and retainer paths, --json, one-line errors', async (t) => {
  const pair = takeSnapshotPair('sessions');
  t.after(() => pair.cleanup());

  const human = runCli(['snapshots', 'diff', pair.before, pair.after, '--top', '3']);
  assert.equal(human.status, 0, human.stderr);
  assert.match(human.stdout, /matched by object id/);
  assert.match(human.stdout, /growers \(size delta >= 256KiB/);
  assert.match(human.stdout, /^Session +20000 +0 +\+20000 /m);
  assert.match(human.stdout, /Session ← .*\.sessions/);

  const json = runCli(['snapshots', 'diff', pair.before, pair.after, '--json', '--match', 'aggregates']);
  assert.equal(json.status, 0, json.stderr);
  const diff = JSON.parse(json.stdout) as HeapDiff;
  assert.equal(diff.method, 'aggregates');
  assert.equal(diff.growers[0]?.className, 'Session');
  assert.equal(diff.growers[0]?.countDelta, 20000);

  const missing = runCli(['snapshots', 'diff', join(pair.dir, 'nope.heapsnapshot'), pair.after]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^leakwatch: cannot read .*nope\.heapsnapshot.*\n$/);

  const cut = join(pair.dir, 'cut.heapsnapshot');
  writeFileSync(cut, '{"snapshot":{"meta":');
  const truncated = runCli(['snapshots', 'diff', cut, pair.after]);
  assert.equal(truncated.status, 1);
  assert.match(truncated.stderr, /^leakwatch: truncated heap snapshot .* in section "snapshot"\n$/);
  assert.equal(truncated.stdout, '');

  const badFlag = runCli(['snapshots', 'diff', pair.before, pair.after, '--match', 'nope']);
  assert.notEqual(badFlag.status, 0);
  assert.match(badFlag.stderr, /expected auto, ids or aggregates/);
});
