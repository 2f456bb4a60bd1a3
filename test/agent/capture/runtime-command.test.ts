// The on-demand path through the real wiring: a collector sends `snapshot` over the agent's
// WebSocket; the agent runtime (started with the capture option) finds the pod's Node.js process
// in its latest sample and answers with the CaptureReport. A malformed command gets an error.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startAgent, type AgentRuntime } from '../../../agent/runtime.js';
import type { CaptureReport } from '../../../protocol/snapshots.js';
import { createFakePod, fakeNodeAvailability, type FakePod } from '../../support/fake-node.js';
import { startTestCollector, type TestCollector } from '../../support/collector-harness.js';
import { collectLines, DirSink, tempDir, waitUntil, writeTargetScript } from '../../support/capture-targets.js';
import { freePort } from '../../support/net.js';

const MiB = 1024 * 1024;
const fake = fakeNodeAvailability();

describe('snapshot command through the collector and the agent runtime', { skip: fake.ok ? false : fake.reason }, () => {
  let pod: FakePod | null = null;
  let collector: TestCollector | null = null;
  let runtime: AgentRuntime | null = null;
  const dir = tempDir();
  after(async () => {
    await runtime?.close({ flushMs: 500 });
    await collector?.stop();
    await pod?.destroy();
    dir.remove();
  });

  it("answers with the capture report of the pod's Node.js process", async () => {
    pod = createFakePod({ namespace: 'shop', name: 'web-0', containers: [{ name: 'app', limitBytes: 256 * MiB }] });
    const child = pod.spawnIn('app', process.execPath, [`--inspect-port=${await freePort()}`, writeTargetScript(dir.path), '2000', '2000'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await collectLines(child).waitFor(/^done/);
    collector = await startTestCollector();
    const sink = new DirSink(join(dir.path, 'spool'));
    const reports: CaptureReport[] = [];
    runtime = startAgent({
      nodeName: 'node-cmd',
      intervalSec: 0.2,
      kmsgPath: null,
      sampler: { podLogRoot: pod.podLogRoot },
      collector: { url: collector.collector.url, token: collector.tokens.agent },
      spoolDir: join(dir.path, 'queue'),
      capture: { sink, reports: (r) => reports.push(r), sampleMs: 300 },
    });
    await waitUntil(() => collector!.collector.agents().length === 1 && runtime!.watcher.latestSample !== null, 10_000, 'the agent to connect and sample');
    const res = await collector.collector.sendCommand('node-cmd', { action: 'snapshot', namespace: 'shop', pod: 'web-0', kind: 'heapprofile' }, { timeoutMs: 20_000 });
    assert.equal(res.ok, true, res.error);
    const report = res.result as CaptureReport;
    assert.equal(report.outcome, 'captured', `${report.reasonCode}: ${report.reason}`);
    assert.equal(report.pid, child.pid);
    assert.equal(report.trigger, 'on-demand');
    assert.ok(report.commandId);
    assert.equal(sink.accepted.length, 1);
    assert.equal(sink.accepted[0]!.meta.commandId, report.commandId);
    assert.deepEqual(reports.map((r) => r.captureId), [report.captureId]);

    const bad = await collector.collector.sendCommand('node-cmd', { action: 'snapshot', namespace: 'shop' }, { timeoutMs: 5_000 });
    assert.equal(bad.ok, false);
    assert.match(bad.error!, /"pod" must be a non-empty string/);
  });
});
