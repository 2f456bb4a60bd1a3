// Each capability the agent adds is needed: the operation its reason in deploy/capabilities.json
// names succeeds for uid 0 holding exactly the documented set, and fails when that one capability
// is taken away. The target is a process of another user (65534), as pod processes usually are.
// And the set does not let the agent write what it may read.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { documentedCapabilities } from '../support/manifest.js';

interface Target {
  pid: number;
  /** A 0600 file of uid 65534 in a 0700 directory of its own, as the target sees it. */
  file: string;
}

/** What the documented code does, as a shell command (tools, not the code: capture is not here yet). */
const operations: Record<string, { does: string; command: (t: Target) => string }> = {
  SYS_PTRACE: { does: 'read /proc/<pid>/exe (process-table.ts)', command: (t) => `readlink -v /proc/${t.pid}/exe` },
  DAC_READ_SEARCH: { does: "read a 0600 file of the target's user through /proc/<pid>/root (container-fs.ts)", command: (t) => `cat /proc/${t.pid}/root${t.file}` },
  KILL: { does: 'signal a process of another user (capture: SIGUSR1; here signal 0, same permission check)', command: (t) => `kill -s 0 ${t.pid}` },
  SYS_ADMIN: { does: "setns into the target's network namespace (capture: nsenter --net)", command: (t) => `nsenter --net=/proc/${t.pid}/ns/net true` },
  SYSLOG: { does: 'open /dev/kmsg (kmsg.ts) with kernel.dmesg_restrict=1', command: () => 'exec 3< /dev/kmsg' },
};

function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of ['setpriv', 'nsenter']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `no ${tool}`;
  return null;
}
const skipReason = unavailable();

function runWith(capabilities: string[], command: string): { status: number | null; stderr: string } {
  const bounding = ['-all', ...capabilities.map((c) => `+${c.toLowerCase()}`)].join(',');
  const r = spawnSync('setpriv', [`--bounding-set=${bounding}`, '--inh-caps=-all', '--no-new-privs', '--', 'sh', '-c', command], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('each documented capability is needed', { skip: skipReason ? `SKIP: ${skipReason}` : false }, () => {
  const all = documentedCapabilities().map((c) => c.name);
  let dir: string;
  let child: ChildProcess;
  let target: Target;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'leakwatch-caps-'));
    const file = join(dir, 'script.py');
    writeFileSync(file, 'print("evidence")\n', { mode: 0o600 });
    chownSync(file, 65534, 65534);
    chownSync(dir, 65534, 65534);
    chmodSync(dir, 0o700);
    child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', 'sleep', '60'], { stdio: 'ignore' });
    // setpriv execs sleep in place: same pid. Wait until it runs as 65534.
    const deadline = Date.now() + 5000;
    while (!/^Uid:\s+65534/m.test(safeRead(`/proc/${child.pid}/status`)) || !safeRead(`/proc/${child.pid}/cmdline`).startsWith('sleep')) {
      if (Date.now() > deadline) throw new Error('the target did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
    target = { pid: child.pid!, file };
  });

  after(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every documented capability has a demonstration here', () => {
    assert.deepEqual(Object.keys(operations).sort(), [...all].sort());
  });

  for (const name of Object.keys(operations)) {
    it(`${name}: ${operations[name]!.does}`, (t) => {
      if (name === 'SYSLOG' && safeRead('/proc/sys/kernel/dmesg_restrict').trim() !== '1') {
        t.skip('SKIP: kernel.dmesg_restrict is 0 here, so /dev/kmsg opens without CAP_SYSLOG');
        return;
      }
      const command = operations[name]!.command(target);
      const withAll = runWith(all, command);
      assert.equal(withAll.status, 0, `with the documented set: ${command}: ${withAll.stderr}`);
      const without = runWith(all.filter((c) => c !== name), command);
      assert.notEqual(without.status, 0, `without ${name} it should fail: ${command}`);
      assert.match(without.stderr, /Permission denied|Operation not permitted|not permitted/i);
    });
  }

  it('the set reads but cannot write: no DAC_OVERRIDE, FOWNER or CHOWN', () => {
    const write = runWith(all, `echo tampered >> /proc/${target.pid}/root${target.file}`);
    assert.notEqual(write.status, 0);
    assert.match(write.stderr, /Permission denied/);
    assert.equal(readFileSync(target.file, 'utf8'), 'print("evidence")\n');
    const chown = runWith(all, `chown 0 /proc/${target.pid}/root${target.file}`);
    assert.notEqual(chown.status, 0);
  });
});

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
