// `npm run bench -- snapshot-upload`: the upload half of the snapshot pipeline on its own. The
// collector (compiled, its own process, data on the local disk) and an agent process (the real
// spool and uplink) move a 200 MiB and an 800 MiB capture over loopback; in the same run, a local
// streamed copy of the same file with its sha256 computed is the floor (what any upload has to
// do at least: read, hash, write). Reported: wall time and the ratio to the floor, and the peak
// RSS growth of each process during its upload over its RSS just before (target ≤ 64 MiB each,
// whatever the size: the bytes must stream, never be held).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { hashToken, generateToken } from '../server/auth.js';
import { buildForBench, killAndWait, readProcCpuMs, readProcMemory, startCollectorProcess } from './support/collector-process.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');
const SIZES_MIB = (process.env.LEAKWATCH_BENCH_SIZES_MIB ?? '200,800').split(',').map(Number);
const MiB = 1024 * 1024;

async function writeRandomFile(path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(path, { mode: 0o600 });
  for (let done = 0; done < bytes; ) {
    const n = Math.min(4 * MiB, bytes - done);
    const chunk = randomBytes(n);
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    done += n;
  }
  await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
  return hash.digest('hex');
}

async function localCopyMs(from: string, to: string): Promise<number> {
  const t0 = performance.now();
  const hash = createHash('sha256');
  const src = createReadStream(from, { highWaterMark: 256 * 1024 });
  src.on('data', (c) => hash.update(c as Buffer));
  await pipeline(src, createWriteStream(to, { mode: 0o600 }));
  hash.digest('hex');
  return performance.now() - t0;
}

export async function run(): Promise<unknown> {
  const loadAtStart = loadavg();
  const root = mkdtempSync(join(tmpdir(), 'leakwatch-upload-bench-'));
  const build = buildForBench();
  const token = generateToken();
  const tokensFile = join(root, 'tokens.json');
  writeFileSync(tokensFile, JSON.stringify([{ name: 'bench', sha256: hashToken(token), scopes: ['agent'] }]), { mode: 0o600 });
  const collector = await startCollectorProcess(build, join(root, 'data'), tokensFile);
  const results: unknown[] = [];
  try {
    for (const mib of SIZES_MIB) {
      const bytes = mib * MiB;
      const spoolDir = join(root, `spool-${mib}`);
      mkdirSync(spoolDir, { recursive: true, mode: 0o700 });
      const id = randomBytes(16).toString('hex');
      // Beside the spool, not in its work dir (the spool clears that at start); same file system, so accept() renames.
      const capture = join(root, `${id}.capture`);
      const sha256 = await writeRandomFile(capture, bytes);
      const floorMs = await localCopyMs(capture, join(root, `copy-${mib}`));
      rmSync(join(root, `copy-${mib}`));

      const agentNodeArgs = (process.env.LEAKWATCH_BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter((a) => a.length > 0);
      const agent = spawn(process.execPath, [...agentNodeArgs, '--import', 'tsx', join(here, 'support/upload-agent.ts'), collector.url, token, spoolDir, capture, String(bytes), sha256, id], {
        cwd: repoRoot,
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const lines: Array<Record<string, unknown>> = [];
      let waiter: (() => void) | null = null;
      let buf = '';
      agent.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        const parts = buf.split('\n');
        buf = parts.pop() ?? '';
        for (const p of parts) if (p.trim()) lines.push(JSON.parse(p) as Record<string, unknown>);
        waiter?.();
      });
      const until = async (key: string): Promise<Record<string, unknown>> => {
        for (;;) {
          const hit = lines.find((l) => l[key]);
          if (hit) return hit;
          if (agent.exitCode !== null) throw new Error(`upload agent exited ${agent.exitCode}`);
          await new Promise<void>((r) => {
            waiter = r;
            setTimeout(r, 200);
          });
        }
      };
      try {
        await until('ready');
        const agentBase = readProcMemory(agent.pid!)!.rssBytes;
        const collectorBase = readProcMemory(collector.pid)!.rssBytes;
        const agentCpu0 = readProcCpuMs(agent.pid!)!;
        const collectorCpu0 = readProcCpuMs(collector.pid)!;
        let agentPeak = agentBase;
        let collectorPeak = collectorBase;
        const sampler = setInterval(() => {
          const a = readProcMemory(agent.pid!);
          const c = readProcMemory(collector.pid);
          if (a) agentPeak = Math.max(agentPeak, a.rssBytes);
          if (c) collectorPeak = Math.max(collectorPeak, c.rssBytes);
        }, 20);
        agent.stdin!.write('go\n');
        const done = await until('done');
        clearInterval(sampler);
        const agentCpuMs = readProcCpuMs(agent.pid!)! - agentCpu0;
        const collectorCpuMs = readProcCpuMs(collector.pid)! - collectorCpu0;
        const uploadMs = Number(done.ms);
        const r = {
          sizeMiB: mib,
          bytes,
          localStreamedCopyWithSha256Ms: Math.round(floorMs),
          uploadToStoredMs: Math.round(uploadMs),
          ratioToLocalCopy: Number((uploadMs / floorMs).toFixed(2)),
          throughputMiBPerSec: Number((mib / (uploadMs / 1000)).toFixed(1)),
          agentRssBeforeMiB: Number((agentBase / MiB).toFixed(1)),
          agentPeakRssGrowthMiB: Number(((agentPeak - agentBase) / MiB).toFixed(1)),
          collectorRssBeforeMiB: Number((collectorBase / MiB).toFixed(1)),
          collectorPeakRssGrowthMiB: Number(((collectorPeak - collectorBase) / MiB).toFixed(1)),
          // CPU time per GiB does not depend on how busy the machine is (wall time does).
          agentCpuMsPerGiB: Math.round(agentCpuMs / (mib / 1024)),
          collectorCpuMsPerGiB: Math.round(collectorCpuMs / (mib / 1024)),
          bytesSent: done.bytesSent,
        };
        results.push(r);
        console.log(JSON.stringify(r));
      } finally {
        await killAndWait(agent);
        rmSync(spoolDir, { recursive: true, force: true });
      }
    }
  } finally {
    await collector.stop();
    build.cleanup();
    rmSync(root, { recursive: true, force: true });
  }
  const out = {
    benchmark: 'snapshot-upload',
    date: new Date().toISOString(),
    machine: { node: process.version, cpus: cpus().length, loadAverageAtStart: loadAtStart.map((x) => Number(x.toFixed(2))) },
    method: {
      collector: `leakwatch collector (${build.how}), its own process, data on the local disk (tmpdir)`,
      agent: 'SnapshotSpool + Uplink in their own process (node --import tsx), default chunk 256 KiB, high-water 512 KiB',
      floor: 'the same file read, sha256-hashed and written locally with streams (256 KiB reads) in the bench process',
      rss: 'VmRSS of each process sampled every 20 ms during the upload; growth = peak − RSS just before the upload began',
      timing: 'from spool.accept() in the agent to the spool file deleted after snapshot-stored (collector verified, fsynced, renamed, row inserted)',
    },
    results,
    targets: { peakRssGrowthMiBEach: 64 },
  };
  writeFileSync(join(here, 'results', 'snapshot-upload.json'), `${JSON.stringify(out, null, 2)}\n`);
  return out;
}
