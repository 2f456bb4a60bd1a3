// `leakwatch demo` as a user runs it: a child process with the real parser, real signals, and
// (where the machine allows) a real fake pod that must be gone afterwards.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, type TestContext } from 'node:test';
import { demoAvailability, scenarioNames } from '../../../demo/scenarios.js';
import { unreadableByNobody } from '../../support/places.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
// program.ts is the lead's; this builds the same kind of program around registerDemo alone.
const harness = `
import { Command } from 'commander';
const { registerDemo } = await import('./cli/commands/demo.ts');
const program = new Command('leakwatch');
registerDemo(program);
await program.parseAsync(process.argv.slice(1), { from: 'user' });
`;
const nodeArgs = ['--import', 'tsx', '--input-type=module', '-e', harness, '--', 'demo'];
const availability = demoAvailability();

function skipUnless(t: TestContext, ok: boolean, reason: string): boolean {
  if (ok) return false;
  console.log(`SKIP: ${reason}`);
  t.skip(`SKIP: ${reason}`);
  return true;
}

function runDemo(args: string[], options: { asNobody?: boolean } = {}) {
  const [command, argv] = options.asNobody
    ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, ...nodeArgs, ...args]]
    : [process.execPath, [...nodeArgs, ...args]];
  return spawnSync(command as string, argv as string[], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
}

function podCgroupDirOf(stdout: string): string {
  const dir = /cgroup (\/sys\/fs\/cgroup\/memory\/\S+\/pod[0-9a-f-]{36})/.exec(stdout)?.[1];
  assert.ok(dir, `the demo names its pod cgroup:\n${stdout}`);
  return dir;
}

describe('leakwatch demo: arguments', () => {
  it('--list names every scenario with its seed and limit, without needing root', () => {
    const r = runDemo(['--list']);
    assert.equal(r.status, 0, r.stderr);
    for (const name of scenarioNames) assert.match(r.stdout, new RegExp(`^${name} \\[`, 'm'));
    assert.match(r.stdout, /^stress-test \[incident, seed 004\] default\/oom-example-pod \(oom-container 50 MiB\)$/m);
  });

  it('without a scenario: one line saying what to do, non-zero exit', () => {
    const r = runDemo([]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^leakwatch demo: name a scenario \(one of: metrics-app, .*\) or use --list\n$/);
  });

  it('an unknown scenario: one line naming the known ones, non-zero exit', () => {
    const r = runDemo(['no-such-thing']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^leakwatch demo: unknown scenario "no-such-thing" \(one of: .*control-normal-script\)\n$/);
  });

  it('a bad --duration is refused by the parser', () => {
    const r = runDemo(['stress-test', '--duration', '-3']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--duration.*expected a positive number/);
  });

  it('not root: one line with the reason, non-zero exit, nothing built', (t) => {
    const canDrop = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0;
    if (skipUnless(t, canDrop, 'needs root and setpriv to run the demo as an unprivileged user')) return;
    const unreadable = unreadableByNobody();
    if (skipUnless(t, unreadable === null, unreadable ?? '')) return;
    const r = runDemo(['stress-test'], { asNobody: true });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^leakwatch demo: not root \(real memory cgroups need root\); [^\n]*\n$/);
  });

  it('a log root that cannot hold directories: one line, non-zero exit', (t) => {
    if (skipUnless(t, availability.ok, availability.ok ? '' : availability.reason)) return;
    const dir = mkdtempSync(join(tmpdir(), 'leakwatch-demo-test-'));
    try {
      const notADirectory = join(dir, 'a-file');
      writeFileSync(notADirectory, '');
      const r = runDemo(['control-sawtooth', '--log-root', notADirectory]);
      assert.equal(r.status, 1);
      assert.equal(r.stdout, '');
      assert.ok(r.stderr.startsWith(`leakwatch demo: cannot write pod logs under ${notADirectory}: `), r.stderr);
      assert.equal(r.stderr.split('\n').length, 2, 'one line');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('leakwatch demo: running and cleaning up', { concurrency: true }, () => {
  it('--duration: prints the pod and the watch hint, stops by itself and removes the pod', (t) => {
    if (skipUnless(t, availability.ok, availability.ok ? '' : availability.reason)) return;
    const logRoot = mkdtempSync(join(tmpdir(), 'leakwatch-demo-test-'));
    try {
      const r = runDemo(['control-sawtooth', '--duration', '3', '--log-root', logRoot]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^leakwatch demo control-sawtooth: /);
      assert.ok(r.stdout.includes(`Run \`leakwatch watch --pod-log-root ${join(logRoot, 'pods')}\` in another terminal`), r.stdout);
      assert.match(r.stdout, /\] sawtooth \| ready: sawtooth/);
      assert.match(r.stdout, /--duration 3s reached: stopping/);
      assert.match(r.stdout, /cleaned up: pod leakwatch-controls\/sawtooth-\S+ removed/);
      assert.equal(existsSync(podCgroupDirOf(r.stdout)), false, 'pod cgroup removed');
      assert.deepEqual(readdirSync(join(logRoot, 'pods')), [], 'pod log directory removed');
    } finally {
      rmSync(logRoot, { recursive: true, force: true });
    }
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal}: stops, removes the pod and exits 0`, async (t) => {
      if (skipUnless(t, availability.ok, availability.ok ? '' : availability.reason)) return;
      const logRoot = mkdtempSync(join(tmpdir(), 'leakwatch-demo-test-'));
      try {
        const child = spawn(process.execPath, [...nodeArgs, 'control-prefork-pool', '--log-root', logRoot], { cwd: repoRoot });
        let stdout = '';
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no ready line within 30 s:\n${stdout}\n${stderr}`)), 30_000);
          child.stdout.on('data', (d: Buffer) => {
            stdout += d.toString();
            if (/prefork-pool \| ready:/.test(stdout)) {
              clearTimeout(timer);
              resolve();
            }
          });
        });
        const podDir = podCgroupDirOf(stdout);
        assert.equal(existsSync(podDir), true, 'the pod exists while the demo runs');
        child.kill(signal);
        assert.equal(await exited, 0, stderr);
        assert.match(stdout, new RegExp(`${signal}: stopping`));
        assert.match(stdout, /cleaned up: pod /);
        assert.equal(existsSync(podDir), false, 'pod cgroup removed');
      } finally {
        rmSync(logRoot, { recursive: true, force: true });
      }
    });
  }
});
