// The whole automatic path on this machine's kernel: a Node.js target leaking instances of its own
// class in a pod-shaped memory cgroup and its own network namespace; the agent's runtime samples
// it, the growth detector opens a finding, and the capturer takes two snapshots on one inspector
// session through nsenter. The files are parsed and the leaking class counted.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { startAgent, type AgentRuntime } from '../../../agent/runtime.js';
import { listenersOf } from '../../../agent/capture/proc-sockets.js';
import type { CaptureReport } from '../../../protocol/snapshots.js';
import { createFakePod, fakeNodeAvailability, type FakePod } from '../../support/fake-node.js';
import { collectLines, createNetns, DirSink, isAlive, netnsAvailability, tempDir, waitUntil, writeTargetScript } from '../../support/capture-targets.js';
import { devtoolsClassCount } from '../../support/devtools-peer.js';

const MiB = 1024 * 1024;
const fake = fakeNodeAvailability();
const netns = netnsAvailability();
const skip = !fake.ok ? fake.reason : !netns.ok ? netns.reason : false;

describe('automatic capture on growth, through nsenter', { skip }, () => {
  let pod: FakePod | null = null;
  let ns: ReturnType<typeof createNetns> | null = null;
  let dir: ReturnType<typeof tempDir> | null = null;
  let runtime: AgentRuntime | null = null;

  before(() => {
    dir = tempDir();
    ns = createNetns();
    pod = createFakePod({ namespace: 'shop', name: 'cart-7d9f', containers: [{ name: 'app', limitBytes: 256 * MiB }] });
  });
  after(async () => {
    await runtime?.close({ flushMs: 500 });
    await pod?.destroy();
    ns?.remove();
    dir?.remove();
  });

  it('takes two snapshots on one session of the leaking target; the class count is at least what it allocated', async () => {
    const script = writeTargetScript(dir!.path);
    // 50 000 × ~1 KiB at 250 per 100 ms: ~2.5 MiB a second for 20 s, then it holds. Growth that
    // lasts is what makes the test fair on a loaded machine: the finding may open seconds late.
    const child = pod!.spawnIn('app', 'ip', ['netns', 'exec', ns!.name, process.execPath, script, '50000', '250'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const out = collectLines(child);
    await out.waitFor(/^allocated/);
    const pid = child.pid!;
    const sink = new DirSink(dir!.path);
    const reports: CaptureReport[] = [];
    runtime = startAgent({
      nodeName: 'node-capture',
      intervalSec: 0.25,
      kmsgPath: null,
      sampler: { podLogRoot: pod!.podLogRoot },
      watcher: { settleSec: 0.5, growth: { minWindowSec: 2, minPoints: 6, warmupSec: 0, minRiseBytes: 4 * MiB, evidenceFraction: 0.01, warmupEvidenceFraction: 0.01 } },
      capture: { sink, reports: (r) => reports.push(r), pairSpacingMs: 1_500, timeoutMs: 20_000 },
    });
    await waitUntil(() => reports.length > 0, 45_000, 'a capture report');
    const report = reports[0]!;
    assert.equal(report.outcome, 'captured', `${report.reasonCode}: ${report.reason}`);
    assert.equal(report.trigger, 'growth');
    assert.equal(report.pid, pid);
    assert.equal(report.namespace, 'shop');
    assert.equal(report.pod, 'cart-7d9f');
    assert.ok(report.findingId, 'the finding that caused it');
    assert.equal(report.snapshotIds.length, 2);
    assert.equal(sink.accepted.length, 2);
    const [first, second] = sink.accepted;
    assert.equal(first!.meta.pairId, second!.meta.pairId);
    assert.ok(first!.meta.pairId);
    assert.deepEqual([first!.meta.pairIndex, second!.meta.pairIndex], [0, 1]);
    assert.equal(first!.meta.via, 'inspector');
    assert.equal(first!.meta.nodeVersion, process.version);
    assert.equal(first!.meta.container, 'app');
    assert.ok(first!.meta.heapUsedBytes! > 10 * MiB);

    const counts = [];
    for (const f of sink.accepted) {
      assert.equal(statSync(f.path).mode & 0o777, 0o600);
      assert.equal(createHash('sha256').update(readFileSync(f.path)).digest('hex'), f.sha256);
      // Parsed by a peer: Chrome DevTools' own snapshot code (heap-snapshot-toolkit).
      const count = await devtoolsClassCount(f.path, 'LeakyThing');
      // What the target said it held before this snapshot started is all in it (nothing is freed).
      const before = out.timed.filter((t) => t.atMs <= f.meta.takenAtMs && /^(allocated|done) /.test(t.line)).at(-1);
      const allocated = Number(before?.line.split(' ')[1] ?? 0);
      assert.ok(allocated > 0);
      assert.ok(count >= allocated, `snapshot ${f.meta.pairIndex} holds ${count} LeakyThing; the target had allocated ${allocated}`);
      counts.push(count);
    }
    assert.ok(counts[0]! <= counts[1]!);
    // The inspector we opened is closed again; the target lives on.
    await waitUntil(() => listenersOf(pid).length === 0, 5_000, 'the inspector to close');
    assert.ok(isAlive(pid));
  });
});
