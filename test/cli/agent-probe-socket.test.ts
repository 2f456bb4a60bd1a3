// `leakwatch agent --probe-socket`: the agent listens for in-process probes with a fresh token
// written 0600 beside the socket; a target started with the probe connects and is named by its
// host pid; SIGTERM removes the socket. A bad token file is one line on stderr and exit 2.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { runCli, startCli } from '../support/cli.js';
import { freePort } from '../support/net.js';
import { buildProbe, startTarget, tempDir, waitFor } from '../support/probe-harness.js';

/** A long-running leakwatch command, killed at the end of the test if it is still running. */
function startLongRunning(t: TestContext, args: string[]) {
  const proc = startCli(args);
  const out = { stderr: '', stdout: '' };
  proc.stderr!.on('data', (d: Buffer) => (out.stderr += d.toString()));
  proc.stdout!.on('data', (d: Buffer) => (out.stdout += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  t.after(async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  return { proc, out, exited };
}

test('leakwatch agent --probe-socket accepts a probe that reads the token beside the socket', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t, 'lw-cli-probe-');
  const socketPath = join(dir, 'run', 'probe.sock');
  const { proc: agent, out, exited } = startLongRunning(t, ['agent', '--collector', 'http://127.0.0.1:1', '--token', 'lw_unused', '--spool-dir', join(dir, 'spool'), '--metrics-listen', 'off', '--no-kmsg', '--probe-socket', socketPath]);
  await waitFor('the probe server to listen', () => (out.stderr.includes('"probe server listening"') ? true : null), 30_000);
  assert.equal(statSync(socketPath).mode & 0o777, 0o600);
  const tokenPath = join(dir, 'run', 'probe.token');
  assert.equal(statSync(tokenPath).mode & 0o777, 0o600);
  assert.match(readFileSync(tokenPath, 'utf8'), /^[0-9a-f]{64}\n$/);
  assert.ok(!out.stderr.includes(readFileSync(tokenPath, 'utf8').trim()), 'the token is not logged');

  const target = await startTarget({ dir, nodeBin: process.execPath, probePath: buildProbe(dir), env: { LEAKWATCH_PROBE_SOCKET: socketPath }, leakCount: 100 });
  t.after(() => target.stop());
  await waitFor('the probe to connect', () => (out.stderr.includes(`"msg":"probe connected"`) && out.stderr.includes(`"pid":${target.pid}`) ? true : null));

  agent.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.equal(existsSync(socketPath), false, 'the socket is removed on stop');
});

test('leakwatch agent: an empty --probe-token-file is one line and exit 2', (t) => {
  const dir = tempDir(t, 'lw-cli-probe-bad-');
  writeFileSync(join(dir, 'empty'), '');
  const r = runCli(['agent', '--collector', 'http://127.0.0.1:1', '--token', 'lw_unused', '--spool-dir', join(dir, 'spool'), '--metrics-listen', 'off', '--no-kmsg', '--probe-socket', join(dir, 'p.sock'), '--probe-token-file', join(dir, 'empty')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^leakwatch agent: --probe-socket: probe token: .*is empty\n$/m);
});

test('leakwatch up --probe-socket listens for probes beside the collector and removes the socket on stop', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t, 'lw-cli-up-probe-');
  const socketPath = join(dir, 'run', 'probe.sock');
  const { proc: up, out, exited } = startLongRunning(t, ['up', '--listen', `127.0.0.1:${await freePort()}`, '--data-dir', join(dir, 'data'), '--no-kmsg', '--probe-socket', socketPath]);
  await waitFor('the probe server to listen', () => (out.stderr.includes('"probe server listening"') ? true : null), 30_000);
  assert.equal(statSync(socketPath).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'run', 'probe.token')).mode & 0o777, 0o600);
  up.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.equal(existsSync(socketPath), false);
});

test('leakwatch up stopped in the middle of its start-up still stops cleanly: exit 0, no socket left behind', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t, 'lw-cli-up-early-');
  const socketPath = join(dir, 'run', 'probe.sock');
  const { proc: up, out, exited } = startLongRunning(t, ['up', '--listen', `127.0.0.1:${await freePort()}`, '--data-dir', join(dir, 'data'), '--no-kmsg', '--probe-socket', socketPath]);
  // The collector is listening; the agent and the probe server are still to come. (The helper's
  // listener, added first, has already appended each chunk when this one sees it.)
  await new Promise<void>((resolve) => {
    up.stderr!.on('data', () => {
      if (out.stderr.includes('"collector listening"')) resolve();
    });
  });
  up.kill('SIGTERM');
  assert.equal(await exited, 0, `stderr: ${out.stderr}`);
  assert.equal(existsSync(socketPath), false, 'the probe socket is not left behind');
  assert.match(out.stderr, /"msg":"stopping".*"signal":"SIGTERM"/);
  assert.match(out.stdout, /leakwatch is up/, 'start-up finished before the stop');
});
