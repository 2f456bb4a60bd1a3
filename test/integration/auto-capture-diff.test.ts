// Issues 5 and 8 together, with nothing stubbed: `leakwatch up` watches a Node.js process that
// leaks objects of its own class in a pod-shaped memory cgroup. The agent reports growth, takes two
// heap snapshots of it on one inspector session (no code change in the target), uploads them;
// the collector diffs the pair in a child process and attaches the top grower to the finding,
// which `leakwatch findings --json` then shows.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFakePod, fakeNodeAvailability, type FakePod } from '../support/fake-node.js';
import { runCli, startUp, type RunningUp } from '../support/cli.js';
import { isAlive, writeTargetScript } from '../support/capture-targets.js';
import type { Finding } from '../../protocol/findings.js';
import type { HeapDiffRecord } from '../../protocol/heap-diff-record.js';

const availability = fakeNodeAvailability();
const MiB = 1024 * 1024;
// The target leaks two things every 100 ms, both kept forever: a 150 KiB Buffer (off the JS heap:
// it makes RSS climb ~1.5 MiB/s, so growth is found while the heap is still small enough for the
// headroom gate to allow full snapshots) and 30 objects of its own class (~0.3 MiB/s of heap: what
// the diff must find). It stops after 100 s (~220 MiB with Node itself, under the 256 MiB limit).
const TARGET_SOURCE = `
class SessionRecord { constructor(i) { this.i = i; this.tags = new Array(120).fill(i); } }
const records = (globalThis.records = []);
const buffers = (globalThis.buffers = []);
let ticks = 0;
const tick = setInterval(() => {
  buffers.push(Buffer.alloc(150 * 1024, ticks & 0xff));
  for (let n = 0; n < 30; n++) records.push(new SessionRecord(records.length));
  if (++ticks >= 1000) clearInterval(tick);
}, 100);
setInterval(() => {}, 1 << 30);
`;

describe('automatic capture on growth, diffed by the collector', { skip: availability.ok ? false : `SKIP: ${availability.ok ? '' : availability.reason}`, timeout: 300_000 }, () => {
  let dir: string;
  let up: RunningUp | undefined;
  let target: ChildProcess;
  let env: NodeJS.ProcessEnv;
  let pod: FakePod;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'leakwatch-auto-diff-'));
    pod = createFakePod({ namespace: 'shop', name: 'sessions-6c8d', containers: [{ name: 'api', limitBytes: 256 * MiB }] });
    up = await startUp(join(dir, 'data'), ['--pod-log-root', pod.podLogRoot, '--capture-pair-spacing', '15s']);
    env = up.env;
    const script = writeTargetScript(dir, 'sessions.cjs', TARGET_SOURCE);
    target = pod.spawnIn('api', process.execPath, [script], { stdio: ['ignore', 'ignore', 'inherit'] });
  });

  after(async () => {
    await up?.stop();
    target?.kill('SIGKILL');
    await pod?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the growth finding gets its heap diff: the leak ranks first, with the path to what holds it', async () => {
    let finding: (Finding & { heapDiff?: HeapDiffRecord }) | undefined;
    const until = Date.now() + 240_000;
    while (Date.now() < until) {
      const r = runCli(['findings', '--kind', 'growth', '--pod', 'sessions-6c8d', '--json'], { env });
      assert.equal(r.status, 0, r.stderr);
      const list = JSON.parse(r.stdout) as Array<Finding & { heapDiff?: HeapDiffRecord }>;
      finding = list.find((f) => f.target.pid === target.pid && f.heapDiff?.status === 'done') ?? list.find((f) => f.heapDiff?.status === 'failed');
      if (finding) break;
      await new Promise((res) => setTimeout(res, 2000));
    }
    const captures = runCli(['snapshots', 'captures', '--pod', 'shop/sessions-6c8d', '--json'], { env });
    assert.ok(finding, `no growth finding with a finished heap diff; captures: ${captures.stdout.slice(0, 2000)}`);
    assert.equal(finding.heapDiff!.status, 'done', `diff failed: ${finding.heapDiff!.reason}`);
    const growers = finding.heapDiff!.result!.growers;
    const top = growers[0];
    assert.ok(top, 'a grower above noise');
    // What grew most between the two snapshots is the buffers' backing stores (DevTools ranks them
    // so too), and the path from a GC root names the array that keeps them: the leak's holder.
    assert.equal(top.className, 'system / JSArrayBufferData', JSON.stringify(growers.map((g) => g.className)));
    assert.ok(top.countDelta > 0);
    assert.match(top.retainerPath ?? '', /buffers/, `retainer path: ${top.retainerPath}`);
    assert.ok(isAlive(target.pid!), 'the target survived both snapshots');

    // Both snapshots are stored as one pair for that finding.
    const ls = runCli(['snapshots', 'ls', '--pod', 'shop/sessions-6c8d', '--json'], { env });
    const parsed = JSON.parse(ls.stdout) as { snapshots?: Array<{ findingId: string | null; pairId: string | null; pairIndex: number | null; via: string }> } | Array<{ findingId: string | null; pairId: string | null; pairIndex: number | null; via: string }>;
    const rows = (Array.isArray(parsed) ? parsed : parsed.snapshots ?? []).filter((s) => s.findingId === finding!.id);
    assert.equal(rows.length, 2, ls.stdout);
    assert.equal(new Set(rows.map((s) => s.pairId)).size, 1);
    assert.deepEqual(rows.map((s) => s.pairIndex).sort(), [0, 1]);
    assert.ok(rows.every((s) => s.via === 'inspector'));
  });
});
