// Workloads that must stay silent: the seeds' fixed versions and the shapes that look like a
// leak to a naive alert (GC sawtooth, warm-up, a pre-fork pool, an app running its own script).
// All run side by side on the real kernel with `leakwatch watch --json` watching the node.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoAvailability, runScenario, type ScenarioHandle } from '../../demo/scenarios.js';
import { startWatch, type WatchSession } from '../support/watch-session.js';
import { runCli } from '../support/cli.js';
import type { PsRow } from '../../cli/commands/ps.js';

const availability = demoAvailability();
const skip = availability.ok ? false : `SKIP: ${availability.ok ? '' : availability.reason}`;
if (skip) console.log(skip);

const controls = [
  'data-processor-fixed',
  'payment-processor-fixed',
  'control-sawtooth',
  'control-warmup-plateau',
  'control-prefork-pool',
  'control-bounded-buffer',
  'control-normal-script',
];
/** Long enough for several sawtooth cycles, the warm-ups to level off and the detectors' windows to fill. */
const observeMs = 90_000;

describe('controls stay silent', { skip, timeout: 240_000 }, () => {
  let logRoot: string;
  let watch: WatchSession;
  const runs = new Map<string, ScenarioHandle>();

  before(async () => {
    logRoot = mkdtempSync(join(tmpdir(), 'leakwatch-controls-'));
    watch = startWatch(['--pod-log-root', join(logRoot, 'pods')]);
    await new Promise((r) => setTimeout(r, 2500));
    for (const name of controls) runs.set(name, await runScenario(name, { logRoot }));
    await new Promise((r) => setTimeout(r, observeMs));
  });

  after(async () => {
    await Promise.all([...runs.values()].map((r) => r.stop()));
    await watch?.stop();
    rmSync(logRoot, { recursive: true, force: true });
  });

  for (const name of controls) {
    test(`${name}: no growth, fan-out or suspicious-spawn finding`, () => {
      const run = runs.get(name)!;
      const noisy = watch.linesFor(run.pod.uid).filter((l) => l.kind !== 'oom-kill');
      assert.deepEqual(noisy.map((l) => `${l.event} ${l.kind}: ${l.summary}`), []);
      // The control really ran: its container still has processes and was never OOM-killed.
      assert.ok(run.pod.pids(run.pod.containers[0]!.name).length > 0, 'still running');
      assert.ok(!run.events.some((e) => e.kind === 'exited' && e.reason === 'OOMKilled'), 'never OOM-killed');
    });
  }

  test('the control pods are visible to the agent (the silence is not blindness)', () => {
    const r = runCli(['ps', '--json', '--pods-only', '--pod-log-root', join(logRoot, 'pods')]);
    assert.equal(r.status, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as PsRow[];
    for (const [name, run] of runs) {
      const mine = rows.filter((row) => row.podUid === run.pod.uid);
      assert.ok(mine.length > 0, `${name}'s processes sampled`);
      assert.ok(mine.every((row) => row.pod === run.pod.name && row.limitBytes === run.pod.containers[0]!.limitBytes), `${name} attributed with its limit`);
    }
    const pool = rows.filter((row) => row.podUid === runs.get('control-prefork-pool')!.pod.uid);
    assert.ok(pool.length >= 5, 'the pool parent and its 4 workers');
  });
});
