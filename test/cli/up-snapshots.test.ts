// Issue 5 end to end, the way an engineer uses it: `leakwatch up` runs, a Node.js process in a
// pod-shaped cgroup leaks, and a second terminal asks for a heap snapshot through the collector
// (`snapshots take`), lists it and pulls it; the file is the one the agent captured through the
// inspector (SIGUSR1, no code change), its sha256 checked, 0600, and it holds the leaking class.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privateArtifactsDir } from '../support/places.js';
import { createFakePod, fakeNodeAvailability, type FakePod } from '../support/fake-node.js';
import { runCli, startUp, type RunningUp } from '../support/cli.js';
import { collectLines, isAlive, writeTargetScript } from '../support/capture-targets.js';
import { devtoolsClassCount } from '../support/devtools-peer.js';

const availability = fakeNodeAvailability();
const MiB = 1024 * 1024;
const ALLOCATED = 20_000;

describe('leakwatch up: snapshots take, ls and pull', { skip: availability.ok ? false : `SKIP: ${availability.ok ? '' : availability.reason}`, timeout: 180_000 }, () => {
  let dir: string;
  let appDir: string | undefined;
  let up: RunningUp | undefined;
  let target: ChildProcess;
  let env: NodeJS.ProcessEnv;
  let pod: FakePod;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'leakwatch-up-snap-'));
    pod = createFakePod({ namespace: 'shop', name: 'cart-7d9f', containers: [{ name: 'api', limitBytes: 256 * MiB }] });
    // The app lives in a private directory and was deployed an hour ago: nothing about it is
    // suspicious, so the collector has no finding naming the pod and must ask its agents where it runs.
    mkdirSync(privateArtifactsDir(), { recursive: true });
    appDir = mkdtempSync(join(privateArtifactsDir(), 'up-snapshots-app-'));
    const script = writeTargetScript(appDir);
    const anHourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(script, anHourAgo, anHourAgo);
    target = pod.spawnIn('api', process.execPath, [script, String(ALLOCATED), '5000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = collectLines(target);
    await lines.waitFor(new RegExp(`^done ${ALLOCATED}$`), 30_000);
    // No automatic captures: this test is about the on-demand path, and the target does not grow.
    up = await startUp(join(dir, 'data'), ['--pod-log-root', pod.podLogRoot, '--no-auto-capture']);
    env = up.env;
    // The agent needs a pass or two to see the target in its pod.
    await new Promise((r) => setTimeout(r, 3000));
  });

  after(async () => {
    await up?.stop();
    target?.kill('SIGKILL');
    await pod?.destroy();
    rmSync(dir, { recursive: true, force: true });
    if (appDir) rmSync(appDir, { recursive: true, force: true });
  });

  test('take captures through the inspector, pull saves the verified file, the target lives on', async () => {
    const known = runCli(['findings', '--pod', 'cart-7d9f', '--json'], { env });
    assert.equal(known.status, 0, known.stderr);
    assert.deepEqual(JSON.parse(known.stdout), [], 'no finding names the pod: the collector must locate it through its agents');
    const take = runCli(['snapshots', 'take', '--pod', 'shop/cart-7d9f', '--json', '--timeout', '120s'], { env, timeoutMs: 150_000 });
    assert.equal(take.status, 0, `take: ${take.stderr}\n${take.stdout}`);
    const result = JSON.parse(take.stdout) as { capture: { outcome: string; pid: number; snapshotIds: string[] }; snapshots: Array<{ snapshotId: string; sha256: string; bytes: number; via: string; kind: string }> };
    assert.equal(result.capture.outcome, 'captured', JSON.stringify(result.capture));
    assert.equal(result.capture.pid, target.pid);
    assert.equal(result.snapshots.length, 1);
    const snap = result.snapshots[0]!;
    assert.equal(snap.kind, 'heapsnapshot');
    assert.equal(snap.via, 'inspector');
    assert.ok(isAlive(target.pid!), 'the target survived its snapshot');

    const ls = runCli(['snapshots', 'ls', '--pod', 'shop/cart-7d9f', '--json'], { env });
    assert.equal(ls.status, 0, ls.stderr);
    const listed = (JSON.parse(ls.stdout) as { snapshots?: Array<{ snapshotId: string }> } | Array<{ snapshotId: string }>);
    const rows = Array.isArray(listed) ? listed : listed.snapshots ?? [];
    assert.ok(rows.some((r) => r.snapshotId === snap.snapshotId), ls.stdout);

    const file = join(dir, 'cart.heapsnapshot');
    const pull = runCli(['snapshots', 'pull', snap.snapshotId, '-o', file], { env, timeoutMs: 60_000 });
    assert.equal(pull.status, 0, pull.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const bytes = readFileSync(file);
    assert.equal(bytes.length, snap.bytes);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), snap.sha256);
    // Parsed by a peer: Chrome DevTools' own snapshot code (heap-snapshot-toolkit).
    const count = await devtoolsClassCount(file, 'LeakyThing');
    assert.ok(count >= ALLOCATED, `LeakyThing instances in the snapshot: ${count}, allocated ${ALLOCATED}`);
  });
});
