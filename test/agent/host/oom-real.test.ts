// The seed-004 case on the real kernel: a python3 in a pod with a 50 MiB limit allocates past it
// and is OOM-killed. The kernel log and the memcg counter must give exactly one event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KmsgFollower } from '../../../agent/host/kmsg.js';
import { OomTracker, type OomVictimInfo } from '../../../agent/host/oom-events.js';
import type { OomKillEvent } from '../../../agent/host/types.js';
import { createFakePod, fakeNodeAvailability } from '../../support/fake-node.js';

const MiB = 1024 * 1024;
const HOLD_MS = 3000;

function skipReason(): string | null {
  const node = fakeNodeAvailability();
  if (!node.ok) return node.reason;
  try {
    closeSync(openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK));
  } catch (err) {
    return `/dev/kmsg is not readable (${(err as NodeJS.ErrnoException).code})`;
  }
  return null;
}

/** The real interpreter, named python3 so the kernel's task name is `python3` (pyenv shims are scripts). */
function python3(): string | null {
  try {
    const exe = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
    const named = join(dirname(exe), 'python3');
    return existsSync(named) ? named : exe;
  } catch {
    return null;
  }
}

function oomKillCounter(cgroupDir: string): number {
  const text = readFileSync(join(cgroupDir, 'memory.oom_control'), 'utf8');
  const m = /^oom_kill (\d+)$/m.exec(text);
  if (!m) throw new Error(`no oom_kill line in ${cgroupDir}/memory.oom_control:\n${text}`);
  return Number(m[1]);
}

/** What a process table would remember of a process: sampled until it dies. */
function sampleProcess(pid: number, cgroupPath: string, ids: Omit<OomVictimInfo, 'comm' | 'cmdline' | 'rssAnonBytes' | 'cgroupPath'>, into: Map<number, OomVictimInfo>): () => void {
  const timer = setInterval(() => {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      const rssAnonKb = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      if (rssAnonKb === undefined) return;
      into.set(pid, { comm, cmdline, rssAnonBytes: Number(rssAnonKb) * 1024, cgroupPath, ...ids });
    } catch {
      // gone: keep the last sample, as the process table does
    }
  }, 10);
  return () => clearInterval(timer);
}

test('seed-004: python3 over a 50 MiB limit is ONE OOM event, seen by kmsg and the counter', async (t) => {
  const reason = skipReason();
  const python = python3();
  if (reason || !python) {
    const why = reason ?? 'no python3';
    console.log(`SKIP: ${why}`);
    t.skip(`SKIP: ${why}`);
    return;
  }

  const warnings: string[] = [];
  const follower = new KmsgFollower({ warn: (m) => warnings.push(m) });
  follower.open();
  const pod = createFakePod({ namespace: 'seed', name: 'oom-example-pod', containers: [{ name: 'oom-container', limitBytes: 50 * MiB }] });
  const stopSampling: Array<() => void> = [];
  try {
    assert.equal(follower.available, true, `follower not available: ${warnings.join('; ')}`);
    const c = pod.containers[0]!;
    const samples = new Map<number, OomVictimInfo>();
    const tracker = new OomTracker({ lastSeen: (pid) => samples.get(pid), holdMs: HOLD_MS });
    const identity = { podUid: pod.uid, containerId: c.id, namespace: pod.namespace, pod: pod.name, container: c.name };
    const counterPass = (atMs: number) =>
      tracker.observeCounters(atMs, [
        { cgroupPath: c.cgroupPath, oomKills: oomKillCounter(c.cgroupDir), ...identity },
        { cgroupPath: pod.podCgroupPath, oomKills: oomKillCounter(pod.podCgroupDir), podUid: pod.uid, namespace: pod.namespace, pod: pod.name },
      ]);
    counterPass(Date.now()); // baseline

    // Bounded on its own too (200 MiB) in case the limit did not hold: then it exits 0 and the test fails.
    const script = 'import time\ntime.sleep(0.3)\nb = []\nfor _ in range(200):\n    b.append(bytearray(1 << 20))\n';
    const child = pod.spawnIn('oom-container', python, ['-c', script]);
    const pid = child.pid!;
    stopSampling.push(sampleProcess(pid, c.cgroupPath, { podUid: pod.uid, containerId: c.id, namespace: pod.namespace, pod: pod.name, container: c.name }, samples));
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('workload did not exit within 30 s')), 30_000);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
    const exitedAt = Date.now();
    stopSampling.pop()!();
    assert.equal(exit.signal, 'SIGKILL', `expected an OOM kill (exit 137), got code ${exit.code} signal ${exit.signal}`);
    assert.equal(oomKillCounter(c.cgroupDir), 1, 'the container cgroup counted one OOM kill');

    // Sampler passes, kmsg first then counters, until every held kill would have surfaced.
    const events: OomKillEvent[] = [];
    let firstEventAt: number | null = null;
    while (Date.now() - exitedAt < HOLD_MS + 2000) {
      const now = Date.now();
      tracker.observeKmsg(follower.poll(), now);
      counterPass(now);
      const got = tracker.takeEvents(now);
      if (got.length > 0 && firstEventAt === null) firstEventAt = now;
      events.push(...got);
      await new Promise((r) => setTimeout(r, 250));
    }
    // Other tests on this machine may OOM-kill in their own pods: keep what concerns ours.
    const ours = events.filter((e) => e.pid === pid || e.podUid === pod.uid || (e.taskMemcg ?? '').includes(pod.uid));
    assert.equal(ours.length, 1, `expected exactly one event for our pod, got ${JSON.stringify(ours, null, 2)}`);
    const e = ours[0]!;
    assert.equal(e.pid, pid);
    assert.equal(e.comm, basename(python).slice(0, 15));
    assert.equal(e.comm, 'python3');
    assert.deepEqual(e.sources, ['kmsg', 'counter']);
    assert.equal(e.taskMemcg, c.cgroupPath);
    // Pod limit = container limit here, so the kernel may charge either level first.
    assert.ok(e.memcg === c.cgroupPath || e.memcg === pod.podCgroupPath, `memcg ${e.memcg}`);
    assert.equal(e.podUid, pod.uid);
    assert.equal(e.containerId, c.id);
    assert.equal(e.namespace, 'seed');
    assert.equal(e.pod, 'oom-example-pod');
    assert.equal(e.container, 'oom-container');
    assert.match(e.cmdline ?? '', /bytearray/);
    assert.ok((e.lastRssAnonBytes ?? 0) > 0, 'a sample of the victim before it died');
    assert.ok((e.kernelAnonRssBytes ?? 0) > 30 * MiB && (e.kernelAnonRssBytes ?? 0) <= 50 * MiB, `kernel anon-rss ${e.kernelAnonRssBytes}`);
    assert.ok(Math.abs(e.atMs - exitedAt) < 5000, `event time ${e.atMs} vs exit ${exitedAt}`);
    assert.deepEqual(warnings, []);
    console.log(
      `measured: victim pid ${pid}, kernel anon-rss ${((e.kernelAnonRssBytes ?? 0) / MiB).toFixed(1)} MiB, ` +
        `last sampled anon ${((e.lastRssAnonBytes ?? 0) / MiB).toFixed(1)} MiB, kill stamped ${e.atMs - exitedAt} ms from when the exit was seen, ` +
        `event out ${firstEventAt === null ? '?' : firstEventAt - exitedAt} ms after exit; kmsg records read ${follower.stats.records}`,
    );
  } finally {
    for (const stop of stopSampling) stop();
    follower.close();
    await pod.destroy();
  }
});
