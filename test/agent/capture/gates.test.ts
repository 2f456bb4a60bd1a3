import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CaptureGates } from '../../../agent/capture/gates.js';

const MiB = 1024 * 1024;

describe('capture gates', () => {
  it('refuses a full snapshot below factor × heap in use, in plain words with MiB', () => {
    const g = new CaptureGates();
    const room = { limitBytes: 256 * MiB, usageBytes: 176 * MiB, headroomBytes: 80 * MiB, cgroup: '/kubepods/pod1' };
    const v = g.headroomVerdict(60 * MiB, room);
    assert.equal(v.ok, false);
    assert.equal(!v.ok && v.reasonCode, 'headroom');
    assert.match(!v.ok ? v.reason : '', /cgroup headroom 80.0MiB \(limit 256MiB − usage 176MiB\) is below 2 × heap in use \(2 × 60.0MiB\)/);
    assert.ok(g.headroomVerdict(40 * MiB, room).ok);
    assert.ok(new CaptureGates({ headroomFactor: 1 }).headroomVerdict(60 * MiB, room).ok);
    assert.ok(g.headroomVerdict(10_000 * MiB, null).ok, 'no limit: nothing to protect against');
  });

  it("raises the bar to what the target's last snapshot cost, with a margin, never lowers it", () => {
    const g = new CaptureGates();
    const room = { limitBytes: 512 * MiB, usageBytes: 312 * MiB, headroomBytes: 200 * MiB, cgroup: '/kubepods/pod1' };
    // 60 MiB of heap: the fixed factor wants 120 MiB, which is there.
    assert.ok(g.headroomVerdict(60 * MiB, room).ok);
    // Its last snapshot took 8× its heap: 60 × 8 × 1.25 = 600 MiB is not there.
    const dense = { ratio: 8, extraBytes: 400 * MiB, heapUsedBytes: 50 * MiB, atMs: 1 };
    const v = g.headroomVerdict(60 * MiB, room, dense);
    assert.ok(!v.ok);
    assert.match(v.reason, /is below 10\.0 × heap in use \(10\.0 × 60\.0MiB\): this target's last snapshot took 400MiB more memory for 50\.0MiB of heap, and 25 % is kept in reserve/);
    // A cheap last snapshot does not lower the fixed factor.
    const cheap = { ratio: 0.5, extraBytes: 25 * MiB, heapUsedBytes: 50 * MiB, atMs: 1 };
    const w = g.headroomVerdict(110 * MiB, room, cheap);
    assert.ok(!w.ok);
    assert.match(w.reason, /is below 2 × heap in use \(2 × 110MiB\): a full snapshot could OOM-kill the target$/);
  });

  it('lets one capture hold the node at a time', () => {
    const g = new CaptureGates();
    const release = g.acquireNode('pid 1');
    assert.ok(release);
    assert.equal(g.acquireNode('pid 2'), null);
    const busy = g.busyVerdict();
    assert.ok(!busy.ok && busy.reasonCode === 'busy' && /pid 1/.test(busy.reason));
    release();
    release();
    assert.ok(g.acquireNode('pid 2'));
  });

  it('allows one automatic capture per target per interval', () => {
    const g = new CaptureGates({ autoIntervalMs: 600_000 });
    assert.ok(g.rateVerdict('proc:1:1', 0).ok);
    g.recordAuto('proc:1:1', 0);
    const v = g.rateVerdict('proc:1:1', 60_000);
    assert.ok(!v.ok && v.reasonCode === 'rate-limit' && /next is allowed in 540 s/.test(v.reason));
    assert.ok(g.rateVerdict('proc:2:1', 60_000).ok);
    assert.ok(g.rateVerdict('proc:1:1', 600_000).ok);
  });

  it('refuses when the spool cannot hold the estimate', () => {
    const g = new CaptureGates();
    assert.equal(g.estimateSnapshotBytes(100 * MiB), 250 * MiB);
    const v = g.spoolVerdict(100 * MiB, 250 * MiB);
    assert.ok(!v.ok && v.reasonCode === 'spool-full' && /100MiB free.*250MiB/.test(v.reason));
    assert.ok(g.spoolVerdict(300 * MiB, 250 * MiB).ok);
  });

  it('rejects settings that cannot work', () => {
    assert.throws(() => new CaptureGates({ headroomFactor: 0 }), RangeError);
    assert.throws(() => new CaptureGates({ autoIntervalMs: -1 }), RangeError);
  });
});
