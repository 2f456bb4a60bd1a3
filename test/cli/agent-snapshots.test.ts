// `leakwatch agent` wires the snapshot spool into its uplink: a snapshot an earlier run left
// in --spool-dir reaches the collector once the agent process starts; the spool bound is a flag.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SnapshotSpool } from '../../agent/snapshot-spool.js';
import { startTestCollector } from '../support/collector-harness.js';
import { repoRoot, runCli } from '../support/cli.js';
import { waitFor } from '../support/protocol-peer.js';
import { fakeCapture } from '../support/snapshot-fixtures.js';

const entry = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'leakwatch-agent-snapshots-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('leakwatch agent and the snapshot spool', () => {
  it('uploads what is waiting in --spool-dir/snapshots, then stops cleanly on SIGTERM', async () => {
    const c = await startTestCollector();
    const spoolDir = join(root, 'spool');
    const earlier = new SnapshotSpool({ spoolDir });
    const capture = fakeCapture(earlier.workDir, 200_000);
    await earlier.accept(capture);

    const agent = spawn(
      process.execPath,
      ['--import', 'tsx', entry, 'agent', '--collector', c.collector.url, '--token', c.tokens.agent, '--node-name', 'node-cli', '--spool-dir', spoolDir,
        '--snapshot-spool-max-bytes', '64MiB', '--no-kmsg', '--pod-log-root', join(root, 'pods'), '--metrics-listen', 'off', '--interval', '0.5'],
      { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LEAKWATCH_URL: '', LEAKWATCH_TOKEN: '' } },
    );
    let stderr = '';
    agent.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => agent.on('exit', (code) => r(code)));
    try {
      await waitFor('snapshot listed', () => c.store.getSnapshot(capture.meta.snapshotId) !== null, 30_000);
      const row = c.store.getSnapshot(capture.meta.snapshotId)!;
      assert.equal(row.node, 'node-cli');
      assert.equal(row.sha256, capture.sha256);
      await waitFor('agent deleted its copy', () => !existsSync(join(earlier.dir, `${capture.meta.snapshotId}.heapsnapshot`)));
      assert.match(stderr, /"snapshot spool recovered"/);
    } finally {
      agent.kill('SIGTERM');
      assert.equal(await exited, 0, stderr.slice(-2000));
      await c.stop();
    }
  });

  it('refuses a bad --snapshot-spool-max-bytes with one line', () => {
    const r = runCli(['agent', '--collector', 'http://127.0.0.1:9', '--token', 'x', '--snapshot-spool-max-bytes', 'lots']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--snapshot-spool-max-bytes <size>' argument 'lots' is invalid/);
  });
});
