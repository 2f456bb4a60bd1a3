// `npm run bench -- analysis`: diff two ~400 MiB heap snapshots of one target, leakwatch's
// analysis against Chrome DevTools' own snapshot code (heap-snapshot-toolkit) on the same files
// in the same run. Each contestant runs in its own child process; time is wall clock of the
// diff inside the child, memory its peak RSS (VmHWM). The snapshots come from a bounded child
// (bench/support/analysis-target.cjs) and are cached in /tmp between runs.
// Targets: >= 3x faster, peak RSS <= 1/3 of the peer's. Writes bench/results/analysis.json.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');
const resultsFile = join(here, 'results', 'analysis.json');
/** Records held before snapshot A; B holds 10% more (the leak). 900k ≈ 378 MiB + 416 MiB files. */
const records = Number(process.env.LEAKWATCH_BENCH_RECORDS ?? 900_000);
const cacheDir = join(os.tmpdir(), 'leakwatch-bench-analysis', `v1-${records}`);
const targets = { speedup: 3, rssFraction: 1 / 3 };

interface ChildResult {
  who: 'ours' | 'peer';
  elapsedMs: number;
  cpuMs: number;
  peakRssBytes: number;
  top: Array<{ className: string; countDelta: number; sizeDelta: number }>;
}

function ensureSnapshots(): { a: string; b: string; generatedMs: number | null } {
  const a = join(cacheDir, 'a.heapsnapshot');
  const b = join(cacheDir, 'b.heapsnapshot');
  if (existsSync(a) && existsSync(b)) return { a, b, generatedMs: null };
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const started = performance.now();
  // Bounded: a fixed number of records and a capped old space.
  const r = spawnSync(process.execPath, ['--max-old-space-size=8192', join(here, 'support', 'analysis-target.cjs'), String(records), `${a}.part`, `${b}.part`], {
    stdio: 'inherit',
    timeout: 15 * 60_000,
  });
  if (r.status !== 0) {
    rmSync(`${a}.part`, { force: true });
    rmSync(`${b}.part`, { force: true });
    throw new Error(`snapshot generator failed: ${r.status ?? r.signal}`);
  }
  renameSync(`${a}.part`, a);
  renameSync(`${b}.part`, b);
  return { a, b, generatedMs: Math.round(performance.now() - started) };
}

function runChild(who: 'ours' | 'peer', a: string, b: string): Promise<ChildResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--max-old-space-size=16384', '--import', 'tsx', join(here, 'support', 'analysis-child.ts'), who, a, b], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20 * 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`${who} exited ${code ?? signal}`));
      try {
        resolvePromise(JSON.parse(out.trim().split('\n').pop()!) as ChildResult);
      } catch (err) {
        reject(err);
      }
    });
  });
}

const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;

export async function run(): Promise<unknown> {
  const loadavgStart = os.loadavg();
  const { a, b, generatedMs } = ensureSnapshots();
  const files = { beforeBytes: statSync(a).size, afterBytes: statSync(b).size, records };
  console.log(`snapshots: ${mib(files.beforeBytes)} MiB + ${mib(files.afterBytes)} MiB${generatedMs ? ` (generated in ${generatedMs} ms)` : ' (cached)'}`);
  // Interleaved, ours first then the peer, then ours again: a noisy neighbour hits both alike.
  const ours1 = await runChild('ours', a, b);
  console.log(`ours: ${ours1.elapsedMs} ms (cpu ${ours1.cpuMs} ms), peak RSS ${mib(ours1.peakRssBytes)} MiB`);
  const peer = await runChild('peer', a, b);
  console.log(`peer (heap-snapshot-toolkit): ${peer.elapsedMs} ms (cpu ${peer.cpuMs} ms), peak RSS ${mib(peer.peakRssBytes)} MiB`);
  const ours2 = await runChild('ours', a, b);
  console.log(`ours (again): ${ours2.elapsedMs} ms (cpu ${ours2.cpuMs} ms), peak RSS ${mib(ours2.peakRssBytes)} MiB`);
  const oursMs = Math.max(ours1.elapsedMs, ours2.elapsedMs); // the slower of ours, to be fair to the peer
  const oursRss = Math.max(ours1.peakRssBytes, ours2.peakRssBytes);
  const oursCpuMs = Math.max(ours1.cpuMs, ours2.cpuMs);
  const speedup = peer.elapsedMs / oursMs;
  const cpuSpeedup = peer.cpuMs / oursCpuMs;
  const rssFraction = oursRss / peer.peakRssBytes;
  const agree = ours1.top[0]?.className === peer.top[0]?.className && ours1.top[0]?.countDelta === peer.top[0]?.countDelta;
  const result = {
    name: 'analysis',
    at: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    loadavgStart,
    loadavgEnd: os.loadavg(),
    files,
    ours: {
      runs: [ours1, ours2].map(({ elapsedMs, cpuMs, peakRssBytes }) => ({ elapsedMs, cpuMs, peakRssBytes })),
      elapsedMs: oursMs,
      cpuMs: oursCpuMs,
      peakRssBytes: oursRss,
      top: ours1.top,
    },
    peer: { tool: 'heap-snapshot-toolkit diffFromStreams (Chrome DevTools HeapSnapshot code)', elapsedMs: peer.elapsedMs, cpuMs: peer.cpuMs, peakRssBytes: peer.peakRssBytes, top: peer.top },
    speedup: Math.round(speedup * 100) / 100,
    cpuSpeedup: Math.round(cpuSpeedup * 100) / 100,
    rssFraction: Math.round(rssFraction * 1000) / 1000,
    targets,
    met: { speedup: speedup >= targets.speedup, rss: rssFraction <= targets.rssFraction },
    topGrowerAgrees: agree,
  };
  mkdirSync(dirname(resultsFile), { recursive: true });
  writeFileSync(resultsFile, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`speedup ${result.speedup}x wall, ${result.cpuSpeedup}x cpu (target >= ${targets.speedup}), RSS ${result.rssFraction} of the peer's (target <= ${targets.rssFraction.toFixed(3)}), top grower agrees: ${agree}`);
  return result;
}
