// Scoring of detectors on labelled traces, and the Markdown tables of the detection benchmark.
//
// Per trace, only the first alert onset counts:
//   control trace: any onset is a false positive;
//   leak trace: an onset before the leak starts is a false positive (and the leak is missed),
//               one in [leak start, OOM) is a detection, none is a miss.
// Delay = onset − leak start. Lead = (OOM − onset) / (OOM − leak start).
// ETA error = |predicted OOM − actual OOM| / (actual OOM − time of the prediction), taken at the
// onset and at the last prediction made before the midpoint between onset and OOM.
import type { DetectorOutcome, Estimate } from './detection-detectors.js';
import type { Trace } from './detection-traces.js';

export type Verdict = 'detected' | 'missed' | 'false-positive' | 'quiet';

export interface TraceScore {
  traceId: string;
  family: string;
  kind: 'leak' | 'control';
  detector: string;
  verdict: Verdict;
  firstOnsetSec: number | null;
  delaySec: number | null;
  leadShare: number | null;
  etaErrorAtOnset: number | null;
  etaErrorAtMid: number | null;
  etaAtOnsetSec: number | null;
  actualToOomSec: number | null;
}

export function scoreTrace(trace: Trace, detector: string, outcome: DetectorOutcome): TraceScore {
  const first = outcome.onsetsMs[0] ?? null;
  const score: TraceScore = {
    traceId: trace.id,
    family: trace.family,
    kind: trace.kind,
    detector,
    verdict: first === null ? (trace.kind === 'leak' ? 'missed' : 'quiet') : 'false-positive',
    firstOnsetSec: first === null ? null : (first - trace.startMs) / 1000,
    delaySec: null,
    leadShare: null,
    etaErrorAtOnset: null,
    etaErrorAtMid: null,
    etaAtOnsetSec: null,
    actualToOomSec: null,
  };
  if (trace.kind === 'control' || first === null) return score;
  const leakStart = trace.leakStartMs as number;
  const oom = trace.oomMs as number;
  if (first < leakStart) return score;
  if (first >= oom) {
    score.verdict = 'missed';
    return score;
  }
  score.verdict = 'detected';
  score.delaySec = (first - leakStart) / 1000;
  score.leadShare = (oom - first) / (oom - leakStart);
  score.actualToOomSec = (oom - first) / 1000;
  const atOnset = latestEstimate(outcome.estimates, first, first);
  score.etaAtOnsetSec = atOnset?.etaSec ?? null;
  score.etaErrorAtOnset = etaError(atOnset, oom);
  score.etaErrorAtMid = etaError(latestEstimate(outcome.estimates, first, first + (oom - first) / 2), oom);
  return score;
}

function latestEstimate(estimates: Estimate[], fromMs: number, toMs: number): Estimate | null {
  let best: Estimate | null = null;
  for (const e of estimates) if (e.atMs >= fromMs && e.atMs <= toMs) best = e;
  return best;
}

function etaError(e: Estimate | null, oomMs: number): number | null {
  if (!e || e.etaSec === null) return null;
  const remaining = (oomMs - e.atMs) / 1000;
  if (remaining <= 0) return null;
  return Math.abs(e.etaSec - remaining) / remaining;
}

export interface Summary {
  detector: string;
  leaks: number;
  controls: number;
  detected: number;
  missed: number;
  falsePositives: number;
  recall: number;
  precision: number | null;
  medianDelaySec: number | null;
  p90DelaySec: number | null;
  medianLeadShare: number | null;
  minLeadShare: number | null;
  medianEtaErrorAtOnset: number | null;
  medianEtaErrorAtMid: number | null;
  p90EtaErrorAtOnset: number | null;
}

export function quantile(values: number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

const nums = (xs: Array<number | null>): number[] => xs.filter((x): x is number => x !== null);

export function summarize(detector: string, scores: TraceScore[]): Summary {
  const mine = scores.filter((s) => s.detector === detector);
  const leaks = mine.filter((s) => s.kind === 'leak');
  const detected = leaks.filter((s) => s.verdict === 'detected');
  const fp = mine.filter((s) => s.verdict === 'false-positive').length;
  const minLead = quantile(nums(detected.map((s) => s.leadShare)), 0);
  return {
    detector,
    leaks: leaks.length,
    controls: mine.length - leaks.length,
    detected: detected.length,
    missed: leaks.filter((s) => s.verdict === 'missed').length,
    falsePositives: fp,
    recall: leaks.length === 0 ? 0 : detected.length / leaks.length,
    precision: detected.length + fp === 0 ? null : detected.length / (detected.length + fp),
    medianDelaySec: quantile(nums(detected.map((s) => s.delaySec)), 0.5),
    p90DelaySec: quantile(nums(detected.map((s) => s.delaySec)), 0.9),
    medianLeadShare: quantile(nums(detected.map((s) => s.leadShare)), 0.5),
    minLeadShare: minLead,
    medianEtaErrorAtOnset: quantile(nums(detected.map((s) => s.etaErrorAtOnset)), 0.5),
    medianEtaErrorAtMid: quantile(nums(detected.map((s) => s.etaErrorAtMid)), 0.5),
    p90EtaErrorAtOnset: quantile(nums(detected.map((s) => s.etaErrorAtOnset)), 0.9),
  };
}

// ---- formatting ----

export const pct = (x: number | null): string => (x === null ? '–' : `${Math.round(x * 100)} %`);
export function dur(sec: number | null): string {
  if (sec === null) return '–';
  if (sec < 120) return `${Math.round(sec)} s`;
  if (sec < 7200) return `${(sec / 60).toFixed(1)} min`;
  return `${(sec / 3600).toFixed(1)} h`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export function overallTable(summaries: Summary[]): string {
  return table(
    ['detector', 'recall', 'false alarms', 'precision', 'median delay', 'p90 delay', 'median lead', 'min lead', 'ETA err @alert (median)', 'ETA err @mid (median)'],
    summaries.map((s) => [
      s.detector,
      `${s.detected}/${s.leaks} (${pct(s.recall)})`,
      `${s.falsePositives}/${s.controls + s.leaks}`,
      pct(s.precision),
      dur(s.medianDelaySec),
      dur(s.p90DelaySec),
      pct(s.medianLeadShare),
      pct(s.minLeadShare),
      pct(s.medianEtaErrorAtOnset),
      pct(s.medianEtaErrorAtMid),
    ]),
  );
}

/** Leak families: one cell per detector, "detected/n · median delay · median lead · median ETA error". */
export function leakFamilyTable(scores: TraceScore[], detectors: string[], families: string[], oomBy: Map<string, number | null>): string {
  const rows = families.map((family) => {
    const cells = detectors.map((d) => {
      const mine = scores.filter((s) => s.detector === d && s.family === family);
      const det = mine.filter((s) => s.verdict === 'detected');
      const fp = mine.filter((s) => s.verdict === 'false-positive').length;
      const delay = quantile(nums(det.map((s) => s.delaySec)), 0.5);
      const lead = quantile(nums(det.map((s) => s.leadShare)), 0.5);
      const eta = quantile(nums(det.map((s) => s.etaErrorAtOnset)), 0.5);
      return `${det.length}/${mine.length}${fp ? ` (${fp} early)` : ''} · ${dur(delay)} · ${pct(lead)} · ${pct(eta)}`;
    });
    return [family, dur(oomBy.get(family) ?? null), ...cells];
  });
  return table(['leak family', 'median leak→OOM', ...detectors], rows);
}

export function controlFamilyTable(scores: TraceScore[], detectors: string[], families: string[], label = 'control family'): string {
  const rows = families.map((family) => [
    family,
    ...detectors.map((d) => {
      const mine = scores.filter((s) => s.detector === d && s.family === family);
      return `${mine.filter((s) => s.verdict === 'false-positive').length}/${mine.length}`;
    }),
  ]);
  return table([label, ...detectors.map((d) => `${d}: false alarms`)], rows);
}

export { table as markdownTable };
