// When the agent captures on its own: a growth finding about one process that is Node.js. Opening
// findings always ask (a refusal is then reported); updates ask again only once the target's
// automatic interval has passed, so a finding updated every pass does not flood refusals.
import type { AttributedProcess } from '../host/node-sampler.js';
import type { FindingEvent } from '../watch/watcher.js';
import { isNodeProcess } from './node-targets.js';

export interface AutoCaptureCandidate {
  process: AttributedProcess;
  findingId: string;
  /** True for the finding's opening event: a refusal is worth a report then. */
  opening: boolean;
}

export function targetKeyOf(p: Pick<AttributedProcess, 'pid' | 'startTimeMs'>): string {
  return `proc:${p.pid}:${p.startTimeMs}`;
}

export function autoCaptureCandidates(events: readonly FindingEvent[], processes: readonly AttributedProcess[]): AutoCaptureCandidate[] {
  const out: AutoCaptureCandidate[] = [];
  const seen = new Set<number>();
  for (const e of events) {
    const f = e.finding;
    if (e.change === 'resolve' || f.status !== 'open' || f.kind !== 'growth' || f.details.scope !== 'process') continue;
    const pid = f.target.pid;
    if (pid === null || seen.has(pid)) continue;
    const p = processes.find((q) => q.pid === pid);
    // Only processes in pods, and never the agent itself (`leakwatch up` runs on the node it
    // watches, and SIGUSR1 would open an inspector in our own process and pause us for the snapshot).
    if (!p || p.pid === process.pid || p.podUid === null || !isNodeProcess(p)) continue;
    seen.add(pid);
    out.push({ process: p, findingId: f.id, opening: e.change === 'open' });
  }
  return out;
}
