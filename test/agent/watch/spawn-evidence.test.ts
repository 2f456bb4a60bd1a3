import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { ProcessSample } from '../../../agent/host/types.js';
import { collectSpawnEvidence, contentOf, fdOfScriptPath, judgeSpawn, parentChainOf, ProvenanceCache } from '../../../agent/watch/spawn-evidence.js';
import { decodingCollectorScript } from '../../support/decoding-collector.js';
import { privateArtifactsDir } from '../../support/places.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// A tiny /proc reader for the tests (the agent's process table is built elsewhere).

function btimeMs(): number {
  const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'));
  return Number(m?.[1]) * 1000;
}

function readSample(pid: number): ProcessSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    const raw = readFileSync(`/proc/${pid}/cmdline`);
    const argv = raw.length === 0 ? [] : raw.toString('utf8').replace(/\0$/, '').split('\0');
    let exe: string | null = null;
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      exe = null;
    }
    const status = readFileSync(`/proc/${pid}/status`, 'latin1');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    const nsPids = (/^NSpid:\s+(.+)$/m.exec(status)?.[1] ?? String(pid)).trim().split(/\s+/).map(Number);
    const cg = readFileSync(`/proc/${pid}/cgroup`, 'latin1').split('\n');
    const mem = cg.find((l) => /^\d+:memory:/.test(l)) ?? cg.find((l) => l.startsWith('0::'));
    return {
      pid,
      ppid: Number(f[1]),
      comm,
      cmdline: argv.join(' '),
      argv,
      exe,
      uid,
      startTimeMs: btimeMs() + Number(f[19]) * 10,
      nsPid: nsPids[nsPids.length - 1] ?? pid,
      nsPids,
      state: f[0] ?? '?',
      rssAnonBytes: 0,
      rssFileBytes: 0,
      rssShmemBytes: 0,
      swapBytes: 0,
      cgroupPath: mem ? mem.slice(mem.indexOf(':', mem.indexOf(':') + 1) + 1) : null,
    };
  } catch {
    return undefined;
  }
}

function realPython(): string | null {
  const r = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Reads lines from a child's stdout until `count` have arrived. */
function readLines(child: ChildProcess, count: number, timeoutMs = 10_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for output; got ${JSON.stringify(buf)}`)), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      // Only complete lines count: a write can arrive in pieces.
      const lines = buf.split('\n').slice(0, -1).filter((l) => l !== '');
      if (lines.length >= count) {
        clearTimeout(timer);
        resolve(lines);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code}) before printing; stderr may tell`));
    });
  });
}

const started: number[] = [];
const children: ChildProcess[] = [];
function track(child: ChildProcess): ChildProcess {
  children.push(child);
  return child;
}
function killAll(): void {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

const COLLECTOR = decodingCollectorScript('resources.dat');

// Only sleeps: the point is the shape of the spawn, not its memory.
const PAYLOAD = Buffer.from('import time\n# <script>collector</script> \u00e9\ntime.sleep(30)\n');

describe('end to end on real processes: a server decodes resources.dat into /tmp and runs it', () => {
  let python: string | null;
  let work: string;
  let app: string;
  const tempScripts: string[] = [];

  before(async () => {
    python = realPython();
    // Outside /tmp on purpose: the app's own directory must not look world-writable.
    await fsp.mkdir(privateArtifactsDir(), { recursive: true });
    work = await fsp.mkdtemp(join(privateArtifactsDir(), 'spawn-evidence-'));
    app = join(work, 'app');
    await fsp.mkdir(app);
  });
  after(async () => {
    killAll();
    // Each cleanup on its own: one failing must not leave the rest behind.
    for (const p of tempScripts) await fsp.rm(p, { force: true }).catch(() => undefined);
    await fsp.rm(work, { recursive: true, force: true }).catch(() => undefined);
  });

  async function runCollector(mode: 'plain' | 'gzip'): Promise<{ parentPid: number; childPid: number; script: string }> {
    const encoded = mode === 'gzip' ? gzipSync(PAYLOAD).toString('base64') : PAYLOAD.toString('base64');
    // Wrapped like `base64` output, to show whitespace is tolerated.
    await fsp.writeFile(join(app, 'resources.dat'), encoded.replace(/(.{76})/g, '$1\n') + '\n');
    const parent = track(spawn(python as string, ['-c', COLLECTOR, mode], { cwd: app, stdio: ['ignore', 'pipe', 'inherit'] }));
    started.push(parent.pid as number);
    const [line] = await readLines(parent, 1);
    const [pidText, script] = (line as string).split(' ');
    const childPid = Number(pidText);
    assert.ok(Number.isInteger(childPid) && childPid > 0 && script, `collector printed ${JSON.stringify(line)}`);
    started.push(childPid);
    tempScripts.push(script);
    return { parentPid: parent.pid as number, childPid, script: script as string };
  }

  for (const mode of ['plain', 'gzip'] as const) {
    test(`${mode}: rules, evidence and provenance at first sight`, async (t) => {
      if (!python) {
        console.log('SKIP: python3 not available');
        t.skip('SKIP: python3 not available');
        return;
      }
      const { parentPid, childPid, script } = await runCollector(mode);
      const sample = readSample(childPid);
      assert.ok(sample, 'child visible in /proc');
      const j = await judgeSpawn(sample, { lookup: readSample });
      assert.ok(j, `no rule matched for ${JSON.stringify(sample)}; evidence ${JSON.stringify(await collectSpawnEvidence(sample, { lookup: readSample, provenance: false }))}`);
      const ids = j.rules.map((r) => r.id);
      assert.ok(ids.includes('tmp-script'), ids.join());
      assert.ok(ids.includes('fresh-script'), ids.join());
      assert.ok(!ids.includes('deleted-script'));
      for (const r of j.rules) assert.ok(r.reason.length > 10);

      const ev = j.evidence;
      assert.equal(ev.pid, childPid);
      assert.equal(ev.complete, true, ev.notes.join('; '));
      assert.deepEqual(ev.argv, [python, script]);
      assert.equal(ev.cwd, app);
      assert.equal(ev.invocation.program, 'script');
      assert.equal(ev.parentChain[0]?.pid, parentPid);
      assert.match(ev.parentChain[0]?.cmdline ?? '', /b64decode/);
      assert.equal(ev.script?.path, script);
      assert.equal(ev.script?.state, 'present');
      assert.equal(ev.script?.sha256, sha(PAYLOAD));
      assert.equal(ev.script?.sizeBytes, PAYLOAD.length);
      assert.deepEqual(ev.script?.content, { encoding: 'utf8', data: PAYLOAD.toString('utf8'), storedBytes: PAYLOAD.length, truncated: false });
      assert.ok(ev.script?.mtimeMs !== null && ev.script?.ctimeMs !== null);

      assert.ok(ev.provenance, `no provenance; search ${JSON.stringify(ev.provenanceSearch)} notes ${ev.notes.join('; ')}`);
      assert.equal(ev.provenance.path, join(app, 'resources.dat'));
      assert.equal(ev.provenance.encoding, mode === 'gzip' ? 'gzip+base64' : 'base64');
      assert.equal(ev.provenance.decodedSha256, ev.script?.sha256);
      assert.equal(ev.provenance.sha256, sha(readFileSync(join(app, 'resources.dat'))));
      const how = mode === 'gzip' ? 'the gunzipped base64 decoding' : 'the base64 decoding';
      assert.equal(ev.provenance.statement, `${script} is ${how} of ${join(app, 'resources.dat')}`);
      assert.equal(ev.provenanceSearch?.rootPid, parentPid);
    });
  }

  test('control: an old script in the app directory, started by a shell, matches no rule', async (t) => {
    if (!python) {
      console.log('SKIP: python3 not available');
      t.skip('SKIP: python3 not available');
      return;
    }
    const worker = join(app, 'worker.py');
    await fsp.writeFile(worker, 'import time\ntime.sleep(30)\n');
    const hourAgo = new Date(Date.now() - 3_600_000);
    await fsp.utimes(worker, hourAgo, hourAgo);
    const sh = track(spawn('sh', ['-c', `"${python}" "${worker}" & echo $!; wait`], { cwd: app, stdio: ['ignore', 'pipe', 'inherit'] }));
    started.push(sh.pid as number);
    const [pidLine] = await readLines(sh, 1);
    const pid = Number(pidLine);
    started.push(pid);
    // Wait for the exec after fork so argv is python's, not the shell's copy.
    for (let i = 0; i < 100 && readSample(pid)?.argv[1] !== worker; i++) await sleep(20);
    const sample = readSample(pid);
    assert.ok(sample);
    assert.equal(await judgeSpawn(sample, { lookup: readSample }), null);
    // The same facts with the file freshly written do match: the control is not vacuous.
    await fsp.utimes(worker, new Date(), new Date(sample.startTimeMs));
    const fresh = await judgeSpawn(sample, { lookup: readSample });
    assert.deepEqual(fresh?.rules.map((r) => r.id), ['fresh-script']);
  });

  test('markup and control characters in argv are kept as data', async (t) => {
    if (!python) {
      console.log('SKIP: python3 not available');
      t.skip('SKIP: python3 not available');
      return;
    }
    const worker = join(app, 'worker2.py');
    await fsp.writeFile(worker, 'import time\ntime.sleep(30)\n');
    const weird = ['<script>alert(1)</script>', '\x01\x1b[31mred\x7f', 'caf\u00e9 "quoted" \\ back'];
    const child = track(spawn(python as string, [worker, ...weird], { stdio: 'ignore' }));
    started.push(child.pid as number);
    for (let i = 0; i < 100 && readSample(child.pid as number)?.argv[1] !== worker; i++) await sleep(20);
    const sample = readSample(child.pid as number);
    assert.ok(sample);
    const ev = await collectSpawnEvidence(sample, { lookup: readSample });
    assert.deepEqual(ev.argv.slice(2), weird);
    assert.equal(ev.script?.path, worker);
    assert.doesNotThrow(() => JSON.stringify(ev));
  });
});

describe('real processes that delete their script or vanish', () => {
  let dir: string;
  before(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'lw-spawn-del-'));
  });
  after(async () => {
    killAll();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  test('a bash script that deletes itself: bytes recovered from the fd bash keeps open', async () => {
    const path = join(dir, 'self-deleting.sh');
    const text = 'rm -f -- "$0"\necho ready\nsleep 30\n';
    await fsp.writeFile(path, text);
    const child = track(spawn('bash', [path], { stdio: ['ignore', 'pipe', 'inherit'] }));
    started.push(child.pid as number);
    await readLines(child, 1);
    const sample = readSample(child.pid as number);
    assert.ok(sample);
    const j = await judgeSpawn(sample, { lookup: readSample, provenance: false });
    assert.ok(j);
    const ids = j.rules.map((r) => r.id);
    assert.ok(ids.includes('deleted-script') && ids.includes('tmp-script') && ids.includes('fresh-script'), ids.join());
    const s = j.evidence.script;
    assert.equal(s?.state, 'deleted');
    assert.equal(s?.readFrom, 'open-fd');
    assert.equal(s?.deletedOpenFd, 255);
    assert.equal(s?.content?.data, text);
    assert.equal(s?.sha256, sha(text));
    assert.ok(j.evidence.notes.some((n) => /fd 255/.test(n)));
  });

  test('bash <(...) runs a pipe: refused as not-regular, not called deleted', async () => {
    const child = track(spawn('bash', ['-c', 'exec bash <(printf "echo ready; sleep 30\\n")'], { stdio: ['ignore', 'pipe', 'inherit'] }));
    started.push(child.pid as number);
    await readLines(child, 1);
    const sample = readSample(child.pid as number);
    assert.ok(sample);
    assert.match(sample.argv[1] ?? '', /^\/dev\/fd\/\d+$/);
    const ev = await collectSpawnEvidence(sample, { lookup: readSample, provenance: false });
    assert.equal(ev.script?.state, 'refused');
    assert.match(ev.script?.resolvedPath ?? '', /^pipe:\[\d+\]$/);
    assert.equal(ev.refused.find((r) => r.what === 'script')?.reason, 'not-regular');
    assert.equal(await judgeSpawn(sample, { lookup: readSample, provenance: false, rules: { serverMinUptimeSec: 3600 } }), null);
  });

  test('bash /dev/fd/3 on a deleted temp file: read through the fd, deleted and in /tmp', async () => {
    const path = join(dir, 'fd-script.sh');
    const text = 'echo ready\nsleep 30\n';
    await fsp.writeFile(path, text);
    const child = track(spawn('bash', ['-c', `exec 3<"${path}"; rm -f "${path}"; exec bash /dev/fd/3`], { stdio: ['ignore', 'pipe', 'inherit'] }));
    started.push(child.pid as number);
    await readLines(child, 1);
    const sample = readSample(child.pid as number);
    assert.ok(sample);
    const j = await judgeSpawn(sample, { lookup: readSample, provenance: false });
    assert.ok(j);
    const s = j.evidence.script;
    assert.equal(s?.state, 'deleted');
    assert.equal(s?.readFrom, 'open-fd');
    assert.equal(s?.resolvedPath, path);
    assert.equal(s?.content?.data, text);
    const ids = j.rules.map((r) => r.id);
    assert.ok(ids.includes('deleted-script') && ids.includes('tmp-script'), ids.join());
  });

  test('a python script that deletes itself: no bytes, but the deletion is a finding', async (t) => {
    const python = realPython();
    if (!python) {
      console.log('SKIP: python3 not available');
      t.skip('SKIP: python3 not available');
      return;
    }
    const path = join(dir, 'gone.py');
    await fsp.writeFile(path, 'import os, sys, time\nos.remove(sys.argv[0])\nprint("ready", flush=True)\ntime.sleep(30)\n');
    const child = track(spawn(python, [path], { stdio: ['ignore', 'pipe', 'inherit'] }));
    started.push(child.pid as number);
    await readLines(child, 1);
    const sample = readSample(child.pid as number);
    assert.ok(sample);
    const j = await judgeSpawn(sample, { lookup: readSample, provenance: false });
    assert.ok(j);
    assert.ok(j.rules.some((r) => r.id === 'deleted-script'));
    assert.equal(j.evidence.script?.state, 'deleted');
    assert.equal(j.evidence.script?.content, null);
    assert.equal(j.evidence.refused.find((r) => r.what === 'script')?.reason, 'missing');
  });

  test('a process that exited before collection gives partial evidence with a note', async () => {
    const child = track(spawn('sleep', ['30'], { stdio: 'ignore' }));
    started.push(child.pid as number);
    for (let i = 0; i < 100 && readSample(child.pid as number)?.comm !== 'sleep'; i++) await sleep(20);
    const sample = readSample(child.pid as number);
    assert.ok(sample);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const ev = await collectSpawnEvidence(sample, { lookup: readSample });
    assert.equal(ev.complete, false);
    assert.ok(ev.notes.some((n) => /exited before evidence could be taken/.test(n)), ev.notes.join('; '));
    assert.deepEqual(ev.argv, ['sleep', '30']);
    assert.equal(ev.cwd, null);
  });

  test('a pid now held by another process is not read as the sampled one', async () => {
    const me = readSample(process.pid);
    assert.ok(me);
    const ghost = { ...me, startTimeMs: me.startTimeMs - 3_600_000, argv: ['python3', '/tmp/ghost.py'], exe: '/usr/bin/python3' };
    const ev = await collectSpawnEvidence(ghost, { lookup: () => undefined, provenance: false });
    assert.equal(ev.complete, false);
    assert.ok(ev.notes.some((n) => /not the sampled one/.test(n)), ev.notes.join('; '));
    assert.equal(ev.cwd, null);
    assert.equal(ev.script?.state, 'unknown');
  });
});

/**
 * A container, as a fixture: procRoot holds pids 300 (the runtime shim, another cgroup),
 * 400 (the Flask server, nsPid 1) and 500 (the collector's child). 400 and 500 share a root.
 */
describe('a container-shaped fixture procRoot', () => {
  const BTIME_S = 1_700_000_000;
  const CG = '/kubepods/burstable/pod1234/abcdef';
  let base: string;
  let procRoot: string;
  let root: string;
  const startMs = (ticks: number) => BTIME_S * 1000 + ticks * 10;
  const samples = new Map<number, ProcessSample>();
  const lookup = (pid: number) => samples.get(pid);

  function sample(pid: number, ppid: number, nsPid: number, ticks: number, argv: string[], exe: string | null, cgroupPath = CG): ProcessSample {
    const s: ProcessSample = {
      pid, ppid, comm: (argv[0] ?? '').split('/').pop()?.slice(0, 15) ?? '', cmdline: argv.join(' '), argv, exe, uid: 1000,
      startTimeMs: startMs(ticks), nsPid, nsPids: [pid, nsPid], state: 'S', rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, swapBytes: 0, cgroupPath,
    };
    samples.set(pid, s);
    return s;
  }

  async function proc(pid: number, ticks: number, cwd: string, rootTarget?: string): Promise<void> {
    const d = join(procRoot, String(pid));
    await fsp.mkdir(join(d, 'fd'), { recursive: true });
    // Field 22 (starttime) is the 20th after the comm's closing parenthesis.
    const after = ['S', '1', ...Array.from({ length: 17 }, () => '0'), String(ticks), '0'];
    await fsp.writeFile(join(d, 'stat'), `${pid} (x y) ${after.join(' ')}\n`);
    // readlink of a real /proc/<pid>/cwd of a container process gives the container's view.
    await fsp.symlink(cwd, join(d, 'cwd'));
    if (rootTarget) await fsp.symlink(rootTarget, join(d, 'root'));
    else await fsp.mkdir(join(d, 'root'), { recursive: true });
  }

  const SCRIPT = Buffer.from('import time\ntime.sleep(30)\n');
  const CHILD_TICKS = 200_000;

  before(async () => {
    base = await fsp.mkdtemp(join(tmpdir(), 'lw-spawn-fixture-'));
    procRoot = join(base, 'proc');
    await fsp.mkdir(procRoot, { recursive: true });
    await fsp.writeFile(join(procRoot, 'stat'), `cpu  1 2 3\nbtime ${BTIME_S}\nprocesses 9\n`);
    await proc(300, 100, '/run/shim');
    await proc(400, CHILD_TICKS - 60_000, '/app');
    root = join(procRoot, '400', 'root');
    await proc(500, CHILD_TICKS, '/app', root);
    await proc(501, CHILD_TICKS, '/app', root);
    await proc(502, CHILD_TICKS, '/app', root);
    const put = async (p: string, data: Buffer | string) => {
      await fsp.mkdir(join(root, dirname(p)), { recursive: true });
      await fsp.writeFile(join(root, p), data);
    };
    await put('/app/app.py', 'from flask import Flask\n');
    await put('/app/collector.py', 'import base64, subprocess, tempfile\n');
    await put('/app/resources.dat', SCRIPT.toString('base64') + '\n');
    await put('/tmp/tmpk3j1.py', SCRIPT);
    const justBefore = new Date(startMs(CHILD_TICKS) - 200);
    await fsp.utimes(join(root, 'tmp/tmpk3j1.py'), justBefore, justBefore);
    await put('/etc/passwd', 'root:x:0:0:container passwd\n');
    await fsp.symlink('/etc/passwd', join(root, 'tmp/evil.py'));
    spawnSync('mkfifo', [join(root, 'tmp/fifo.py')]);

    sample(300, 1, 300, 100, ['/usr/bin/containerd-shim-runc-v2', '-namespace', 'k8s.io'], '/usr/bin/containerd-shim-runc-v2', '/system.slice/containerd.service');
    sample(400, 300, 1, CHILD_TICKS - 60_000, ['python', 'app.py'], '/usr/local/bin/python3.11');
  });
  after(async () => {
    await fsp.rm(base, { recursive: true, force: true });
  });

  test('the seed, as leakwatch reports it', async () => {
    const child = sample(500, 400, 57, CHILD_TICKS, ['python', '/tmp/tmpk3j1.py'], '/usr/local/bin/python3.11');
    const j = await judgeSpawn(child, { procRoot, lookup });
    assert.ok(j);
    assert.deepEqual(j.rules.map((r) => r.id), ['tmp-script', 'fresh-script', 'server-spawns-interpreter']);
    assert.match(j.rules[1]?.reason ?? '', /0\.2 s before the process started/);
    assert.match(j.rules[2]?.reason ?? '', /python app\.py \(pid 400\), running for 10 min/);
    const ev = j.evidence;
    assert.equal(ev.complete, true, ev.notes.join('; '));
    assert.deepEqual(ev.parentChain.map((l) => [l.pid, l.cmdline]), [[400, 'python app.py']], 'stops at the container init, never reaches the shim');
    assert.equal(ev.cwd, '/app');
    assert.equal(ev.provenance?.statement, '/tmp/tmpk3j1.py is the base64 decoding of /app/resources.dat');
    assert.equal(ev.provenance?.decodedSha256, sha(SCRIPT));
    assert.deepEqual(ev.provenanceSearch?.dirs, ['/app']);
  });

  test('a script symlinked to /etc/passwd is read inside the container root', async () => {
    const child = sample(501, 400, 58, CHILD_TICKS, ['python3', '-u', '/tmp/evil.py'], '/usr/local/bin/python3.11');
    const ev = await collectSpawnEvidence(child, { procRoot, lookup, provenance: false });
    assert.equal(ev.script?.resolvedPath, '/etc/passwd');
    assert.equal(ev.script?.content?.data, 'root:x:0:0:container passwd\n');
  });

  test('a FIFO as script is refused with its reason and never opened', async () => {
    const child = sample(502, 400, 59, CHILD_TICKS, ['python3', '/tmp/fifo.py'], '/usr/local/bin/python3.11');
    const ev = await collectSpawnEvidence(child, { procRoot, lookup, provenance: false });
    assert.equal(ev.script?.state, 'refused');
    assert.deepEqual(ev.refused.map((r) => [r.what, r.reason]), [['script', 'not-regular']]);
  });

  test('a relative script path is resolved against the container cwd', async () => {
    await proc(505, CHILD_TICKS, '/tmp', root);
    const child = sample(505, 400, 63, CHILD_TICKS, ['python3', '-B', 'tmpk3j1.py'], '/usr/local/bin/python3.11');
    const j = await judgeSpawn(child, { procRoot, lookup, provenance: false });
    assert.equal(j?.evidence.cwd, '/tmp');
    assert.equal(j?.evidence.script?.path, '/tmp/tmpk3j1.py');
    assert.equal(j?.evidence.script?.sha256, sha(SCRIPT));
    assert.ok(j?.rules.some((r) => r.id === 'tmp-script'));
  });

  test('a sample taken mid-exec (empty argv) gets its argv re-read', async () => {
    await proc(503, CHILD_TICKS, '/app', root);
    await fsp.writeFile(join(procRoot, '503', 'cmdline'), 'python\0/tmp/tmpk3j1.py\0');
    const child = sample(503, 400, 61, CHILD_TICKS, [], '/usr/local/bin/python3.11');
    const j = await judgeSpawn(child, { procRoot, lookup, provenance: false });
    assert.deepEqual(j?.evidence.argv, ['python', '/tmp/tmpk3j1.py']);
    assert.equal(j?.evidence.cmdline, 'python /tmp/tmpk3j1.py');
    assert.ok(j?.rules.some((r) => r.id === 'tmp-script'));
    assert.ok(j?.evidence.notes.some((n) => /middle of exec/.test(n)));
    // Without a readable cmdline the empty argv stays, and nothing throws.
    await proc(504, CHILD_TICKS, '/app', root);
    const blind = await collectSpawnEvidence(sample(504, 400, 62, CHILD_TICKS, [], '/usr/local/bin/python3.11'), { procRoot, lookup, provenance: false });
    assert.deepEqual(blind.argv, []);
    assert.equal(blind.invocation.program, 'none');
  });

  test('garbage in /proc/<pid>/stat is a vanished process, not a crash', async () => {
    await fsp.mkdir(join(procRoot, '600'), { recursive: true });
    await fsp.writeFile(join(procRoot, '600', 'stat'), '600 (trunc');
    const child = sample(600, 400, 60, CHILD_TICKS, ['python3', '/tmp/tmpk3j1.py'], '/usr/local/bin/python3.11');
    const ev = await collectSpawnEvidence(child, { procRoot, lookup, provenance: false });
    assert.equal(ev.complete, false);
    // The temp file outlives the process: it is read through the parent's root.
    assert.equal(ev.script?.sha256, sha(SCRIPT));
    assert.ok(ev.notes.some((n) => /parent's root \(pid 400\)/.test(n)), ev.notes.join('; '));
  });

  test('a provenance cache answers the second identical spawn without searching', async () => {
    const child = sample(500, 400, 57, CHILD_TICKS, ['python', '/tmp/tmpk3j1.py'], '/usr/local/bin/python3.11');
    const cache = new ProvenanceCache(2, 60_000);
    let now = 1_000_000;
    const opts = { procRoot, lookup, provenanceCache: cache, now: () => now };
    const first = await judgeSpawn(child, opts);
    assert.equal(first?.evidence.provenance?.path, '/app/resources.dat');
    assert.equal(cache.size, 1);
    // Remove the source: a cached answer still names it, a fresh search would not.
    const src = join(root, 'app/resources.dat');
    const saved = await fsp.readFile(src);
    await fsp.rm(src);
    try {
      now += 30_000;
      const second = await judgeSpawn(child, opts);
      assert.equal(second?.evidence.provenance?.path, '/app/resources.dat');
      assert.ok(second?.evidence.notes.some((n) => /provenance from a search 30 s ago/.test(n)));
      now += 31_000;
      const expired = await judgeSpawn(child, opts);
      assert.equal(expired?.evidence.provenance, null, 'TTL passed: searched again');
    } finally {
      await fsp.writeFile(src, saved);
    }
  });

  test('parentChainOf stops at a missing parent and at loops', () => {
    const orphan = { ...(samples.get(400) as ProcessSample), pid: 700, ppid: 999 };
    assert.deepEqual(parentChainOf(orphan, lookup), { chain: [], note: 'parent pid 999 is not in the process table (it exited)' });
    const a = { ...(samples.get(400) as ProcessSample), pid: 801, ppid: 802, nsPid: 5 };
    const b = { ...a, pid: 802, ppid: 801 };
    const loop = parentChainOf(a, (p) => (p === 802 ? b : p === 801 ? a : undefined));
    assert.deepEqual(loop.chain.map((l) => l.pid), [802]);
    assert.match(loop.note ?? '', /loops/);
  });
});

test('contentOf keeps UTF-8 as text, binary as base64, and a cut character does not make text binary', () => {
  assert.deepEqual(contentOf(Buffer.from('caf\u00e9'), false), { encoding: 'utf8', data: 'caf\u00e9', storedBytes: 5, truncated: false });
  const bin = Buffer.from([0xff, 0x00, 0xfe]);
  assert.deepEqual(contentOf(bin, false), { encoding: 'base64', data: bin.toString('base64'), storedBytes: 3, truncated: false });
  const cut = Buffer.from('ab\u00e9').subarray(0, 3);
  assert.deepEqual(contentOf(cut, true), { encoding: 'utf8', data: 'ab', storedBytes: 2, truncated: true });
});

test('fdOfScriptPath recognises only the process own fds', () => {
  assert.equal(fdOfScriptPath('/dev/fd/63', 10), 63);
  assert.equal(fdOfScriptPath('/proc/self/fd/3', 10), 3);
  assert.equal(fdOfScriptPath('/proc/thread-self/fd/4', 10), 4);
  assert.equal(fdOfScriptPath('/proc/10/fd/5', 10), 5);
  assert.equal(fdOfScriptPath('/proc/11/fd/5', 10), null, 'another process');
  assert.equal(fdOfScriptPath('/dev/stdin', 10), 0);
  assert.equal(fdOfScriptPath('/proc/self/environ', 10), null);
  assert.equal(fdOfScriptPath('/tmp/fd/3', 10), null);
});
