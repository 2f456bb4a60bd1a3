import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clockTicksPerSecond, ProcessTable, ProcRootError, type ProcessTableOptions } from '../../../agent/host/process-table.js';
import type { ProcessSample } from '../../../agent/host/types.js';
import { unreadableByNobody } from '../../support/places.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../..');
const fixtures = join(repoRoot, 'test/fixtures/proc');
const basicBtimeMs = 1795318814 * 1000;

function tableOn(root: string, options: ProcessTableOptions = {}): { table: ProcessTable; warnings: string[] } {
  const warnings: string[] = [];
  const table = new ProcessTable({ procRoot: root, warn: (m) => warnings.push(m), ...options });
  return { table, warnings };
}

function byPid(samples: ProcessSample[]): Map<number, ProcessSample> {
  return new Map(samples.map((s) => [s.pid, s]));
}

function get(samples: ProcessSample[], pid: number): ProcessSample {
  const s = samples.find((p) => p.pid === pid);
  assert.ok(s, `pid ${pid} missing from ${samples.map((p) => p.pid).join(',')}`);
  return s;
}

/** A writable copy of a fixture tree, removed when the test ends. */
function copyFixture(t: TestContext, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `leakwatch-proc-${name}-`));
  cpSync(join(fixtures, name), dir, { recursive: true, verbatimSymlinks: true });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function skip(t: TestContext, reason: string): void {
  console.log(`SKIP: ${reason}`);
  t.skip(`SKIP: ${reason}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function started(child: ChildProcess): Promise<number> {
  await new Promise<void>((res, rej) => {
    child.once('spawn', () => res());
    child.once('error', rej);
  });
  assert.ok(child.pid);
  return child.pid;
}

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

// ---------------------------------------------------------------- fixture trees

test('fixture tree: every process with the fields the kernel gave', () => {
  const { table, warnings } = tableOn(join(fixtures, 'basic'));
  try {
    const samples = table.sample();
    assert.deepEqual(samples.map((s) => s.pid).sort((a, b) => a - b), [2, 10832, 10833, 10836, 10837, 10861, 20837]);

    const sleepSample = get(samples, 10836);
    assert.deepEqual({ ...sleepSample }, {
      pid: 10836,
      ppid: 10832,
      comm: 'sleep',
      cmdline: 'sleep 3600',
      argv: ['sleep', '3600'],
      exe: '/usr/bin/sleep',
      uid: 0,
      startTimeMs: basicBtimeMs + (125377 * 1000) / clockTicksPerSecond,
      nsPid: 10836,
      nsPids: [10836],
      state: 'S',
      rssAnonBytes: 112 * 1024,
      rssFileBytes: 1700 * 1024,
      rssShmemBytes: 0,
      swapBytes: 0,
      cgroupPath: '/process_api/a95b503ae0d2197bc9ad660b840d3c52',
    });

    const container = get(samples, 10837);
    assert.equal(container.nsPid, 1);
    assert.deepEqual(container.nsPids, [10837, 1]);
    assert.match(container.cgroupPath ?? '', /^\/kubepods\/burstable\/pod6f2c1b3e-[0-9a-f-]+\/3f1c9a2b[0-9a-f]{56}$/);
    const v2 = get(samples, 20837);
    assert.equal(v2.nsPid, 7);
    assert.match(v2.cgroupPath ?? '', /^\/kubepods\.slice\/.*cri-containerd-3f1c9a2b[0-9a-f]{56}\.scope$/);

    const parens = get(samples, 10833);
    assert.equal(parens.comm, 'a) (b c');
    assert.equal(parens.exe, '/tmp/lwcap/a) (b c');
    assert.deepEqual(parens.argv, ['/tmp/lwcap/a) (b c', '3600']);

    const kthread = get(samples, 2);
    assert.equal(kthread.comm, 'kthreadd');
    assert.equal(kthread.exe, null);
    assert.deepEqual(kthread.argv, []);
    assert.equal(kthread.rssAnonBytes + kthread.rssFileBytes, 0);
    assert.equal(kthread.cgroupPath, '/');

    const zombie = get(samples, 10861);
    assert.equal(zombie.state, 'Z');
    assert.equal(zombie.cmdline, '');
    assert.equal(zombie.exe, null);
    assert.equal(zombie.rssAnonBytes, 0);

    assert.deepEqual(warnings, []);
    assert.equal(table.stats().fdsOpen, 7);
    assert.equal(table.stats().newProcessesLastPass, 7);
  } finally {
    table.close();
  }
});

test('fixture tree: a quiet second pass reuses samples and reads no status', () => {
  const { table } = tableOn(join(fixtures, 'basic'));
  try {
    const first = byPid(table.sample());
    // Five processes have parents outside the tree (10828, 10834, 10859): one status re-read
    // each, on the first pass only.
    assert.equal(table.stats().statusReadsLastPass, 7 + 5);
    const second = table.sample();
    assert.equal(table.stats().statusReadsLastPass, 0);
    assert.equal(table.stats().identityReadsLastPass, 0);
    for (const s of second) assert.equal(s, first.get(s.pid), `pid ${s.pid} got a new object`);
    assert.ok(Object.isFrozen(second[0]));
    assert.throws(() => {
      (second[0] as { rssAnonBytes: number }).rssAnonBytes = 1;
    }, TypeError);
    assert.throws(() => (second[0]!.argv as string[]).push('x'), TypeError);
  } finally {
    table.close();
  }
});

test('fixture tree: garbage and vanished processes are skipped, each kind of problem warned once', () => {
  const { table, warnings } = tableOn(join(fixtures, 'garbage'));
  try {
    for (let i = 0; i < 3; i++) {
      const samples = table.sample();
      assert.deepEqual(samples.map((s) => s.pid).sort(), [100, 108]);
    }
    assert.equal(warnings.length, 3, warnings.join('\n'));
    assert.ok(warnings.some((w) => /101\/stat: .*truncated/.test(w)));
    assert.ok(warnings.some((w) => /102\/statm: field 2/.test(w)));
    assert.ok(warnings.some((w) => /105\/status: no PPid/.test(w)));
    assert.ok(!warnings.some((w) => /\/10[347]\//.test(w)), 'exited processes are not warned about');
    // 101, 102, 105 and 106 fail on every pass; the counter says so even though warnings stop.
    assert.equal(table.stats().parseErrorsTotal, 12);

    const odd = get(table.sample(), 108);
    assert.ok(odd.cmdline.includes('\ufffd'));
    assert.equal(odd.cgroupPath, null);
    assert.equal(odd.exe, '/usr/bin/sleep');
    // Only the good processes hold fds: failed discoveries closed theirs.
    assert.equal(table.stats().fdsOpen, 2);
  } finally {
    table.close();
  }
});

test('fixture tree: an unusable proc root is a clear error', () => {
  const noBtime = tableOn(join(fixtures, 'no-btime')).table;
  assert.throws(() => noBtime.sample(), (e: unknown) => e instanceof ProcRootError && /no btime/.test(e.message));
  const missing = tableOn(join(fixtures, 'does-not-exist')).table;
  assert.throws(() => missing.sample(), (e: unknown) => e instanceof ProcRootError && /does-not-exist\/stat/.test(e.message));
  assert.throws(() => new ProcessTable({ maxCmdlineBytes: 0 }), RangeError);
  assert.throws(() => new ProcessTable({ fullRefreshEveryPasses: 1.5 }), RangeError);
  assert.throws(() => new ProcessTable({ maxCachedFds: -1 }), RangeError);
  const closed = tableOn(join(fixtures, 'basic')).table;
  closed.close();
  assert.throws(() => closed.sample(), /closed/);
});

test('fixture tree: pid reuse is noticed by start time (periodic refresh and fd-less path)', (t) => {
  for (const options of [{ fullRefreshEveryPasses: 1 }, { maxCachedFds: 0 }]) {
    const root = copyFixture(t, 'basic');
    const { table, warnings } = tableOn(root, options);
    try {
      const before = get(table.sample(), 10836);
      const stat = readFileSync(join(root, '10836/stat'), 'utf8');
      writeFileSync(join(root, '10836/stat'), stat.replace(' 125377 ', ' 200000 '));
      writeFileSync(join(root, '10836/cmdline'), 'sleep\x0099\x00');
      const after = get(table.sample(), 10836);
      assert.equal(after.startTimeMs, basicBtimeMs + 2_000_000, JSON.stringify(options));
      assert.notEqual(after.startTimeMs, before.startTimeMs);
      assert.equal(after.cmdline, 'sleep 99');
      assert.equal(table.stats().pidReusesTotal, 1);
      assert.deepEqual(warnings, []);
    } finally {
      table.close();
    }
  }
});

test('fixture tree: status is re-read when statm moves, otherwise only on the periodic refresh', (t) => {
  const root = copyFixture(t, 'basic');
  const { table } = tableOn(root, { fullRefreshEveryPasses: 4 });
  try {
    table.sample();
    const status = readFileSync(join(root, '10836/status'), 'utf8');
    // status changes but statm does not: the cached value stands until the refresh comes round.
    writeFileSync(join(root, '10836/status'), status.replace(/^RssAnon:.*$/m, 'RssAnon:\t     500 kB'));
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) seen.push(get(table.sample(), 10836).rssAnonBytes);
    assert.equal(seen[0], 112 * 1024);
    assert.equal(seen.filter((v) => v === 500 * 1024).length >= 1, true, `refresh never picked it up: ${seen}`);
    assert.equal(seen.indexOf(500 * 1024), seen.findIndex((v) => v !== 112 * 1024));

    // statm moves: picked up on the very next pass.
    writeFileSync(join(root, '10836/status'), status.replace(/^RssAnon:.*$/m, 'RssAnon:\t     900 kB'));
    writeFileSync(join(root, '10836/statm'), '730 653 425 5 0 289 0\n');
    assert.equal(get(table.sample(), 10836).rssAnonBytes, 900 * 1024);
    assert.ok(table.stats().statusReadsLastPass >= 1);
  } finally {
    table.close();
  }
});

test('fixture tree: an exec (text size and Name change) refreshes comm, cmdline and exe', (t) => {
  const root = copyFixture(t, 'basic');
  const { table } = tableOn(root);
  try {
    table.sample();
    const dir = join(root, '10836');
    writeFileSync(join(dir, 'statm'), '9000 4000 1000 2000 0 3000 0\n');
    writeFileSync(join(dir, 'status'), readFileSync(join(dir, 'status'), 'utf8').replace('Name:\tsleep', 'Name:\tnode'));
    writeFileSync(join(dir, 'stat'), readFileSync(join(dir, 'stat'), 'utf8').replace('(sleep)', '(node)'));
    writeFileSync(join(dir, 'cmdline'), 'node\x00server.js\x00');
    rmSync(join(dir, 'exe'));
    symlinkSync('/usr/bin/node', join(dir, 'exe'));
    const s = get(table.sample(), 10836);
    assert.equal(s.comm, 'node');
    assert.equal(s.cmdline, 'node server.js');
    assert.equal(s.exe, '/usr/bin/node');
    assert.equal(table.stats().pidReusesTotal, 0);
  } finally {
    table.close();
  }
});

test('fixture tree: a vanished process leaves silently and gives back its fd', (t) => {
  const root = copyFixture(t, 'basic');
  const { table, warnings } = tableOn(root);
  try {
    table.sample();
    assert.equal(table.stats().fdsOpen, 7);
    rmSync(join(root, '10836'), { recursive: true });
    const samples = table.sample();
    assert.ok(!samples.some((s) => s.pid === 10836));
    assert.equal(table.stats().exitedLastPass, 1);
    assert.equal(table.stats().fdsOpen, 6);
    assert.deepEqual(warnings, []);
  } finally {
    table.close();
  }
  assert.equal(table.stats().fdsOpen, 0);
});

test('fixture tree: past maxCachedFds processes are read without kept fds, same results', () => {
  const all = tableOn(join(fixtures, 'basic')).table;
  const capped = tableOn(join(fixtures, 'basic'), { maxCachedFds: 2 }).table;
  try {
    const a = all.sample();
    const b = capped.sample();
    assert.equal(capped.stats().fdsOpen, 2);
    assert.equal(capped.stats().uncachedProcesses, 5);
    assert.deepEqual(byPid(b.map((s) => ({ ...s }))), byPid(a.map((s) => ({ ...s }))));
    capped.sample();
    assert.deepEqual(capped.sample().map((s) => ({ ...s })), b.map((s) => ({ ...s })));
  } finally {
    all.close();
    capped.close();
  }
});

// ---------------------------------------------------------------- the real /proc

function ownMemoryCgroup(): string | null {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
  return line ? line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1) : null;
}

test('real /proc: a spawned sleep appears with ppid, cmdline, exe and start time, and leaves silently', async () => {
  const { table, warnings } = tableOn('/proc');
  const before = Date.now();
  const child = spawn('sleep', ['3600'], { stdio: 'ignore' });
  try {
    const pid = await started(child);
    const after = Date.now();
    const s = get(table.sample(), pid);
    assert.equal(s.ppid, process.pid);
    assert.equal(s.comm, 'sleep');
    assert.equal(s.cmdline, 'sleep 3600');
    assert.deepEqual(s.argv, ['sleep', '3600']);
    assert.match(s.exe ?? '', /\/sleep$/);
    assert.equal(s.uid, process.getuid?.());
    assert.deepEqual(s.nsPids, [pid]);
    assert.equal(s.nsPid, pid);
    // btime is whole seconds, truncated: a start time reads up to 1 s early, never late.
    assert.ok(s.startTimeMs >= before - 1100 && s.startTimeMs <= after + 20, `start ${s.startTimeMs} not in [${before}, ${after}]`);
    assert.equal(s.cgroupPath, ownMemoryCgroup() ?? s.cgroupPath);
    assert.ok(s.rssAnonBytes > 0 && s.rssFileBytes > 0);

    await killed(child);
    const again = table.sample();
    assert.ok(!again.some((p) => p.pid === pid), 'exited process still listed');
    assert.ok(table.stats().exitedLastPass >= 1);
    // A machine-specific exe permission warning (pid 1 on some VMs) is fine; anything else is not.
    assert.deepEqual(warnings.filter((w) => !/reading \/proc\/\d+\/exe/.test(w)), []);
  } finally {
    await killed(child);
    table.close();
  }
});

test('real /proc: a reused pid is a new process (kept fd reads ESRCH)', async (t) => {
  if (process.getuid?.() !== 0 || !existsSync('/proc/sys/kernel/ns_last_pid')) return skip(t, 'needs root and /proc/sys/kernel/ns_last_pid to force pid reuse');
  const { table } = tableOn('/proc');
  const first = spawn('sleep', ['3600'], { stdio: 'ignore' });
  let second: ChildProcess | null = null;
  try {
    const pid = await started(first);
    const old = get(table.sample(), pid);
    await killed(first);
    await sleep(30); // a later start tick
    for (let attempt = 0; attempt < 30 && !second; attempt++) {
      try {
        writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
      } catch (err) {
        return skip(t, `cannot write ns_last_pid: ${(err as Error).message}`);
      }
      const candidate = spawn('sleep', ['3601'], { stdio: 'ignore' });
      if ((await started(candidate)) === pid) second = candidate;
      else await killed(candidate);
    }
    if (!second) return skip(t, 'other processes kept taking the pid; could not force reuse');
    const reused = get(table.sample(), pid);
    assert.equal(reused.cmdline, 'sleep 3601');
    assert.ok(reused.startTimeMs > old.startTimeMs, `${reused.startTimeMs} <= ${old.startTimeMs}`);
    assert.equal(table.stats().pidReusesTotal, 1);
  } finally {
    await killed(first);
    if (second) await killed(second);
    table.close();
  }
});

test('real /proc: a zombie keeps the identity it had alive', async (t) => {
  const { table } = tableOn('/proc', { fullRefreshEveryPasses: 1 });
  // The shell backgrounds a short sleep and execs a long one, which never reaps it.
  const parent = spawn('sh', ['-c', 'sleep 1 & exec sleep 3600'], { stdio: 'ignore' });
  try {
    const ppid = await started(parent);
    let child = 0;
    for (let i = 0; i < 50 && !child; i++) {
      await sleep(20);
      const kids = readFileSync(`/proc/${ppid}/task/${ppid}/children`, 'utf8').trim();
      if (kids && readFileSync(`/proc/${ppid}/comm`, 'utf8').trim() === 'sleep') child = Number(kids.split(' ')[0]);
    }
    if (!child) return skip(t, 'the background sleep did not appear');
    const alive = get(table.sample(), child);
    assert.equal(alive.cmdline, 'sleep 1');
    for (let i = 0; i < 100 && !/\) Z /.test(readFileSync(`/proc/${child}/stat`, 'utf8')); i++) await sleep(50);
    const zombie = get(table.sample(), child);
    assert.equal(zombie.state, 'Z');
    assert.equal(zombie.rssAnonBytes, 0);
    assert.equal(zombie.cmdline, 'sleep 1');
    assert.equal(zombie.exe, alive.exe);
    assert.equal(zombie.cgroupPath, alive.cgroupPath);
    assert.equal(zombie.startTimeMs, alive.startTimeMs);
  } finally {
    await killed(parent);
    table.close();
  }
});

test('real /proc: 64 MiB allocated by a child shows up in rssAnonBytes', async (t) => {
  const cgroupBase = '/sys/fs/cgroup/memory';
  let cgroup: string | null = join(cgroupBase, `leakwatch-test-rss-${process.pid}`);
  try {
    mkdirSync(cgroup);
    writeFileSync(join(cgroup, 'memory.limit_in_bytes'), String(256 * 1024 * 1024));
  } catch (err) {
    console.log(`note: no memory cgroup (${(err as Error).message}); the child bounds itself to one 64 MiB buffer`);
    if (existsSync(cgroup)) rmdirSync(cgroup);
    cgroup = null;
  }
  const script = `
    process.stdout.write('ready\\n');
    let held;
    process.stdin.once('data', () => { held = Buffer.alloc(64 * 1024 * 1024); held.fill(1); process.stdout.write('allocated\\n'); });
    setInterval(() => {}, 1000);`;
  const argv = ['--max-old-space-size=64', '-e', script];
  const child = cgroup
    ? spawn('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec "$0" "$@"`, process.execPath, ...argv], { stdio: ['pipe', 'pipe', 'inherit'] })
    : spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  const waitFor = async (line: string) => {
    for (let i = 0; i < 200 && !lines.includes(line); i++) await sleep(25);
    assert.ok(lines.includes(line), `child never said ${line}`);
  };
  const { table } = tableOn('/proc');
  t.after(async () => {
    await killed(child);
    table.close();
    if (cgroup) for (let i = 0; i < 20 && existsSync(cgroup); i++) {
      try {
        rmdirSync(cgroup);
      } catch {
        await sleep(50);
      }
    }
  });
  const pid = await started(child);
  await waitFor('ready');
  await sleep(200); // let startup settle
  const baseline = get(table.sample(), pid);
  child.stdin!.write('go\n');
  await waitFor('allocated');
  const loaded = get(table.sample(), pid);
  const delta = loaded.rssAnonBytes - baseline.rssAnonBytes;
  const mib = 1024 * 1024;
  assert.ok(delta > 60 * mib && delta < 72 * mib, `anon grew by ${(delta / mib).toFixed(1)} MiB, expected ~64`);
  assert.ok(table.stats().statusReadsLastPass >= 1, 'statm moved, so status must have been re-read');
  if (cgroup) assert.equal(loaded.cgroupPath, `/leakwatch-test-rss-${process.pid}`);
});

test('real permission errors (as uid 65534): reported once per file kind, process kept or skipped', async (t) => {
  if (process.getuid?.() !== 0) return skip(t, 'needs root to run a child as another uid');
  const unreadable = unreadableByNobody();
  if (unreadable) return skip(t, unreadable);
  // Root reads mode-000 files anyway, so the EACCES path is exercised for real as an
  // unprivileged user: root-owned processes' /proc/<pid>/exe, and a fixture file with mode 000.
  const work = mkdtempSync(join(tmpdir(), 'leakwatch-eacces-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  chmodSync(work, 0o755);
  const root = join(work, 'proc');
  cpSync(join(fixtures, 'basic'), root, { recursive: true, verbatimSymlinks: true });
  chmodSync(join(root, '10836/status'), 0o000);
  const script = join(work, 'child.mts');
  writeFileSync(
    script,
    `import { ProcessTable } from ${JSON.stringify(pathToFileURL(join(repoRoot, 'agent/host/process-table.ts')).href)};
     const run = (procRoot) => {
       const warnings = [];
       const table = new ProcessTable({ procRoot, warn: (m) => warnings.push(m) });
       const passes = [table.sample(), table.sample(), table.sample()];
       const out = { warnings, stats: table.stats(), pids: passes[2].map((s) => s.pid), rootOwned: passes[2].filter((s) => s.uid === 0 && s.exe !== null).length, rootOwnedCount: passes[2].filter((s) => s.uid === 0).length };
       table.close();
       return out;
     };
     console.log(JSON.stringify({ real: run('/proc'), fixture: run(${JSON.stringify(root)}) }));`,
  );
  chmodSync(script, 0o644);
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, uid: 65534, gid: 65534, encoding: 'utf8', env: { ...process.env, HOME: work } });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<'real' | 'fixture', { warnings: string[]; stats: { permissionErrorsTotal: number }; pids: number[]; rootOwned: number; rootOwnedCount: number }>;

  // Real /proc: many root processes' exe denied over three passes, one warning; they are still sampled.
  assert.equal(out.real.warnings.length, 1, out.real.warnings.join('\n'));
  assert.match(out.real.warnings[0]!, /permission denied \(EACCES\) reading \/proc\/\d+\/exe/);
  assert.ok(out.real.stats.permissionErrorsTotal > 1, `only ${out.real.stats.permissionErrorsTotal} permission errors`);
  assert.ok(out.real.rootOwnedCount > 1 && out.real.rootOwned === 0, 'root processes sampled, their exe left null');

  // Fixture: the unreadable status skips its process, warned once over three passes.
  assert.ok(!out.fixture.pids.includes(10836));
  assert.ok(out.fixture.pids.includes(10832));
  assert.equal(out.fixture.warnings.length, 1, out.fixture.warnings.join('\n'));
  assert.match(out.fixture.warnings[0]!, /10836\/status/);
  assert.equal(out.fixture.stats.permissionErrorsTotal, 3);
});

test('fd limits: the cap follows RLIMIT_NOFILE, and running out of fds degrades to open/read/close', async (t) => {
  // A tree of 150 processes (copies of a real sleep) read by a child whose fd limit is 200.
  const work = mkdtempSync(join(tmpdir(), 'leakwatch-emfile-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const root = join(work, 'proc');
  cpSync(join(fixtures, 'basic/stat'), join(root, 'stat'));
  const addProcesses = (from: number, count: number) => {
    for (let pid = from; pid < from + count; pid++) {
      cpSync(join(fixtures, 'basic/10836'), join(root, String(pid)), { recursive: true, verbatimSymlinks: true });
      writeFileSync(join(root, String(pid), 'stat'), readFileSync(join(fixtures, 'basic/10836/stat'), 'utf8').replace(/^10836 /, `${pid} `));
    }
  };
  addProcesses(1000, 150);
  const script = join(work, 'child.mts');
  writeFileSync(
    script,
    `import { openSync, closeSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
     import { ProcessTable } from ${JSON.stringify(pathToFileURL(join(repoRoot, 'agent/host/process-table.ts')).href)};
     const warnings = [];
     const table = new ProcessTable({ procRoot: ${JSON.stringify(root)}, warn: (m) => warnings.push(m) });
     const first = table.sample().length;
     const afterFirst = table.stats();
     for (let pid = 2000; pid < 2020; pid++) {
       cpSync(${JSON.stringify(join(root, '1000'))}, ${JSON.stringify(root)} + '/' + pid, { recursive: true, verbatimSymlinks: true });
       writeFileSync(${JSON.stringify(root)} + '/' + pid + '/stat', readFileSync(${JSON.stringify(join(root, '1000/stat'))}, 'utf8').replace(/^1000 /, pid + ' '));
     }
     // Use up every remaining fd: the next discoveries hit EMFILE.
     const hog = [];
     try { for (;;) hog.push(openSync('/dev/null', 'r')); } catch (err) { if (err.code !== 'EMFILE') throw err; }
     const second = table.sample().length;
     const third = table.sample().length;
     const afterEmfile = table.stats();
     for (const fd of hog) closeSync(fd);
     console.log(JSON.stringify({ first, second, third, afterFirst, afterEmfile, warnings }));`,
  );
  const r = spawnSync('sh', ['-c', `ulimit -n 200 && exec "$0" --import tsx "$1"`, process.execPath, script], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    first: number;
    second: number;
    third: number;
    afterFirst: { maxCachedFds: number; fdsOpen: number; uncachedProcesses: number };
    afterEmfile: { maxCachedFds: number; fdsOpen: number };
    warnings: string[];
  };
  assert.equal(out.afterFirst.maxCachedFds, 100, 'half of the fd limit');
  assert.equal(out.afterFirst.fdsOpen, 100);
  assert.equal(out.afterFirst.uncachedProcesses, 50);
  assert.equal(out.first, 150);
  assert.equal(out.second, 170, 'no process lost to EMFILE');
  assert.equal(out.third, 170);
  assert.ok(out.afterEmfile.maxCachedFds <= 100 - 64, `cap ${out.afterEmfile.maxCachedFds} not lowered`);
  assert.ok(out.afterEmfile.fdsOpen <= out.afterEmfile.maxCachedFds);
  assert.equal(out.warnings.length, 1, out.warnings.join('\n'));
  assert.match(out.warnings[0]!, /out of file descriptors \(EMFILE\)/);
});
