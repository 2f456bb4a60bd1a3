import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { createFakePod, fakeNodeAvailability } from '../support/fake-node.js';
import { readOomKills, scaledKubeletBackoff, superviseContainer, type ContainerEvent } from '../../demo/container-supervisor.js';

const availability = fakeNodeAvailability();

function skipWithoutRealKernel(t: TestContext): boolean {
  if (availability.ok) return false;
  console.log(`SKIP: ${availability.reason}`);
  t.skip(`SKIP: ${availability.reason}`);
  return true;
}

describe('readOomKills', () => {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-oomctl-'));
  const write = (text: string): string => {
    writeFileSync(join(dir, 'memory.oom_control'), text);
    return dir;
  };

  it('reads the oom_kill line of memory.oom_control', () => {
    assert.equal(readOomKills(write('oom_kill_disable 0\nunder_oom 0\noom_kill 7\n')), 7);
  });

  it('is null for a missing file, a file without the counter, or a garbage value', () => {
    assert.equal(readOomKills(join(dir, 'no-such-cgroup')), null);
    assert.equal(readOomKills(write('oom_kill_disable 0\nunder_oom 0\n')), null);
    assert.equal(readOomKills(write('oom_kill lots\n')), null);
    assert.equal(readOomKills(write('')), null);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('scaledKubeletBackoff', () => {
  it('doubles from 1 s like kubelet does from 10 s, with a cap', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(scaledKubeletBackoff), [1000, 2000, 4000, 8000, 16000, 16000, 16000]);
  });
});

describe('superviseContainer on the real kernel', () => {
  it('logs in CRI format, tells Error from Completed, restarts with back-off, then gives up', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    const pod = createFakePod({ containers: [{ name: 'job', limitBytes: 32 * 1024 * 1024 }] });
    try {
      const events: ContainerEvent[] = [];
      const supervised = superviseContainer(
        pod,
        // Fails on its first run, succeeds on the second: the marker file tells the runs apart.
        { container: 'job', command: '/bin/sh', args: ['-c', `echo "ready $1"; echo oops >&2; if [ -e "$2" ]; then exit 0; fi; touch "$2"; exit 3`, 'sh', 'now', join(pod.podLogRoot, 'marker')], readyPattern: /^ready / },
        { maxRestarts: 1, backoffMs: () => 20 },
        { emit: (e) => events.push(e), signal: new AbortController().signal },
      );
      await supervised.done;
      const summary = events.filter((e) => e.kind !== 'log').map((e) => (e.kind === 'exited' ? `exited ${e.reason} ${e.exitCode}` : e.kind));
      assert.deepEqual(summary, ['started', 'ready', 'exited Error 3', 'backoff', 'started', 'ready', 'exited Completed 0', 'crash-loop']);
      assert.equal(supervised.restartCount(), 1);
      const logDir = join(pod.podLogRoot, `${pod.namespace}_${pod.name}_${pod.uid}`, 'job');
      const first = readFileSync(join(logDir, '0.log'), 'utf8');
      assert.match(first, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z stdout F ready now$/m);
      assert.match(first, /^\S+ stderr F oops$/m);
      assert.match(readFileSync(join(logDir, '1.log'), 'utf8'), /stdout F ready now/);
    } finally {
      await pod.destroy();
    }
  });

  it('a SIGKILL without an OOM kill is an Error (137), and what the main process left behind is killed', async (t) => {
    if (skipWithoutRealKernel(t)) return;
    const pod = createFakePod({ containers: [{ name: 'idle', limitBytes: 32 * 1024 * 1024 }] });
    try {
      const events: ContainerEvent[] = [];
      const supervised = superviseContainer(pod, { container: 'idle', command: '/bin/sh', args: ['-c', 'sleep 60 & echo ready; wait'], readyPattern: /^ready/ }, { maxRestarts: 0, backoffMs: () => 0 }, { emit: (e) => events.push(e), signal: new AbortController().signal });
      while (!events.some((e) => e.kind === 'ready')) await new Promise((r) => setTimeout(r, 20));
      assert.equal(pod.pids('idle').length, 2, 'the shell and its sleep');
      process.kill(supervised.mainPid()!, 'SIGKILL');
      await supervised.done;
      const exited = events.find((e) => e.kind === 'exited');
      assert.equal(exited?.kind === 'exited' && `${exited.reason} ${exited.exitCode} ${exited.signal}`, 'Error 137 SIGKILL');
      assert.deepEqual(pod.pids('idle'), [], "the container's other processes died with its main process");
    } finally {
      await pod.destroy();
    }
  });
});
