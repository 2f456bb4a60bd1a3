// The gates and the command path against real targets: short cgroup headroom turns a full
// snapshot into a sampling profile; one capture per node at a time; one automatic capture per
// target per interval; a spool without room; a timeout mid-snapshot; the pod's biggest Node.js
// process for a command without a pid; bad commands get a clear error.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodeSampler, type AttributedProcess } from '../../../agent/host/node-sampler.js';
import { Capturer, SnapshotCommandError, type CapturerOptions } from '../../../agent/capture/capturer.js';
import { listenersOf } from '../../../agent/capture/proc-sockets.js';
import { targetKeyOf } from '../../../agent/capture/policy.js';
import type { CaptureReport } from '../../../protocol/snapshots.js';
import { createFakePod, fakeNodeAvailability, type FakePod } from '../../support/fake-node.js';
import { collectLines, DirSink, isAlive, tempDir, waitUntil, writeTargetScript } from '../../support/capture-targets.js';
import { freePort } from '../../support/net.js';

const MiB = 1024 * 1024;
const fake = fakeNodeAvailability();

describe('capture gates and commands on real targets', { skip: fake.ok ? false : fake.reason }, () => {
  let pod: FakePod;
  let tight: FakePod;
  let sampler: NodeSampler;
  const dir = tempDir();
  const script = writeTargetScript(dir.path);
  let big: AttributedProcess;
  let small: AttributedProcess;
  let cramped: AttributedProcess;

  const sampleOf = (pid: number): AttributedProcess => {
    const p = sampler.sample().processes.find((q) => q.pid === pid);
    if (!p) throw new Error(`pid ${pid} not sampled`);
    return p;
  };

  before(async () => {
    sampler = new NodeSampler({ podLogRoot: dir.path + '/logs/pods' });
    const logRoot = join(dir.path, 'logs');
    pod = createFakePod({ namespace: 'shop', name: 'api-5c6d', containers: [{ name: 'app', limitBytes: 256 * MiB }], logRoot });
    tight = createFakePod({ namespace: 'shop', name: 'tight-1a2b', containers: [{ name: 'app', limitBytes: 96 * MiB }], logRoot });
    // Each with its own inspector port, so that these tests never meet another helper's 9229.
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    const bigChild = pod.spawnIn('app', process.execPath, [`--inspect-port=${p1}`, script, '30000', '30000'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const smallChild = pod.spawnIn('app', process.execPath, [`--inspect-port=${p2}`, script, '100', '100'], { stdio: ['ignore', 'pipe', 'ignore'] });
    // ~35 MiB of heap in 96 MiB: a snapshot would need ~70 MiB more than the ~55 MiB left.
    const crampedChild = tight.spawnIn('app', process.execPath, [`--inspect-port=${p3}`, script, '30000', '30000'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await Promise.all([bigChild, smallChild, crampedChild].map((c) => collectLines(c).waitFor(/^done/)));
    big = sampleOf(bigChild.pid!);
    small = sampleOf(smallChild.pid!);
    cramped = sampleOf(crampedChild.pid!);
  });
  after(async () => {
    sampler?.close();
    await pod?.destroy();
    await tight?.destroy();
    dir.remove();
  });

  const make = (name: string, extra: Partial<CapturerOptions> = {}): { capturer: Capturer; sink: DirSink; reports: CaptureReport[] } => {
    const sink = new DirSink(join(dir.path, name));
    const reports: CaptureReport[] = [];
    const capturer = new Capturer({ node: 'n1', sink, reports: (r) => reports.push(r), hierarchy: sampler.memoryHierarchy, processes: () => sampler.sample().processes, sampleMs: 300, ...extra });
    return { capturer, sink, reports };
  };

  it('takes a sampling profile instead of a snapshot when the cgroup headroom is short, and says why in MiB', async () => {
    const { capturer, sink } = make('headroom');
    const report = await capturer.capture({ process: cramped, kind: 'heapsnapshot', trigger: 'on-demand' });
    assert.equal(report.outcome, 'downgraded', `${report.reasonCode}: ${report.reason}`);
    assert.equal(report.reasonCode, 'headroom');
    assert.match(report.reason!, /cgroup headroom [\d.]+MiB .* is below 2 × heap in use \(2 × [\d.]+MiB\)/);
    assert.match(report.reason!, /sampling heap profile was taken instead/);
    assert.equal(sink.accepted.length, 1);
    assert.equal(sink.accepted[0]!.meta.kind, 'heapprofile');
    assert.ok((JSON.parse(readFileSync(sink.accepted[0]!.path, 'utf8')) as { head?: unknown }).head);
    assert.ok(isAlive(cramped.pid));
  });

  it('takes the full snapshot when the headroom is enough', async () => {
    const { capturer, sink } = make('headroom-ok');
    const report = await capturer.capture({ process: big, kind: 'heapsnapshot', trigger: 'on-demand' });
    assert.equal(report.outcome, 'captured', `${report.reasonCode}: ${report.reason}`);
    assert.equal(sink.accepted[0]!.meta.kind, 'heapsnapshot');
    assert.ok(sink.accepted[0]!.meta.heapUsedBytes! > 20 * MiB);
  });

  it('learns what a snapshot cost its target and gates the next one on that, not only on the fixed factor', async (t) => {
    const dense = createFakePod({ namespace: 'shop', name: 'dense-3e4f', containers: [{ name: 'app', limitBytes: 256 * MiB }], logRoot: join(dir.path, 'logs') });
    t.after(() => dense.destroy());
    const child = dense.spawnIn('app', process.execPath, [`--inspect-port=${await freePort()}`, script, '30000', '30000'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await collectLines(child).waitFor(/^done/);
    const target = sampleOf(child.pid!);
    // A fixed factor of 0.5 would let almost any snapshot through: what decides is the learned cost.
    const { capturer, sink } = make('cost', { gates: { headroomFactor: 0.5 } });
    const first = await capturer.capture({ process: target, kind: 'heapsnapshot', trigger: 'on-demand' });
    assert.equal(first.outcome, 'captured', `${first.reasonCode}: ${first.reason}`);
    const cost = capturer.costs.of(targetKeyOf(target));
    assert.ok(cost, 'the cost of the first snapshot was recorded');
    // Building the graph of 30 000 objects takes memory in the target: it cannot have been free.
    assert.ok(cost.extraBytes > 4 * MiB && cost.ratio > 0.8, `extra ${cost.extraBytes} B for ${cost.heapUsedBytes} B of heap`);
    assert.equal(cost.heapUsedBytes, sink.accepted[0]!.meta.heapUsedBytes);
    t.diagnostic(`the snapshot of ${(cost.heapUsedBytes / MiB).toFixed(1)} MiB of heap took ${(cost.extraBytes / MiB).toFixed(1)} MiB more memory (${cost.ratio.toFixed(2)} × the heap)`);

    // Headroom that the fixed factor allows (0.7 × heap > 0.5 × heap) but the learned cost does not
    // (≥ 1.25 × 0.8 × heap): the limit is lowered to usage + 0.7 × heap.
    const ctr = dense.containers[0]!;
    const usage = Number(readFileSync(join(ctr.cgroupDir, 'memory.usage_in_bytes'), 'utf8'));
    const headroom = Math.round(0.7 * cost.heapUsedBytes);
    writeFileSync(join(ctr.cgroupDir, 'memory.limit_in_bytes'), String(usage + headroom));
    const second = await capturer.capture({ process: target, kind: 'heapsnapshot', trigger: 'on-demand' });
    assert.equal(second.outcome, 'downgraded', `${second.reasonCode}: ${second.reason}`);
    assert.equal(second.reasonCode, 'headroom');
    assert.match(second.reason!, /is below [\d.]+ × heap in use .*: this target's last snapshot took [\d.]+MiB more memory for [\d.]+MiB of heap, and 25 % is kept in reserve/);
    assert.equal(sink.accepted.at(-1)!.meta.kind, 'heapprofile');
    assert.ok(isAlive(target.pid));
  });

  it("answers a command without a pid with the pod's biggest Node.js process", async () => {
    const { capturer, sink } = make('command');
    const report = await capturer.handleCommand({ action: 'snapshot', namespace: 'shop', pod: 'api-5c6d', kind: 'heapprofile' }, { commandId: 'cmd-1' });
    assert.equal(report.outcome, 'captured', `${report.reasonCode}: ${report.reason}`);
    assert.equal(report.pid, big.pid);
    assert.equal(report.commandId, 'cmd-1');
    assert.equal(sink.accepted[0]!.meta.pid, big.pid);
    assert.equal(sink.accepted[0]!.meta.container, 'app');

    const byPid = await capturer.handleCommand({ action: 'snapshot', namespace: 'shop', pod: 'api-5c6d', pid: small.pid, kind: 'heapprofile' }, { commandId: 'cmd-2' });
    assert.equal(byPid.pid, small.pid);
    assert.equal(byPid.outcome, 'captured');
  });

  it('refuses, with a report, a pod that is not on this node and a pid outside the pod', async () => {
    const { capturer, reports } = make('unknown');
    const r1 = await capturer.handleCommand({ action: 'snapshot', namespace: 'shop', pod: 'nope' }, { commandId: 'c' });
    assert.equal(r1.outcome, 'refused');
    assert.equal(r1.reasonCode, 'not-found');
    assert.equal(r1.pod, 'nope');
    const r2 = await capturer.handleCommand({ action: 'snapshot', namespace: 'shop', pod: 'api-5c6d', pid: cramped.pid }, { commandId: 'c' });
    assert.equal(r2.reasonCode, 'not-found');
    assert.equal(reports.length, 2);
  });

  it('rejects malformed commands with a clear error', async () => {
    const { capturer, reports } = make('bad');
    for (const bad of [
      { action: 'snapshot', pod: 'x' },
      { action: 'snapshot', namespace: 'shop', pod: '' },
      { action: 'snapshot', namespace: 'shop', pod: 'x', pid: -3 },
      { action: 'snapshot', namespace: 'shop', pod: 'x', pid: '12' },
      { action: 'snapshot', namespace: 'shop', pod: 'x', kind: 'coredump' },
    ]) {
      await assert.rejects(capturer.handleCommand(bad, { commandId: 'c' }), SnapshotCommandError);
    }
    assert.equal(reports.length, 0);
  });

  it('runs one capture per node at a time and one automatic capture per target per interval', async () => {
    const { capturer } = make('busy', { gates: { autoIntervalMs: 60_000 } });
    const first = capturer.capture({ process: big, kind: 'heapprofile', trigger: 'growth', findingId: 'f1' });
    const second = await capturer.capture({ process: small, kind: 'heapprofile', trigger: 'on-demand' });
    assert.equal(second.outcome, 'refused');
    assert.equal(second.reasonCode, 'busy');
    assert.match(second.reason!, new RegExp(`pid ${big.pid}`));
    assert.equal((await first).outcome, 'captured');
    const again = await capturer.capture({ process: big, kind: 'heapsnapshot', trigger: 'growth', findingId: 'f1' });
    assert.equal(again.outcome, 'refused');
    assert.equal(again.reasonCode, 'rate-limit');
    // On demand is not rate limited.
    assert.equal((await capturer.capture({ process: big, kind: 'heapprofile', trigger: 'on-demand' })).outcome, 'captured');
  });

  it('refuses when the spool has no room for the estimated snapshot', async () => {
    const { capturer, sink } = make('spool');
    (sink as { maxBytes: number }).maxBytes = 1 * MiB;
    const report = await capturer.capture({ process: big, kind: 'heapsnapshot', trigger: 'on-demand' });
    assert.equal(report.outcome, 'refused');
    assert.equal(report.reasonCode, 'spool-full');
    assert.match(report.reason!, /spool has [\d.]+[KM]iB free, the capture needs about [\d.]+MiB/);
    assert.deepEqual(readdirSync(sink.workDir), []);
  });

  it('times out a snapshot that takes too long, leaves no partial file, and closes the inspector it opened', async () => {
    const { capturer, sink } = make('timeout', { timeoutMs: 150 });
    const report = await capturer.capture({ process: big, kind: 'heapsnapshot', trigger: 'on-demand' });
    assert.equal(report.outcome, 'failed');
    assert.equal(report.reasonCode, 'timeout');
    assert.deepEqual(readdirSync(sink.workDir), []);
    assert.equal(sink.accepted.length, 0);
    await waitUntil(() => listenersOf(big.pid).length === 0, 10_000, 'the inspector to close');
    assert.ok(isAlive(big.pid));
  });
});
