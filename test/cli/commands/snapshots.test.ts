// `leakwatch snapshots ls | pull | take | captures` as a user runs them, against a real collector:
// pull checks the sha256 and refuses a tampered download, saves 0600, refuses to overwrite;
// take goes through a real agent connection whose snapshot command answers.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, describe, it } from 'node:test';
import { DiskQueue } from '../../../agent/disk-queue.js';
import { SnapshotSpool } from '../../../agent/snapshot-spool.js';
import { Uplink } from '../../../agent/uplink.js';
import type { SnapshotCommand } from '../../../protocol/snapshots.js';
import { snapshotDir, snapshotFilePath } from '../../../server/store/snapshot-files.js';
import { startTestCollector, type TestCollector } from '../../support/collector-harness.js';
import { repoRoot } from '../../support/cli.js';
import { waitFor } from '../../support/protocol-peer.js';
import { fakeCapture, sampleMeta, sampleReport, sha256Of } from '../../support/snapshot-fixtures.js';

const entry = fileURLToPath(new URL('../../../cli/main.ts', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'leakwatch-cli-snapshots-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Async: the collector runs in this process and must keep answering while the CLI runs. */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', entry, ...args], { cwd: repoRoot, env: { ...process.env, LEAKWATCH_URL: '', LEAKWATCH_TOKEN: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

async function collectorWithSnapshot(): Promise<{ c: TestCollector; id: string; content: Buffer }> {
  const c = await startTestCollector();
  cleanups.push(() => c.stop());
  const meta = sampleMeta({ pod: 'cart-9', namespace: 'shop', pid: 77 });
  const content = Buffer.from(JSON.stringify({ snapshot: { meta: {} }, nodes: Array.from({ length: 20000 }, (_, i) => i) }));
  writeFileSync(snapshotFilePath(snapshotDir(c.dataDir), meta.snapshotId, 'heapsnapshot'), content, { mode: 0o600 });
  c.store.insertSnapshot({ ...meta, node: 'node-a', agentId: 'node-a', bytes: content.length, sha256: sha256Of(content), storedAtMs: Date.now() });
  return { c, id: meta.snapshotId, content };
}

describe('leakwatch snapshots', () => {
  it('ls lists (table and --json); pull saves 0600 with the sha256 verified and refuses to overwrite without --force', async () => {
    const { c, id, content } = await collectorWithSnapshot();
    const env = { LEAKWATCH_URL: c.collector.url, LEAKWATCH_TOKEN: c.tokens.snapshots };
    const ls = await cli(['snapshots', 'ls', '--pod', 'shop/cart-9', '--token', c.tokens.read], { LEAKWATCH_URL: c.collector.url });
    assert.equal(ls.status, 0, ls.stderr);
    assert.match(ls.stdout, new RegExp(`${id}\\s+heapsnapshot .* node-a\\s+shop/cart-9\\s+77`));
    const lsJson = await cli(['snapshots', 'ls', '--json', '--url', c.collector.url, '--token', c.tokens.read]);
    assert.equal(JSON.parse(lsJson.stdout)[0].snapshotId, id);

    const out = join(root, `pulled-${++n}.heapsnapshot`);
    const pulled = await cli(['snapshots', 'pull', id, '-o', out, '--json'], env);
    assert.equal(pulled.status, 0, pulled.stderr);
    assert.deepEqual(readFileSync(out), content);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(pulled.stdout), { snapshotId: id, path: out, bytes: content.length, sha256: sha256Of(content), kind: 'heapsnapshot' });
    assert.equal(c.store.listAudit({ action: 'snapshot.download' }).length, 1);

    const again = await cli(['snapshots', 'pull', id, '-o', out], env);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /exists; refusing to overwrite it \(pass --force\)/);
    assert.equal(again.stderr.trim().split('\n').length, 1);
    const forced = await cli(['snapshots', 'pull', id, '-o', out, '--force'], env);
    assert.equal(forced.status, 0, forced.stderr);
    assert.match(forced.stdout, /sha256 [0-9a-f]{64} verified/);
    assert.match(forced.stdout, /Chrome DevTools: Memory tab → Load/);
  });

  it('pull draws a progress bar when stderr is a terminal (run under script(1) for a pty)', async (t) => {
    const { c, id } = await collectorWithSnapshot();
    const out = join(root, `tty-${++n}.heapsnapshot`);
    const command = [process.execPath, '--import', 'tsx', entry, 'snapshots', 'pull', id, '-o', out, '--url', c.collector.url, '--token', c.tokens.snapshots]
      .map((a) => `'${a.replace(/'/g, "'\\''")}'`)
      .join(' ');
    const r = await new Promise<{ status: number | null; output: string; error?: Error }>((resolve) => {
      const p = spawn('script', ['-qec', command, '/dev/null'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      p.stdout.on('data', (d: Buffer) => (output += d.toString()));
      p.stderr.on('data', (d: Buffer) => (output += d.toString()));
      p.on('error', (error) => resolve({ status: null, output, error }));
      p.on('close', (status) => resolve({ status, output }));
    });
    if (r.error) {
      t.skip(`script(1) is not available to give the CLI a terminal: ${r.error.message}`);
      return;
    }
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, new RegExp(`pulling ${id} \\[#+\\] 100%`));
    assert.ok(existsSync(out));
  });

  it('pull refuses a tampered download: nothing written under the name asked for, no leftovers', async () => {
    const { c, id, content } = await collectorWithSnapshot();
    const stored = snapshotFilePath(snapshotDir(c.dataDir), id, 'heapsnapshot');
    const tampered = Buffer.from(content);
    tampered[10] = tampered[10]! ^ 0x01;
    writeFileSync(stored, tampered);
    const dir = mkdtempSync(join(root, 'tampered-'));
    const out = join(dir, 'x.heapsnapshot');
    const r = await cli(['snapshots', 'pull', id, '-o', out, '--url', c.collector.url, '--token', c.tokens.snapshots]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /sha256 mismatch: .* damaged or tampered with, nothing written/);
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('pull with a read token is a one-line 403; a bad id is refused before any request', async () => {
    const { c, id } = await collectorWithSnapshot();
    const out = join(root, `denied-${++n}`);
    const r = await cli(['snapshots', 'pull', id, '-o', out, '--url', c.collector.url, '--token', c.tokens.read]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /lacks the scope .*403/);
    assert.equal(existsSync(out), false);
    const bad = await cli(['snapshots', 'pull', '../../etc/passwd', '-o', out, '--url', c.collector.url, '--token', c.tokens.snapshots]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /is not a snapshot id/);
  });

  it('take asks the collector, which routes the command to the pod\'s agent and answers once the snapshot is stored', async () => {
    const c = await startTestCollector({ heartbeatIntervalMs: 1_000 });
    cleanups.push(() => c.stop());
    const spoolDir = join(root, `spool-${++n}`);
    const queue = new DiskQueue({ dir: spoolDir });
    const spool = new SnapshotSpool({ spoolDir });
    const uplink = new Uplink({ url: c.collector.url, token: c.tokens.agent, agentId: 'agent-a', node: 'node-a', version: 'test', queue, backoffBaseMs: 50, snapshotSpool: spool });
    cleanups.push(async () => {
      await uplink.close({ flushMs: 0 });
      queue.close();
    });
    uplink.onCommand('snapshot', async (command, { commandId }) => {
      const cmd = command as unknown as SnapshotCommand;
      if (cmd.pod === 'locked') return sampleReport({ node: 'node-a', namespace: cmd.namespace, pod: cmd.pod, commandId, outcome: 'refused', reasonCode: 'sigusr1-not-caught', reason: 'SIGUSR1 is not caught' });
      const capture = fakeCapture(spool.workDir, 50_000, { namespace: cmd.namespace, pod: cmd.pod, kind: cmd.kind ?? 'heapsnapshot', commandId });
      await spool.accept(capture);
      return sampleReport({ node: 'node-a', namespace: cmd.namespace, pod: cmd.pod, commandId, outcome: 'captured', reason: null, reasonCode: null, requested: cmd.kind ?? 'heapsnapshot', snapshotIds: [capture.meta.snapshotId] });
    });
    uplink.start();
    const t = (pod: string) => ({ targetKey: `ctr:${pod}`, kind: 'container' as const, pid: null, ppid: null, comm: null, cmdline: null, namespace: 'shop', pod, podUid: null, container: 'app', containerId: null });
    uplink.sendSeries([t('cart-1'), t('locked')], []);
    await waitFor('targets known', () => c.store.listTargets({ namespace: 'shop' }).length === 2);

    const env = { LEAKWATCH_URL: c.collector.url, LEAKWATCH_TOKEN: c.tokens.snapshots };
    const r = await cli(['snapshots', 'take', '--pod', 'shop/cart-1', '--kind', 'heapprofile', '--json'], env);
    assert.equal(r.status, 0, r.stderr);
    const answer = JSON.parse(r.stdout);
    assert.equal(answer.capture.outcome, 'captured');
    assert.equal(answer.snapshots.length, 1);
    assert.equal(answer.snapshots[0].kind, 'heapprofile');
    assert.ok(c.store.getSnapshot(answer.snapshots[0].snapshotId));

    const table = await cli(['snapshots', 'take', '--pod', 'shop/cart-1'], env);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /pull it with: leakwatch snapshots pull [0-9a-f]{32} -o cart-1\.heapsnapshot/);

    const refused = await cli(['snapshots', 'take', '--pod', 'shop/locked'], env);
    assert.equal(refused.status, 3);
    assert.match(refused.stderr, /capture refused: SIGUSR1 is not caught \(sigusr1-not-caught\)/);
    const captures = await cli(['snapshots', 'captures', '--outcome', 'refused', '--json'], { ...env, LEAKWATCH_TOKEN: c.tokens.read });
    assert.equal(JSON.parse(captures.stdout)[0].pod, 'locked');

    const denied = await cli(['snapshots', 'take', '--pod', 'shop/cart-1'], { ...env, LEAKWATCH_TOKEN: c.tokens.read });
    assert.equal(denied.status, 1);
    assert.match(denied.stderr, /403/);
  });
});
