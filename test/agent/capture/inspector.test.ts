// The inspector way in, against real processes: a target already running with --inspect is used
// as it is and not signalled; a process that does not catch SIGUSR1 is never signalled and lives;
// two Node.js processes in one network namespace (only one can hold 9229): a clear refusal, and the
// peer check keeps the wrong process from being snapshotted; Node 20's 100 KiB and Node 24's 1 MiB
// chunks both stream into a file that parses.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodeSampler, type AttributedProcess } from '../../../agent/host/node-sampler.js';
import { Capturer } from '../../../agent/capture/capturer.js';
import { captureHeapSnapshot } from '../../../agent/capture/heap-capture.js';
import { connectVerified, openInspector } from '../../../agent/capture/inspector-endpoint.js';
import { startNetnsRelay } from '../../../agent/capture/netns-relay.js';
import { listenersOf } from '../../../agent/capture/proc-sockets.js';
import { CaptureError } from '../../../agent/capture/capture-error.js';
import type { CaptureReport } from '../../../protocol/snapshots.js';
import { freePort } from '../../support/net.js';
import { collectLines, countObjectsOfClass, createNetns, DirSink, isAlive, netnsAvailability, node24Binary, tempDir, waitUntil, writeTargetScript } from '../../support/capture-targets.js';

const root = typeof process.getuid === 'function' && process.getuid() === 0;
const netns = netnsAvailability();

const children: ChildProcess[] = [];
const cleanups: Array<() => void> = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const f of cleanups.reverse()) f();
});

function start(command: string, args: string[]): ChildProcess {
  const c = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(c);
  return c;
}

function sampled(pid: number): AttributedProcess {
  const s = new NodeSampler();
  try {
    const p = s.sample().processes.find((q) => q.pid === pid);
    if (!p) throw new Error(`pid ${pid} not sampled`);
    return p;
  } finally {
    s.close();
  }
}

function capturerFor(dir: string, p: AttributedProcess, extra: { signalled?: number[]; reports?: CaptureReport[] } = {}): { capturer: Capturer; sink: DirSink } {
  const sink = new DirSink(dir);
  const capturer = new Capturer({
    node: 'node-test',
    sink,
    reports: (r) => extra.reports?.push(r),
    hierarchy: null,
    processes: () => [p],
    sampleMs: 300,
    onSignal: (pid) => extra.signalled?.push(pid),
  });
  return { capturer, sink };
}

describe('inspector capture of real processes', { skip: root ? false : 'not root: SIGUSR1 and /proc/<pid>/fd of other processes need root' }, () => {
  const dir = tempDir();
  cleanups.push(dir.remove);
  const script = writeTargetScript(dir.path);

  it('uses the inspector of a target started with --inspect, does not signal it, and leaves it listening', async () => {
    const port = await freePort();
    const child = start(process.execPath, [`--inspect=127.0.0.1:${port}`, script, '3000', '3000']);
    await collectLines(child).waitFor(/^done/);
    const p = sampled(child.pid!);
    const signalled: number[] = [];
    const { capturer, sink } = capturerFor(join(dir.path, 'a'), p, { signalled });
    const report = await capturer.capture({ process: p, kind: 'heapsnapshot', trigger: 'on-demand', commandId: 'c1' });
    assert.equal(report.outcome, 'captured', `${report.reasonCode}: ${report.reason}`);
    assert.deepEqual(signalled, []);
    assert.equal(sink.accepted.length, 1);
    assert.equal(countObjectsOfClass(sink.accepted[0]!.path, 'LeakyThing').count, 3000);
    assert.equal(sink.accepted[0]!.meta.commandId, 'c1');
    // Not ours to close.
    assert.ok(listenersOf(child.pid!).some((l) => l.port === port));
  });

  it('signals a target with --inspect-port, finds its listener there, and closes the inspector afterwards', async () => {
    const port = await freePort();
    const child = start(process.execPath, [`--inspect-port=${port}`, script, '1000', '1000']);
    await collectLines(child).waitFor(/^done/);
    assert.deepEqual(listenersOf(child.pid!), []);
    const p = sampled(child.pid!);
    const signalled: number[] = [];
    const { capturer, sink } = capturerFor(join(dir.path, 'b'), p, { signalled });
    const report = await capturer.capture({ process: p, kind: 'heapprofile', trigger: 'on-demand' });
    assert.equal(report.outcome, 'captured', `${report.reasonCode}: ${report.reason}`);
    assert.deepEqual(signalled, [child.pid]);
    const profile = JSON.parse(readFileSync(sink.accepted[0]!.path, 'utf8')) as { head?: unknown };
    assert.ok(profile.head, 'a sampling heap profile has a head node');
    assert.equal(sink.accepted[0]!.meta.kind, 'heapprofile');
    await waitUntil(() => listenersOf(child.pid!).length === 0, 5_000, 'the inspector we opened to close');
    assert.ok(isAlive(child.pid!));
  });

  it('never signals a process that does not catch SIGUSR1, which stays alive', async () => {
    const py = start('python3', ['-c', 'import time; time.sleep(60)']);
    await waitUntil(() => {
      try {
        return readFileSync(`/proc/${py.pid}/cmdline`, 'utf8').includes('sleep');
      } catch {
        return false;
      }
    }, 5_000, 'python to start');
    const p = sampled(py.pid!);
    const signalled: number[] = [];
    const reports: CaptureReport[] = [];
    const { capturer } = capturerFor(join(dir.path, 'c'), p, { signalled, reports });
    // Through the capturer: not Node.js at all.
    const report = await capturer.capture({ process: p, kind: 'heapsnapshot', trigger: 'on-demand' });
    assert.equal(report.outcome, 'refused');
    assert.equal(report.reasonCode, 'not-node');
    assert.equal(reports.length, 1, 'the refusal is reported');
    // The inspector path itself refuses on the signal mask, whatever the process is called.
    await assert.rejects(openInspector(p, { onSignal: (pid) => signalled.push(pid) }), (err: unknown) => {
      assert.ok(err instanceof CaptureError);
      assert.equal(err.reasonCode, 'sigusr1-not-caught');
      assert.match(err.message, /would kill/);
      return true;
    });
    assert.deepEqual(signalled, []);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(isAlive(py.pid!), 'python must still be alive');
  });

  it('refuses a Node.js target started with --disable-sigusr1 (Node 24) without signalling it', async (t) => {
    const n24 = node24Binary();
    if (!n24.ok) return t.skip(n24.reason);
    const child = start(n24.path, ['--disable-sigusr1', script, '100', '100']);
    await collectLines(child).waitFor(/^done/);
    const p = sampled(child.pid!);
    const signalled: number[] = [];
    const { capturer } = capturerFor(join(dir.path, 'd'), p, { signalled });
    const report = await capturer.capture({ process: p, kind: 'heapsnapshot', trigger: 'on-demand' });
    assert.equal(report.outcome, 'refused');
    assert.equal(report.reasonCode, 'sigusr1-not-caught');
    assert.deepEqual(signalled, []);
    assert.ok(isAlive(child.pid!));
  });

  for (const runtime of ['node20', 'node24'] as const) {
    it(`streams ${runtime === 'node20' ? "Node 20's 100 KiB" : "Node 24's 1 MiB"} chunks into a file that parses`, async (t) => {
      let bin = process.execPath;
      if (runtime === 'node24') {
        const n24 = node24Binary();
        if (!n24.ok) return t.skip(n24.reason);
        bin = n24.path;
      }
      const port = await freePort();
      const child = start(bin, [`--inspect-port=${port}`, script, '20000', '20000']);
      await collectLines(child).waitFor(/^done/);
      const h = await openInspector(sampled(child.pid!));
      const out = join(dir.path, `${runtime}.heapsnapshot`);
      try {
        assert.equal(h.nodeVersion?.slice(0, 4), runtime === 'node20' ? 'v20.' : 'v24.');
        const r = await captureHeapSnapshot(h.session, out);
        assert.ok(r.chunks! > 1);
        if (runtime === 'node20') assert.ok(r.maxChunkBytes! <= 100 * 1024, `max chunk ${r.maxChunkBytes}`);
        else assert.ok(r.maxChunkBytes! > 512 * 1024, `max chunk ${r.maxChunkBytes}`);
        assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), r.sha256);
        assert.equal(countObjectsOfClass(out, 'LeakyThing').count, 20000);
      } finally {
        await h.close();
      }
    });
  }

  describe('two Node.js processes in one network namespace', { skip: netns.ok ? false : netns.reason }, () => {
    it('refuses the one that cannot bind 9229, names the holder, and the peer check refuses the wrong process', async () => {
      const ns = createNetns();
      cleanups.push(ns.remove);
      const holder = start('ip', ['netns', 'exec', ns.name, process.execPath, '--inspect=127.0.0.1:9229', script, '500', '500']);
      const other = start('ip', ['netns', 'exec', ns.name, process.execPath, script, '600', '600']);
      await Promise.all([collectLines(holder).waitFor(/^done/), collectLines(other).waitFor(/^done/)]);
      await waitUntil(() => listenersOf(holder.pid!).some((l) => l.port === 9229), 5_000, 'the holder to listen on 9229');
      const p = sampled(other.pid!);
      const signalled: number[] = [];
      const { capturer, sink } = capturerFor(join(dir.path, 'e'), p, { signalled });
      const report = await capturer.capture({ process: p, kind: 'heapsnapshot', trigger: 'on-demand' });
      assert.equal(report.outcome, 'refused');
      assert.equal(report.reasonCode, 'port-in-use');
      assert.match(report.reason!, new RegExp(`port 9229 .*held by pid ${holder.pid}`));
      assert.deepEqual(signalled, [], 'not signalled: Node would only fail to bind');
      assert.equal(sink.accepted.length, 0);
      assert.ok(isAlive(other.pid!));

      // Were the agent to reach 9229 anyway, the peer there is the holder, not the target.
      const relay = await startNetnsRelay(other.pid!, '127.0.0.1', 9229);
      try {
        await assert.rejects(connectVerified(p, relay, 9229), (err: unknown) => err instanceof CaptureError && err.reasonCode === 'peer-mismatch');
      } finally {
        relay.close();
      }
    });
  });
});
