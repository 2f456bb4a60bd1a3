// The agent side of the snapshot bench, in its own process so that its memory is its own: one
// on-demand capture of a pid into a directory spool, with the peak RSS of this process (VmHWM,
// reset just before) and of its helpers (the netns relay) while it ran. Prints one JSON line.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { NodeSampler } from '../../agent/host/node-sampler.js';
import { Capturer } from '../../agent/capture/capturer.js';
import { DirSink } from '../../test/support/capture-targets.js';

const [pidArg, spoolDir] = process.argv.slice(2);
const pid = Number(pidArg);

function statusKiB(p: number | 'self', field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${p}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function childPids(): number[] {
  const out: number[] = [];
  for (const t of readdirSync('/proc/self/task')) {
    try {
      out.push(...readFileSync(`/proc/self/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    } catch {
      // thread gone
    }
  }
  return out;
}

const sampler = new NodeSampler();
const target = sampler.sample().processes.find((p) => p.pid === pid);
if (!target) throw new Error(`pid ${pid} not found`);
const sink = new DirSink(spoolDir!);
const capturer = new Capturer({ node: 'bench', sink, reports: () => {}, hierarchy: sampler.memoryHierarchy, processes: () => [target], timeoutMs: 900_000 });

// Settle what loading the modules left behind, then measure from here.
globalThis.gc?.();
await new Promise((r) => setTimeout(r, 200));
writeFileSync('/proc/self/clear_refs', '5');
const baselineKiB = statusKiB('self', 'VmRSS');
let helperPeakKiB = 0;
const helperCpuTicks = new Map<number, number>();
const poll = setInterval(() => {
  for (const c of childPids()) {
    helperPeakKiB = Math.max(helperPeakKiB, statusKiB(c, 'VmRSS'));
    try {
      // utime + stime (fields 14, 15), counted after the comm's closing parenthesis.
      const f = readFileSync(`/proc/${c}/stat`, 'utf8').split(') ')[1]!.split(' ');
      helperCpuTicks.set(c, Number(f[11]) + Number(f[12]));
    } catch {
      // exited
    }
  }
}, 20);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const report = await capturer.capture({ process: target, kind: 'heapsnapshot', trigger: 'on-demand' });
const totalMs = performance.now() - t0;
clearInterval(poll);
const cpu = process.cpuUsage(cpu0);
const peakKiB = statusKiB('self', 'VmHWM');
const file = sink.accepted[0];
process.stdout.write(
  JSON.stringify({
    outcome: report.outcome,
    reason: report.reason,
    totalMs,
    snapshotMs: file?.meta.durationMs ?? null,
    bytes: file?.bytes ?? null,
    sha256: file?.sha256 ?? null,
    path: file?.path ?? null,
    heapUsedBytes: file?.meta.heapUsedBytes ?? null,
    agentBaselineRssBytes: baselineKiB * 1024,
    agentPeakRssBytes: peakKiB * 1024,
    relayPeakRssBytes: helperPeakKiB * 1024,
    agentCpuMs: (cpu.user + cpu.system) / 1000,
    relayCpuMs: [...helperCpuTicks.values()].reduce((a, b) => a + b, 0) * 10,
  }) + '\n',
);
sampler.close();
