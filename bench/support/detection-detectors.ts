// Detectors as the scorer sees them: run over one trace, say when they alerted and what time to
// the limit they predicted then and later. Our growth detector and the two alerts people use
// today in Prometheus. Add a detector (fan-out, a tuned variant) by adding a TraceDetector.
import { GrowthDetector, type GrowthOptions } from '../../agent/watch/growth.js';
import { leastSquares } from '../../agent/watch/trend-stats.js';
import type { Trace } from './detection-traces.js';

/** One prediction made by a detector: at atMs it said the limit is etaSec away (null: no ETA). */
export interface Estimate {
  atMs: number;
  etaSec: number | null;
}

export interface DetectorOutcome {
  /** Times an alert started (open/firing after being quiet), ascending. */
  onsetsMs: number[];
  /** Every ETA the detector published, ascending: at onsets and updates. */
  estimates: Estimate[];
  /** Wall time spent inside the detector for this trace (ms), and samples fed. */
  cpuMs: number;
  samples: number;
}

export interface TraceDetector {
  name: string;
  description: string;
  /** One of the alerts people use today, which the targets compare against. */
  baseline?: boolean;
  run(trace: Trace): DetectorOutcome;
}

export function growthDetector(options: GrowthOptions = {}, name = 'leakwatch growth'): TraceDetector {
  return {
    name,
    description: 'floor (per-bucket minima) + Mann–Kendall (Hamed–Rao) + Theil–Sen, ETA-scaled evidence, 1 Hz',
    run(trace) {
      const det = new GrowthDetector(options);
      const out: DetectorOutcome = { onsetsMs: [], estimates: [], cpuMs: 0, samples: 0 };
      const started = process.hrtime.bigint();
      const n = trace.valuesBytes.length;
      for (let i = 0; i < n; i++) {
        const atMs = trace.startMs + i * trace.stepMs;
        for (const ev of det.observe(trace.id, atMs, trace.valuesBytes[i] as number, trace.limitBytes)) {
          if (ev.kind === 'open') out.onsetsMs.push(atMs);
          if (ev.kind !== 'resolve') out.estimates.push({ atMs, etaSec: ev.state.etaSec });
        }
      }
      out.cpuMs = Number(process.hrtime.bigint() - started) / 1e6;
      out.samples = n;
      return out;
    },
  };
}

/** Prometheus scrapes the 1 Hz series every `scrapeSec` and evaluates the rule at each scrape. */
function scrapes(trace: Trace, scrapeSec: number): Array<{ tSec: number; v: number }> {
  const out: Array<{ tSec: number; v: number }> = [];
  const every = Math.max(1, Math.round((scrapeSec * 1000) / trace.stepMs));
  for (let i = 0; i < trace.valuesBytes.length; i += every) out.push({ tSec: (i * trace.stepMs) / 1000, v: trace.valuesBytes[i] as number });
  return out;
}

/**
 * `predict_linear(mem[5m], 3600) > limit`: least squares over the samples of the last 5 min,
 * extrapolated an hour ahead, evaluated at every scrape, firing at once or after `forSec` of
 * being true (Prometheus' `for:`). Its ETA is where the fitted line meets the limit.
 */
export function predictLinearDetector(scrapeSec = 15, rangeSec = 300, horizonSec = 3600, forSec = 0): TraceDetector {
  const forText = forSec > 0 ? ` for ${forSec / 60}m` : '';
  return {
    name: `predict_linear 5m/1h${forText}`,
    description: `predict_linear(mem[${rangeSec / 60}m], ${horizonSec}) > limit${forText}, scrape+eval every ${scrapeSec} s`,
    baseline: forSec === 0,
    run(trace) {
      const started = process.hrtime.bigint();
      const out: DetectorOutcome = { onsetsMs: [], estimates: [], cpuMs: 0, samples: 0 };
      const points = scrapes(trace, scrapeSec);
      let firing = false;
      let pendingSince: number | null = null;
      for (let i = 0; i < points.length; i++) {
        const now = points[i]!.tSec;
        const ts: number[] = [];
        const vs: number[] = [];
        for (let j = i; j >= 0 && points[j]!.tSec >= now - rangeSec; j--) {
          ts.push(points[j]!.tSec - now);
          vs.push(points[j]!.v);
        }
        const fit = leastSquares(ts, vs);
        const limit = trace.limitBytes;
        const active = limit !== null && Number.isFinite(fit.slope) && fit.intercept + fit.slope * horizonSec > limit;
        pendingSince = active ? (pendingSince ?? now) : null;
        const fires = active && now - (pendingSince as number) >= forSec;
        const atMs = trace.startMs + now * 1000;
        if (fires) {
          const eta = fit.slope > 0 ? Math.max(0, (limit - fit.intercept) / fit.slope) : null;
          if (!firing) out.onsetsMs.push(atMs);
          out.estimates.push({ atMs, etaSec: eta });
        }
        firing = fires;
      }
      out.cpuMs = Number(process.hrtime.bigint() - started) / 1e6;
      out.samples = points.length;
      return out;
    },
  };
}

/** `usage / limit > 0.8 for: 5m`, evaluated at every scrape. No ETA. */
export function thresholdDetector(scrapeSec = 15, ratio = 0.8, forSec = 300): TraceDetector {
  return {
    name: `usage/limit > ${ratio} for ${forSec / 60}m`,
    description: `usage / limit > ${ratio} for ${forSec / 60}m, scrape+eval every ${scrapeSec} s`,
    baseline: true,
    run(trace) {
      const started = process.hrtime.bigint();
      const out: DetectorOutcome = { onsetsMs: [], estimates: [], cpuMs: 0, samples: 0 };
      const points = scrapes(trace, scrapeSec);
      let pendingSince: number | null = null;
      let firing = false;
      for (const p of points) {
        const above = trace.limitBytes !== null && p.v / trace.limitBytes > ratio;
        if (!above) {
          pendingSince = null;
          firing = false;
          continue;
        }
        pendingSince ??= p.tSec;
        if (!firing && p.tSec - pendingSince >= forSec) {
          firing = true;
          out.onsetsMs.push(trace.startMs + p.tSec * 1000);
          out.estimates.push({ atMs: trace.startMs + p.tSec * 1000, etaSec: null });
        }
      }
      out.cpuMs = Number(process.hrtime.bigint() - started) / 1e6;
      out.samples = points.length;
      return out;
    },
  };
}
