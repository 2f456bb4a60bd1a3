// The collector under test as its own process, `leakwatch collector` exactly as an operator runs
// it, compiled to plain JavaScript first (as the package ships: tsx would add its own memory to
// the RSS we measure). Its JSON log on stderr is read for the URL it chose (--listen :0) and for
// warnings and errors; its memory and CPU are read from /proc from the outside.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface BenchBuild {
  /** How the programs run (for the report). */
  how: string;
  /** node arguments before a script path (empty for the compiled build, tsx's loader otherwise). */
  nodeArgs: string[];
  cliScript: string;
  agentsScript: string;
  cleanup(): void;
}

/** Compiles the CLI and the agent fleet with tsc into a temp dir; falls back to tsx if that fails. */
export function buildForBench(): BenchBuild {
  const out = mkdtempSync(join(tmpdir(), 'leakwatch-collector-bench-build-'));
  const cleanup = () => rmSync(out, { recursive: true, force: true });
  const tsc = join(repoRoot, 'node_modules/.bin/tsc');
  const r = spawnSync(
    tsc,
    [
      '--ignoreConfig', '--outDir', out, '--rootDir', repoRoot, '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--types', 'node', '--skipLibCheck', '--strict', '--sourceMap', 'false',
      join(repoRoot, 'cli/main.ts'), join(repoRoot, 'bench/support/collector-agents.ts'),
    ],
    { encoding: 'utf8', cwd: repoRoot },
  );
  if (r.status === 0) {
    // Dependencies (better-sqlite3's native addon, ws, commander) resolve through this link;
    // the package.json makes the output ESM and names the version the collector reports.
    symlinkSync(join(repoRoot, 'node_modules'), join(out, 'node_modules'), 'dir');
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { name: string; version: string };
    writeFileSync(join(out, 'package.json'), `${JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module' })}\n`);
    return { how: 'compiled with tsc, plain node', nodeArgs: [], cliScript: join(out, 'cli/main.js'), agentsScript: join(out, 'bench/support/collector-agents.js'), cleanup };
  }
  cleanup();
  return {
    how: `node --import tsx (tsc build failed: ${(r.stderr || r.stdout || String(r.error)).split('\n')[0]})`,
    nodeArgs: ['--import', 'tsx'],
    cliScript: join(repoRoot, 'cli/main.ts'),
    agentsScript: join(repoRoot, 'bench/support/collector-agents.ts'),
    cleanup: () => {},
  };
}

export interface CollectorProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  agentUrl: string;
  /** Spawn → "collector listening" (opening the store, quick_check, retention, listen). */
  startMs: number;
  logs: { warn: number; error: number; lastProblems: string[] };
  /** SIGTERM and wait for the exit (SIGKILL after the timeout). */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; killed: boolean }>;
}

export async function startCollectorProcess(build: BenchBuild, dataDir: string, tokensFile: string, timeoutMs = 60_000): Promise<CollectorProcess> {
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [...build.nodeArgs, ...collectorNodeArgs(), build.cliScript, 'collector', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--tokens-file', tokensFile],
    { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LEAKWATCH_LISTEN: '', NODE_OPTIONS: '' } },
  );
  const logs = { warn: 0, error: 0, lastProblems: [] as string[] };
  const early: string[] = [];
  let onListening: ((line: Record<string, unknown>) => void) | null = null;
  let partial = '';
  // Always drained: a collector blocked on a full stderr pipe would measure the pipe, not itself.
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const text of lines) {
      if (!text.trim()) continue;
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { level: 'error', msg: text };
      }
      if (early.length < 20) early.push(text);
      if (line.level === 'warn' || line.level === 'error') {
        logs[line.level]++;
        logs.lastProblems.push(text.slice(0, 400));
        if (logs.lastProblems.length > 10) logs.lastProblems.shift();
      }
      if (line.msg === 'collector listening') onListening?.(line);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('exit', (code, signal) => res({ code, signal })));

  const listening = await new Promise<Record<string, unknown>>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`the collector did not start listening within ${timeoutMs} ms:\n${early.join('\n')}`)), timeoutMs);
    onListening = (line) => {
      clearTimeout(timer);
      res(line);
    };
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`the collector exited (${code ?? signal}) before listening:\n${early.join('\n')}${partial}`));
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      rej(err);
    });
  }).catch(async (err: unknown) => {
    await killAndWait(child);
    throw err;
  });

  return {
    child,
    pid: child.pid!,
    url: String(listening.url),
    agentUrl: String(listening.agentUrl),
    startMs: Math.round(performance.now() - t0),
    logs,
    async stop(stopTimeoutMs = 20_000) {
      const s0 = performance.now();
      if (child.exitCode !== null || child.signalCode !== null) return { ...(await exited), ms: 0, killed: false };
      child.kill('SIGTERM');
      let killed = false;
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, stopTimeoutMs);
      const r = await exited;
      clearTimeout(timer);
      return { ...r, ms: Math.round(performance.now() - s0), killed };
    },
  };
}

/** LEAKWATCH_BENCH_COLLECTOR_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"): for looking into a result. */
function collectorNodeArgs(): string[] {
  return (process.env.LEAKWATCH_BENCH_COLLECTOR_NODE_ARGS ?? '').split(' ').filter((a) => a.length > 0);
}

export async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

export interface ProcMemory {
  rssBytes: number;
  anonBytes: number;
  fileBytes: number;
  shmemBytes: number;
}

/** VmRSS and its parts from /proc/<pid>/status, or null once the process is gone. */
export function readProcMemory(pid: number): ProcMemory | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : Number.NaN;
  };
  return { rssBytes: kb('VmRSS'), anonBytes: kb('RssAnon'), fileBytes: kb('RssFile'), shmemBytes: kb('RssShmem') };
}

/** Bytes the process caused to be written to storage, from /proc/<pid>/io (null once it is gone). */
export function readProcWriteBytes(pid: number): number | null {
  try {
    const m = /^write_bytes:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const CLOCK_TICKS = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** User + system CPU time of a process so far (ms), or null once it is gone. */
export function readProcCpuMs(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Fields after the command (which may hold spaces and parentheses) start at the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? ((utime + stime) * 1000) / CLOCK_TICKS : null;
}
