import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { FanoutDetector, trendOf, type FanoutEvent, type FanoutFindingEvent, type FanoutOptions } from '../../../agent/watch/fanout.js';
import type { AttributedProcess } from '../../../agent/host/node-sampler.js';
import { ProcessTable } from '../../../agent/host/process-table.js';

const MiB = 1024 * 1024;
const T0 = 1_700_000_000_000;
const limit = 192 * MiB;

// --- a small synthetic node ---------------------------------------------------------------------

type Memory = (atMs: number) => number;

function proc(fields: Partial<AttributedProcess> & { pid: number; ppid: number; startTimeMs: number }): AttributedProcess {
  return {
    comm: 'proc',
    cmdline: 'proc',
    argv: ['proc'],
    exe: null,
    uid: 0,
    nsPid: fields.pid,
    nsPids: [fields.pid],
    state: 'S',
    rssAnonBytes: 0,
    rssFileBytes: 0,
    rssShmemBytes: 0,
    swapBytes: 0,
    cgroupPath: '/kubepods/burstable/poduid-1/abc',
    podUid: 'uid-1',
    namespace: 'default',
    pod: 'metrics-app-7d9f',
    container: 'metrics-app',
    containerId: 'a'.repeat(64),
    runtime: 'containerd',
    qos: 'Burstable',
    limitBytes: limit,
    oomKills: 0,
    ...fields,
  };
}

class Node {
  now = T0;
  readonly events: FanoutEvent[] = [];
  private readonly procs = new Map<number, { p: AttributedProcess; memory: Memory }>();

  constructor(readonly detector: FanoutDetector) {}

  start(pid: number, ppid: number, fields: Partial<AttributedProcess> = {}, memory: Memory = () => 10 * MiB): AttributedProcess {
    const p = proc({ pid, ppid, startTimeMs: this.now, ...fields });
    this.procs.set(pid, { p, memory });
    return p;
  }

  exit(pid: number): void {
    this.procs.delete(pid);
  }

  has(pid: number): boolean {
    return this.procs.has(pid);
  }

  reparent(pid: number, ppid: number): void {
    const entry = this.procs.get(pid);
    if (entry) entry.p = { ...entry.p, ppid };
  }

  childrenOf(pid: number): number {
    let n = 0;
    for (const { p } of this.procs.values()) if (p.ppid === pid) n++;
    return n;
  }

  pass(): FanoutEvent[] {
    const list = [...this.procs.values()].map(({ p, memory }) => ({ ...p, rssAnonBytes: memory(this.now) }));
    const events = this.detector.observe(this.now, list);
    this.events.push(...events);
    return events;
  }

  /** Sample every stepMs until `untilMs`, calling `world` before each pass to move processes. */
  run(untilMs: number, world: (now: number) => void = () => {}, stepMs = 1000): void {
    while (this.now + stepMs <= untilMs) {
      this.now += stepMs;
      world(this.now);
      this.pass();
    }
  }
}

function opens(events: FanoutEvent[]): FanoutFindingEvent[] {
  return events.filter((e): e is FanoutFindingEvent => e.kind === 'open');
}

/** A child that allocates `rate` bytes/s from its start, up to `cap`. */
function growing(startMs: number, base: number, ratePerSec: number, cap = Infinity): Memory {
  return (t) => Math.min(cap, base + ((t - startMs) / 1000) * ratePerSec);
}

/** Flask server (pid 812) started at T0 that starts one leaking python child per request. */
function perRequestFanout(detector: FanoutDetector, requestEveryMs: number, stopSpawningAtMs = Infinity, stopGrowingAtMs = Infinity) {
  const node = new Node(detector);
  node.start(812, 1, { comm: 'python', cmdline: 'python app.py' }, () => 40 * MiB);
  // The server has run quietly for a while before the first /counter request.
  node.run(T0 + 120_000);
  let nextPid = 900;
  let nextRequest = node.now + requestEveryMs;
  const world = (now: number) => {
    if (now >= nextRequest && now < stopSpawningAtMs) {
      const pid = nextPid++;
      node.start(pid, 812, { comm: 'python', cmdline: `python /tmp/tmp${pid}.py` }, (t) =>
        growing(now, 6 * MiB, 2 * MiB, 40 * MiB)(Math.min(t, stopGrowingAtMs)),
      );
      nextRequest = now + requestEveryMs;
    }
  };
  return { node, world };
}

describe('FanoutDetector: one child per request that keeps its memory', () => {
  it('opens one finding with the right counts and names the parent', () => {
    const { node, world } = perRequestFanout(new FanoutDetector(), 4000);
    node.run(T0 + 300_000, world);
    const opened = opens(node.events);
    assert.equal(opened.length, 1, 'one problem, one finding');
    const open = opened[0]!;
    assert.equal(open.key, `812:${T0}`);
    assert.equal(open.trigger, 'accumulating');
    assert.equal(open.target.pid, 812);
    assert.equal(open.target.pod, 'metrics-app-7d9f');
    assert.equal(open.target.container, 'metrics-app');
    assert.equal(open.details.parent.pid, 812);
    // Spawns every 4 s: the 5th is at +20 s and by then the first three are older than 5 s.
    assert.equal(open.atMs, T0 + 120_000 + 20_000);
    assert.equal(node.events[0], open, 'nothing before the open');
    assert.equal(open.details.childrenAlive, 5);
    assert.equal(open.details.childrenSeen, 5);
    assert.equal(open.details.limitBytes, limit);
    // 5 spawns since the first one 16 s ago: 5 * 60 / 16.
    assert.equal(open.details.spawnRatePerMin, 18.8);
    assert.equal(open.details.sampleChildren.length, 5);
    // Largest first: the oldest child has allocated the most.
    assert.equal(open.details.sampleChildren[0]!.pid, 900);
    assert.match(open.details.sampleChildren[0]!.cmdline, /^python \/tmp\/tmp900\.py$/);
    const expectedBytes = [0, 4, 8, 12, 16].reduce((sum, age) => sum + Math.min(40 * MiB, 6 * MiB + age * 2 * MiB), 0);
    assert.equal(open.details.childrenAnonBytes, expectedBytes);
    assert.match(open.summary, /^python \(pid 812\) spawned 5 children in 16 s; 5 alive hold 110 MiB/);
    assert.match(open.summary, /of a 192 MiB limit$/);

    const updates = node.events.filter((e): e is FanoutFindingEvent => e.kind === 'update');
    assert.ok(updates.length > 5, `updates while it goes on (${updates.length})`);
    for (let i = 1; i < updates.length; i++) assert.ok(updates[i]!.atMs - updates[i - 1]!.atMs >= 5000, 'updates at least 5 s apart');
    const last = updates.at(-1)!;
    assert.equal(last.details.childrenAlive, node.childrenOf(812));
    assert.equal(last.details.childrenSeen, last.details.childrenAlive, 'none exited: every child seen is alive');
    assert.ok(last.details.childrenSlopeBytesPerSec !== null && last.details.childrenSlopeBytesPerSec > 0);
    assert.equal(node.events.filter((e) => e.kind === 'resolve').length, 0);
  });

  it('an agent that starts mid-incident opens on its first pass, from the children\'s start times', () => {
    const node = new Node(new FanoutDetector());
    node.now = T0 + 600_000;
    node.start(812, 1, { comm: 'python', startTimeMs: T0 }, () => 40 * MiB);
    // Seven children started over the last 40 s, all still alive.
    for (let i = 0; i < 7; i++) node.start(900 + i, 812, { comm: 'python', startTimeMs: node.now - 40_000 + i * 6000 }, () => 20 * MiB);
    const events = node.pass();
    assert.equal(events.length, 1);
    const open = events[0]!;
    assert.equal(open.kind, 'open');
    assert.equal(open.kind === 'open' && open.details.childrenAlive, 7);
    assert.equal(open.kind === 'open' && open.details.childrenSlopeBytesPerSec, null, 'one point: no slope yet');
    assert.equal(open.kind === 'open' && open.summary, 'python (pid 812) spawned 7 children in 40 s; 7 alive hold 140 MiB of a 192 MiB limit');
  });

  it('reports the combined slope while children keep allocating', () => {
    const { node, world } = perRequestFanout(new FanoutDetector(), 4000);
    node.run(T0 + 180_000, world);
    const last = node.events.filter((e): e is FanoutFindingEvent => e.kind !== 'resolve').at(-1)!;
    // Each child grows 2 MiB/s for 17 s, one starts every 4 s: about 4.25 grow at once
    // (8.5 MiB/s), plus the 6 MiB step every 4 s (1.5 MiB/s).
    const slope = last.details.childrenSlopeBytesPerSec!;
    assert.ok(slope > 8 * MiB && slope < 12 * MiB, `slope ${slope / MiB} MiB/s`);
    assert.match(last.summary, /\(\+\d+(\.\d)? MiB\/s\)/);
  });

  it('opens on spawned memory growth even when children exit (spawned-memory-growing)', () => {
    // Each request child lives 4 s while the next starts every 2 s, growing 8 MiB/s: never 3
    // lingering, but what they hold together climbs because each new child is bigger.
    const node = new Node(new FanoutDetector());
    node.start(812, 1, { comm: 'python' }, () => 40 * MiB);
    node.run(T0 + 60_000);
    let pid = 900;
    let size = 1;
    node.run(T0 + 200_000, (now) => {
      for (const p of [pid - 1, pid - 2]) if (node.has(p) && now % 4000 === 0) node.exit(p);
      if (now % 2000 === 0) {
        const mine = size++;
        node.start(pid++, 812, { comm: 'worker' }, () => mine * 2 * MiB);
      }
    });
    const opened = opens(node.events);
    assert.equal(opened.length, 1);
    assert.equal(opened[0]!.trigger, 'spawned-memory-growing');
    const last = node.events.filter((e): e is FanoutFindingEvent => e.kind !== 'resolve').at(-1)!;
    assert.ok(last.details.childrenSeen > last.details.childrenAlive + 20, `children that exited count as seen (${last.details.childrenSeen})`);
  });
});

describe('FanoutDetector: shapes that must stay silent', () => {
  for (const workers of [4, 8]) {
    it(`a pre-fork pool of ${workers} stable workers, watched from its start, stays silent for 10 min`, () => {
      const node = new Node(new FanoutDetector());
      const gunicorn = { comm: 'gunicorn', exe: '/usr/local/bin/python3.11', cmdline: `/usr/local/bin/python3.11 /usr/local/bin/gunicorn -w ${workers} app:app` };
      node.start(1, 0, gunicorn, () => 30 * MiB);
      node.pass();
      // An app that takes 20 s to import before it forks (gunicorn --preload), then one worker
      // every 500 ms: all of them appear after the parent was known.
      node.run(T0 + 20_000);
      for (let i = 0; i < workers; i++) {
        node.now += 500;
        // A GC sawtooth around a flat floor.
        // Forked workers: the same interpreter and command line as the master.
        node.start(10 + i, 1, gunicorn, (t) => 80 * MiB + ((t / 1000) % 20) * MiB);
        node.pass();
      }
      node.run(T0 + 600_000);
      assert.deepEqual(node.events, []);
    });
  }

  it('a pool that recycles its workers (max_requests) stays silent', () => {
    const node = new Node(new FanoutDetector());
    node.start(1, 0, { comm: 'gunicorn' }, () => 30 * MiB);
    for (let i = 0; i < 4; i++) node.start(10 + i, 1, { comm: 'gunicorn' }, () => 80 * MiB);
    let pid = 100;
    node.run(T0 + 600_000, (now) => {
      // Every 15 s one worker retires and its replacement forks: 20 spawns per 5 min.
      if ((now - T0) % 15_000 === 0) {
        const victim = [...Array(1000).keys()].find((p) => p >= 10 && node.has(p));
        if (victim !== undefined) node.exit(victim);
        node.start(pid++, 1, { comm: 'gunicorn' }, () => 80 * MiB);
      }
    });
    assert.deepEqual(node.events, []);
  });

  it('short-lived children (a health check every 10 s, gone within 1 s) stay silent', () => {
    const node = new Node(new FanoutDetector());
    node.start(1, 0, { comm: 'sh', cmdline: 'sh -c while true; do ./check; sleep 10; done' }, () => 1 * MiB);
    let pid = 100;
    let running: number | null = null;
    // Sample at 1 Hz, move the world every 100 ms.
    for (let t = 100; t <= 600_000; t += 100) {
      const now = T0 + t;
      if (t % 10_000 === 0) {
        running = pid++;
        node.now = now;
        node.start(running, 1, { comm: 'check' }, () => 20 * MiB);
      }
      if (running !== null && t % 10_000 === 800) {
        node.exit(running);
        running = null;
      }
      if (t % 1000 === 0) {
        node.now = now;
        node.pass();
      }
    }
    assert.deepEqual(node.events, []);
  });

  it('parallel short jobs (4 at a time, 3 s each) stay silent', () => {
    const node = new Node(new FanoutDetector());
    node.start(1, 0, { comm: 'make' }, () => 5 * MiB);
    node.run(T0 + 60_000);
    let pid = 100;
    const endsAt = new Map<number, number>();
    node.run(T0 + 600_000, (now) => {
      for (const [p, end] of endsAt) if (now >= end) (node.exit(p), endsAt.delete(p));
      while (endsAt.size < 4) {
        endsAt.set(pid, now + 3000);
        node.start(pid++, 1, { comm: 'cc1' }, growing(now, 20 * MiB, 10 * MiB));
      }
    });
    assert.ok(pid > 700, 'hundreds of jobs ran');
    assert.deepEqual(node.events, []);
  });

  it('children that exited but were never reaped (zombies) are not alive', () => {
    const node = new Node(new FanoutDetector());
    node.start(1, 0, { comm: 'python' }, () => 40 * MiB);
    node.run(T0 + 60_000);
    let pid = 100;
    const doneAt = new Map<number, number>();
    node.run(T0 + 300_000, (now) => {
      for (const [p, at] of doneAt) {
        if (now < at) continue;
        // Done after 2 s, but the parent never waits: the child stays in the table as a zombie.
        const startTimeMs = at - 2000;
        node.exit(p);
        node.start(p, 1, { comm: 'python', state: 'Z', startTimeMs }, () => 0);
        doneAt.delete(p);
      }
      if (now % 5000 === 0) {
        doneAt.set(pid, now + 2000);
        node.start(pid++, 1, { comm: 'python' }, () => 20 * MiB);
      }
    });
    assert.ok(pid > 140, 'dozens of children');
    assert.ok(node.childrenOf(1) > 40, 'all still listed, as zombies');
    assert.deepEqual(node.events, []);
  });

  it('a shell starting a few background commands stays silent', () => {
    const node = new Node(new FanoutDetector());
    node.start(1, 0, { comm: 'sh' }, () => 1 * MiB);
    node.run(T0 + 60_000);
    for (let i = 0; i < 3; i++) node.start(100 + i, 1, { comm: 'daemon' }, () => 50 * MiB);
    node.run(T0 + 600_000);
    assert.deepEqual(node.events, []);
  });

  it('two growing siblings are not a fleet (below minGrowingSiblings)', () => {
    const node = new Node(new FanoutDetector());
    node.start(1, 0, { comm: 'gunicorn' }, () => 30 * MiB);
    node.start(10, 1, {}, growing(T0, 50 * MiB, 200 * 1024));
    node.start(11, 1, {}, growing(T0, 50 * MiB, 200 * 1024));
    node.start(12, 1, {}, () => 50 * MiB);
    node.run(T0 + 600_000);
    assert.deepEqual(node.events, []);
  });

  it('host parents are ignored unless includeHost is set', () => {
    const host = { podUid: null, namespace: null, pod: null, container: null, containerId: null, limitBytes: null };
    for (const includeHost of [false, true]) {
      const node = new Node(new FanoutDetector({ includeHost }));
      node.start(500, 1, { comm: 'sshd', ...host });
      node.run(T0 + 60_000);
      let pid = 600;
      node.run(T0 + 120_000, (now) => {
        if (now % 3000 === 0) node.start(pid++, 500, { comm: 'sshd', ...host }, () => 5 * MiB);
      });
      assert.equal(opens(node.events).length, includeHost ? 1 : 0, `includeHost=${includeHost}`);
    }
  });
});

describe('FanoutDetector: sibling children each growing', () => {
  it('opens once three pool workers grow on their own, sawtooth and all', () => {
    const node = new Node(new FanoutDetector());
    node.start(1, 0, { comm: 'gunicorn', cmdline: 'gunicorn -w 3 app:app' }, () => 30 * MiB);
    for (let i = 0; i < 3; i++) {
      // 100 KiB/s floor growth under a 0..8 MiB GC sawtooth.
      node.start(10 + i, 1, { comm: 'gunicorn' }, (t) => 60 * MiB + ((t - T0) / 1000) * 100 * 1024 + (((t - T0) / 1000) % 8) * MiB);
    }
    node.run(T0 + 600_000);
    const opened = opens(node.events);
    assert.equal(opened.length, 1);
    const open = opened[0]!;
    assert.equal(open.trigger, 'siblings-growing');
    assert.equal(open.details.growingChildren, 3);
    assert.equal(open.details.childrenAlive, 3);
    // Warm-up (60 s) plus eight 5 s floors at the earliest, well within 3 min.
    assert.ok(open.atMs >= T0 + 100_000 && open.atMs <= T0 + 180_000, `opened at +${(open.atMs - T0) / 1000} s`);
    assert.match(open.summary, /^gunicorn \(pid 1\) has 3 children each growing; 3 alive hold/);
    assert.equal(node.events.filter((e) => e.kind === 'resolve').length, 0, 'still growing: stays open');
  });
});

describe('FanoutDetector: resolving', () => {
  it('resolves (quiet) when spawning stops and memory is flat, and does not reopen', () => {
    const stopAt = T0 + 180_000;
    const { node, world } = perRequestFanout(new FanoutDetector(), 4000, stopAt, stopAt);
    node.run(T0 + 600_000, world);
    assert.equal(opens(node.events).length, 1);
    const resolves = node.events.filter((e) => e.kind === 'resolve');
    assert.equal(resolves.length, 1);
    const resolve = resolves[0]!;
    assert.equal(resolve.kind === 'resolve' && resolve.cause, 'quiet');
    // Last spawn just before stopAt; the combined trend (60 s window) stops rising within a
    // minute of that, and the finding resolves 2 min after the last activity.
    assert.ok(resolve.atMs >= stopAt + 120_000 && resolve.atMs <= stopAt + 200_000, `resolved at +${(resolve.atMs - stopAt) / 1000} s`);
    assert.match(resolve.kind === 'resolve' ? resolve.reason : '', /has started no children and its children's memory has not grown for 2 min/);
    assert.equal(node.events.at(-1), resolve, 'nothing after the resolve: old spawns do not reopen it');
    const afterStop = node.events.find((e): e is FanoutFindingEvent => e.kind === 'update' && e.atMs >= stopAt + 15_000);
    assert.ok(afterStop, 'an update once spawning stopped');
    assert.match(afterStop.summary, /spawned \d+ children in \d+ s, the last \d+ s ago; /);
  });

  it('reopens when spawning starts again after a resolve', () => {
    const node = new Node(new FanoutDetector());
    node.start(812, 1, { comm: 'python' }, () => 40 * MiB);
    node.run(T0 + 60_000);
    let pid = 900;
    const burst = (from: number, to: number) => (now: number) => {
      if (now >= from && now < to && now % 4000 === 0) node.start(pid++, 812, {}, () => 20 * MiB);
    };
    node.run(T0 + 400_000, burst(T0 + 60_000, T0 + 100_000));
    node.run(T0 + 500_000, burst(T0 + 400_000, T0 + 440_000));
    assert.deepEqual(
      node.events.map((e) => e.kind).filter((k) => k !== 'update'),
      ['open', 'resolve', 'open'],
    );
  });

  it('resolves (parent-exited) when the parent exits, and the adopting init is not a fan-out', () => {
    const { node, world } = perRequestFanout(new FanoutDetector(), 4000);
    node.start(1, 0, { comm: 'tini', startTimeMs: T0 - 1000 }, () => 1 * MiB);
    node.run(T0 + 180_000, world);
    assert.equal(opens(node.events).length, 1);
    node.exit(812);
    for (let pid = 900; pid < 1000; pid++) node.reparent(pid, 1);
    const exitAt = node.now + 1000;
    node.run(T0 + 400_000);
    const after = node.events.filter((e) => e.atMs >= exitAt);
    assert.equal(after.length, 1, `one event after the exit: ${JSON.stringify(after.map((e) => e.kind))}`);
    const resolve = after[0]!;
    assert.equal(resolve.kind, 'resolve');
    assert.equal(resolve.kind === 'resolve' && resolve.cause, 'parent-exited');
    assert.equal(resolve.key, `812:${T0}`);
    // parentGoneGraceMs (2 s) tolerates one missed pass.
    assert.equal(resolve.atMs, exitAt + 2000);
    assert.equal(node.detector.stateSize.parents, 1, 'the dead parent is dropped; tini with its adopted children remains');
  });

  it('a parent missing from one pass only is not taken for dead', () => {
    const { node, world } = perRequestFanout(new FanoutDetector(), 4000);
    node.run(T0 + 180_000, world);
    const list = [] as AttributedProcess[]; // one empty pass, as if the table read failed
    node.now += 1000;
    node.detector.observe(node.now, list);
    node.run(T0 + 200_000, world);
    assert.equal(node.events.filter((e) => e.kind === 'resolve').length, 0);
    assert.equal(opens(node.events).length, 1);
  });

  it('pid reuse: same pid with a new start time is a new key, and the old finding resolves at once', () => {
    const detector = new FanoutDetector();
    const { node, world } = perRequestFanout(detector, 4000);
    node.run(T0 + 180_000, world);
    const first = opens(node.events)[0]!;
    for (let pid = 900; pid < 1000; pid++) node.exit(pid);
    node.exit(812);
    node.now += 1000;
    const restart = node.now;
    node.start(812, 1, { comm: 'python', startTimeMs: restart }, () => 40 * MiB);
    node.pass();
    const resolve = node.events.at(-1)!;
    assert.equal(resolve.kind, 'resolve');
    assert.equal(resolve.key, first.key);
    assert.equal(resolve.atMs, restart, 'no grace when the pid belongs to someone else now');
    let pid = 2000;
    node.run(restart + 200_000, (now) => {
      if (now > restart + 60_000 && now % 4000 === 0) node.start(pid++, 812, {}, () => 20 * MiB);
    });
    const second = opens(node.events).filter((e) => e.atMs > restart);
    assert.equal(second.length, 1);
    assert.equal(second[0]!.key, `812:${restart}`);
    assert.notEqual(second[0]!.key, first.key);
  });
});

describe('FanoutDetector: bounds and bad input', () => {
  it('caps sample children and timestamps, and drops parents that are gone', () => {
    const node = new Node(new FanoutDetector({ maxSampleChildren: 500, maxEventsPerParent: 100 }));
    node.start(1, 0, { comm: 'sh' }, () => 1 * MiB);
    node.run(T0 + 60_000);
    let pid = 10;
    node.run(T0 + 120_000, () => {
      for (let i = 0; i < 10; i++) node.start(pid++, 1, {}, () => 1 * MiB);
    });
    const last = node.events.filter((e): e is FanoutFindingEvent => e.kind !== 'resolve').at(-1)!;
    assert.equal(last.details.sampleChildren.length, 64, 'at most 64 sample children whatever the option says');
    // Ten children a second since +61 s; updates come at most every 5 s.
    assert.equal(last.details.childrenAlive, ((last.atMs - T0 - 60_000) / 1000) * 10);
    assert.ok(last.details.childrenAlive > 500);
    // Hundreds of spawns in the window, but only the last 100 timestamps (10 passes) are kept.
    assert.match(last.summary, /spawned 100 children in 9 s;/);
    node.exit(1);
    for (let p = 10; p < pid; p++) node.exit(p);
    node.run(T0 + 130_000);
    assert.deepEqual(node.detector.stateSize, { parents: 0, children: 0, openFindings: 0 });
  });

  it('default sample size is 16, largest children first', () => {
    const node = new Node(new FanoutDetector());
    node.start(1, 0, {}, () => 1 * MiB);
    node.run(T0 + 60_000);
    for (let i = 0; i < 30; i++) node.start(100 + i, 1, {}, () => (i + 1) * MiB);
    node.run(T0 + 70_000);
    const open = opens(node.events)[0]!;
    assert.equal(open.details.sampleChildren.length, 16);
    assert.deepEqual(
      open.details.sampleChildren.slice(0, 3).map((c) => c.pid),
      [129, 128, 127],
    );
  });

  it('stops tracking new parents at maxParents and warns once', () => {
    const warnings: string[] = [];
    const detector = new FanoutDetector({ maxParents: 3, warn: (m) => warnings.push(m) });
    const list: AttributedProcess[] = [];
    for (let i = 0; i < 10; i++) {
      list.push(proc({ pid: 100 + i, ppid: 1, startTimeMs: T0 }));
      list.push(proc({ pid: 200 + i, ppid: 100 + i, startTimeMs: T0 }));
    }
    detector.observe(T0 + 1000, list);
    detector.observe(T0 + 2000, list);
    assert.equal(detector.stateSize.parents, 3);
    assert.equal(warnings.filter((w) => /maxParents/.test(w)).length, 1);
  });

  it('garbage in a pass is skipped with a warning, never thrown', () => {
    const warnings: string[] = [];
    const detector = new FanoutDetector({ warn: (m) => warnings.push(m) });
    const garbage = [
      null,
      {},
      { pid: 'x', ppid: 1, startTimeMs: T0 },
      proc({ pid: 5, ppid: 1, startTimeMs: Number.NaN }),
      proc({ pid: 6, ppid: 6, startTimeMs: T0 }), // its own parent
      proc({ pid: 7, ppid: 2, startTimeMs: T0 }), // a kernel thread
      proc({ pid: 1, ppid: 0, startTimeMs: T0 }),
      proc({ pid: 8, ppid: 1, startTimeMs: T0, rssAnonBytes: Number.NaN, swapBytes: -5 }),
    ] as unknown as AttributedProcess[];
    assert.deepEqual(detector.observe(T0 + 1000, garbage), []);
    assert.deepEqual(detector.observe(Number.NaN, garbage), []);
    assert.deepEqual(detector.observe(T0 + 2000, 'nope' as unknown as AttributedProcess[]), []);
    assert.deepEqual(detector.observe(T0 + 500, garbage), [], 'a pass from the past is ignored');
    assert.deepEqual(detector.observe(T0 + 3000, garbage), []);
    assert.equal(warnings.length, 3, warnings.join('\n'));
    assert.match(warnings[0]!, /not a number/);
    assert.match(warnings[1]!, /not an array/);
    assert.match(warnings[2]!, /earlier than the previous pass/);
    assert.equal(detector.stateSize.parents, 1, 'only pid 1 with its one sane child is tracked');
  });

  it('rejects bad options with a message naming the option', () => {
    assert.throws(() => new FanoutDetector({ minSpawns: -1 }), /FanoutOptions\.minSpawns must be a finite number >= 0/);
    assert.throws(() => new FanoutDetector({ includeHost: 'yes' } as unknown as FanoutOptions), /FanoutOptions\.includeHost must be a boolean/);
  });
});

describe('trendOf (Mann–Kendall + Theil–Sen)', () => {
  it('finds a steady rise through an outlier and ignores noise without a trend', () => {
    const rising = Array.from({ length: 20 }, (_, i) => ({ t: i * 1000, v: i * 1000 + (i === 7 ? 1e9 : 0) }));
    const r = trendOf(rising, 10)!;
    assert.equal(r.increasing, true);
    assert.ok(Math.abs(r.slopeBytesPerSec - 1000) < 1e-9, `slope ${r.slopeBytesPerSec}`);
    const noise = Array.from({ length: 20 }, (_, i) => ({ t: i * 1000, v: [5, 1, 4, 2, 3][i % 5]! }));
    assert.equal(trendOf(noise, 10)!.increasing, false);
    assert.equal(trendOf(noise.slice(0, 5), 10), null, 'too few points');
  });
});

// --- a real parent on this machine --------------------------------------------------------------

const started: ChildProcess[] = [];

after(() => {
  for (const child of started) {
    // The shell leads its own process group: kill it and its sleeps together.
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

/** The real process table, every process attributed to no pod (the detector runs with includeHost). */
function readProcTable(table: ProcessTable): AttributedProcess[] {
  return table.sample().map((p) => ({
    ...p,
    podUid: null,
    namespace: null,
    pod: null,
    container: null,
    containerId: null,
    runtime: null,
    qos: null,
    limitBytes: null,
    oomKills: 0,
  }));
}

describe('FanoutDetector on real processes', () => {
  it('sees a real shell that starts six background sleeps as one fan-out', async () => {
    const table = new ProcessTable();
    const detector = new FanoutDetector({ includeHost: true, startupGraceMs: 50, execStartupGraceMs: 50 });
    const sh = spawn('sh', ['-c', 'for i in 1 2 3 4 5 6; do sleep 30 & sleep 0.2; done; wait'], { detached: true, stdio: 'ignore' });
    started.push(sh);
    assert.ok(sh.pid);
    const events: FanoutEvent[] = [];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && !events.some((e) => e.kind === 'open' && e.target.pid === sh.pid)) {
      events.push(...detector.observe(Date.now(), readProcTable(table)));
      await sleep(250);
    }
    table.close();
    const mine = events.filter((e): e is FanoutFindingEvent => e.kind === 'open' && e.target.pid === sh.pid);
    assert.equal(mine.length, 1, 'one finding for the shell');
    const open = mine[0]!;
    assert.ok(open.details.childrenAlive >= 5, `childrenAlive ${open.details.childrenAlive}`);
    assert.equal(open.target.comm, 'sh');
    assert.ok(open.details.sampleChildren.filter((c) => c.cmdline === 'sleep 30').length >= 5);
    assert.match(open.summary, /^sh \(pid \d+\) spawned \d+ children in \d+ s; \d+ alive hold/);
  });
});

describe('FanoutDetector: forked workers versus spawned programs at start-up', () => {
  const python = '/usr/local/bin/python3.11';
  it('an interpreter server spawning another script 15 s after its start is counted, while its own forks at 15 s are a pool', () => {
    const spawning = new Node(new FanoutDetector());
    spawning.start(1, 0, { comm: 'python3', exe: python, cmdline: `${python} app.py` }, () => 30 * MiB);
    spawning.pass();
    spawning.run(T0 + 15_000);
    for (let i = 0; i < 6; i++) {
      spawning.start(100 + i, 1, { comm: 'python3', exe: python, cmdline: `${python} /tmp/tmp${i}.py` }, () => 40 * MiB);
      spawning.now += 1000;
      spawning.pass();
    }
    spawning.run(spawning.now + 20_000);
    assert.equal(spawning.events.filter((e) => e.kind === 'open').length, 1, 'the per-request scripts are a fan-out');

    const forking = new Node(new FanoutDetector());
    forking.start(1, 0, { comm: 'python3', exe: python, cmdline: `${python} app.py` }, () => 30 * MiB);
    forking.pass();
    forking.run(T0 + 15_000);
    for (let i = 0; i < 6; i++) {
      forking.start(100 + i, 1, { comm: 'python3', exe: python, cmdline: `${python} app.py` }, () => 40 * MiB);
      forking.now += 1000;
      forking.pass();
    }
    forking.run(forking.now + 20_000);
    assert.deepEqual(forking.events, [], 'forked copies of the server at start-up are its pool');
  });
});
