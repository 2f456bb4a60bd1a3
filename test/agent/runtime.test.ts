// The agent runtime: the loop on the real node feeding a collector peer, its robustness, and the
// memory series it keeps for the targets of findings.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import type { AttributedProcess, ContainerSample, NodeSample } from '../../agent/host/node-sampler.js';
import { NodeSampler } from '../../agent/host/node-sampler.js';
import { startAgent, TargetSeries, type AgentPass, type AgentRuntime } from '../../agent/runtime.js';
import type { FindingEvent } from '../../agent/watch/watcher.js';
import type { Finding } from '../../protocol/findings.js';
import { createFakePod, fakeNodeAvailability, type FakePod } from '../support/fake-node.js';
import { PEER_TOKEN, ProtocolPeer, recordingLogger, sleep, waitFor } from '../support/protocol-peer.js';
import { growthFinding, oomFinding, spawnFinding } from '../support/sample-findings.js';

const MiB = 1024 * 1024;
const root = mkdtempSync(join(tmpdir(), 'leakwatch-runtime-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const fresh = (name: string): string => join(root, `${name}-${++count}`);

const runtimes: AgentRuntime[] = [];
const peers: ProtocolPeer[] = [];
afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((r) => r.close({ flushMs: 0 })));
  await Promise.all(peers.splice(0).map((p) => p.stop()));
});

describe('startAgent on this machine', () => {
  it('a suspicious spawn in a fake pod reaches the collector, with the memory series of its process', async (t) => {
    const availability = fakeNodeAvailability();
    if (!availability.ok) {
      console.log(`SKIP: ${availability.reason}`);
      t.skip(`SKIP: ${availability.reason}`);
      return;
    }
    let pod: FakePod | null = null;
    const script = join('/tmp', `leakwatch-runtime-${process.pid}-${Date.now()}.sh`);
    try {
      pod = createFakePod({ namespace: 'shop', name: 'cart-7d9f', containers: [{ name: 'cart', limitBytes: 64 * MiB }] });
      writeFileSync(script, 'sleep 60\n');
      const child = pod.spawnIn('cart', '/bin/sh', [script]);
      await waitFor('workload in its cgroup', () => pod!.pids('cart').includes(child.pid ?? -1), 5_000);

      const peer = await ProtocolPeer.start();
      peers.push(peer);
      const log = recordingLogger();
      const passes: AgentPass[] = [];
      const runtime = startAgent({
        nodeName: 'node-rt',
        version: '0.1.0-test',
        intervalSec: 0.2,
        sampler: { procRoot: '/proc', cgroupRoot: '/sys/fs/cgroup', podLogRoot: pod.podLogRoot },
        kmsgPath: null,
        collector: { url: peer.url, token: PEER_TOKEN },
        spoolDir: fresh('spool'),
        series: { intervalMs: 300 },
        log,
        onPass: (p) => passes.push(p),
      });
      runtimes.push(runtime);

      await waitFor('the spawn finding', () => peer.findingIds().some((id) => id.startsWith('suspicious-spawn-')), 10_000);
      const spawn = peer
        .ofType('findings')
        .flatMap((m) => m.events)
        .map((e) => e.finding)
        .find((f) => f.kind === 'suspicious-spawn' && f.target.pid === child.pid);
      assert.ok(spawn, 'the finding is about the workload');
      assert.equal(spawn.node, 'node-rt');
      assert.equal(spawn.target.pod, 'cart-7d9f');

      await waitFor('series of the process', () => peer.ofType('series').some((s) => s.points.length >= 2), 10_000);
      const series = peer.ofType('series');
      const info = series.flatMap((s) => s.targets).find((x) => x.pid === child.pid);
      assert.ok(info, 'the process is described');
      assert.match(info.targetKey, new RegExp(`^proc:${child.pid}:\\d+$`));
      assert.equal(info.kind, 'process');
      // spawnIn's shell execs the workload, so its parent is this test process.
      assert.equal(info.ppid, process.pid);
      assert.equal(info.namespace, 'shop');
      assert.equal(info.container, 'cart');
      const points = series.flatMap((s) => s.points).filter((p) => p.targetKey === info.targetKey);
      assert.ok(points.length >= 2);
      assert.ok(points.every((p) => p.anonBytes > 0 && p.limitBytes === 64 * MiB && p.workingSetBytes === null));
      for (let i = 1; i < points.length; i++) assert.ok((points[i]?.atMs ?? 0) > (points[i - 1]?.atMs ?? 0), 'points in time order, one per pass');

      assert.equal(peer.ofType('hello')[0]?.node, 'node-rt');
      const stats = runtime.stats();
      assert.ok(stats.passes >= 2 && stats.passErrors === 0);
      assert.ok(stats.trackedTargets >= 1);
      assert.equal(stats.uplink?.connected, true);
      assert.ok(passes.length >= 2 && passes.every((p) => p.sample !== null && p.error === null));

      const started = Date.now();
      await runtime.close();
      assert.ok(Date.now() - started < 2_500, 'close within the flush time');
      assert.equal(runtime.stats().spool?.queued, 0, 'everything was acknowledged');
    } finally {
      rmSync(script, { force: true });
      await pod?.destroy();
    }
  });

  it('a pass that throws is logged and the next pass runs', async () => {
    class FlakySampler extends NodeSampler {
      failuresLeft = 2;
      override sample(now?: number): NodeSample {
        if (this.failuresLeft-- > 0) throw new Error('EIO reading /proc/stat');
        return super.sample(now);
      }
    }
    const log = recordingLogger();
    const passes: AgentPass[] = [];
    const runtime = startAgent({
      nodeName: 'node-rt',
      intervalSec: 0.05,
      sampler: new FlakySampler({ procRoot: '/proc', cgroupRoot: '/sys/fs/cgroup', podLogRoot: fresh('no-pods') }),
      kmsgPath: null,
      log,
      onPass: (p) => {
        passes.push(p);
        if (passes.length === 3) throw new Error('metrics exporter broke');
      },
    });
    runtimes.push(runtime);
    await waitFor('five passes', () => passes.length >= 5, 5_000);
    assert.equal(runtime.stats().passErrors, 2);
    assert.deepEqual(
      passes.slice(0, 4).map((p) => p.error),
      ['sampling pass failed: EIO reading /proc/stat', 'sampling pass failed: EIO reading /proc/stat', null, null],
    );
    assert.equal(passes[0]?.sample, null);
    assert.ok(passes[3]?.sample && passes[3].sample.processes.length > 0, 'later passes sample the node');
    assert.equal(log.lines.filter((l) => l.level === 'error' && /sampling pass failed: EIO/.test(l.msg)).length, 2);
    assert.ok(log.lines.some((l) => l.msg === 'onPass hook failed' && l.fields.error === 'metrics exporter broke'));
  });

  it('without a collector it detects only: no spool, no uplink', async () => {
    const spoolDir = fresh('unused-spool');
    const passes: AgentPass[] = [];
    const runtime = startAgent({ nodeName: 'node-rt', intervalSec: 0.05, kmsgPath: null, spoolDir, sampler: { podLogRoot: fresh('no-pods') }, onPass: (p) => passes.push(p) });
    runtimes.push(runtime);
    await waitFor('two passes', () => passes.length >= 2, 5_000);
    assert.equal(runtime.uplink, null);
    assert.equal(runtime.stats().spool, null);
    assert.equal(existsSync(spoolDir), false);
  });

  it('with the collector unreachable, close() still returns within the flush time and keeps the queue', async () => {
    const spoolDir = fresh('spool');
    const runtime = startAgent({
      nodeName: 'node-rt',
      intervalSec: 0.05,
      kmsgPath: null,
      sampler: { podLogRoot: fresh('no-pods') },
      collector: { url: 'http://127.0.0.1:9', token: 't' },
      spoolDir,
    });
    await sleep(200);
    runtime.uplink?.enqueue([{ change: 'open', finding: growthFinding('growth-kept') }]);
    const started = Date.now();
    await runtime.close({ flushMs: 400 });
    assert.ok(Date.now() - started < 1_000, `close took ${Date.now() - started} ms`);
    assert.ok(existsSync(spoolDir));
    assert.equal(runtime.stats().spool?.queued, 1);
  });

  it('an unusable spool directory is a startup error naming it', () => {
    const file = fresh('a-file');
    writeFileSync(file, '');
    assert.throws(
      () => startAgent({ nodeName: 'n', kmsgPath: null, collector: { url: 'http://127.0.0.1:9', token: 't' }, spoolDir: join(file, 'spool') }),
      new RegExp(`spool directory ${file}/spool`),
    );
  });
});

// ---- TargetSeries on hand-made samples

function proc(pid: number, startTimeMs: number, anon: number, over: Partial<AttributedProcess> = {}): AttributedProcess {
  return {
    pid,
    ppid: 1,
    comm: 'node',
    cmdline: 'node server.js',
    argv: ['node', 'server.js'],
    exe: '/usr/bin/node',
    uid: 1000,
    startTimeMs,
    nsPid: pid,
    nsPids: [pid],
    state: 'S',
    rssAnonBytes: anon,
    rssFileBytes: 0,
    rssShmemBytes: 0,
    swapBytes: 1000,
    cgroupPath: '/kubepods/burstable/podu/ctr1',
    podUid: 'u',
    namespace: 'payments',
    pod: 'payment-processor-7d9f',
    container: 'app',
    containerId: 'a'.repeat(64),
    runtime: 'containerd',
    qos: 'Burstable',
    limitBytes: 256 * MiB,
    oomKills: 0,
    ...over,
  };
}

function ctr(anon: number, over: Partial<ContainerSample> = {}): ContainerSample {
  return {
    podUid: 'u',
    namespace: 'payments',
    pod: 'payment-processor-7d9f',
    container: 'app',
    containerId: 'a'.repeat(64),
    runtime: 'containerd',
    qos: 'Burstable',
    cgroupPath: '/kubepods/burstable/podu/ctr1',
    memory: { usageBytes: anon * 2, anonBytes: anon, inactiveFileBytes: anon / 2, workingSetBytes: anon * 1.5, limitBytes: 256 * MiB, oomKills: 0, oomGroupKills: 0 },
    limitBytes: 256 * MiB,
    pids: [4242],
    ...over,
  };
}

const sampleAt = (atMs: number, processes: AttributedProcess[], containers: ContainerSample[] = []): NodeSample => ({ atMs, processes, containers, pods: [], durationMs: 1 });
const ev = (change: FindingEvent['change'], finding: Finding): FindingEvent => ({ change, finding });

describe('TargetSeries', () => {
  it('charts the process of a process growth finding: anon + swap and its limit, one point per sample', () => {
    const s = new TargetSeries();
    const f = growthFinding('growth-1');
    s.observe([ev('open', f)], sampleAt(1000, [proc(4242, 50, 10 * MiB)], [ctr(20 * MiB)]), 1000);
    s.observe([], sampleAt(2000, [proc(4242, 50, 11 * MiB)], [ctr(21 * MiB)]), 2000);
    s.observe([], sampleAt(2000, [proc(4242, 50, 99 * MiB)]), 2000);
    const { targets, points } = s.take();
    assert.deepEqual(targets.map((t) => t.targetKey), ['proc:4242:50']);
    assert.equal(targets[0]?.kind, 'process');
    assert.equal(targets[0]?.pod, 'payment-processor-7d9f');
    assert.deepEqual(points, [
      { targetKey: 'proc:4242:50', atMs: 1000, anonBytes: 10 * MiB + 1000, workingSetBytes: null, limitBytes: 256 * MiB },
      { targetKey: 'proc:4242:50', atMs: 2000, anonBytes: 11 * MiB + 1000, workingSetBytes: null, limitBytes: 256 * MiB },
    ]);
    assert.deepEqual(s.take().points, [], 'take() hands each point out once');
  });

  it('a reused pid is another process: no points for it', () => {
    const s = new TargetSeries();
    s.observe([ev('open', growthFinding('growth-1'))], sampleAt(1000, [proc(4242, 50, MiB)]), 1000);
    s.observe([], sampleAt(2000, [proc(4242, 7777, 5 * MiB)]), 2000);
    assert.deepEqual(s.take().points.map((p) => p.atMs), [1000]);
  });

  it('charts the container for container growth and for an OOM kill (its victim is dead), with working set', () => {
    const s = new TargetSeries();
    const containerGrowth = growthFinding('growth-2');
    if (containerGrowth.kind !== 'growth') throw new Error('fixture');
    containerGrowth.details.scope = 'container';
    containerGrowth.target.pid = null;
    s.observe([ev('open', containerGrowth), ev('open', oomFinding('oom-kill-1'))], sampleAt(1000, [], [ctr(30 * MiB)]), 1000);
    const { targets, points } = s.take();
    assert.deepEqual(targets.map((t) => [t.targetKey, t.kind, t.pid]), [['ctr:/kubepods/burstable/podu/ctr1', 'container', null]]);
    assert.deepEqual(points, [{ targetKey: 'ctr:/kubepods/burstable/podu/ctr1', atMs: 1000, anonBytes: 30 * MiB, workingSetBytes: 45 * MiB, limitBytes: 256 * MiB }]);
  });

  it('keeps a target for a while after its last finding resolves, then forgets it', () => {
    const s = new TargetSeries({ retainAfterResolveMs: 5_000 });
    const f = growthFinding('growth-1');
    s.observe([ev('open', f)], sampleAt(1000, [proc(4242, 50, MiB)]), 1000);
    s.observe([ev('resolve', { ...f, status: 'resolved' } as Finding)], sampleAt(2000, [proc(4242, 50, MiB)]), 2000);
    s.observe([], sampleAt(6000, [proc(4242, 50, MiB)]), 6000);
    assert.equal(s.size, 1);
    s.observe([], sampleAt(8000, [proc(4242, 50, MiB)]), 8000);
    assert.equal(s.size, 0);
  });

  it('a spawn is a moment: its process is charted for the retention time, not forever', () => {
    const s = new TargetSeries({ retainAfterResolveMs: 1_000 });
    s.observe([ev('open', spawnFinding('suspicious-spawn-1'))], sampleAt(1000, [proc(5151, 60, MiB)]), 1000);
    assert.equal(s.size, 1);
    s.observe([], sampleAt(2500, [proc(5151, 60, MiB)]), 2500);
    assert.equal(s.size, 0);
  });

  it('is bounded: targets (idle ones make room) and points per target', () => {
    const warnings: string[] = [];
    const s = new TargetSeries({ maxTargets: 2, maxPointsPerTarget: 3, warn: (m) => warnings.push(m) });
    const procs = [proc(1, 1, MiB), proc(2, 2, MiB), proc(3, 3, MiB)];
    s.observe([ev('open', { ...growthFinding('growth-a'), target: { ...growthFinding('growth-a').target, pid: 1 } })], sampleAt(1000, procs), 1000);
    s.observe([ev('open', { ...growthFinding('growth-b'), target: { ...growthFinding('growth-b').target, pid: 2 } })], sampleAt(2000, procs), 2000);
    s.observe([ev('open', { ...growthFinding('growth-c'), target: { ...growthFinding('growth-c').target, pid: 3 } })], sampleAt(3000, procs), 3000);
    assert.equal(s.size, 2);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /already tracking 2 targets; proc:3:3 gets no memory series/);
    for (let t = 4000; t <= 9000; t += 1000) s.observe([], sampleAt(t, procs), t);
    const { points } = s.take();
    assert.deepEqual(points.filter((p) => p.targetKey === 'proc:1:1').map((p) => p.atMs), [7000, 8000, 9000]);

    // Once one resolves, a new target takes its slot.
    s.observe([ev('resolve', { ...growthFinding('growth-a'), status: 'resolved' } as Finding)], sampleAt(10_000, procs), 10_000);
    s.observe([ev('open', { ...growthFinding('growth-d'), target: { ...growthFinding('growth-d').target, pid: 3 } })], sampleAt(11_000, procs), 11_000);
    assert.equal(s.size, 2);
    assert.ok(s.take().targets.some((t) => t.targetKey === 'proc:3:3'));
  });

  it('a finding whose target is not in the sample gets no series, and nothing breaks', () => {
    const s = new TargetSeries();
    s.observe([ev('open', growthFinding('growth-1'))], sampleAt(1000, []), 1000);
    s.observe([ev('update', growthFinding('growth-1'))], null, 2000);
    assert.equal(s.size, 0);
    assert.deepEqual(s.take(), { targets: [], points: [] });
  });
});
