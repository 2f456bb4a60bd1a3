// The collector's memory, CPU and disk writes (and the other processes' CPU), read from /proc
// once a second and tagged with the phase they belong to; with a guard against runaway growth.
import { readProcCpuMs, readProcMemory, readProcWriteBytes, type ProcMemory } from './collector-process.js';

const MiB = 1024 * 1024;

export interface MemorySample extends ProcMemory {
  phase: string;
  /** Seconds since the phase began. */
  t: number;
  collectorCpuMs: number | null;
  collectorWriteBytes: number | null;
  fleetCpuMs: number | null;
  benchCpuMs: number;
}

export class Sampler {
  readonly samples: MemorySample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private phase = 'setup';
  private phaseStart = performance.now();
  guardTripped: string | null = null;

  constructor(
    private collectorPid: number,
    private readonly fleetPid: number,
    private readonly guardBytes: number,
  ) {}

  begin(phase: string, collectorPid = this.collectorPid): void {
    this.collectorPid = collectorPid;
    this.phase = phase;
    this.phaseStart = performance.now();
    this.sample();
    if (!this.timer) this.timer = setInterval(() => this.sample(), 1000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  of(phase: string): MemorySample[] {
    return this.samples.filter((s) => s.phase === phase);
  }

  private sample(): void {
    const mem = readProcMemory(this.collectorPid);
    if (!mem) return;
    const cpu = process.cpuUsage();
    this.samples.push({
      phase: this.phase,
      t: (performance.now() - this.phaseStart) / 1000,
      ...mem,
      collectorCpuMs: readProcCpuMs(this.collectorPid),
      collectorWriteBytes: readProcWriteBytes(this.collectorPid),
      fleetCpuMs: readProcCpuMs(this.fleetPid),
      benchCpuMs: (cpu.user + cpu.system) / 1000,
    });
    if (mem.rssBytes > this.guardBytes) this.guardTripped ??= `collector RSS reached ${(mem.rssBytes / MiB).toFixed(0)} MiB (guard ${this.guardBytes / MiB} MiB)`;
  }
}
