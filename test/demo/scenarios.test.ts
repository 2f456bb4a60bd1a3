// The demo scenarios on the real kernel: each workload runs in its fake pod and its memory is
// read from the cgroup files directly, so these tests check the workloads themselves, not
// leakwatch's readers. The scenarios run concurrently (separate pods, each under its limit)
// to keep the file near the length of the slowest one (~100 s).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it, type TestContext } from 'node:test';
import { MAX_TEST_LIMIT_BYTES, type FakePod } from '../support/fake-node.js';
import { demoAvailability, findWorkloadsDir, resolvePython, runScenario, scenarioNames, scenarios, type ScenarioEvent, type ScenarioHandle } from '../../demo/scenarios.js';

const MiB = 1024 * 1024;
const availability = demoAvailability();

function skipWithoutRealKernel(t: TestContext): boolean {
  if (availability.ok) return false;
  const reason = `SKIP: ${availability.reason}`;
  console.log(reason);
  t.skip(reason);
  return true;
}

interface CgroupSample {
  /** Milliseconds since the scenario started. */
  tMs: number;
  anonBytes: number;
  maxUsageBytes: number;
  limitBytes: number;
  oomKills: number;
  pids: number[];
}

function readCgroup(dir: string, t0: number, pids: number[]): CgroupSample | null {
  try {
    const stat = readFileSync(join(dir, 'memory.stat'), 'utf8');
    const oom = readFileSync(join(dir, 'memory.oom_control'), 'utf8');
    return {
      tMs: Date.now() - t0,
      anonBytes: Number(/^total_rss (\d+)$/m.exec(stat)?.[1] ?? NaN),
      maxUsageBytes: Number(readFileSync(join(dir, 'memory.max_usage_in_bytes'), 'utf8')),
      limitBytes: Number(readFileSync(join(dir, 'memory.limit_in_bytes'), 'utf8')),
      oomKills: Number(/^oom_kill (\d+)$/m.exec(oom)?.[1] ?? NaN),
      pids,
    };
  } catch {
    return null;
  }
}

function cmdlineOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return null;
  }
}

/** Samples the container's cgroup (and the command lines of its processes) every `everyMs`. */
function sampleContainer(pod: FakePod, container: string, everyMs: number) {
  const t0 = Date.now();
  const dir = pod.containers.find((c) => c.name === container)?.cgroupDir;
  assert.ok(dir, `container ${container} exists`);
  const samples: CgroupSample[] = [];
  const cmdlines = new Map<number, string>();
  const pidsSeen = new Set<number>();
  const tick = (): void => {
    const pids = pod.pids(container);
    for (const pid of pids) {
      pidsSeen.add(pid);
      const cmd = cmdlineOf(pid);
      if (cmd) cmdlines.set(pid, cmd);
    }
    const s = readCgroup(dir, t0, pids);
    if (s) samples.push(s);
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    samples,
    cmdlines,
    pidsSeen,
    stop: () => clearInterval(timer),
    /** Smallest anon in [fromS, toS) seconds: the floor under any sawtooth. */
    floor: (fromS: number, toS: number) => Math.min(...inWindow(samples, fromS, toS).map((s) => s.anonBytes)),
    peak: (fromS: number, toS: number) => Math.max(...inWindow(samples, fromS, toS).map((s) => s.anonBytes)),
    last: () => samples[samples.length - 1],
  };
}

function inWindow(samples: CgroupSample[], fromS: number, toS: number): CgroupSample[] {
  const found = samples.filter((s) => s.tMs >= fromS * 1000 && s.tMs < toS * 1000);
  assert.ok(found.length > 0, `samples between ${fromS}s and ${toS}s`);
  return found;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function eventsOf<K extends ScenarioEvent['kind']>(handle: ScenarioHandle, kind: K): Array<Extract<ScenarioEvent, { kind: K }>> {
  return handle.events.filter((e): e is Extract<ScenarioEvent, { kind: K }> => e.kind === kind);
}

/** No cgroup, no log directory and no process of the pod left anywhere on the machine. */
function assertPodGone(pod: FakePod, pidsSeen: Iterable<number>): void {
  assert.equal(existsSync(pod.podCgroupDir), false, `${pod.podCgroupDir} removed`);
  for (const c of pod.containers) assert.equal(existsSync(c.cgroupDir), false, `${c.cgroupDir} removed`);
  assert.equal(existsSync(join(pod.podLogRoot, `${pod.namespace}_${pod.name}_${pod.uid}`)), false, 'pod log directory removed');
  const alive: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cgroup`, 'utf8').includes(pod.uid)) alive.push(entry);
    } catch {
      // exited while we looked
    }
  }
  assert.deepEqual(alive, [], 'no process left in the pod cgroup');
  for (const pid of pidsSeen) {
    const cmd = cmdlineOf(pid);
    assert.ok(cmd === null || !cmd.includes('demo/workloads'), `pid ${pid} (${cmd}) is gone`);
  }
}

async function withScenario(name: string, options: { maxRestarts?: number }, body: (handle: ScenarioHandle) => Promise<Set<number>>): Promise<void> {
  const handle = await runScenario(name, options);
  let pidsSeen = new Set<number>();
  try {
    pidsSeen = await body(handle);
  } finally {
    await handle.stop();
  }
  assertPodGone(handle.pod, pidsSeen);
}

describe('demo scenarios: static', () => {
  it('resources.dat is collector_payload.py in base64', () => {
    const dir = join(findWorkloadsDir(), 'metrics-app');
    const decoded = Buffer.from(readFileSync(join(dir, 'resources.dat'), 'utf8'), 'base64');
    assert.equal(decoded.toString('utf8'), readFileSync(join(dir, 'collector_payload.py'), 'utf8'));
    assert.match(decoded.toString('utf8'), /BLOCK_BYTES = 10 \* 1024 \* 1024/);
  });

  it('every scenario has a unique name, a pod-shaped identity and limits the fake node allows', () => {
    assert.equal(new Set(scenarioNames).size, scenarioNames.length);
    for (const name of scenarioNames) {
      const s = scenarios.get(name);
      assert.ok(s);
      assert.ok(s.containers.length > 0, name);
      for (const c of s.containers) assert.ok(c.limitBytes > 0 && c.limitBytes <= MAX_TEST_LIMIT_BYTES, `${name}/${c.name} limit`);
      assert.equal(s.kind === 'incident', s.expects.length > 0, `${name}: incidents expect findings, controls and fixes none`);
      assert.match(s.podName, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${name} pod name`);
    }
  });

  it('runScenario rejects an unknown scenario, naming the known ones', async () => {
    await assert.rejects(runScenario('no-such-scenario'), (err: Error) => {
      assert.match(err.message, /unknown scenario "no-such-scenario"/);
      assert.ok(err.message.includes('metrics-app'));
      return true;
    });
  });

  it('runScenario rejects a log root it cannot write, before building any cgroup', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'leakwatch-logroot-'));
    const notADirectory = join(dir, 'a-file');
    writeFileSync(notADirectory, '');
    const podDirs = (): number => readdirSync('/sys/fs/cgroup/memory/kubepods/burstable').filter((d) => d.startsWith('pod')).length;
    const before = podDirs();
    try {
      await assert.rejects(runScenario('control-sawtooth', { logRoot: notADirectory }), (err: Error) => err.message.startsWith(`cannot write pod logs under ${notADirectory}: `));
      assert.ok(podDirs() <= before, 'no pod cgroup left behind');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// These runs happen outside any cgroup: they allocate nothing beyond their own bounds.
describe('workloads on bad input or outside a pod', () => {
  const python = resolvePython();
  const skipWithoutPython = (t: TestContext): boolean => {
    if (python) return false;
    console.log('SKIP: python3 not found');
    t.skip('SKIP: python3 not found');
    return true;
  };

  it('metrics-app refuses a port that is not a number, in one line', (t) => {
    if (skipWithoutPython(t)) return;
    const r = spawnSync(python!, [join(findWorkloadsDir(), 'metrics-app', 'app.py'), 'eighty'], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 2);
    assert.equal(r.stderr, "metrics-app: port must be a number, got 'eighty'\n");
  });

  it('metrics-app without resources.dat still answers, and says the collector could not load', async (t) => {
    if (skipWithoutPython(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'leakwatch-metrics-app-'));
    copyFileSync(join(findWorkloadsDir(), 'metrics-app', 'app.py'), join(dir, 'app.py'));
    const app = spawn(python!, ['-u', join(dir, 'app.py')], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const lines = createInterface({ input: app.stdout });
      const seen: string[] = [];
      const waitLine = (re: RegExp): Promise<string> =>
        new Promise((resolve, reject) => {
          const found = seen.find((l) => re.test(l));
          if (found) return resolve(found);
          const timer = setTimeout(() => reject(new Error(`no line like ${re} in:\n${seen.join('\n')}`)), 10_000);
          lines.on('line', (l) => {
            if (re.test(l)) {
              clearTimeout(timer);
              resolve(l);
            }
          });
        });
      lines.on('line', (l) => seen.push(l));
      const port = Number(/:(\d+)$/.exec(await waitLine(/^listening on 127\.0\.0\.1:\d+$/))?.[1]);
      const body = await fetch(`http://127.0.0.1:${port}/counter`).then((r) => r.text());
      assert.equal(body, 'Counter value: 1');
      assert.match(await waitLine(/^collector: cannot load /), /resources\.dat: .*No such file/);
      assert.equal(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.text()), 'ok');
      assert.equal((await fetch(`http://127.0.0.1:${port}/nope`)).status, 404);
    } finally {
      app.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the collector payload stops itself at 50 MiB when no tight memory limit surrounds it', async (t) => {
    if (skipWithoutPython(t)) return;
    // The payload's own pace (a block every 12 s) would take a minute to reach the cap: a copy
    // with a short interval runs the same cap logic in seconds.
    const source = readFileSync(join(findWorkloadsDir(), 'metrics-app', 'collector_payload.py'), 'utf8');
    const fast = source.replace(/^INTERVAL_S = [\d.]+$/m, 'INTERVAL_S = 0.2');
    assert.notEqual(fast, source, 'the payload sets its pace in INTERVAL_S');
    const dir = mkdtempSync(join(tmpdir(), 'leakwatch-payload-'));
    writeFileSync(join(dir, 'collector_payload.py'), fast);
    const payload = spawn(python!, ['-u', join(dir, 'collector_payload.py')], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no hard-cap line within 15 s')), 15_000);
        createInterface({ input: payload.stdout }).on('line', (l) => {
          clearTimeout(timer);
          resolve(l);
        });
      });
      assert.equal(line, 'collector: hard cap of 50 MiB reached, no longer growing');
      const anonKb = Number(/^RssAnon:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${payload.pid}/status`, 'utf8'))?.[1]);
      assert.ok(anonKb > 45 * 1024 && anonKb < 70 * 1024, `RssAnon ${anonKb} kB`);
    } finally {
      payload.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('demo scenarios on the real kernel', { concurrency: true }, () => {
  it('metrics-app: 21 counter answers, a /tmp collector per request, collectors OOM-killed while the server lives', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    let script: string | undefined;
    await withScenario('metrics-app', {}, async (handle) => {
      const sampler = sampleContainer(handle.pod, 'metrics-app', 200);
      const outcome = await handle.finished;
      sampler.stop();
      assert.deepEqual(outcome, { reason: 'completed' });

      const requests = eventsOf(handle, 'request');
      assert.equal(requests.length, 21);
      const ok = requests.filter((r) => r.status === 200);
      assert.ok(ok.length >= 18, `mostly 200 (${ok.length}/21)`);
      let previous = 0;
      for (const r of ok) {
        const value = Number(/^Counter value: (\d+)$/.exec(r.body)?.[1]);
        // The counter restarts at 1 only if the server itself was restarted.
        assert.ok(value === previous + 1 || value === 1, `counter ${r.body} after ${previous}`);
        previous = value;
      }

      const collectors = [...sampler.cmdlines.values()].filter((c) => /^python3 \/tmp\/tmp\w+\.py$/.test(c));
      assert.ok(new Set(collectors).size >= 10, `collectors seen running from /tmp: ${new Set(collectors).size}`);
      const payload = readFileSync(join(findWorkloadsDir(), 'metrics-app', 'collector_payload.py'), 'utf8');
      script = collectors[0]?.split(' ')[1];
      assert.ok(script && existsSync(script), 'the collector script is still in /tmp while the pod lives');
      assert.equal(readFileSync(script, 'utf8'), payload, 'the /tmp script is the decoded resources.dat');

      const kills = sampler.last()?.oomKills ?? 0;
      assert.ok(kills >= 10, `collectors OOM-killed: ${kills}`);
      assert.ok(eventsOf(handle, 'oom-kill').some((e) => e.mainProcessAlive), 'kills happened under a live main process');
      assert.equal(eventsOf(handle, 'exited').length, 0, 'the server was never killed');
      const firstKill = sampler.samples.find((s) => s.oomKills > 0);
      console.log(`metrics-app: first OOM kill at ${((firstKill?.tMs ?? NaN) / 1000).toFixed(1)} s, ${kills} kills, ${ok.length}/21 answers 200`);
      return sampler.pidsSeen;
    });
    assert.ok(script);
    assert.equal(existsSync(script), false, 'collector scripts removed from /tmp with the pod');
  });

  it('data-processor: anon memory climbs ~1.5 MiB/s until the 128 MiB limit OOM-kills it', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    await withScenario('data-processor', { maxRestarts: 0 }, async (handle) => {
      const sampler = sampleContainer(handle.pod, 'data-processor', 500);
      const oom = await handle.waitFor((e) => e.kind === 'exited', 120_000);
      sampler.stop();
      assert.equal(oom.kind === 'exited' && oom.reason, 'OOMKilled');
      assert.equal(oom.kind === 'exited' && oom.exitCode, 137);
      const kills = readCgroup(handle.pod.containers[0]!.cgroupDir, 0, [])?.oomKills ?? 0;
      assert.ok(kills >= 1, `memory.oom_control oom_kill moved: ${kills}`);
      const slope = (sampler.floor(40, 45) - sampler.floor(10, 15)) / 30 / MiB;
      assert.ok(slope > 1 && slope < 2.5, `growth ${slope.toFixed(2)} MiB/s`);
      const atMs = oom.atMs - (handle.events[0]?.atMs ?? oom.atMs);
      console.log(`data-processor: OOMKilled at ${(atMs / 1000).toFixed(1)} s, growth ${slope.toFixed(2)} MiB/s`);
      assert.ok(atMs > 40_000, 'not killed before it had time to grow');
      await handle.waitFor((e) => e.kind === 'crash-loop', 5000);
      assert.deepEqual(await handle.finished, { reason: 'completed' });
      return sampler.pidsSeen;
    });
  });

  it('payment-processor: warm-up, then a rising floor under a sawtooth, then OOMKilled', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    await withScenario('payment-processor', { maxRestarts: 0 }, async (handle) => {
      const sampler = sampleContainer(handle.pod, 'payment-processor', 250);
      const oom = await handle.waitFor((e) => e.kind === 'exited', 140_000);
      sampler.stop();
      assert.equal(oom.kind === 'exited' && oom.reason, 'OOMKilled');
      assert.ok(sampler.peak(0, 8) >= 50 * MiB, 'warm-up loads ~50 MiB');
      // 8 s windows hold two sawtooth periods: the floor rises window over window...
      const floors = [10, 18, 26, 34, 42, 50].map((s) => sampler.floor(s, s + 8));
      for (let i = 1; i < floors.length; i++) assert.ok(floors[i]! > floors[i - 1]!, `floor rises: ${floors.map((f) => Math.round(f / MiB)).join(' ')} MiB`);
      const slope = ((floors[floors.length - 1]! - floors[0]!) / 40) / MiB;
      assert.ok(slope > 0.5 && slope < 2, `floor grows ${slope.toFixed(2)} MiB/s`);
      // ...while each window still swings by most of the sawtooth's 16 MiB.
      for (const s of [10, 26, 42]) {
        const swing = (sampler.peak(s, s + 8) - sampler.floor(s, s + 8)) / MiB;
        assert.ok(swing >= 10, `sawtooth swing ${swing.toFixed(1)} MiB at ${s}s`);
      }
      const atMs = oom.atMs - (handle.events[0]?.atMs ?? oom.atMs);
      console.log(`payment-processor: OOMKilled at ${(atMs / 1000).toFixed(1)} s, floor ${slope.toFixed(2)} MiB/s`);
      return sampler.pidsSeen;
    });
  });

  it('stress-test: OOMKilled at every start, restarted after 1, 2 and 4 s, then CrashLoopBackOff', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    await withScenario('stress-test', {}, async (handle) => {
      const sampler = sampleContainer(handle.pod, 'oom-container', 200);
      const outcome = await Promise.race([handle.finished, sleep(60_000).then(() => 'timeout' as const)]);
      sampler.stop();
      assert.deepEqual(outcome, { reason: 'completed' });
      assert.deepEqual(eventsOf(handle, 'started').map((e) => e.restartCount), [0, 1, 2, 3]);
      assert.deepEqual(eventsOf(handle, 'backoff').map((e) => e.delayMs), [1000, 2000, 4000]);
      const exits = eventsOf(handle, 'exited');
      assert.deepEqual(exits.map((e) => `${e.reason} ${e.exitCode}`), Array(4).fill('OOMKilled 137'));
      assert.equal(eventsOf(handle, 'crash-loop').length, 1);
      const kills = readCgroup(handle.pod.containers[0]!.cgroupDir, 0, [])?.oomKills ?? 0;
      assert.ok(kills >= 3, `oom_kill ${kills}`);
      const first = exits[0]!.atMs - eventsOf(handle, 'started')[0]!.atMs;
      console.log(`stress-test: first OOMKilled ${(first / 1000).toFixed(1)} s after start, ${kills} kills, done in ${((exits[3]!.atMs - handle.events[0]!.atMs) / 1000).toFixed(1)} s`);
      return sampler.pidsSeen;
    });
  });

  /** A control must live, stay under its limit and never see an OOM kill. */
  async function control(name: string, container: string, seconds: number, check: (s: ReturnType<typeof sampleContainer>, handle: ScenarioHandle) => void): Promise<void> {
    await withScenario(name, {}, async (handle) => {
      const sampler = sampleContainer(handle.pod, container, 250);
      await sleep(seconds * 1000);
      sampler.stop();
      const last = sampler.last();
      assert.ok(last, 'sampled');
      assert.ok(last.pids.length > 0, 'still running');
      assert.equal(eventsOf(handle, 'exited').length, 0, 'main process never exited');
      assert.equal(last.oomKills, 0, 'no OOM kill');
      assert.ok(last.maxUsageBytes < last.limitBytes, `peak usage ${last.maxUsageBytes} under limit ${last.limitBytes}`);
      check(sampler, handle);
      return sampler.pidsSeen;
    });
  }

  it('control-sawtooth: swings ~20 MiB every 5 s over a flat floor', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    await control('control-sawtooth', 'sawtooth', 22, (s) => {
      const swing = (s.peak(11, 21) - s.floor(11, 21)) / MiB;
      assert.ok(swing >= 12, `swing ${swing.toFixed(1)} MiB`);
      const drift = Math.abs(s.floor(16, 22) - s.floor(5, 11)) / MiB;
      assert.ok(drift < 3, `floor drift ${drift.toFixed(1)} MiB`);
    });
  });

  it('control-warmup-plateau: grows ~40 MiB over 20 s, then stays flat', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    await control('control-warmup-plateau', 'warmup-plateau', 32, (s) => {
      const grown = (s.floor(24, 26) - s.floor(0, 2)) / MiB;
      assert.ok(grown >= 30 && grown <= 50, `warm-up grew ${grown.toFixed(1)} MiB`);
      const drift = (s.peak(24, 32) - s.floor(24, 32)) / MiB;
      assert.ok(drift < 3, `plateau moves ${drift.toFixed(1)} MiB`);
    });
  });

  it('control-prefork-pool: a parent and 4 forked workers, all flat', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    await control('control-prefork-pool', 'prefork-pool', 20, (s, handle) => {
      const main = eventsOf(handle, 'started')[0]!.pid;
      const pids = s.last()!.pids;
      assert.equal(pids.length, 5, `processes ${pids.join(' ')}`);
      const parents = pids.filter((p) => p !== main).map((p) => Number(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]));
      assert.deepEqual(parents, [main, main, main, main], 'workers are children of the main process');
      const drift = (s.peak(8, 20) - s.floor(8, 20)) / MiB;
      assert.ok(drift < 3, `memory moves ${drift.toFixed(1)} MiB`);
    });
  });

  it('control-bounded-buffer: 10 MiB blocks every 0.5 s, but never more than a few kept', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    await control('control-bounded-buffer', 'bounded-buffer', 20, (s, handle) => {
      assert.ok(s.peak(0, 20) < 70 * MiB, `peak ${(s.peak(0, 20) / MiB).toFixed(0)} MiB`);
      const drift = Math.abs(s.floor(15, 20) - s.floor(5, 10)) / MiB;
      assert.ok(drift < 12, `drift ${drift.toFixed(1)} MiB (one block at most)`);
      // It did keep allocating: 20 s at 2 blocks/s is 40 blocks, reported every 20.
      assert.ok(eventsOf(handle, 'log').some((e) => /^\d+ blocks allocated, 3 kept$/.test(e.line)));
    });
  });

  it('control-normal-script: runs its own old worker.py as a short-lived child every 2 s', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    await control('control-normal-script', 'normal-script', 20, (s, handle) => {
      const workerPids = [...s.cmdlines].filter(([, cmd]) => cmd === 'python3 worker.py').map(([pid]) => pid);
      assert.ok(workerPids.length >= 4, `worker runs seen: ${workerPids.length}`);
      const runs = eventsOf(handle, 'log').filter((e) => /^run \d+: worker\.py exited with 0$/.test(e.line));
      assert.ok(runs.length >= 5, `runs logged: ${runs.length}`);
      const worker = join(handle.workloadsDir, 'controls', 'normal-script', 'worker.py');
      assert.ok(Date.now() - statSync(worker).mtimeMs > 3600_000, 'worker.py is an old file');
    });
  });

  it('data-processor-fixed: the same event stream, flat memory', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    await control('data-processor-fixed', 'data-processor', 20, (s) => {
      assert.ok(s.peak(0, 20) < 30 * MiB, `peak ${(s.peak(0, 20) / MiB).toFixed(0)} MiB`);
      const drift = Math.abs(s.floor(15, 20) - s.floor(5, 10)) / MiB;
      assert.ok(drift < 2, `drift ${drift.toFixed(1)} MiB`);
    });
  });

  it('payment-processor-fixed: grows while the LRU fills, then a flat floor under the sawtooth', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    await control('payment-processor-fixed', 'payment-processor', 56, (s) => {
      const filling = (s.floor(24, 32) - s.floor(8, 16)) / MiB;
      assert.ok(filling > 8, `grows while the cache fills: ${filling.toFixed(1)} MiB`);
      const drift = Math.abs(s.floor(48, 56) - s.floor(36, 44)) / MiB;
      assert.ok(drift < 4, `floor drift once full: ${drift.toFixed(1)} MiB`);
      const swing = (s.peak(48, 56) - s.floor(48, 56)) / MiB;
      assert.ok(swing >= 10, `sawtooth swing ${swing.toFixed(1)} MiB`);
    });
  });
});
