import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KmsgFollower, parseKmsgRecord, parseOomKill, type KmsgIo } from '../../../agent/host/kmsg.js';

// Real lines from this machine (kernel 6.18, cgroup v1), a python3 killed in a pod-shaped memcg.
const POD = '/kubepods/burstable/podec1feb94-1954-4ca8-90c4-8ac2a576a93b';
const CONTAINER = `${POD}/605525d397e656b19242d9bb57dff14693863e5da1e9b7189b5fa17d27c4347c`;
const SUMMARY_618 = `oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=${POD},task_memcg=${CONTAINER},task=python3,pid=4836,uid=0`;
const KILLED_618 =
  'Memory cgroup out of memory: Killed process 4836 (python3) total-vm:60768kB, anon-rss:50816kB, file-rss:6400kB, shmem-rss:0kB, UID:0 pgtables:160kB oom_score_adj:0';

test('parseKmsgRecord: a real record', () => {
  const r = parseKmsgRecord(`6,417,782005914,-;${SUMMARY_618}\n`);
  assert.ok(r);
  assert.equal(r.priority, 6);
  assert.equal(r.facility, 0);
  assert.equal(r.seq, 417);
  assert.equal(r.monotonicUsec, 782005914);
  assert.equal(r.flags, '-');
  assert.equal(r.message, SUMMARY_618);
  assert.deepEqual(r.dictionary, {});
});

test('parseKmsgRecord: priority and facility come apart; a user-space record is facility 1', () => {
  const r = parseKmsgRecord('12,419,967088852,-;leakwatch: clock check\n');
  assert.ok(r);
  assert.equal(r.facility, 1);
  assert.equal(r.priority, 4);
  assert.equal(r.message, 'leakwatch: clock check');
});

test('parseKmsgRecord: extra header fields (CONFIG_PRINTK_CALLER) are skipped', () => {
  const r = parseKmsgRecord(`3,418,782005969,-,caller=T4836;${KILLED_618}\n`);
  assert.ok(r);
  assert.equal(r.flags, '-');
  assert.equal(r.message, KILLED_618);
});

test('parseKmsgRecord: continuation lines are the dictionary, not the message', () => {
  const r = parseKmsgRecord('6,1021,5000000,-;usb 1-1: new high-speed USB device\n SUBSYSTEM=usb\n DEVICE=c189:1\n');
  assert.ok(r);
  assert.equal(r.message, 'usb 1-1: new high-speed USB device');
  assert.deepEqual(r.dictionary, { SUBSYSTEM: 'usb', DEVICE: 'c189:1' });
});

test('parseKmsgRecord: \\xNN escapes are decoded (newline, backslash, UTF-8)', () => {
  const r = parseKmsgRecord('4,3,5,-;a\\x0ab \\x5c caf\\xc3\\xa9\n');
  assert.ok(r);
  assert.equal(r.message, 'a\nb \\ café');
});

test('parseKmsgRecord: malformed records give null', () => {
  for (const text of ['', 'garbage', '6,abc,1,-;x', '6,1,2;x', '6,1,2,-', ' SUBSYSTEM=usb', '6,1,99999999999999999999,-;x']) {
    assert.equal(parseKmsgRecord(text), null, JSON.stringify(text));
  }
});

test('parseOomKill: the 6.18 summary line', () => {
  const line = parseOomKill(SUMMARY_618);
  assert.deepEqual(line, {
    kind: 'oom-kill',
    constraint: 'CONSTRAINT_MEMCG',
    scope: 'memcg',
    oomMemcg: POD,
    taskMemcg: CONTAINER,
    comm: 'python3',
    pid: 4836,
    uid: 0,
  });
});

test('parseOomKill: the 6.18 Killed line', () => {
  assert.deepEqual(parseOomKill(KILLED_618), {
    kind: 'killed-process',
    scope: 'memcg',
    pid: 4836,
    comm: 'python3',
    totalVmBytes: 60768 * 1024,
    anonRssBytes: 50816 * 1024,
    fileRssBytes: 6400 * 1024,
    shmemRssBytes: 0,
    uid: 0,
    oomScoreAdj: 0,
  });
});

test('parseOomKill: global OOM summary (5.x) has global_oom and no oom_memcg', () => {
  const line = parseOomKill('oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/init.scope,task=python,pid=7899,uid=0');
  assert.ok(line && line.kind === 'oom-kill');
  assert.equal(line.scope, 'global');
  assert.equal(line.oomMemcg, null);
  assert.equal(line.taskMemcg, '/init.scope');
  assert.equal(line.pid, 7899);
});

test('parseOomKill: summary from a systemd-driver node nested in LXC, mems_allowed a range', () => {
  const id = 'ec9ee26695deb4cc72bc665efff1cf3a03fdfb12f1303e02fe9252985e084a95';
  const pod = '/lxc.payload.ny2g2r5hh3-lxc/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podeded8c65_6e8e_4c6e_a889_3e427565c740.slice';
  const line = parseOomKill(
    `oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=cri-containerd-${id}.scope,mems_allowed=0-1,oom_memcg=${pod},task_memcg=${pod}/cri-containerd-${id}.scope,task=pt_main_thread,pid=461754,uid=0`,
  );
  assert.ok(line && line.kind === 'oom-kill');
  assert.equal(line.oomMemcg, pod);
  assert.equal(line.taskMemcg, `${pod}/cri-containerd-${id}.scope`);
  assert.equal(line.comm, 'pt_main_thread');
  assert.equal(line.pid, 461754);
});

test('parseOomKill: commas in mems_allowed and in the task name do not shift fields', () => {
  const line = parseOomKill('oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=0-1,4,cpuset=/,mems_allowed=0-1,4,oom_memcg=/a,task_memcg=/a/b,task=we,ird,pid=12,uid=1000');
  assert.ok(line && line.kind === 'oom-kill');
  assert.equal(line.oomMemcg, '/a');
  assert.equal(line.taskMemcg, '/a/b');
  assert.equal(line.comm, 'we,ird');
  assert.equal(line.uid, 1000);
});

test('parseOomKill: summary without the cpuset part (kernel without cpusets)', () => {
  const line = parseOomKill('oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),oom_memcg=/x,task_memcg=/x/y,task=a,pid=1,uid=0');
  assert.ok(line && line.kind === 'oom-kill');
  assert.equal(line.oomMemcg, '/x');
  assert.equal(line.taskMemcg, '/x/y');
});

test('parseOomKill: global Killed line without UID (5.0-5.2), task name with parentheses', () => {
  const line = parseOomKill('Out of memory: Killed process 17050 ((d-logind)) total-vm:168032kB, anon-rss:4040kB, file-rss:3056kB, shmem-rss:0kB');
  assert.ok(line && line.kind === 'killed-process');
  assert.equal(line.scope, 'global');
  assert.equal(line.comm, '(d-logind)');
  assert.equal(line.anonRssBytes, 4040 * 1024);
  assert.equal(line.uid, null);
  assert.equal(line.oomScoreAdj, null);
});

test('parseOomKill: legacy (< 4.5) Killed line without prefix or shmem', () => {
  const line = parseOomKill('Killed process 1234 (python) total-vm:60768kB, anon-rss:50816kB, file-rss:6400kB');
  assert.ok(line && line.kind === 'killed-process');
  assert.equal(line.scope, 'unknown');
  assert.equal(line.pid, 1234);
  assert.equal(line.shmemRssBytes, null);
});

test('parseOomKill: RHEL 7 Killed line with ", UID n,"', () => {
  const line = parseOomKill('Killed process 42452 (memcg_test_1), UID 0, total-vm:7296kB, anon-rss:96kB, file-rss:164kB, shmem-rss:0kB');
  assert.ok(line && line.kind === 'killed-process');
  assert.equal(line.comm, 'memcg_test_1');
  assert.equal(line.uid, 0);
  assert.equal(line.anonRssBytes, 96 * 1024);
});

test('parseOomKill: oom_kill_allocating_task is a global kill', () => {
  const line = parseOomKill('Out of memory (oom_kill_allocating_task): Killed process 5 (x) total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB, UID:0 pgtables:4kB oom_score_adj:-998');
  assert.ok(line && line.kind === 'killed-process');
  assert.equal(line.scope, 'global');
  assert.equal(line.oomScoreAdj, -998);
});

test('parseOomKill: legacy "Kill process ... or sacrifice child" and "Task in"', () => {
  assert.deepEqual(parseOomKill('Memory cgroup out of memory: Kill process 1234 (python) score 1000 or sacrifice child'), {
    kind: 'kill-process',
    scope: 'memcg',
    pid: 1234,
    comm: 'python',
    score: 1000,
  });
  assert.deepEqual(parseOomKill('Task in /kubepods/burstable/podX/abc killed as a result of limit of /kubepods/burstable/podX'), {
    kind: 'task-in',
    taskMemcg: '/kubepods/burstable/podX/abc',
    oomMemcg: '/kubepods/burstable/podX',
  });
  assert.deepEqual(parseOomKill('Tasks in /kubepods.slice/p.slice/c.scope are going to be killed due to memory.oom.group set'), {
    kind: 'oom-group',
    memcg: '/kubepods.slice/p.slice/c.scope',
  });
});

test('parseOomKill: other OOM-report lines are not kills', () => {
  for (const message of [
    'oom_reaper: reaped process 4836 (python3), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB',
    'python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0',
    'Memory cgroup out of memory: OOM victim 5 (x) is already exiting. Skip killing the task',
    `Memory cgroup stats for ${POD}:`,
    'oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null)',
    'Killed process abc (x) total-vm:1kB, anon-rss:2kB, file-rss:3kB',
    'Task in  killed as a result of limit of',
    '[   4836]     0  4836    15192    14304    12704     1600         0   163840        0             0 python3',
  ]) {
    assert.equal(parseOomKill(message), null, message);
  }
});

// ---- the follower on a regular file ----

function fixtureDir(uptimeSeconds: number): { dir: string; log: string; procRoot: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kmsg-test-'));
  // A proc root holding just `uptime`: the follower places kernel timestamps with it.
  const procRoot = join(dir, 'proc');
  mkdirSync(procRoot);
  writeFileSync(join(procRoot, 'uptime'), `${uptimeSeconds.toFixed(2)} 1.00\n`);
  const log = join(dir, 'kmsg.log');
  writeFileSync(log, '');
  return { dir, log, procRoot };
}

const NOW = 1_800_000_000_000;

function rec(seq: number, usec: number, message: string, prio = 6, flags = '-'): string {
  return `${prio},${seq},${usec},${flags};${message}\n`;
}

test('follower on a file: starts at the end, reads appended records, merges a kill', () => {
  const { dir, log, procRoot } = fixtureDir(1000);
  try {
    appendFileSync(log, rec(1, 900_000_000, 'old line') + rec(2, 900_000_001, SUMMARY_618) + rec(3, 900_000_002, KILLED_618, 3));
    const warnings: string[] = [];
    const f = new KmsgFollower({ path: log, procRoot, now: () => NOW, warn: (m) => warnings.push(m) });
    f.open();
    assert.deepEqual(f.poll(), [], 'records already there at open are history');
    appendFileSync(
      log,
      rec(10, 999_000_000, 'Tasks state (memory values in pages):') +
        rec(11, 999_000_100, SUMMARY_618) +
        ' SUBSYSTEM=memory\n' +
        rec(12, 999_500_000, KILLED_618, 3),
    );
    const kills = f.poll();
    assert.equal(kills.length, 1);
    const k = kills[0]!;
    assert.equal(k.pid, 4836);
    assert.equal(k.comm, 'python3');
    assert.equal(k.memcg, POD);
    assert.equal(k.taskMemcg, CONTAINER);
    assert.equal(k.scope, 'memcg');
    assert.equal(k.constraint, 'CONSTRAINT_MEMCG');
    assert.equal(k.anonRssBytes, 50816 * 1024);
    assert.equal(k.seq, 12);
    assert.deepEqual(k.lines, ['oom-kill', 'killed-process']);
    // uptime 1000 s at NOW: boot was NOW − 1e6 ms; 999.5 s after boot is NOW − 500 ms.
    assert.equal(k.atMs, NOW - 500);
    assert.deepEqual(f.poll(), []);
    assert.deepEqual(warnings, []);
    assert.equal(f.stats.kills, 1);
    f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follower on a file: fromStart reads what is there; a half-written line waits', () => {
  const { dir, log, procRoot } = fixtureDir(1000);
  try {
    appendFileSync(log, rec(1, 1, SUMMARY_618) + rec(2, 2, KILLED_618, 3));
    const f = new KmsgFollower({ path: log, procRoot, now: () => NOW, fromStart: true });
    assert.equal(f.poll().length, 1);
    const killed = rec(4, 4, KILLED_618.replaceAll('4836', '5000'), 3);
    appendFileSync(log, rec(3, 3, SUMMARY_618.replace('pid=4836', 'pid=5000')) + killed.slice(0, 40));
    assert.deepEqual(f.poll(), [], 'the Killed line is not complete yet');
    appendFileSync(log, killed.slice(40));
    const kills = f.poll();
    assert.equal(kills.length, 1);
    assert.equal(kills[0]!.pid, 5000);
    assert.deepEqual(kills[0]!.lines, ['oom-kill', 'killed-process'], 'summary and Killed line merged across polls');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follower: a summary whose Killed line never comes is reported alone one poll later', () => {
  const { dir, log, procRoot } = fixtureDir(1000);
  try {
    const f = new KmsgFollower({ path: log, procRoot, now: () => NOW });
    f.open();
    appendFileSync(log, rec(1, 10, SUMMARY_618));
    assert.deepEqual(f.poll(), []);
    const kills = f.poll();
    assert.equal(kills.length, 1);
    assert.deepEqual(kills[0]!.lines, ['oom-kill']);
    assert.equal(kills[0]!.anonRssBytes, null);
    assert.equal(kills[0]!.taskMemcg, CONTAINER);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follower: a Killed line naming a thread of the chosen process still merges (next record)', () => {
  const { dir, log, procRoot } = fixtureDir(1000);
  try {
    const f = new KmsgFollower({ path: log, procRoot, now: () => NOW });
    f.open();
    appendFileSync(log, rec(1, 10, SUMMARY_618) + rec(2, 11, KILLED_618.replace('4836', '4840'), 3));
    const kills = f.poll();
    assert.equal(kills.length, 1);
    assert.equal(kills[0]!.pid, 4840);
    assert.equal(kills[0]!.taskMemcg, CONTAINER);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follower: legacy report (Task in, Kill process, Killed) gives the memcgs to the kill', () => {
  const { dir, log, procRoot } = fixtureDir(1000);
  try {
    const f = new KmsgFollower({ path: log, procRoot, now: () => NOW });
    f.open();
    appendFileSync(
      log,
      rec(1, 100, 'java invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=0', 4) +
        rec(2, 101, `Task in ${CONTAINER} killed as a result of limit of ${POD}`) +
        rec(3, 102, `memory: usage 51200kB, limit 51200kB, failcnt 12`) +
        rec(4, 103, 'Memory cgroup out of memory: Kill process 9949 (java) score 1000 or sacrifice child', 3) +
        rec(5, 104, 'Killed process 9950 (java) total-vm:3000kB, anon-rss:2000kB, file-rss:100kB', 3),
    );
    const kills = f.poll();
    assert.equal(kills.length, 1);
    const k = kills[0]!;
    assert.equal(k.pid, 9950);
    assert.equal(k.scope, 'memcg');
    assert.equal(k.memcg, POD);
    assert.equal(k.taskMemcg, CONTAINER);
    assert.deepEqual(k.lines, ['killed-process']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follower: legacy line logged in fragments (c / + flags) is joined', () => {
  const { dir, log, procRoot } = fixtureDir(1000);
  try {
    const f = new KmsgFollower({ path: log, procRoot, now: () => NOW });
    f.open();
    appendFileSync(
      log,
      rec(1, 100, 'Task in ', 6, 'c') +
        rec(2, 100, CONTAINER, 6, '+') +
        rec(3, 100, ' killed as a result of limit of ', 6, '+') +
        rec(4, 100, POD, 6, '+') +
        rec(5, 104, 'Killed process 7 (java) total-vm:3000kB, anon-rss:2000kB, file-rss:100kB', 3),
    );
    const kills = f.poll();
    assert.equal(kills.length, 1);
    assert.equal(kills[0]!.taskMemcg, CONTAINER);
    assert.equal(kills[0]!.memcg, POD);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follower: memory.oom.group kills every member; each member is a kill with the group memcg', () => {
  const { dir, log, procRoot } = fixtureDir(1000);
  try {
    const f = new KmsgFollower({ path: log, procRoot, now: () => NOW });
    f.open();
    appendFileSync(
      log,
      rec(1, 100, SUMMARY_618) +
        rec(2, 101, KILLED_618, 3) +
        rec(3, 102, `Tasks in ${CONTAINER} are going to be killed due to memory.oom.group set`) +
        rec(4, 103, KILLED_618.replaceAll('4836', '4901').replace('python3', 'sh'), 3) +
        rec(5, 104, KILLED_618.replaceAll('4836', '4902').replace('python3', 'sleep'), 3),
    );
    const kills = f.poll();
    assert.deepEqual(
      kills.map((k) => [k.pid, k.comm, k.memcg]),
      [
        [4836, 'python3', POD],
        [4901, 'sh', CONTAINER],
        [4902, 'sleep', CONTAINER],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follower: garbage lines are skipped; a truncated file is a gap and is read again', () => {
  const { dir, log, procRoot } = fixtureDir(1000);
  const warnings: string[] = [];
  try {
    const f = new KmsgFollower({ path: log, procRoot, now: () => NOW, warn: (m) => warnings.push(m) });
    f.open();
    appendFileSync(log, 'not a record\n\u0000\u0001binary\n6,x,1,-;bad\n' + rec(1, 100, SUMMARY_618) + rec(2, 101, KILLED_618, 3));
    assert.equal(f.poll().length, 1);
    assert.equal(f.stats.records, 2);
    truncateSync(log, 0);
    appendFileSync(log, rec(1, 200, SUMMARY_618.replace('pid=4836', 'pid=77')) + rec(2, 201, KILLED_618.replace('4836', '77'), 3));
    const kills = f.poll();
    assert.equal(kills.length, 1);
    assert.equal(kills[0]!.pid, 77);
    assert.equal(f.stats.gaps, 1);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /truncated/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follower: a missing path warns once, stays inert, never throws', () => {
  const warnings: string[] = [];
  const f = new KmsgFollower({ path: '/nonexistent/leakwatch/kmsg', warn: (m) => warnings.push(m) });
  assert.doesNotThrow(() => f.open());
  assert.deepEqual(f.poll(), []);
  assert.deepEqual(f.poll(), []);
  assert.equal(f.available, false);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /cannot open \/nonexistent\/leakwatch\/kmsg \(ENOENT/);
  assert.match(warnings[0]!, /memcg counters/);
});

// ---- the follower on a device, through the io seam ----

type Step = string | 'EAGAIN' | 'EPIPE' | 'EINVAL' | 'EIO';

/** A /dev/kmsg stand-in: each read() takes the next step. */
function fakeDevice(steps: Step[]): { io: KmsgIo; readLengths: number[] } {
  const readLengths: number[] = [];
  const io: KmsgIo = {
    openSync: () => 42,
    fstatSync: () => ({ isFile: () => false, size: 0 }),
    closeSync: () => {},
    readSync: (_fd, buffer, offset, length) => {
      readLengths.push(length);
      const step = steps.shift() ?? 'EAGAIN';
      if (step === 'EAGAIN' || step === 'EPIPE' || step === 'EINVAL' || step === 'EIO') {
        throw Object.assign(new Error(`${step} (fake)`), { code: step });
      }
      const bytes = Buffer.from(step);
      if (bytes.length > length) throw new Error('fake record larger than the buffer');
      bytes.copy(buffer, offset);
      return bytes.length;
    },
  };
  return { io, readLengths };
}

test('follower on a device: drains history at open; EPIPE is a noted gap and reading goes on', () => {
  const { dir, procRoot } = fixtureDir(1000);
  try {
    const { io } = fakeDevice([
      // history, drained by open(): an old kill that must not be reported
      rec(1, 5_000_000, SUMMARY_618),
      rec(2, 5_000_001, KILLED_618, 3),
      rec(3, 6_000_000, 'something else'),
      'EAGAIN',
      // first poll: the kernel overwrote our next records
      'EPIPE',
      rec(10, 999_000_000, SUMMARY_618.replace('pid=4836', 'pid=6000')),
      rec(11, 999_000_050, KILLED_618.replace('4836', '6000'), 3),
      'EAGAIN',
    ]);
    const warnings: string[] = [];
    const f = new KmsgFollower({ io, procRoot, now: () => NOW, warn: (m) => warnings.push(m) });
    f.open();
    const kills = f.poll();
    assert.deepEqual(kills.map((k) => k.pid), [6000]);
    assert.equal(f.stats.gaps, 1);
    assert.equal(f.stats.lostRecords, 6, 'records 4..9 were lost');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /gap in \/dev\/kmsg/);
    assert.equal(f.available, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follower on a device: EINVAL (buffer too small) grows the buffer and retries', () => {
  const { io, readLengths } = fakeDevice(['EAGAIN', 'EINVAL', rec(5, 10, SUMMARY_618), rec(6, 11, KILLED_618, 3)]);
  const f = new KmsgFollower({ io, procRoot: '/nonexistent', readBufferBytes: 8192 });
  f.open();
  assert.equal(f.poll().length, 1);
  assert.ok(readLengths[0]! >= 8192);
  assert.equal(readLengths[2], readLengths[1]! * 2);
});

test('follower on a device: timestamps are clamped into the poll interval', () => {
  const { dir, procRoot } = fixtureDir(100);
  try {
    let now = 1_000_000;
    // Boot at 900_000 by uptime. A record stamped 50 s after boot would be at 950_000, before
    // the follower opened: a log clock that lagged uptime (suspend). It is placed at open time.
    const { io } = fakeDevice([
      'EAGAIN',
      rec(1, 50_000_000, SUMMARY_618),
      rec(2, 50_000_001, KILLED_618, 3),
      rec(3, 105_000_000, SUMMARY_618.replace('pid=4836', 'pid=9')),
      rec(4, 105_000_001, KILLED_618.replace('4836', '9'), 3),
      'EAGAIN',
    ]);
    const f = new KmsgFollower({ io, procRoot, now: () => now });
    f.open();
    now = 1_010_000;
    const kills = f.poll();
    assert.deepEqual(
      kills.map((k) => [k.pid, k.atMs]),
      [
        [4836, 1_000_000],
        [9, 1_005_000],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follower on a device: an unexpected read error warns once and goes inert', () => {
  const { io } = fakeDevice(['EAGAIN', 'EIO']);
  const warnings: string[] = [];
  const f = new KmsgFollower({ io, procRoot: '/nonexistent', warn: (m) => warnings.push(m) });
  f.open();
  assert.deepEqual(f.poll(), []);
  assert.deepEqual(f.poll(), []);
  assert.equal(f.available, false);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /EIO/);
});

test('follower on a device with fromStart: history is reported at its own time', () => {
  const { dir, procRoot } = fixtureDir(100);
  try {
    const { io } = fakeDevice([rec(1, 50_000_000, SUMMARY_618), rec(2, 50_000_001, KILLED_618, 3), 'EAGAIN']);
    const f = new KmsgFollower({ io, procRoot, now: () => 1_000_000, fromStart: true });
    const kills = f.poll();
    assert.deepEqual(kills.map((k) => [k.pid, k.atMs]), [[4836, 950_000]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
