import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  averageRanks,
  leastSquares,
  mannKendall,
  median,
  normalCdf,
  serialCorrelationFactor,
  theilSen,
  windowMinima,
} from '../../../agent/watch/trend-stats.js';
import { prng } from '../../../common/prng.js';

// seeded PRNG (mulberry32) so every run sees the same "random" data
const gauss = (rng: () => number): number => Math.sqrt(-2 * Math.log(Math.max(rng(), 1e-12))) * Math.cos(2 * Math.PI * rng());
const close = (actual: number, expected: number, tol: number, what = ''): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what} expected ${expected} ± ${tol}, got ${actual}`);

test('normalCdf matches known quantiles and is symmetric', () => {
  close(normalCdf(0), 0.5, 1e-7);
  close(normalCdf(1.959964), 0.975, 1e-6);
  close(normalCdf(-1.959964), 0.025, 1e-6);
  close(normalCdf(2.326348), 0.99, 1e-6);
  for (const z of [0.3, 1.1, 2.7, 4.2]) close(normalCdf(z) + normalCdf(-z), 1, 1e-9);
  assert.equal(normalCdf(Number.POSITIVE_INFINITY), 1);
  assert.equal(normalCdf(Number.NEGATIVE_INFINITY), 0);
  assert.ok(Number.isNaN(normalCdf(Number.NaN)));
});

test('mannKendall: S, variance and confidence of a strictly increasing series', () => {
  const r = mannKendall([1, 2, 3, 4, 5]);
  assert.equal(r.s, 10);
  close(r.varianceS, (5 * 4 * 15) / 18, 1e-9);
  close(r.z, 9 / Math.sqrt((5 * 4 * 15) / 18), 1e-9);
  close(r.confidence, 0.98628, 1e-4);
  close(r.pValue, 2 * (1 - r.confidence), 1e-12);
});

test('mannKendall: tie groups reduce the variance', () => {
  // pairs: four (1,2) pairs positive, (1,1) and (2,2) tied → S = 4; two tie groups of 2
  const r = mannKendall([1, 1, 2, 2]);
  assert.equal(r.s, 4);
  close(r.varianceS, (4 * 3 * 13 - 2 * (2 * 1 * 9)) / 18, 1e-9);
});

test('mannKendall: decreasing and constant series', () => {
  const down = mannKendall([9, 7, 8, 5, 3, 1]);
  assert.ok(down.s < 0);
  assert.ok(down.confidence < 0.05);
  const flat = mannKendall([4, 4, 4, 4, 4]);
  assert.equal(flat.s, 0);
  assert.equal(flat.varianceS, 0);
  assert.equal(flat.z, 0);
  close(flat.confidence, 0.5, 1e-8);
});

test('mannKendall: a variance factor weakens the evidence, and is never below 1', () => {
  const xs = [1, 3, 2, 5, 4, 6, 8, 7, 9, 10];
  const plain = mannKendall(xs);
  const inflated = mannKendall(xs, 4);
  close(inflated.varianceS, plain.varianceS * 4, 1e-9);
  assert.ok(inflated.confidence < plain.confidence);
  assert.equal(mannKendall(xs, 0.25).varianceS, plain.varianceS);
});

test('theilSen recovers a line exactly and ignores a minority of outliers', () => {
  const t = Array.from({ length: 20 }, (_, i) => i);
  const v = t.map((x) => 2 * x + 1);
  const fit = theilSen(t, v);
  close(fit.slope, 2, 1e-12);
  close(fit.intercept, 1, 1e-12);
  v[2] = -300;
  v[17] = 900;
  v[18] = 1200;
  const robust = theilSen(t, v);
  close(robust.slope, 2, 0.05, 'slope with outliers');
  const ols = leastSquares(t, v);
  assert.ok(Math.abs(ols.slope - 2) > 1, 'least squares is pulled by the outliers (the reason for Theil–Sen)');
});

test('theilSen equals the median of all pairwise slopes (odd and even pair counts)', () => {
  const rng = prng(7);
  for (const n of [2, 3, 4, 5, 17, 40]) {
    const t = Array.from({ length: n }, (_, i) => i + rng() * 0.5);
    const v = t.map((x) => 3 * x + 20 * gauss(rng));
    const slopes: number[] = [];
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) slopes.push((v[j]! - v[i]!) / (t[j]! - t[i]!));
    slopes.sort((a, b) => a - b);
    const m = slopes.length;
    const expected = m % 2 ? slopes[m >> 1]! : (slopes[m / 2 - 1]! + slopes[m / 2]!) / 2;
    close(theilSen(t, v).slope, expected, 1e-9, `n=${n}`);
  }
});

test('theilSen: sub-range, equal times and too few points', () => {
  const t = [0, 1, 2, 3, 4, 5];
  const v = [0, 0, 0, 10, 20, 30];
  close(theilSen(t, v, 3, 6).slope, 10, 1e-12);
  assert.ok(Number.isNaN(theilSen([1], [1]).slope));
  assert.ok(Number.isNaN(theilSen([2, 2, 2], [1, 5, 9]).slope), 'no pair with distinct times');
});

test('theilSen above exactMaxN uses the bounded estimator and stays accurate', () => {
  const rng = prng(11);
  const n = 5000;
  const t = Array.from({ length: n }, (_, i) => i);
  const v = t.map((x) => 0.5 * x + 30 * gauss(rng));
  const started = performance.now();
  const fit = theilSen(t, v);
  const ms = performance.now() - started;
  close(fit.slope, 0.5, 0.01);
  // exact would be 12.5 M pairs; the bounded path is linear
  assert.ok(ms < 200, `took ${ms} ms`);
  const small = theilSen(t.slice(0, 300), v.slice(0, 300), 0, 300, 100);
  close(small.slope, 0.5, 0.15);
});

test('serialCorrelationFactor: ~1 on white noise, large on a persistent residual', () => {
  const rng = prng(3);
  const t = Array.from({ length: 48 }, (_, i) => i);
  const noise = t.map((x) => x + gauss(rng));
  const white = serialCorrelationFactor(t, noise, 1);
  assert.ok(white >= 1 && white < 1.6, `white noise factor ${white}`);
  // a random walk around the trend (a leak whose rate wanders) and a slow wave are persistent
  let walk = 0;
  const wander = t.map((x) => x + (walk += 2 * gauss(rng)));
  assert.ok(serialCorrelationFactor(t, wander, 1) > 2, 'random-walk residual');
  const wave = t.map((x) => 10 * Math.sin((Math.PI * x) / 47));
  assert.ok(serialCorrelationFactor(t, wave, 0) > 2, 'slow-wave residual');
  assert.equal(serialCorrelationFactor([0, 1, 2], [1, 2, 3], 1), 1);
  assert.equal(serialCorrelationFactor(t, t.map(() => 5), 0), 1, 'constant residual');
});

test('mannKendall with the serial-correlation factor: a staircase is weaker evidence than a ramp', () => {
  const t = Array.from({ length: 24 }, (_, i) => i);
  const rng = prng(5);
  const ramp = t.map((x) => x + 0.3 * gauss(rng));
  const stairs = t.map((x) => Math.floor(x / 8) * 8 + 0.3 * gauss(rng));
  const conf = (v: number[]): number => mannKendall(v, serialCorrelationFactor(t, v, theilSen(t, v).slope)).confidence;
  assert.ok(conf(ramp) > 0.999);
  assert.ok(conf(stairs) < conf(ramp));
});

test('windowMinima keeps each bucket’s minimum and when it happened', () => {
  const t = [0, 1, 2, 3, 4, 5, 6, 7, 9];
  const v = [5, 3, 4, 9, 8, 1, 7, 2, 6];
  const f = windowMinima(t, v, 3);
  assert.deepEqual(f.values, [3, 1, 2, 6]);
  assert.deepEqual(f.times, [1, 5, 7, 9]);
  assert.deepEqual(windowMinima([], [], 5), { times: [], values: [] });
  assert.throws(() => windowMinima(t, v, 0), RangeError);
});

test('leastSquares, median and averageRanks', () => {
  const fit = leastSquares([0, 1, 2, 3], [1, 3, 5, 7]);
  close(fit.slope, 2, 1e-12);
  close(fit.intercept, 1, 1e-12);
  assert.ok(Number.isNaN(leastSquares([1], [2]).slope));
  assert.ok(Number.isNaN(leastSquares([1, 1], [2, 3]).slope));
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  assert.deepEqual(Array.from(averageRanks([10, 20, 10, 30])), [1.5, 3, 1.5, 4]);
});
