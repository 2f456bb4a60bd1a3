// Pure statistics for trending memory series: Mann–Kendall (with tie correction and a
// serial-correlation correction), Theil–Sen slope, per-bucket minima ("floor"), least squares.
//
// Cost matters: the agent feeds one sample per target per second for hundreds of targets, and
// the growth detector runs these on windows of at most a few dozen floor points. So:
//   mannKendall             O(n²) time, O(n) extra (a sorted copy for the tie groups)
//   serialCorrelationFactor O(n²) time (all lags), O(n) extra
//   theilSen                O(n²) exact (quickselect median of the n(n−1)/2 slopes) while
//                           n ≤ exactMaxN (default 256), beyond that the half-offset estimator: O(n)
//   windowMinima, leastSquares, median  O(n) / O(n log n)
// Callers keep n bounded (the detector uses ≤ 48 points per window), so a test costs tens of µs.
// Memory is O(n) per call, except Theil–Sen's buffer of pairwise slopes (O(n²) while exact),
// which is one module-level scratch array reused across calls (single-threaded, never re-entered).

/** Φ(z), the standard normal CDF. Abramowitz & Stegun 7.1.26 for erf: |error| < 1.5e-7. */
export function normalCdf(z: number): number {
  if (Number.isNaN(z)) return Number.NaN;
  if (z === Number.POSITIVE_INFINITY) return 1;
  if (z === Number.NEGATIVE_INFINITY) return 0;
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

export interface MannKendallResult {
  n: number;
  /** Σ sign(x_j − x_i) over i < j. */
  s: number;
  /** Var(S) with the tie correction, multiplied by the serial-correlation factor passed in. */
  varianceS: number;
  /** (S ∓ 1)/√Var(S) (continuity-corrected); 0 when S = 0 or the variance is 0. */
  z: number;
  /** One-sided confidence that the series increases: Φ(z), in [0, 1]. */
  confidence: number;
  /** Two-sided p-value of "no trend": 2(1 − Φ(|z|)). */
  pValue: number;
}

/**
 * Mann–Kendall trend test on values in time order. `varianceFactor` (≥ 1) inflates Var(S) for
 * serially correlated series (see serialCorrelationFactor); 1 is the textbook test, which
 * assumes independent points. The normal approximation is rough below n ≈ 8; callers gate on n.
 */
export function mannKendall(values: ArrayLike<number>, varianceFactor = 1): MannKendallResult {
  const n = values.length;
  let s = 0;
  for (let i = 0; i < n - 1; i++) {
    const xi = values[i] as number;
    for (let j = i + 1; j < n; j++) {
      const d = (values[j] as number) - xi;
      if (d > 0) s++;
      else if (d < 0) s--;
    }
  }
  let variance = (n * (n - 1) * (2 * n + 5)) / 18;
  if (n > 1) {
    const sorted = Float64Array.from(values as ArrayLike<number>).sort();
    let run = 1;
    for (let i = 1; i <= n; i++) {
      if (i < n && sorted[i] === sorted[i - 1]) {
        run++;
      } else {
        if (run > 1) variance -= (run * (run - 1) * (2 * run + 5)) / 18;
        run = 1;
      }
    }
  }
  variance *= Math.max(1, varianceFactor);
  let z = 0;
  if (variance > 0) {
    if (s > 0) z = (s - 1) / Math.sqrt(variance);
    else if (s < 0) z = (s + 1) / Math.sqrt(variance);
  }
  return { n, s, varianceS: variance, z, confidence: normalCdf(z), pValue: 2 * (1 - normalCdf(Math.abs(z))) };
}

/**
 * Hamed & Rao (1998) variance inflation n/n* for Mann–Kendall on a serially correlated series:
 * detrend with `slope`, rank the residuals, and sum the significant (|ρ_k| > 1.96/√n) lag
 * autocorrelations of the ranks. A sawtooth floor or a staircase has strongly correlated
 * residuals, which the plain test would mistake for many independent rising points.
 * Clamped to ≥ 1: for alerting we never let negative correlation make a trend look stronger.
 * O(n²).
 */
export function serialCorrelationFactor(times: ArrayLike<number>, values: ArrayLike<number>, slope: number): number {
  const n = Math.min(times.length, values.length);
  if (n < 4) return 1;
  const residual = new Float64Array(n);
  for (let i = 0; i < n; i++) residual[i] = (values[i] as number) - slope * (times[i] as number);
  const rank = averageRanks(residual);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += rank[i] as number;
  mean /= n;
  let denom = 0;
  for (let i = 0; i < n; i++) {
    const d = (rank[i] as number) - mean;
    denom += d * d;
  }
  if (denom === 0) return 1;
  const bound = 1.96 / Math.sqrt(n);
  let sum = 0;
  for (let k = 1; k < n - 2; k++) {
    let num = 0;
    for (let i = 0; i + k < n; i++) num += ((rank[i] as number) - mean) * ((rank[i + k] as number) - mean);
    const rho = num / denom;
    if (Math.abs(rho) > bound) sum += (n - k) * (n - k - 1) * (n - k - 2) * rho;
  }
  const factor = 1 + (2 / (n * (n - 1) * (n - 2))) * sum;
  return Number.isFinite(factor) ? Math.max(1, factor) : 1;
}

/** 1-based ranks, ties given their average rank. O(n log n). */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (values[a] as number) - (values[b] as number));
  const rank = new Float64Array(n);
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && values[order[j + 1] as number] === values[order[i] as number]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) rank[order[k] as number] = r;
    i = j + 1;
  }
  return rank;
}

export interface LineFit {
  slope: number;
  /** Value of the line at time 0. */
  intercept: number;
  /** Number of points used. */
  n: number;
}

let scratch = new Float64Array(1024);
function scratchOf(size: number): Float64Array {
  if (scratch.length < size) scratch = new Float64Array(Math.max(size, scratch.length * 2));
  return scratch;
}

/**
 * Theil–Sen line through (times[i], values[i]) for i in [from, to): the median of pairwise
 * slopes (pairs with equal times skipped) and the median of value − slope·time as intercept.
 * Exact — O(m²) for m = to − from — while m ≤ exactMaxN; above it only the pairs
 * (i, i + ⌊m/2⌋) are used (m/2 well-separated slopes, O(m)), which keeps the breakdown
 * point near 25 % and the cost bounded for any caller. Returns slope NaN when no pair has
 * distinct times.
 */
export function theilSen(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  from = 0,
  to = Math.min(times.length, values.length),
  exactMaxN = 256,
): LineFit {
  const m = to - from;
  if (m < 2) return { slope: Number.NaN, intercept: Number.NaN, n: Math.max(0, m) };
  let count = 0;
  if (m <= exactMaxN) {
    const buf = scratchOf((m * (m - 1)) / 2);
    for (let i = from; i < to - 1; i++) {
      const ti = times[i] as number;
      const vi = values[i] as number;
      for (let j = i + 1; j < to; j++) {
        const dt = (times[j] as number) - ti;
        if (dt !== 0) buf[count++] = ((values[j] as number) - vi) / dt;
      }
    }
  } else {
    const half = Math.floor(m / 2);
    const buf = scratchOf(m);
    for (let i = from; i + half < to; i++) {
      const dt = (times[i + half] as number) - (times[i] as number);
      if (dt !== 0) buf[count++] = ((values[i + half] as number) - (values[i] as number)) / dt;
    }
  }
  if (count === 0) return { slope: Number.NaN, intercept: Number.NaN, n: m };
  const slope = medianInPlace(scratch, count);
  const buf = scratchOf(m);
  for (let i = 0; i < m; i++) buf[i] = (values[from + i] as number) - slope * (times[from + i] as number);
  const intercept = medianInPlace(buf, m);
  return { slope, intercept, n: m };
}

/** Median of the first `count` entries of buf; reorders them. O(count) expected (quickselect). */
function medianInPlace(buf: Float64Array, count: number): number {
  const mid = count >> 1;
  const upper = selectInPlace(buf, 0, count - 1, mid);
  if (count % 2 === 1) return upper;
  // after selection everything left of mid is ≤ buf[mid]: the lower middle is their maximum
  let lower = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < mid; i++) if ((buf[i] as number) > lower) lower = buf[i] as number;
  return (lower + upper) / 2;
}

/** k-th smallest of buf[lo..hi] (inclusive), partially reordering it (Hoare quickselect, median-of-3 pivot). */
function selectInPlace(buf: Float64Array, lo: number, hi: number, k: number): number {
  while (hi > lo) {
    const m = (lo + hi) >> 1;
    // median of three as pivot: sorted data, common here, stays O(n)
    const a = buf[lo] as number;
    const b = buf[m] as number;
    const c = buf[hi] as number;
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((buf[i] as number) < pivot) i++;
      while ((buf[j] as number) > pivot) j--;
      if (i <= j) {
        const t = buf[i] as number;
        buf[i] = buf[j] as number;
        buf[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return buf[k] as number;
  }
  return buf[k] as number;
}

/** Median of a list (copied, not reordered). NaN when empty. */
export function median(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) return Number.NaN;
  const copy = Float64Array.from(values as ArrayLike<number>).sort();
  const mid = n >> 1;
  return n % 2 === 1 ? (copy[mid] as number) : ((copy[mid - 1] as number) + (copy[mid] as number)) / 2;
}

/** Ordinary least squares (what Prometheus' predict_linear/deriv use). Slope NaN with < 2 distinct times. O(n). */
export function leastSquares(times: ArrayLike<number>, values: ArrayLike<number>): LineFit {
  const n = Math.min(times.length, values.length);
  if (n < 2) return { slope: Number.NaN, intercept: Number.NaN, n };
  let mt = 0;
  let mv = 0;
  for (let i = 0; i < n; i++) {
    mt += times[i] as number;
    mv += values[i] as number;
  }
  mt /= n;
  mv /= n;
  let stt = 0;
  let stv = 0;
  for (let i = 0; i < n; i++) {
    const dt = (times[i] as number) - mt;
    stt += dt * dt;
    stv += dt * ((values[i] as number) - mv);
  }
  if (stt === 0) return { slope: Number.NaN, intercept: Number.NaN, n };
  const slope = stv / stt;
  return { slope, intercept: mv - slope * mt, n };
}

export interface FloorPoints {
  /** Time of each bucket's minimum (not the bucket's start), ascending. */
  times: number[];
  values: number[];
}

/**
 * The floor of a signal: the minimum of each bucket [k·width, (k+1)·width) of time, with the
 * time at which it occurred. Buckets at least as long as a GC cycle contain one trough each, so
 * the floor of a sawtooth is flat while the floor of a leak still rises. Times must ascend.
 * Empty buckets produce no point. O(n).
 */
export function windowMinima(times: ArrayLike<number>, values: ArrayLike<number>, width: number): FloorPoints {
  if (!(width > 0)) throw new RangeError(`windowMinima: width must be > 0, got ${width}`);
  const out: FloorPoints = { times: [], values: [] };
  const n = Math.min(times.length, values.length);
  let bucket = Number.NaN;
  for (let i = 0; i < n; i++) {
    const t = times[i] as number;
    const v = values[i] as number;
    const b = Math.floor(t / width);
    if (b !== bucket) {
      bucket = b;
      out.times.push(t);
      out.values.push(v);
    } else if (v < (out.values[out.values.length - 1] as number)) {
      out.times[out.times.length - 1] = t;
      out.values[out.values.length - 1] = v;
    }
  }
  return out;
}
