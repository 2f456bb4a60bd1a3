// The node sampler on the real kernel: pod attribution, container and pod memory, and what it
// remembers after processes exit (the OOM tracker needs both).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeSampler } from '../../../agent/host/node-sampler.js';
import { createFakePod, fakeNodeAvailability, type FakePod } from '../../support/fake-node.js';

const MiB = 1024 * 1024;
const availability = fakeNodeAvailability();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('NodeSampler in a fake pod', { skip: availability.ok ? false : `SKIP: ${availability.ok ? '' : availability.reason}` }, () => {
  let pod: FakePod;
  before(() => {
    pod = createFakePod({ namespace: 'ns1', name: 'worker', containers: [{ name: 'main', limitBytes: 64 * MiB }] });
  });
  after(async () => {
    await pod?.destroy();
  });

  test('attributes processes, reads container and pod memory, and remembers exited ones', async () => {
    const child = pod.spawnIn('main', 'sleep', ['30']);
    await sleep(300);
    const sampler = new NodeSampler({ podLogRoot: pod.podLogRoot, exitedRetentionMs: 10_000, emptyContainerRetentionMs: 10_000 });
    try {
      const first = sampler.sample();
      const proc = first.processes.find((p) => p.pid === child.pid);
      assert.ok(proc, 'sleep is sampled');
      assert.equal(proc.container, 'main');
      assert.equal(proc.pod, 'worker');
      const container = first.containers.find((c) => c.containerId === pod.containers[0]!.id);
      assert.ok(container);
      assert.deepEqual(container.pids, [child.pid]);
      assert.equal(container.limitBytes, 64 * MiB);
      assert.ok(container.memory && container.memory.usageBytes > 0);
      const podSample = first.pods.find((p) => p.podUid === pod.uid);
      assert.equal(podSample?.memory?.limitBytes, 64 * MiB);

      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const second = sampler.sample();
      assert.equal(second.processes.find((p) => p.pid === child.pid), undefined);
      // The victim of an OOM kill is gone before we hear of it: its last sample must remain.
      assert.equal(sampler.lastSeen(child.pid!)?.comm, 'sleep');
      assert.equal(sampler.lastSeen(child.pid!)?.containerId, pod.containers[0]!.id);
      // An emptied container is still read, so its oom_kill counter can still be seen moving.
      const empty = second.containers.find((c) => c.containerId === pod.containers[0]!.id);
      assert.ok(empty, 'empty container still reported');
      assert.deepEqual(empty.pids, []);
      assert.ok(empty.memory);
    } finally {
      sampler.close();
    }
  });
});

describe('NodeSampler on missing trees', () => {
  test('no cgroup hierarchy and no pod logs: processes are still listed, with one warning each', () => {
    const warnings: string[] = [];
    const sampler = new NodeSampler({ cgroupRoot: '/nonexistent-cgroup', podLogRoot: '/nonexistent-pods', warn: (m) => warnings.push(m) });
    try {
      const s = sampler.sample();
      sampler.sample();
      assert.ok(s.processes.some((p) => p.pid === process.pid));
      assert.equal(warnings.filter((w) => w.includes('no memory cgroup hierarchy')).length, 1);
    } finally {
      sampler.close();
    }
  });
});
