import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  listDirInRoot,
  MAX_SYMLINKS,
  openInRoot,
  readFileInRoot,
  readProcFileLink,
  reasonForErrno,
  statInRoot,
} from '../../../agent/host/container-fs.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

function refusal(r: { ok: boolean }): { reason: string; detail: string } {
  assert.equal(r.ok, false, `expected a refusal, got ${JSON.stringify(r)}`);
  return r as unknown as { reason: string; detail: string };
}

async function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
}

describe('container-fs on the real /proc of this process (host mount namespace: root is /)', () => {
  let dir: string;
  before(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'lw-cfs-real-'));
  });
  after(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  test('reads a file with its stat, sha256 and resolved path', async () => {
    const p = join(dir, 'hello.txt');
    await fsp.writeFile(p, 'hello <script>\x01\n');
    const r = await readFileInRoot('/proc', process.pid, p);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.bytes.toString(), 'hello <script>\x01\n');
    assert.equal(r.truncated, false);
    assert.equal(r.sha256, sha('hello <script>\x01\n'));
    assert.equal(r.resolvedPath, p);
    assert.equal(r.stat.kind, 'file');
    assert.equal(r.stat.sizeBytes, Buffer.byteLength('hello <script>\x01\n'));
    const st = await fsp.stat(p, { bigint: true });
    assert.equal(r.stat.ino, st.ino.toString());
    assert.ok(Math.abs(r.stat.mtimeMs - Number(st.mtimeMs)) < 1);
  });

  test('bounded read: default 256 KiB, truncated flag, sha256 only when read to EOF', async () => {
    const p = join(dir, 'big.bin');
    const big = Buffer.alloc(300 * 1024, 7);
    await fsp.writeFile(p, big);
    const r = await readFileInRoot('/proc', process.pid, p);
    assert.ok(r.ok);
    assert.equal(r.bytes.length, 256 * 1024);
    assert.equal(r.truncated, true);
    assert.equal(r.sha256, null);

    const whole = await readFileInRoot('/proc', process.pid, p, { maxBytes: 1000, hashAll: true });
    assert.ok(whole.ok);
    assert.equal(whole.bytes.length, 1000);
    assert.equal(whole.truncated, true);
    assert.equal(whole.sha256, sha(big));
    assert.equal(whole.bytesSeen, big.length);

    const capped = await readFileInRoot('/proc', process.pid, p, { maxBytes: 10, hashAll: true, maxHashBytes: 100 * 1024 });
    assert.ok(capped.ok);
    assert.equal(capped.sha256, null, 'hashing stops at maxHashBytes');
  });

  test('a file of exactly maxBytes is not truncated', async () => {
    const p = join(dir, 'exact.txt');
    await fsp.writeFile(p, 'abcdefghij');
    const r = await readFileInRoot('/proc', process.pid, p, { maxBytes: 10 });
    assert.ok(r.ok);
    assert.equal(r.truncated, false);
    assert.equal(r.sha256, sha('abcdefghij'));
  });

  test('refuses a FIFO without blocking, and a directory', async () => {
    const fifo = join(dir, 'fifo');
    const mk = spawnSync('mkfifo', [fifo]);
    if (mk.status !== 0) {
      console.log('SKIP: mkfifo unavailable');
      return;
    }
    const started = Date.now();
    assert.equal(refusal(await readFileInRoot('/proc', process.pid, fifo)).reason, 'not-regular');
    assert.ok(Date.now() - started < 2000, 'did not block on the FIFO');
    assert.equal(refusal(await readFileInRoot('/proc', process.pid, dir)).reason, 'not-regular');
  });

  test('too-large when refuseLargerThan is set', async () => {
    const p = join(dir, 'ten.txt');
    await fsp.writeFile(p, '0123456789');
    const r = refusal(await openInRoot('/proc', process.pid, p, { refuseLargerThan: 9 }));
    assert.equal(r.reason, 'too-large');
  });

  test('a process that is gone is reported as no-process', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = child.pid as number;
    child.kill('SIGKILL');
    await waitExit(child);
    const r = refusal(await readFileInRoot('/proc', pid, '/etc/hostname'));
    assert.equal(r.reason, 'no-process');
  });

  test('/proc/self inside a root names the target only when procSelfPid says who that is', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const pid = child.pid as number;
      for (let i = 0; i < 100 && readFileSync(`/proc/${pid}/comm`, 'utf8') !== 'sleep\n'; i++) await new Promise((r) => setTimeout(r, 20));
      // Read through the child's root: without procSelfPid, `self` would be us (the reader).
      const refused = refusal(await readFileInRoot('/proc', pid, '/proc/self/comm'));
      assert.equal(refused.reason, 'proc-self');
      const r = await readFileInRoot('/proc', pid, '/proc/self/comm', { procSelfPid: pid });
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(r.bytes.toString(), 'sleep\n');
      assert.equal(r.resolvedPath, `/proc/${pid}/comm`);
      const viaThread = await readFileInRoot('/proc', pid, '/proc/thread-self/comm', { procSelfPid: pid });
      assert.ok(viaThread.ok);
      assert.equal(viaThread.bytes.toString(), 'sleep\n');
    } finally {
      child.kill('SIGKILL');
      await waitExit(child);
    }
  });

  test('readProcFileLink hashes our own executable through /proc/<pid>/exe and refuses other links', async () => {
    const r = await readProcFileLink('/proc', process.pid, 'exe', { maxBytes: 0, hashAll: true, maxHashBytes: 512 * 1024 * 1024 });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.bytes.length, 0);
    assert.equal(r.sha256, sha(readFileSync(process.execPath)));
    assert.equal(refusal(await readProcFileLink('/proc', process.pid, 'cwd')).reason, 'invalid-path');
    assert.equal(refusal(await readProcFileLink('/proc', process.pid, 'fd/../../1/root/etc/passwd')).reason, 'invalid-path');
  });
});

/**
 * A fake procRoot: `<base>/proc/4242/root` is a plain directory standing in for a container's
 * root, so symlinks can be planted that point out of it.
 */
describe('container-fs in a fake root: symlinks stay inside', () => {
  const PID = 4242;
  let base: string;
  let procRoot: string;
  let root: string;
  let hostSecret: string;

  before(async () => {
    base = await fsp.mkdtemp(join(tmpdir(), 'lw-cfs-fake-'));
    procRoot = join(base, 'proc');
    root = join(procRoot, String(PID), 'root');
    // A host file at an absolute path; the fake root has its own file at the same path.
    hostSecret = join(base, 'host-secret.txt');
    await fsp.writeFile(hostSecret, 'HOST SECRET');
    const mk = (p: string) => fsp.mkdir(join(root, p), { recursive: true });
    await Promise.all(['etc', 'tmp', 'srv/app', 'app', 'data'].map(mk));
    await fsp.writeFile(join(root, 'etc/shadow'), 'container shadow');
    await fsp.writeFile(join(root, 'srv/app/main.py'), 'print(1)\n');
    await fsp.writeFile(join(root, 'data/plain.txt'), 'plain');
    await fsp.mkdir(join(root, dirname(hostSecret)), { recursive: true });
    await fsp.writeFile(join(root, hostSecret), 'CONTAINER COPY');
    await fsp.symlink('/etc/shadow', join(root, 'tmp/x'));
    await fsp.symlink('../../../../../../../../etc/shadow', join(root, 'tmp/up'));
    await fsp.symlink('/no/such/host-only', join(root, 'tmp/dangling'));
    await fsp.symlink(hostSecret, join(root, 'tmp/secret'));
    await fsp.symlink('b', join(root, 'tmp/a'));
    await fsp.symlink('a', join(root, 'tmp/b'));
    await fsp.symlink('.', join(root, 'tmp/self'));
    await fsp.symlink('/srv/app', join(root, 'app/current'));
    await fsp.symlink('../etc', join(root, 'srv/etclink'));
    await fsp.symlink('/', join(root, 'data/rootlink'));
  });
  after(async () => {
    await fsp.rm(base, { recursive: true, force: true });
  });

  test('absolute symlink /tmp/x -> /etc/shadow resolves inside the fake root', async () => {
    const r = await readFileInRoot(procRoot, PID, '/tmp/x');
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.bytes.toString(), 'container shadow');
    assert.equal(r.resolvedPath, '/etc/shadow');
  });

  test('a symlink to a host path reads the container file at that path, never the host one', async () => {
    const r = await readFileInRoot(procRoot, PID, '/tmp/secret');
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.bytes.toString(), 'CONTAINER COPY');
    assert.equal(r.resolvedPath, hostSecret);
  });

  test('../../.. is clamped at the root', async () => {
    const r = await readFileInRoot(procRoot, PID, '/tmp/up');
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.bytes.toString(), 'container shadow');
    const direct = await readFileInRoot(procRoot, PID, '/../../../etc/shadow');
    assert.ok(direct.ok);
    assert.equal(direct.resolvedPath, '/etc/shadow');
  });

  test('a dangling symlink to a host-only path is missing', async () => {
    assert.equal(refusal(await readFileInRoot(procRoot, PID, '/tmp/dangling')).reason, 'missing');
  });

  test('a symlink loop is refused as symlink-loop', async () => {
    const r = refusal(await readFileInRoot(procRoot, PID, '/tmp/a'));
    assert.equal(r.reason, 'symlink-loop');
    // A maze of more than 40 links that does not loop is refused the same way.
    const maze = '/tmp' + '/self'.repeat(MAX_SYMLINKS + 1) + '/x';
    assert.equal(refusal(await readFileInRoot(procRoot, PID, maze)).reason, 'symlink-loop');
    const ok = await readFileInRoot(procRoot, PID, '/tmp' + '/self'.repeat(5) + '/x');
    assert.ok(ok.ok, 'a few links are fine');
  });

  test('directory symlinks resolve in the root (absolute and relative with ..)', async () => {
    const r = await readFileInRoot(procRoot, PID, '/app/current/main.py');
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.resolvedPath, '/srv/app/main.py');
    const e = await readFileInRoot(procRoot, PID, '/srv/etclink/shadow');
    assert.ok(e.ok, JSON.stringify(e));
    assert.equal(e.resolvedPath, '/etc/shadow');
    const viaRoot = await readFileInRoot(procRoot, PID, '/data/rootlink/data/rootlink/etc/shadow');
    assert.ok(viaRoot.ok);
    assert.equal(viaRoot.bytes.toString(), 'container shadow');
  });

  test('missing, not-directory, invalid-path, no-process', async () => {
    assert.equal(refusal(await readFileInRoot(procRoot, PID, '/nope/file')).reason, 'missing');
    assert.equal(refusal(await readFileInRoot(procRoot, PID, '/data/plain.txt/child')).reason, 'not-directory');
    assert.equal(refusal(await readFileInRoot(procRoot, PID, 'relative/path')).reason, 'invalid-path');
    assert.equal(refusal(await readFileInRoot(procRoot, PID, '/etc/sha\0dow')).reason, 'invalid-path');
    assert.equal(refusal(await readFileInRoot(procRoot, PID + 1, '/etc/shadow')).reason, 'no-process');
    assert.equal(refusal(await readFileInRoot(procRoot, -3, '/etc/shadow')).reason, 'invalid-path');
    assert.equal(refusal(await readFileInRoot(procRoot, PID, '/')).reason, 'not-regular');
  });

  test('statInRoot follows in-root symlinks unless told not to', async () => {
    const followed = await statInRoot(procRoot, PID, '/tmp/x');
    assert.ok(followed.ok);
    assert.equal(followed.stat.kind, 'file');
    assert.equal(followed.resolvedPath, '/etc/shadow');
    const link = await statInRoot(procRoot, PID, '/tmp/x', { followFinal: false });
    assert.ok(link.ok);
    assert.equal(link.stat.kind, 'symlink');
    assert.equal(link.resolvedPath, '/tmp/x');
    const rootDir = await statInRoot(procRoot, PID, '/srv/..');
    assert.ok(rootDir.ok);
    assert.equal(rootDir.stat.kind, 'dir');
    assert.equal(rootDir.resolvedPath, '/');
  });

  test('listDirInRoot lists entries with kinds and sizes, without following symlinks', async () => {
    const r = await listDirInRoot(procRoot, PID, '/tmp');
    assert.ok(r.ok, JSON.stringify(r));
    const byName = new Map(r.entries.map((e) => [e.name, e]));
    assert.equal(byName.get('x')?.kind, 'symlink');
    assert.equal(byName.get('self')?.kind, 'symlink');
    assert.deepEqual(r.entries.map((e) => e.name), [...r.entries.map((e) => e.name)].sort());
    assert.equal(r.truncated, false);

    const viaLink = await listDirInRoot(procRoot, PID, '/app/current');
    assert.ok(viaLink.ok);
    assert.equal(viaLink.resolvedPath, '/srv/app');
    assert.deepEqual(viaLink.entries.map((e) => [e.name, e.kind, e.sizeBytes]), [['main.py', 'file', 9]]);

    const top = await listDirInRoot(procRoot, PID, '/');
    assert.ok(top.ok);
    assert.ok(top.entries.some((e) => e.name === 'etc' && e.kind === 'dir'));

    const cut = await listDirInRoot(procRoot, PID, '/tmp', { maxEntries: 2 });
    assert.ok(cut.ok);
    assert.equal(cut.entries.length, 2);
    assert.equal(cut.truncated, true);

    assert.equal(refusal(await listDirInRoot(procRoot, PID, '/data/plain.txt')).reason, 'not-directory');
  });

  test('race: the final entry swapped for a symlink out of the root after the check is refused', async () => {
    const victim = join(root, 'data/swap.txt');
    await fsp.writeFile(victim, 'container data');
    const r = await readFileInRoot(procRoot, PID, '/data/swap.txt', {
      beforeOpen: async () => {
        await fsp.rm(victim);
        await fsp.symlink(hostSecret, victim);
      },
    });
    const ref = refusal(r);
    assert.equal(ref.reason, 'symlink-escape');
    assert.doesNotMatch(JSON.stringify(r), /HOST SECRET/);
  });

  test('race: the final file replaced by another file after the check is refused as changed', async () => {
    const victim = join(root, 'data/replace.txt');
    await fsp.writeFile(victim, 'first');
    const r = await readFileInRoot(procRoot, PID, '/data/replace.txt', {
      beforeOpen: async () => {
        const other = join(root, 'data/replace.new');
        await fsp.writeFile(other, 'second');
        await fsp.rename(other, victim);
      },
    });
    assert.equal(refusal(r).reason, 'changed');
  });

  test('openInRoot hands back an open handle the caller closes', async () => {
    const r = await openInRoot(procRoot, PID, '/etc/shadow');
    assert.ok(r.ok);
    try {
      assert.equal((await r.handle.readFile()).toString(), 'container shadow');
    } finally {
      await r.handle.close();
    }
  });
});

describe('container-fs with a real chrooted process', () => {
  let base: string | null = null;
  let child: ChildProcess | null = null;

  after(async () => {
    if (child) {
      child.kill('SIGKILL');
      await waitExit(child);
    }
    if (base) await fsp.rm(base, { recursive: true, force: true });
  });

  test('an absolute symlink in the chroot is read as the chrooted process sees it', async (t) => {
    if (process.getuid?.() !== 0) {
      console.log('SKIP: chroot needs root');
      t.skip('SKIP: chroot needs root');
      return;
    }
    const sleepBin = '/usr/bin/sleep';
    const ldd = spawnSync('ldd', [sleepBin], { encoding: 'utf8' });
    if (!existsSync('/usr/sbin/chroot') && !existsSync('/usr/bin/chroot')) {
      console.log('SKIP: no chroot binary');
      t.skip('SKIP: no chroot binary');
      return;
    }
    if (ldd.status !== 0 || !existsSync(sleepBin)) {
      console.log('SKIP: cannot list the libraries of sleep');
      t.skip('SKIP: cannot list the libraries of sleep');
      return;
    }
    base = await fsp.mkdtemp(join(tmpdir(), 'lw-cfs-chroot-'));
    const jail = join(base, 'jail');
    const libs = [...ldd.stdout.matchAll(/(\/\S+)/g)].map((m) => m[1] as string);
    for (const f of [sleepBin, ...libs]) {
      await fsp.mkdir(join(jail, dirname(f)), { recursive: true });
      await fsp.copyFile(f, join(jail, f));
    }
    await fsp.chmod(join(jail, sleepBin), 0o755);
    const hostFile = join(base, 'secret.txt');
    await fsp.writeFile(hostFile, 'HOST SIDE');
    await fsp.mkdir(join(jail, base), { recursive: true });
    await fsp.writeFile(join(jail, hostFile), 'JAIL SIDE');
    await fsp.mkdir(join(jail, 'tmp'), { recursive: true });
    await fsp.symlink(hostFile, join(jail, 'tmp/link'));

    child = spawn('chroot', [jail, sleepBin, '30'], { stdio: 'ignore' });
    const pid = child.pid as number;
    // chroot execs sleep in place: wait until /proc/<pid>/root points into the jail.
    for (let i = 0; i < 100; i++) {
      if ((await fsp.readlink(`/proc/${pid}/root`).catch(() => '')) === jail) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await fsp.readlink(`/proc/${pid}/root`), jail);

    // What a naive reader gets: the kernel resolves the absolute link against *our* root.
    const naive = await fsp.readFile(`/proc/${pid}/root/tmp/link`, 'utf8').catch((e: Error) => e.message);
    console.log(`naive read of /proc/${pid}/root/tmp/link: ${JSON.stringify(naive)}`);

    const r = await readFileInRoot('/proc', pid, '/tmp/link');
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.bytes.toString(), 'JAIL SIDE');
    assert.equal(r.resolvedPath, hostFile);
  });
});

test('reasonForErrno maps errno codes to refusal reasons', () => {
  assert.equal(reasonForErrno('EACCES'), 'permission');
  assert.equal(reasonForErrno('EPERM'), 'permission');
  assert.equal(reasonForErrno('ENOENT'), 'missing');
  assert.equal(reasonForErrno('ENOENT', 'root'), 'no-process');
  assert.equal(reasonForErrno('ESRCH', 'root'), 'no-process');
  assert.equal(reasonForErrno('ELOOP'), 'symlink-loop');
  assert.equal(reasonForErrno('ELOOP', 'open'), 'symlink-escape');
  assert.equal(reasonForErrno('ENXIO', 'open'), 'not-regular');
  assert.equal(reasonForErrno('EIO'), 'io-error');
  assert.equal(reasonForErrno(undefined), 'io-error');
});
