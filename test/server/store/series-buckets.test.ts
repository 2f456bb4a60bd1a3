import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bucketStart, downsample, mergeBucket, type StoredPoint } from '../../../server/store/series-buckets.js';

const p = (atMs: number, anonBytes: number, limitBytes: number | null = 100, workingSetBytes: number | null = null, lastAtMs = atMs): StoredPoint => ({
  atMs,
  anonBytes,
  workingSetBytes,
  limitBytes,
  lastAtMs,
});

test('bucketStart aligns down, from an origin', () => {
  assert.equal(bucketStart(19_999, 10_000), 10_000);
  assert.equal(bucketStart(20_000, 10_000), 20_000);
  assert.equal(bucketStart(1234, 100, 34), 1234);
  assert.equal(bucketStart(1233, 100, 34), 1134);
});

test('mergeBucket keeps the peak anon and working set and the newest limit', () => {
  const m = mergeBucket([p(1000, 5, 100, 7), p(2000, 9, 200, null), p(3000, 6, null, 3)], 0);
  assert.deepEqual(m, { atMs: 0, anonBytes: 9, workingSetBytes: 7, limitBytes: null, lastAtMs: 3000 });
  // An already merged row counts by the newest point inside it, not its own atMs.
  const again = mergeBucket([p(0, 9, 300, 7, 9000), p(4000, 1, 400)], 0);
  assert.equal(again.limitBytes, 300);
  assert.equal(again.lastAtMs, 9000);
  assert.throws(() => mergeBucket([], 0));
});

test('downsample merges buckets with several points and leaves lone points as they are', () => {
  const out = downsample([p(10_500, 1), p(12_000, 4), p(19_999, 2, 50), p(25_000, 3), p(41_000, 8), p(42_000, 7)], 10_000);
  assert.deepEqual(out, [
    { atMs: 10_000, anonBytes: 4, workingSetBytes: null, limitBytes: 50, lastAtMs: 19_999 },
    p(25_000, 3),
    { atMs: 40_000, anonBytes: 8, workingSetBytes: null, limitBytes: 100, lastAtMs: 42_000 },
  ]);
  assert.deepEqual(downsample([], 10_000), []);
});
