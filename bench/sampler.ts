// `npm run bench -- sampler`: the cost of one process-table pass, side by side with what the
// Node ecosystem offers (pidusage, systeminformation, ps), over ~500 idle processes started in
// a limited memory cgroup; then the agent loop's own memory while it samples at 1 Hz for 60 s.
// Prints a table and writes bench/results/sampler.json.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pidusage from 'pidusage';
import * as si from 'systeminformation';
import { ProcessTable, type ProcessTableOptions } from '../agent/host/process-table.js';
import { createMemoryCgroup, killAndWait, startSleepFleet, type Fleet, type MemoryCgroup } from './support/sampler-fleet.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');
const resultsFile = join(here, 'results', 'sampler.json');

const fleetSize = 500;
const cgroupLimitBytes = 256 * 1024 * 1024;
const rounds = 5; // tools are interleaved round by round so a noisy neighbour hits them all alike
const rssSeconds = 60;
const targets = { usPerProcess: 10, vsSysteminformation: 100, vsPidusage: 3, agentRssMiB: 60 };

interface Timing {
  /** First call, ms. */
  coldMs: number;
  /** Each warm call, ms. */
  warmMs: number[];
  /** Processes each call covered. */
  processes: number;
}

interface Summary {
  processes: number;
  coldMs: number;
  coldUsPerProcess: number;
  warmMedianMs: number;
  warmMinMs: number;
  warmMaxMs: number;
  warmUsPerProcess: number;
  calls: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function summarize(t: Timing): Summary {
  const warm = median(t.warmMs);
  return {
    processes: t.processes,
    coldMs: t.coldMs,
    coldUsPerProcess: (t.coldMs * 1000) / t.processes,
    warmMedianMs: warm,
    warmMinMs: Math.min(...t.warmMs),
    warmMaxMs: Math.max(...t.warmMs),
    warmUsPerProcess: (warm * 1000) / t.processes,
    calls: t.warmMs.length,
  };
}

function listPids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

function timeSync<T>(fn: () => T): { ms: number; value: T } {
  const t0 = performance.now();
  const value = fn();
  return { ms: performance.now() - t0, value };
}

async function timeAsync<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

function runPs(): number {
  const r = spawnSync('ps', ['-eo', 'pid,ppid,rss,args'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`ps failed: ${r.stderr}`);
  return r.stdout.split('\n').length - 2; // header and trailing newline
}

/** Times the four ways of reading the process table, interleaved over `rounds`. */
async function compareTools(): Promise<{ tools: Record<string, Summary>; notes: string[] }> {
  const notes: string[] = [];
  // leakwatch: the very first pass in this process (JIT cold, caches empty), then a second new
  // table's first pass (JIT warm, caches empty), then warm passes of a long-lived table.
  const firstEver = new ProcessTable();
  const firstEverPass = timeSync(() => firstEver.sample());
  firstEver.close();
  const table = new ProcessTable();
  const newTablePass = timeSync(() => table.sample());
  const lw: Timing = { coldMs: firstEverPass.ms, warmMs: [], processes: newTablePass.value.length };
  const lwNewTable: Timing = { coldMs: newTablePass.ms, warmMs: [], processes: newTablePass.value.length };

  const pids = listPids();
  const pu: Timing = { coldMs: 0, warmMs: [], processes: pids.length };
  const puCold = await timeAsync(() => pidusage(pids));
  pu.coldMs = puCold.ms;
  const puCovered = Object.keys(puCold.value).length;
  if (puCovered < pids.length * 0.95) notes.push(`pidusage answered for ${puCovered} of ${pids.length} pids`);

  const siT: Timing = { coldMs: 0, warmMs: [], processes: 0 };
  const siCold = await timeAsync(() => si.processes());
  siT.coldMs = siCold.ms;
  siT.processes = siCold.value.list.length;

  const ps: Timing = { coldMs: 0, warmMs: [], processes: 0 };
  const psCold = timeSync(runPs);
  ps.coldMs = psCold.ms;
  ps.processes = psCold.value;

  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < 20; i++) {
      const r = timeSync(() => table.sample());
      lw.warmMs.push(r.ms);
      lw.processes = r.value.length;
    }
    for (let i = 0; i < 4; i++) pu.warmMs.push((await timeAsync(() => pidusage(pids))).ms);
    // systeminformation hands back its previous result when called again within 500 ms; wait
    // that out (untimed), as an agent sampling at 1 Hz would.
    await new Promise((r) => setTimeout(r, 600));
    const s = await timeAsync(() => si.processes());
    siT.warmMs.push(s.ms);
    siT.processes = s.value.list.length;
    for (let i = 0; i < 4; i++) {
      const r = timeSync(runPs);
      ps.warmMs.push(r.ms);
      ps.processes = r.value;
    }
  }
  const tableStats = table.stats();
  table.close();
  await pidusage.clear();
  lwNewTable.warmMs = lw.warmMs;

  // Bounds on leakwatch's cost when the shortcuts do not apply.
  const variants: Record<string, Summary> = {};
  const variant = (name: string, options: ProcessTableOptions) => {
    const t = new ProcessTable(options);
    const first = timeSync(() => t.sample());
    const timing: Timing = { coldMs: first.ms, warmMs: [], processes: first.value.length };
    for (let i = 0; i < 40; i++) timing.warmMs.push(timeSync(() => t.sample()).ms);
    t.close();
    variants[name] = summarize(timing);
  };
  variant('leakwatch, everything re-read every pass (fullRefreshEveryPasses: 1)', { fullRefreshEveryPasses: 1 });
  variant('leakwatch, no kept fds (maxCachedFds: 0)', { maxCachedFds: 0 });

  notes.push(`leakwatch status reads over ${tableStats.passes} passes: ${tableStats.statusReadsTotal}; fds open: ${tableStats.fdsOpen}`);
  const tools: Record<string, Summary> = {
    leakwatch: summarize(lw),
    'leakwatch, first pass of a second table': summarize(lwNewTable),
    pidusage: summarize(pu),
    'systeminformation.processes()': summarize(siT),
    'ps -eo pid,ppid,rss,args': summarize(ps),
    ...variants,
  };
  return { tools, notes };
}

/** Compiles the loop to plain JS, as the agent ships, so its RSS is not inflated by tsx. */
function buildLoop(): { command: string; args: string[]; how: string; cleanup: () => void } {
  const out = mkdtempSync(join(os.tmpdir(), 'leakwatch-sampler-loop-'));
  const tsc = join(repoRoot, 'node_modules/.bin/tsc');
  const r = spawnSync(
    tsc,
    ['--ignoreConfig', '--outDir', out, '--rootDir', repoRoot, '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--skipLibCheck', '--strict', join(here, 'support/sampler-loop.ts')],
    { encoding: 'utf8', cwd: repoRoot },
  );
  const cleanup = () => rmSync(out, { recursive: true, force: true });
  const script = join(out, 'bench/support/sampler-loop.js');
  if (r.status === 0) {
    writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
    return { command: process.execPath, args: [script], how: 'compiled with tsc, plain node', cleanup };
  }
  cleanup();
  return {
    command: process.execPath,
    args: ['--import', 'tsx', join(here, 'support/sampler-loop.ts')],
    how: `node --import tsx (tsc build failed: ${(r.stderr || r.stdout).split('\n')[0]})`,
    cleanup: () => {},
  };
}

function readKb(pid: number, key: string): number | null {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function readCounter(cgroup: MemoryCgroup | null, file: string): number | null {
  if (!cgroup) return null;
  try {
    return Number(readFileSync(join(cgroup.dir, file), 'utf8'));
  } catch {
    return null;
  }
}

interface LoopRun {
  how: string;
  seconds: number;
  rssBytes: number[];
  rssAnonBytes: number[];
  /** memory.usage_in_bytes of the loop's own cgroup: RSS plus kernel memory (kept fds' buffers). */
  cgroupUsageBytes: number[];
  kmemBytes: number[];
  passes: Array<{ processes: number; passMs: number; usPerProcess: number; fdsOpen: number; statusReads: number; warnings: number }>;
}

/** Runs the loop in a child, in a cgroup of its own, and reads its memory from outside each second. */
async function runLoop(seconds: number, idle: boolean, children: Set<ChildProcess>): Promise<LoopRun> {
  const loop = buildLoop();
  const cgroupMade = createMemoryCgroup(`leakwatch-bench-${process.pid}-agent${idle ? '-idle' : ''}`, cgroupLimitBytes);
  const cgroup = typeof cgroupMade === 'string' ? null : cgroupMade;
  const args = [...loop.args, '--seconds', String(seconds + 5), ...(idle ? ['--idle'] : [])];
  const child = cgroup
    ? spawn('sh', ['-c', `echo $$ > ${cgroup.dir}/cgroup.procs && exec "$0" "$@"`, loop.command, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(loop.command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const run: LoopRun = { how: loop.how, seconds, rssBytes: [], rssAnonBytes: [], cgroupUsageBytes: [], kmemBytes: [], passes: [] };
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) run.passes.push(JSON.parse(line));
  });
  try {
    await new Promise<void>((res, rej) => {
      child.once('spawn', () => res());
      child.once('error', rej);
    });
    // Wait for the first pass so the reading starts with the loop running.
    for (let i = 0; i < 100 && run.passes.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    for (let s = 0; s < seconds; s++) {
      const rss = readKb(child.pid!, 'VmRSS');
      if (rss !== null) run.rssBytes.push(rss);
      const anon = readKb(child.pid!, 'RssAnon');
      if (anon !== null) run.rssAnonBytes.push(anon);
      const usage = readCounter(cgroup, 'memory.usage_in_bytes');
      if (usage !== null) run.cgroupUsageBytes.push(usage);
      const kmem = readCounter(cgroup, 'memory.kmem.usage_in_bytes');
      if (kmem !== null) run.kmemBytes.push(kmem);
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await killAndWait(child);
    children.delete(child);
    await cgroup?.remove();
    loop.cleanup();
  }
  return run;
}

const MiB = 1024 * 1024;
const fmt = (n: number, digits = 2) => n.toFixed(digits);

export async function run(): Promise<unknown> {
  let fleet: Fleet | null = null;
  const loopChildren = new Set<ChildProcess>();
  const teardown = async () => {
    await Promise.all([...loopChildren].map((c) => killAndWait(c)));
    await fleet?.stop();
    fleet = null;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    void teardown().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    console.log(`starting ${fleetSize} × sleep 3600 in a memory cgroup limited to ${cgroupLimitBytes / MiB} MiB ...`);
    fleet = await startSleepFleet(fleetSize, `leakwatch-bench-${process.pid}`, cgroupLimitBytes);
    if (fleet.cgroupNote) console.log(`note: fleet runs without a cgroup: ${fleet.cgroupNote}`);

    // The fleet must be visible to the table as what it is.
    const check = new ProcessTable();
    const inFleet = check.sample().filter((s) => fleet!.cgroup && s.cgroupPath === fleet!.cgroup.path && s.comm === 'sleep').length;
    check.close();
    if (fleet.cgroup && inFleet !== fleetSize) throw new Error(`table saw ${inFleet} of ${fleetSize} fleet processes in ${fleet.cgroup.path}`);

    console.log('timing one pass of each tool ...');
    const { tools, notes } = await compareTools();
    const lw = tools.leakwatch!;
    const ratio = (name: string) => tools[name]!.warmUsPerProcess / lw.warmUsPerProcess;
    const ratios = {
      'pidusage / leakwatch': ratio('pidusage'),
      'systeminformation / leakwatch': ratio('systeminformation.processes()'),
      'ps / leakwatch': ratio('ps -eo pid,ppid,rss,args'),
    };

    console.log(`running the agent loop at 1 Hz for ${rssSeconds} s (and a ${10} s idle baseline) ...`);
    const idleRun = await runLoop(10, true, loopChildren);
    const loopRun = await runLoop(rssSeconds, false, loopChildren);
    const rss = { startBytes: loopRun.rssBytes[0] ?? NaN, medianBytes: median(loopRun.rssBytes), maxBytes: Math.max(...loopRun.rssBytes) };
    const idleRssBytes = median(idleRun.rssBytes);
    const rssAnon = { medianBytes: median(loopRun.rssAnonBytes), maxBytes: Math.max(...loopRun.rssAnonBytes), idleBaselineBytes: median(idleRun.rssAnonBytes) };
    const loopPasses = loopRun.passes.slice(1); // the first pass is the cold one
    const loopUs = loopPasses.map((p) => p.usPerProcess);

    const verdicts = {
      [`warm pass ≤ ${targets.usPerProcess} µs/process`]: lw.warmUsPerProcess <= targets.usPerProcess,
      [`≥ ${targets.vsSysteminformation}× faster than systeminformation`]: ratios['systeminformation / leakwatch'] >= targets.vsSysteminformation,
      [`≥ ${targets.vsPidusage}× faster than pidusage`]: ratios['pidusage / leakwatch'] >= targets.vsPidusage,
      [`agent RSS ≤ ${targets.agentRssMiB} MiB`]: rss.maxBytes <= targets.agentRssMiB * MiB,
    };

    const result = {
      benchmark: 'sampler',
      date: new Date().toISOString(),
      machine: {
        node: process.version,
        kernel: `${os.type()} ${os.release()}`,
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        memTotalBytes: os.totalmem(),
        processes: lw.processes,
        fleet: { size: fleetSize, cgroup: fleet.cgroup?.path ?? null, cgroupLimitBytes: fleet.cgroup ? cgroupLimitBytes : null, note: fleet.cgroupNote },
      },
      method: {
        warm: `median of ${rounds} interleaved rounds (leakwatch 20 passes, pidusage 4, systeminformation 1, ps 4 per round)`,
        cold: 'first call in this process; pidusage gets the pid list precomputed (listing not timed)',
      },
      tools,
      ratios,
      agentLoop: {
        how: loopRun.how,
        seconds: loopRun.seconds,
        rss,
        idleBaselineRssBytes: idleRssBytes,
        rssAnon,
        cgroupUsage: loopRun.cgroupUsageBytes.length ? { medianBytes: median(loopRun.cgroupUsageBytes), maxBytes: Math.max(...loopRun.cgroupUsageBytes) } : null,
        kmem: loopRun.kmemBytes.length ? { medianBytes: median(loopRun.kmemBytes), maxBytes: Math.max(...loopRun.kmemBytes) } : null,
        coldPassUsPerProcess: loopRun.passes[0]?.usPerProcess ?? null,
        passUsPerProcessAt1Hz: loopUs.length ? { median: median(loopUs), max: Math.max(...loopUs) } : null,
        fdsOpen: loopRun.passes.at(-1)?.fdsOpen ?? null,
        warnings: loopRun.passes.at(-1)?.warnings ?? null,
      },
      targets,
      verdicts,
      notes,
    };

    console.log('');
    console.log(`processes per pass: ${lw.processes} (fleet of ${fleetSize} in ${fleet.cgroup?.path ?? 'no cgroup'}), ${result.machine.cpus} CPUs, ${result.machine.kernel}, node ${process.version}`);
    console.log('');
    console.log(`${'tool'.padEnd(72)} ${'warm ms'.padStart(9)} ${'µs/proc'.padStart(9)} ${'cold ms'.padStart(9)} ${'µs/proc'.padStart(9)}`);
    for (const [name, s] of Object.entries(tools)) {
      console.log(`${name.padEnd(72)} ${fmt(s.warmMedianMs).padStart(9)} ${fmt(s.warmUsPerProcess).padStart(9)} ${fmt(s.coldMs).padStart(9)} ${fmt(s.coldUsPerProcess).padStart(9)}`);
    }
    console.log('');
    for (const [name, r] of Object.entries(ratios)) console.log(`${name.padEnd(32)} ${fmt(r, 1)}×`);
    console.log('');
    console.log(`agent loop (${loopRun.how}), ${rssSeconds} s at 1 Hz:`);
    console.log(`  RSS start ${fmt(rss.startBytes / MiB, 1)} MiB, median ${fmt(rss.medianBytes / MiB, 1)} MiB, max ${fmt(rss.maxBytes / MiB, 1)} MiB (idle node baseline ${fmt(idleRssBytes / MiB, 1)} MiB)`);
    console.log(`  of which anonymous: median ${fmt(rssAnon.medianBytes / MiB, 1)} MiB, max ${fmt(rssAnon.maxBytes / MiB, 1)} MiB (idle baseline ${fmt(rssAnon.idleBaselineBytes / MiB, 1)} MiB)`);
    if (result.agentLoop.cgroupUsage) console.log(`  its memory cgroup: usage median ${fmt(result.agentLoop.cgroupUsage.medianBytes / MiB, 1)} MiB, of which kernel ${fmt((result.agentLoop.kmem?.medianBytes ?? 0) / MiB, 1)} MiB`);
    if (result.agentLoop.passUsPerProcessAt1Hz) console.log(`  pass at 1 Hz: median ${fmt(result.agentLoop.passUsPerProcessAt1Hz.median)} µs/process, max ${fmt(result.agentLoop.passUsPerProcessAt1Hz.max)}; cold first pass in a fresh process ${fmt(result.agentLoop.coldPassUsPerProcess ?? NaN)} µs/process`);
    console.log('');
    for (const [name, ok] of Object.entries(verdicts)) console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}`);
    for (const n of notes) console.log(`note: ${n}`);

    mkdirSync(dirname(resultsFile), { recursive: true });
    writeFileSync(resultsFile, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nwrote ${resultsFile}`);
    return result;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await teardown();
  }
}
