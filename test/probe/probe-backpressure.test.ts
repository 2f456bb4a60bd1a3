// Backpressure, measured as allocation rather than time. V8 first builds the snapshot (several
// times its serialized size, whoever reads it) and then serializes it synchronously, handing the
// probe chunk after chunk. The reader here stops for 3 s as soon as the first bytes arrive (longer
// than V8 takes to serialize) and then reads slowly. The target's peak RSS is reset when those
// first bytes arrive (clear_refs 5, VmHWM), so what it grows by afterwards is what serializing to
// a stalled reader costs. V8's serializer itself needs about 0.4 of the snapshot's size here;
// queuing the chunks in the target (socket.write() without waiting) measured 0.74-0.84. A 1 MiB
// semi-space keeps short-lived chunk garbage from blurring the figure.
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildProbe, resetPeakRss, rssFigures, startTarget, tempDir } from '../support/probe-harness.js';
import { startSlowAgent } from '../support/slow-probe-agent.js';

// About 22 MB of snapshot (the target peaks near 250 MB while V8 builds it).
const LEAK_COUNT = 60_000;
const BOUND_OF_SNAPSHOT = 0.6;

for (const engine of ['v8-profiler-next', 'node-inspector'] as const) {
  test(`a stalled reader does not grow the target while it serializes (${engine}, Node ${process.version})`, async (t) => {
    const dir = tempDir(t, 'lw-probe-bp-');
    const probePath = buildProbe(dir);
    const socketPath = join(dir, 'slow.sock');
    let pid = 0;
    let rssAtFirstBytes = 0;
    const agent = await startSlowAgent(socketPath, 'bp-token', 2, 3_000, () => {
      resetPeakRss(pid);
      rssAtFirstBytes = rssFigures(pid).rssBytes;
    });
    t.after(() => agent.close());
    const env = { LEAKWATCH_PROBE_SOCKET: socketPath, LEAKWATCH_PROBE_TOKEN: 'bp-token', ...(engine === 'node-inspector' ? { LEAKWATCH_PROBE_VIA: 'node-inspector' } : {}) };
    const target = await startTarget({ dir, nodeBin: process.execPath, probePath, env, leakCount: LEAK_COUNT, nodeArgs: ['--max-semi-space-size=1'] });
    t.after(() => target.stop());
    pid = target.pid;
    const probe = await agent.probe();
    const result = await probe.snapshot();
    const growthBytes = rssFigures(pid).peakBytes - rssAtFirstBytes;
    assert.equal(result.via, `probe-${engine}`);
    assert.equal(result.bytes, result.announcedBytes);
    t.diagnostic(`snapshot ${result.bytes} B; target peak RSS growth while serializing to a stalled reader ${growthBytes} B (${(growthBytes / result.bytes).toFixed(2)} of the snapshot)`);
    assert.ok(result.bytes > 8 * 1024 * 1024, 'the snapshot is large enough to tell');
    assert.ok(growthBytes < result.bytes * BOUND_OF_SNAPSHOT, `serializing to a stalled reader grew the target ${growthBytes} B (snapshot ${result.bytes} B)`);
  });
}
