import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AttributedProcess } from '../../../agent/host/node-sampler.js';
import { choosePodTarget, findNodeTargets, isNodeProcess, nodeVersionFromPath } from '../../../agent/capture/node-targets.js';
import { autoCaptureCandidates, targetKeyOf } from '../../../agent/capture/policy.js';
import type { FindingEvent } from '../../../agent/watch/watcher.js';
import { growthFinding, oomFinding } from '../../support/sample-findings.js';

const MiB = 1024 * 1024;

function proc(pid: number, over: Partial<AttributedProcess> = {}): AttributedProcess {
  return {
    pid, ppid: 1, comm: 'node', cmdline: 'node server.js', argv: ['node', 'server.js'], exe: '/usr/local/bin/node', uid: 0, startTimeMs: 1000 + pid,
    nsPid: 1, nsPids: [pid, 1], state: 'S', rssAnonBytes: 50 * MiB, rssFileBytes: 0, rssShmemBytes: 0, swapBytes: 0, cgroupPath: '/kubepods/pod1/c1',
    podUid: 'u1', namespace: 'payments', pod: 'payment-processor-7d9f', container: 'app', containerId: 'a'.repeat(64), runtime: 'containerd', qos: 'Burstable',
    limitBytes: 256 * MiB, oomKills: 0, ...over,
  };
}

describe('Node.js targets', () => {
  it('knows Node.js by its executable, or argv[0] when the exe is unreadable', () => {
    assert.ok(isNodeProcess(proc(1)));
    assert.ok(isNodeProcess(proc(1, { exe: '/usr/bin/nodejs' })));
    assert.ok(isNodeProcess(proc(1, { exe: '/opt/node-v20.11.1-linux-x64/bin/node (deleted)' })));
    assert.ok(isNodeProcess(proc(1, { exe: null, argv: ['/usr/bin/node', 'x.js'] })));
    assert.ok(!isNodeProcess(proc(1, { exe: '/usr/bin/python3', argv: ['python3', 'node'] })));
    assert.ok(!isNodeProcess(proc(1, { exe: '/usr/bin/nodemon' })));
    assert.ok(!isNodeProcess(proc(1, { exe: null, argv: [] })));
    assert.deepEqual(findNodeTargets([proc(1), proc(2, { exe: '/bin/sh' }), proc(3, { state: 'Z' })]).map((p) => p.pid), [1]);
  });

  it('reads a version from the executable path when it carries one', () => {
    assert.equal(nodeVersionFromPath('/root/.nvm/versions/node/v20.11.1/bin/node'), 'v20.11.1');
    assert.equal(nodeVersionFromPath('/opt/node-v22.3.0-linux-x64/bin/node'), 'v22.3.0');
    assert.equal(nodeVersionFromPath('/usr/local/bin/node'), null);
    assert.equal(nodeVersionFromPath(null), null);
  });

  it("chooses the pod's Node.js process with the most anon memory, or the pid asked for", () => {
    const procs = [proc(10, { rssAnonBytes: 30 * MiB }), proc(11, { rssAnonBytes: 90 * MiB }), proc(12, { exe: '/bin/sh', rssAnonBytes: 500 * MiB }), proc(13, { pod: 'other' })];
    const pick = choosePodTarget(procs, { namespace: 'payments', pod: 'payment-processor-7d9f' });
    assert.ok(pick.ok && pick.process.pid === 11);
    const byPid = choosePodTarget(procs, { namespace: 'payments', pod: 'payment-processor-7d9f', pid: 10 });
    assert.ok(byPid.ok && byPid.process.pid === 10);
    const shell = choosePodTarget(procs, { namespace: 'payments', pod: 'payment-processor-7d9f', pid: 12 });
    assert.ok(!shell.ok && shell.reasonCode === 'not-node');
    const elsewhere = choosePodTarget(procs, { namespace: 'payments', pod: 'payment-processor-7d9f', pid: 13 });
    assert.ok(!elsewhere.ok && elsewhere.reasonCode === 'not-found');
    const wrongContainer = choosePodTarget(procs, { namespace: 'payments', pod: 'payment-processor-7d9f', container: 'sidecar' });
    assert.ok(!wrongContainer.ok && wrongContainer.reasonCode === 'not-found');
    const noNode = choosePodTarget([proc(20, { exe: '/usr/bin/python3', comm: 'python3' })], { namespace: 'payments', pod: 'payment-processor-7d9f' });
    assert.ok(!noNode.ok && noNode.reasonCode === 'not-node' && /python3/.test(noNode.reason));
  });
});

describe('automatic capture policy', () => {
  const growth = (pid: number, change: FindingEvent['change'] = 'open', scope: 'process' | 'container' = 'process'): FindingEvent => {
    const f = growthFinding(`g${pid}`);
    if (f.kind !== 'growth') throw new Error('fixture');
    return { change, finding: { ...f, target: { ...f.target, pid }, details: { ...f.details, scope } } };
  };

  it('picks open process growth findings about Node.js processes', () => {
    const procs = [proc(1), proc(2, { exe: '/usr/bin/java' })];
    const c = autoCaptureCandidates([growth(1), growth(2), growth(1, 'open', 'container'), { change: 'open', finding: oomFinding('o1') }], procs);
    assert.deepEqual(c.map((x) => [x.process.pid, x.findingId, x.opening]), [[1, 'g1', true]]);
    assert.deepEqual(autoCaptureCandidates([growth(1, 'update')], procs).map((x) => x.opening), [false]);
    assert.deepEqual(autoCaptureCandidates([growth(1, 'resolve')], procs), []);
    assert.deepEqual(autoCaptureCandidates([growth(9)], procs), [], 'a process gone from the sample');
    assert.equal(targetKeyOf(proc(1)), 'proc:1:1001');
  });

  it('never picks the agent itself, nor a process outside any pod', () => {
    const procs = [proc(process.pid), proc(3, { podUid: null, namespace: null, pod: null })];
    assert.deepEqual(autoCaptureCandidates([growth(process.pid), growth(3)], procs), []);
  });
});
