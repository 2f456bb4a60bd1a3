// `leakwatch agent` serves /metrics, /healthz and /readyz for Prometheus and kubelet probes, even
// while its collector is away (findings wait in the spool).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { freePort } from '../support/net.js';
import { join } from 'node:path';
import { startCli } from '../support/cli.js';


async function get(url: string): Promise<{ status: number; body: string } | null> {
  try {
    const r = await fetch(url);
    return { status: r.status, body: await r.text() };
  } catch {
    return null;
  }
}

test('leakwatch agent serves its probes and metrics while the collector is away', { timeout: 60_000 }, async () => {
  const spool = mkdtempSync(join(tmpdir(), 'lw-agent-http-'));
  const port = await freePort();
  const agent = startCli(['agent', '--collector', 'http://127.0.0.1:1', '--token', 'lw_unused', '--spool-dir', spool, '--metrics-listen', `127.0.0.1:${port}`, '--no-kmsg']);
  try {
    let ready: { status: number; body: string } | null = null;
    for (let i = 0; i < 80 && ready?.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      ready = await get(`http://127.0.0.1:${port}/readyz`);
    }
    assert.equal(ready?.status, 200, 'ready after the first pass');
    assert.equal((await get(`http://127.0.0.1:${port}/healthz`))?.status, 200);
    const metrics = await get(`http://127.0.0.1:${port}/metrics`);
    assert.equal(metrics?.status, 200);
    assert.match(metrics!.body, /^leakwatch_agent_sampling_duration_seconds_count\{[^}]*\} [1-9]/m);
    assert.match(metrics!.body, /^leakwatch_processes_sampled\{[^}]*\} [1-9]/m);
  } finally {
    agent.kill('SIGTERM');
    await new Promise((r) => agent.once('exit', r));
    rmSync(spool, { recursive: true, force: true });
  }
});
