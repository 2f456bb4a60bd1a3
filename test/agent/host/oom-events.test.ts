import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KmsgOomKill } from '../../../agent/host/kmsg.js';
import { isAtOrBelow, OomTracker, type OomCounterReading, type OomVictimInfo } from '../../../agent/host/oom-events.js';

const T = 1_800_000_000_000;
const UID = 'ec1feb94-1954-4ca8-90c4-8ac2a576a93b';
const CID = '605525d397e656b19242d9bb57dff14693863e5da1e9b7189b5fa17d27c4347c';
const POD = `/kubepods/burstable/pod${UID}`;
const CONTAINER = `${POD}/${CID}`;

function kill(over: Partial<KmsgOomKill> = {}): KmsgOomKill {
  return {
    pid: 4836,
    comm: 'python3',
    uid: 0,
    scope: 'memcg',
    constraint: 'CONSTRAINT_MEMCG',
    memcg: POD,
    taskMemcg: CONTAINER,
    totalVmBytes: 60768 * 1024,
    anonRssBytes: 50816 * 1024,
    fileRssBytes: 6400 * 1024,
    shmemRssBytes: 0,
    seq: 418,
    monotonicUsec: 782005969,
    atMs: T + 300,
    lines: ['oom-kill', 'killed-process'],
    ...over,
  };
}

function reading(oomKills: number, over: Partial<OomCounterReading> = {}): OomCounterReading {
  return { cgroupPath: CONTAINER, oomKills, podUid: UID, containerId: CID, namespace: 'shop', pod: 'api-0', container: 'app', ...over };
}

const victim: OomVictimInfo = {
  comm: 'python3',
  cmdline: 'python3 -c leak()',
  rssAnonBytes: 48 * 1024 * 1024,
  cgroupPath: CONTAINER,
  podUid: UID,
  containerId: CID,
  namespace: 'shop',
  pod: 'api-0',
  container: 'app',
};

function tracker(over: ConstructorParameters<typeof OomTracker>[0] = {}): OomTracker {
  return new OomTracker({ lastSeen: (pid) => (pid === 4836 ? victim : undefined), ...over });
}

test('kmsg then counter: one event from both sources, with victim details', () => {
  const t = tracker();
  t.observeCounters(T, [reading(0)]);
  t.observeKmsg([kill()], T + 500);
  assert.deepEqual(t.takeEvents(T + 500), [], 'held for the counter');
  t.observeCounters(T + 1000, [reading(1)]);
  const events = t.takeEvents(T + 1000);
  assert.deepEqual(events, [
    {
      atMs: T + 300,
      pid: 4836,
      comm: 'python3',
      cmdline: 'python3 -c leak()',
      lastRssAnonBytes: 48 * 1024 * 1024,
      memcg: POD,
      taskMemcg: CONTAINER,
      podUid: UID,
      containerId: CID,
      namespace: 'shop',
      pod: 'api-0',
      container: 'app',
      sources: ['kmsg', 'counter'],
      kernelAnonRssBytes: 50816 * 1024,
    },
  ]);
  assert.deepEqual(t.takeEvents(T + 60_000), [], 'nothing left over');
  assert.equal(t.pendingCount, 0);
});

test('counter then kmsg: one event from both sources', () => {
  const t = tracker();
  t.observeCounters(T, [reading(0)]);
  t.observeCounters(T + 1000, [reading(1)]);
  assert.deepEqual(t.takeEvents(T + 1000), [], 'held for the kernel line');
  t.observeKmsg([kill({ atMs: T + 700 })], T + 1500);
  const events = t.takeEvents(T + 1500);
  assert.equal(events.length, 1);
  assert.deepEqual(events[0]!.sources, ['kmsg', 'counter']);
  assert.equal(events[0]!.pid, 4836);
  assert.equal(events[0]!.atMs, T + 700);
  assert.deepEqual(t.takeEvents(T + 60_000), []);
});

test('counter only: held while kmsg may still speak, then reported with pid null', () => {
  const t = tracker({ holdMs: 5000 });
  t.observeCounters(T, [reading(0)]);
  t.observeCounters(T + 1000, [reading(1)]);
  assert.deepEqual(t.takeEvents(T + 5999), []);
  const events = t.takeEvents(T + 6000);
  assert.equal(events.length, 1);
  const e = events[0]!;
  assert.equal(e.pid, null);
  assert.equal(e.comm, null);
  assert.equal(e.cmdline, null);
  assert.equal(e.memcg, CONTAINER);
  assert.equal(e.taskMemcg, null);
  assert.equal(e.podUid, UID);
  assert.equal(e.containerId, CID);
  assert.equal(e.container, 'app');
  assert.deepEqual(e.sources, ['counter']);
  assert.equal(e.atMs, T + 1000);
  assert.equal(e.kernelAnonRssBytes, null);
});

test('counter only with kmsg inert: reported at once', () => {
  const t = tracker({ kmsgActive: () => false });
  t.observeCounters(T, [reading(0)]);
  t.observeCounters(T + 1000, [reading(1)]);
  const events = t.takeEvents(T + 1000);
  assert.equal(events.length, 1);
  assert.deepEqual(events[0]!.sources, ['counter']);
});

test('counter only: pod identity from the path when the reading has none', () => {
  const t = tracker({ kmsgActive: () => false });
  t.observeCounters(T, [{ cgroupPath: CONTAINER, oomKills: 2 }]);
  t.observeCounters(T + 1000, [{ cgroupPath: CONTAINER, oomKills: 3 }]);
  const [e] = t.takeEvents(T + 1000);
  assert.ok(e);
  assert.equal(e.podUid, UID);
  assert.equal(e.containerId, CID);
  assert.equal(e.namespace, null);
});

test('kmsg only: reported after the hold, pod identity from the last sample of the victim', () => {
  const t = tracker({ holdMs: 3000 });
  t.observeKmsg([kill()], T + 500);
  assert.deepEqual(t.takeEvents(T + 3499), []);
  const events = t.takeEvents(T + 3500);
  assert.equal(events.length, 1);
  const e = events[0]!;
  assert.deepEqual(e.sources, ['kmsg']);
  assert.equal(e.pid, 4836);
  assert.equal(e.cmdline, 'python3 -c leak()');
  assert.equal(e.namespace, 'shop');
  assert.equal(e.pod, 'api-0');
  assert.equal(e.container, 'app');
  assert.equal(e.podUid, UID);
});

test('kmsg only without a sample: identity from the kernel memcg path', () => {
  const t = tracker({ holdMs: 0, lastSeen: () => undefined });
  t.observeKmsg([kill()], T + 500);
  const [e] = t.takeEvents(T + 500);
  assert.ok(e);
  assert.equal(e.cmdline, null);
  assert.equal(e.lastRssAnonBytes, null);
  assert.equal(e.podUid, UID);
  assert.equal(e.containerId, CID);
  assert.equal(e.namespace, null);
});

test('two kills in one pass: two events, each from both sources', () => {
  const t = tracker();
  t.observeCounters(T, [reading(4)]);
  t.observeKmsg([kill({ pid: 10, comm: 'worker', monotonicUsec: 1, atMs: T + 200 }), kill({ pid: 11, comm: 'worker', monotonicUsec: 2, atMs: T + 400 })], T + 900);
  t.observeCounters(T + 1000, [reading(6)]);
  const events = t.takeEvents(T + 1000);
  assert.deepEqual(
    events.map((e) => [e.pid, e.sources]),
    [
      [10, ['kmsg', 'counter']],
      [11, ['kmsg', 'counter']],
    ],
  );
  assert.deepEqual(t.takeEvents(T + 60_000), []);
});

test('the first reading is a baseline; a counter that goes down is a new baseline', () => {
  const t = tracker({ kmsgActive: () => false });
  t.observeCounters(T, [reading(3)]);
  t.observeCounters(T + 1000, [reading(3)]);
  assert.deepEqual(t.takeEvents(T + 60_000), []);
  t.observeCounters(T + 2000, [reading(0)]); // cgroup recreated
  assert.deepEqual(t.takeEvents(T + 60_000), []);
  t.observeCounters(T + 3000, [reading(1)]);
  const events = t.takeEvents(T + 60_000);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.atMs, T + 3000);
});

test('a container first seen after start-up with a kill counted confirms the pending kernel-log kill', () => {
  // The main process was killed before any pass saw it in its cgroup; it restarted and the next
  // pass reads the cgroup for the first time, its counter already at 1.
  const t = tracker({ holdMs: 5000 });
  t.observeCounters(T - 1000, [reading(0, { cgroupPath: '/kubepods/other', containerId: 'other' })]);
  t.observeKmsg([kill()], T + 500);
  t.observeCounters(T + 2000, [reading(1)]);
  const events = t.takeEvents(T + 2000);
  assert.equal(events.length, 1);
  assert.deepEqual([...events[0]!.sources].sort(), ['counter', 'kmsg']);
  assert.equal(events[0]!.pid, 4836);
  assert.deepEqual(t.takeEvents(T + 60_000), [], 'nothing left over to be reported twice');
});

test('a first sighting never reports kills on its own: the kernel log may have reported them already', () => {
  const t = tracker({ holdMs: 3000 });
  t.observeCounters(T - 1000, [reading(0, { cgroupPath: '/kubepods/other', containerId: 'other' })]);
  t.observeKmsg([kill()], T + 500);
  const alone = t.takeEvents(T + 3500);
  assert.equal(alone.length, 1);
  assert.deepEqual(alone[0]!.sources, ['kmsg']);
  t.observeCounters(T + 4000, [reading(1)]);
  assert.deepEqual(t.takeEvents(T + 60_000), []);
  // and at start-up the first reading stays a baseline, whatever it holds
  const u = tracker({ kmsgActive: () => false });
  u.observeCounters(T, [reading(2)]);
  assert.deepEqual(u.takeEvents(T + 60_000), []);
});

test('cgroup v2 counts a kill in the pod and the container: still one kill', () => {
  const t = tracker({ kmsgActive: () => false });
  const pod = (n: number) => reading(n, { cgroupPath: POD, containerId: null, container: null });
  t.observeCounters(T, [pod(0), reading(0)]);
  t.observeCounters(T + 1000, [pod(1), reading(1)]);
  const events = t.takeEvents(T + 1000);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.memcg, CONTAINER);
});

test('a pod counter that moved more than its containers holds its own kills', () => {
  const t = tracker({ kmsgActive: () => false });
  const pod = (n: number) => reading(n, { cgroupPath: POD, containerId: null, container: null });
  t.observeCounters(T, [pod(0), reading(0)]);
  t.observeCounters(T + 1000, [pod(3), reading(1)]);
  const events = t.takeEvents(T + 1000);
  assert.deepEqual(events.map((e) => e.memcg).sort(), [CONTAINER, POD, POD].sort());
});

test('a kill in another cgroup does not merge with this counter', () => {
  const other = '/kubepods/besteffort/pod11111111-2222-3333-4444-555555555555/' + 'a'.repeat(64);
  const t = tracker({ holdMs: 2000 });
  t.observeCounters(T, [reading(0)]);
  t.observeKmsg([kill({ pid: 99, comm: 'java', taskMemcg: other, memcg: other })], T + 500);
  t.observeCounters(T + 1000, [reading(1)]);
  const events = t.takeEvents(T + 10_000);
  assert.deepEqual(events.map((e) => e.sources).sort(), [['counter'], ['kmsg']]);
});

test('a kill long before the counter interval does not merge with it', () => {
  const t = tracker({ holdMs: 2000 });
  t.observeCounters(T, [reading(0)]);
  t.observeCounters(T + 1000, [reading(0)]);
  t.observeCounters(T + 60_000, [reading(1)]);
  // The counter says: a kill in (T+1000, T+60000]. A kernel kill at T−30 s is another kill.
  t.observeKmsg([kill({ atMs: T - 30_000 })], T + 60_500);
  const events = t.takeEvents(T + 70_000);
  assert.equal(events.length, 2);
});

test('cgroup namespace: the kernel path has a prefix the agent does not see', () => {
  const prefix = '/lxc.payload.ny2g2r5hh3-lxc';
  const t = tracker({ lastSeen: () => undefined });
  t.observeCounters(T, [reading(0)]);
  t.observeKmsg([kill({ taskMemcg: prefix + CONTAINER, memcg: prefix + POD })], T + 500);
  t.observeCounters(T + 1000, [reading(1)]);
  const events = t.takeEvents(T + 1000);
  assert.equal(events.length, 1);
  assert.deepEqual(events[0]!.sources, ['kmsg', 'counter']);
});

test('paths beyond recognition: the container id in both still matches', () => {
  const t = tracker({ lastSeen: () => undefined });
  // The agent's view of the cgroup is its namespace root; only the reading's ids say which it is.
  t.observeCounters(T, [reading(0, { cgroupPath: '/' + 'x'.repeat(5) })]);
  t.observeKmsg([kill()], T + 500);
  t.observeCounters(T + 1000, [reading(1, { cgroupPath: '/' + 'x'.repeat(5) })]);
  const events = t.takeEvents(T + 1000);
  assert.equal(events.length, 1);
  assert.deepEqual(events[0]!.sources, ['kmsg', 'counter']);
});

test('a victim without task_memcg (rate-limited header) matches through its last sample', () => {
  const t = tracker();
  t.observeCounters(T, [reading(0)]);
  t.observeKmsg([kill({ taskMemcg: null, memcg: null, lines: ['killed-process'] })], T + 500);
  t.observeCounters(T + 1000, [reading(1)]);
  const events = t.takeEvents(T + 1000);
  assert.equal(events.length, 1);
  assert.deepEqual(events[0]!.sources, ['kmsg', 'counter']);
  assert.equal(events[0]!.taskMemcg, CONTAINER);
  assert.equal(events[0]!.memcg, CONTAINER, 'the cgroup whose counter moved');
});

test('a pid reused by another process is not taken for the victim', () => {
  const t = tracker({ holdMs: 0, lastSeen: () => ({ ...victim, comm: 'bash', cmdline: 'bash' }) });
  t.observeKmsg([kill()], T);
  const [e] = t.takeEvents(T);
  assert.ok(e);
  assert.equal(e.cmdline, null);
  assert.equal(e.lastRssAnonBytes, null);
});

test('the same kernel kill read twice is one event', () => {
  const t = tracker({ holdMs: 0 });
  t.observeKmsg([kill()], T);
  t.observeKmsg([kill()], T + 10);
  assert.equal(t.takeEvents(T + 10).length, 1);
});

test('flush reports everything held', () => {
  const t = tracker();
  t.observeCounters(T, [reading(0)]);
  t.observeCounters(T + 1000, [reading(1, {})]);
  t.observeKmsg([kill({ pid: 5, comm: 'x', taskMemcg: '/elsewhere', memcg: '/elsewhere' })], T + 1000);
  assert.deepEqual(t.takeEvents(T + 1000), []);
  assert.equal(t.flush().length, 2);
  assert.equal(t.pendingCount, 0);
});

test('garbage counter readings are ignored', () => {
  const t = tracker({ kmsgActive: () => false });
  t.observeCounters(T, [reading(0)]);
  t.observeCounters(T + 1000, [reading(Number.NaN), reading(-1, { cgroupPath: '/x' })]);
  t.observeCounters(T + 2000, [reading(1)]);
  assert.equal(t.takeEvents(T + 2000).length, 1);
});

test('isAtOrBelow: same, below, under a prefix; not a sibling or a name prefix', () => {
  assert.equal(isAtOrBelow(CONTAINER, CONTAINER), true);
  assert.equal(isAtOrBelow(CONTAINER, POD), true);
  assert.equal(isAtOrBelow('/lxc/x' + CONTAINER, POD), true);
  assert.equal(isAtOrBelow(CONTAINER, '/../..' + POD), true);
  assert.equal(isAtOrBelow(POD, CONTAINER), false);
  assert.equal(isAtOrBelow(`${POD}/${'b'.repeat(64)}`, CONTAINER), false);
  assert.equal(isAtOrBelow('/kubepods/burstable/pod1234', '/kubepods/burstable/pod12'), false);
});
