// What a full heap snapshot cost its target, learned from the ones already taken. V8 builds the
// whole object graph in the target before it writes a byte, and that takes from about 2× the heap
// in use (a heap of big arrays) to 12× (an object-dense heap, measured in bench/snapshot.ts), so
// the headroom gate's fixed factor is only a first guess. While a snapshot runs, the target's
// resident memory is sampled; its peak over the start, per byte of heap in use, is what the next
// snapshot of that target is expected to need (the second of a pair above all, taken on a heap
// that has grown while the headroom shrank).
import { readFile } from 'node:fs/promises';

export interface SnapshotCost {
  /** Peak extra resident memory of the target while the snapshot ran, per byte of heap in use. */
  ratio: number;
  extraBytes: number;
  heapUsedBytes: number;
  atMs: number;
}

/** Sampled resident memory of one process: the first reading and the highest. */
export interface RssPeak {
  baseBytes: number;
  peakBytes: number;
  samples: number;
}

async function readRssBytes(procRoot: string, pid: number): Promise<number | null> {
  try {
    const status = await readFile(`${procRoot}/${pid}/status`, 'latin1');
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
    return kb === undefined ? null : Number(kb) * 1024;
  } catch {
    // Gone, or not ours to read: the capture itself will say what happened.
    return null;
  }
}

/**
 * Samples the process's VmRSS every intervalMs until stop() is called. Reads are async and never
 * overlap, so a slow /proc read skips a tick rather than piling up.
 */
export async function watchRssPeak(procRoot: string, pid: number, intervalMs = 50): Promise<{ stop(): Promise<RssPeak | null> }> {
  const base = await readRssBytes(procRoot, pid);
  let peak = base ?? 0;
  let samples = base === null ? 0 : 1;
  let reading: Promise<void> | null = null;
  const tick = (): void => {
    if (reading) return;
    reading = readRssBytes(procRoot, pid).then((v) => {
      if (v !== null) {
        peak = Math.max(peak, v);
        samples++;
      }
      reading = null;
    });
  };
  const timer = setInterval(tick, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      if (reading) await reading;
      // The end, too: a snapshot shorter than one interval still gets a second reading.
      const last = await readRssBytes(procRoot, pid);
      if (last !== null) {
        peak = Math.max(peak, last);
        samples++;
      }
      return base === null ? null : { baseBytes: base, peakBytes: peak, samples };
    },
  };
}

/** The last known cost per target (bounded: the oldest entries go first). */
export class SnapshotCostBook {
  private readonly costs = new Map<string, SnapshotCost>();

  constructor(private readonly maxTargets = 1000) {}

  record(targetKey: string, peak: RssPeak, heapUsedBytes: number, atMs: number): SnapshotCost | null {
    if (!(heapUsedBytes > 0)) return null;
    const extraBytes = Math.max(0, peak.peakBytes - peak.baseBytes);
    const cost: SnapshotCost = { ratio: extraBytes / heapUsedBytes, extraBytes, heapUsedBytes, atMs };
    this.costs.delete(targetKey);
    this.costs.set(targetKey, cost);
    while (this.costs.size > this.maxTargets) {
      const oldest = this.costs.keys().next().value;
      if (oldest === undefined) break;
      this.costs.delete(oldest);
    }
    return cost;
  }

  of(targetKey: string): SnapshotCost | null {
    return this.costs.get(targetKey) ?? null;
  }
}
