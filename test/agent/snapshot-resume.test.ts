// The collector is SIGKILLed in the middle of a snapshot upload and started again on the same
// data directory and port: the agent resumes from the offset the collector's .part holds (so
// only the tail travels again) and the stored file's sha256 is the capture's.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { DiskQueue } from '../../agent/disk-queue.js';
import { SnapshotSpool } from '../../agent/snapshot-spool.js';
import { Uplink } from '../../agent/uplink.js';
import { snapshotDir, snapshotFilePath, snapshotPartPath } from '../../server/store/snapshot-files.js';
import { httpGet, makeTokens } from '../support/collector-harness.js';
import { freePort } from '../support/net.js';
import { recordingLogger, waitFor } from '../support/protocol-peer.js';
import { fakeCapture } from '../support/snapshot-fixtures.js';

const child = fileURLToPath(new URL('../support/collector-child.ts', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'leakwatch-snapshot-resume-'));
const procs = new Set<ChildProcess>();
after(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

function startChild(dataDir: string, tokensFile: string, port: number): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, 'collector', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--tokens-file', tokensFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  procs.add(proc);
  proc.on('exit', () => procs.delete(proc));
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`collector did not start: ${stderr}`)), 30_000);
    proc.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (stderr.includes('"collector listening"')) {
        clearTimeout(timer);
        resolve(proc);
      }
    });
    proc.on('exit', (code) => reject(new Error(`collector exited ${code}: ${stderr}`)));
  });
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c as Buffer))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

describe('snapshot upload across a collector SIGKILL', () => {
  it('resumes from the held offset and the final sha256 matches', async () => {
    const dataDir = join(root, 'data');
    const tokensFile = join(root, 'tokens.json');
    const { tokens, entries } = makeTokens();
    writeFileSync(tokensFile, JSON.stringify(entries), { mode: 0o600 });
    const port = await freePort();
    let collector = await startChild(dataDir, tokensFile, port);

    const spoolDir = join(root, 'spool');
    const log = recordingLogger();
    const queue = new DiskQueue({ dir: spoolDir });
    const spool = new SnapshotSpool({ spoolDir, log });
    const uplink = new Uplink({ url: `http://127.0.0.1:${port}`, token: tokens.agent, agentId: 'node-a', node: 'node-a', version: 'test', queue, log, backoffBaseMs: 50, backoffCapMs: 300, snapshotSpool: spool });
    try {
      uplink.start();
      const capture = fakeCapture(spool.workDir, 96 * 1024 * 1024);
      const id = capture.meta.snapshotId;
      const bytes = capture.bytes;
      await spool.accept(capture);
      const part = snapshotPartPath(snapshotDir(dataDir), id);
      await waitFor('a quarter of the upload on the collector', () => existsSync(part) && statSync(part).size >= bytes / 4, 30_000);
      collector.kill('SIGKILL');
      await new Promise((r) => collector.once('exit', r));
      const heldAfterKill = statSync(part).size;
      // Chunks the agent wrote before it noticed the connection was gone count as sent before the restart.
      await waitFor('the agent noticed', () => !uplink.state().connected && uplink.state().snapshots!.uploading === null);
      const sentBeforeRestart = uplink.state().snapshots!.bytesSent;
      assert.ok(heldAfterKill > 0 && heldAfterKill < bytes, `the kill came mid-upload (${heldAfterKill} of ${bytes})`);
      assert.equal(spool.size, 1, 'the agent keeps its copy until snapshot-stored');

      collector = await startChild(dataDir, tokensFile, port);
      await waitFor('snapshot stored after the restart', () => spool.size === 0, 60_000);
      const state = uplink.state().snapshots!;
      assert.equal(state.stored, 1);
      assert.equal(state.resumedFromOffsets.length, 1);
      const resumedFrom = state.resumedFromOffsets[0]!;
      assert.equal(resumedFrom, heldAfterKill, 'the collector answered with the bytes its .part held');
      const resent = state.bytesSent - sentBeforeRestart;
      assert.equal(resent, bytes - resumedFrom, 'after the restart, exactly the missing tail travelled');
      assert.ok(resent < bytes, `fewer bytes than the whole were re-sent (${resent} < ${bytes})`);

      const stored = snapshotFilePath(snapshotDir(dataDir), id, 'heapsnapshot');
      assert.equal(await sha256File(stored), capture.sha256);
      assert.equal(statSync(stored).mode & 0o777, 0o600);
      const listed = await httpGet(`http://127.0.0.1:${port}`, `/api/v1/snapshots/${id}`, tokens.read);
      assert.equal(listed.status, 200);
      assert.equal(listed.json.sha256, capture.sha256);
    } finally {
      await uplink.close({ flushMs: 0 });
      queue.close();
      collector.kill('SIGTERM');
      await new Promise((r) => (collector.exitCode !== null ? r(null) : collector.once('exit', r)));
    }
  });
});
