// Trend of a memory curve for the collector benchmark. Theil–Sen (the median of all pairwise
// slopes) is the verdict: one GC spike or a burst of page cache cannot tilt it the way it tilts a
// least-squares fit, which is reported beside it.

export interface Trend {
  /** Units of y per unit of x. */
  theilSen: number;
  leastSquares: number;
  points: number;
}

export function trend(xs: readonly number[], ys: readonly number[]): Trend {
  if (xs.length !== ys.length) throw new Error(`trend: ${xs.length} xs but ${ys.length} ys`);
  const n = xs.length;
  if (n < 2) return { theilSen: Number.NaN, leastSquares: Number.NaN, points: n };
  const slopes: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = xs[j]! - xs[i]!;
      if (dx !== 0) slopes.push((ys[j]! - ys[i]!) / dx);
    }
  }
  slopes.sort((a, b) => a - b);
  const m = slopes.length >> 1;
  const theilSen = slopes.length === 0 ? Number.NaN : slopes.length % 2 ? slopes[m]! : (slopes[m - 1]! + slopes[m]!) / 2;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  return { theilSen, leastSquares: sxx === 0 ? Number.NaN : sxy / sxx, points: n };
}
