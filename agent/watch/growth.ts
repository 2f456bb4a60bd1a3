// Growth detector: turns a memory series per target into open / update / resolve events with a
// slope and a time to the limit, without firing on a GC sawtooth, a warm-up or a cache that
// plateaus, and early on a real leak.
//
// How it judges, at every sample, a ladder of windows ending now (minWindowSec, ×1.5, …,
// windowSec, plus the whole usable history):
//  1. Floor. Each window is cut into ≤ maxPoints buckets and keeps each bucket's minimum. A
//     bucket is never shorter than 1.25 × the sawtooth period recently seen: periods are the gaps
//     between drops (sudden falls well beyond the noise: a GC, a burst ending) and between level
//     drops (a trough falling below earlier troughs: a major GC under minor ones). So every bucket
//     holds a trough, a sawtooth's floor is flat, and a window shorter than a few cycles (one
//     ramp) is not judged at all. Drops under 10 % of the window's range are a ripple that
//     cannot fake its rise and are left out (else a small GC ripple would hide a fast leak).
//  2. Trend. Mann–Kendall on the floor, its variance inflated for serially correlated residuals
//     (Hamed–Rao), must reach `confidence`.
//  3. Shape. The rising part of the window (from the last point near its minimum) is split in
//     halves; Theil–Sen gives each half's slope. The recent half must still rise. If it rises
//     significantly slower (beyond 2 standard errors), the slope is modelled as decaying
//     exponentially and the growth still to come is projected: a series that will level off
//     below the limit (a warm-up, a cache filling up) is not a leak. Halves that agree give the
//     slope of the whole rising part; halves that differ give the recent half's.
//  4. Evidence matched to the stakes. With a limit: the rise seen must be ≥ evidenceFraction of
//     the headroom left, and must have taken ≥ minWindowSec — how long it took being twice the
//     time its upper half took, so a step or a burst counts as quick however long the window.
//     For a steady rise this is "watched for ≥ f × its time to the limit", which leaves about
//     1/(1+f) of a linear leak's life as lead time. Growth that began in a target's first
//     warmupSec needs warmupEvidenceFraction instead. With or without a limit: growth over
//     sustainedSec by at least minRelativeGrowth of the starting floor also counts (the only way
//     without a limit). Once a target is 2 × warmupSec old, windows no longer reach back into
//     its warm-up.
//  5. Magnitude: slope ≥ minSlopeBytesPerSec and slope × window ≥ minRiseBytes.
// Time to limit = (limit − ceiling) / slope, the ceiling being the highest recent sample carried
// forward along the slope: with a sawtooth the peaks, not the troughs, reach the limit first.
//
// Open growth is re-judged every minUpdateIntervalSec: 'update' when the ETA or slope moved by
// etaChangeFraction or every heartbeatSec; 'resolve' when the last resolveAfterSec (longer with a
// slow sawtooth) shows no trend (Mann–Kendall < continueConfidence or slope < the minimum) and no
// short window still rises, or at once when usage falls below where the growth began (a restart).
// After a resolve, re-opening needs growth that the resolve test itself accepts.
//
// Known limit (bench/detection.ts, boundary table): a rise that keeps going for ≥ minWindowSec
// and climbs ≥ evidenceFraction of the headroom looks exactly like the start of a fast leak, so
// such a burst, or a cache filling fast (τ 5 min) towards ≥ 60 % of the limit, is reported.
//
// Memory per target is bounded: rawSec samples at full resolution, windowSec/floorBucketSec
// buckets (min and max with their times), 2 × 64 drops, and per-window caches — about 33 KiB
// with the defaults, whatever the uptime. CPU at 1 Hz (Node 20, one core): ~8–20 µs per sample
// for a flat or sawtoothing target (short windows are one pass over their own samples, long ones
// are rebuilt once per base bucket, and a cheap screen runs before any test); ~25–70 µs for a
// growing one (O(48²) tests, cached per window; open growth re-judged every minUpdateIntervalSec).
// So 500 targets cost ~1 % of a core.
//
// API: `observe(key, atMs, valueBytes, limitBytes)` once per sample (timestamps ascending per key;
// limitBytes null when unlimited) returns the events it caused, usually none; `forget(key)` when
// the target is gone (a restarted container should get a new key, or be forgotten); `state(key)`
// the open growth, if any. Bad samples are ignored with a warning, never thrown.

import { mannKendall, serialCorrelationFactor, theilSen, type MannKendallResult } from './trend-stats.js';

export interface GrowthOptions {
  /** Longest window judged, and how much history is kept. Default 3600 s. */
  windowSec?: number;
  /** Shortest window judged: no alert before this much data. Default 10 s. */
  minWindowSec?: number;
  /** History kept per sample at full resolution (for the short windows and the ceiling). Default 180 s. */
  rawSec?: number;
  /** Base bucket (min/max) for history older than rawSec. Default 10 s. */
  floorBucketSec?: number;
  /** Most floor points per window: bounds the O(n²) tests. Default 48. */
  maxPoints?: number;
  /** Fewest floor points a window needs to be judged. Default 8. */
  minPoints?: number;
  /** Growth that begins in a target's first this-long (since first seen) needs warmupEvidenceFraction. Default 30 s. */
  warmupSec?: number;
  /** Mann–Kendall one-sided confidence needed to open. Default 0.99. */
  confidence?: number;
  /** Rise seen, as a share of the headroom left, needed to open (≈ time watched / time to the limit). Default 0.2. */
  evidenceFraction?: number;
  /** Same for growth that began during warm-up. Default 0.5. */
  warmupEvidenceFraction?: number;
  /** Growth this long counts whatever the limit (and is the only way without one). Default 1800 s. */
  sustainedSec?: number;
  /** Rise over a sustained window as a share of its starting floor; also what a levelling-off series must still add without a limit. Default 0.1. */
  minRelativeGrowth?: number;
  /** Slower growth is ignored. Default 4096 B/s (14 MiB/h). */
  minSlopeBytesPerSec?: number;
  /** A window's rise (slope × length) must reach this. Default 2 MiB. */
  minRiseBytes?: number;
  /** Recent half's slope must be at least this share of the older half's. Default 0.25. */
  minRecentSlopeRatio?: number;
  /** Resolve when the last this-long shows no growth. Default 300 s. */
  resolveAfterSec?: number;
  /** Confidence under which the resolve window counts as not growing. Default 0.8. */
  continueConfidence?: number;
  /** Fewest seconds between 'update' events. Default 5 s. */
  minUpdateIntervalSec?: number;
  /** An 'update' is sent at least this often while open. Default 60 s. */
  heartbeatSec?: number;
  /** Relative change of ETA or slope that warrants an 'update'. Default 0.2. */
  etaChangeFraction?: number;
  /** Smallest sudden fall (over one or two samples) that counts as a drop (GC, burst end); it must also beat 5× the noise. Default 1 MiB. */
  minDropBytes?: number;
  /** Drops must also exceed this share of the level. Default 0.01. */
  dropRelative?: number;
  /** Gaps between drops longer than this are not a sawtooth period (one-off releases). Default 300 s. */
  maxPeriodSec?: number;
  warn?: (msg: string) => void;
}

export interface GrowthState {
  key: string;
  status: 'growing';
  slopeBytesPerSec: number;
  currentBytes: number;
  limitBytes: number | null;
  /** Seconds until the limit at this slope; null without a limit. 0 when at or over it. */
  etaSec: number | null;
  /** One-sided Mann–Kendall confidence (serial-correlation corrected) of the reported window. */
  confidence: number;
  windowStartMs: number;
  windowEndMs: number;
  firstDetectedMs: number;
  /** Why it opened: the time to the limit was short for the evidence seen, or growth was sustained. */
  basis: 'time-to-limit' | 'sustained';
  /** Longest sawtooth period (s) seen recently, 0 when none: the ceiling spans it, and so do the floor's buckets when its cycles are big enough to matter. */
  sawtoothPeriodSec: number;
}

export type GrowthEvent =
  | { kind: 'open' | 'update'; state: GrowthState }
  | { kind: 'resolve'; key: string; atMs: number; reason: string };

type Settings = Required<Omit<GrowthOptions, 'warn'>>;

const MiB = 1024 * 1024;
const DEFAULTS: Settings = {
  windowSec: 3600,
  minWindowSec: 10,
  rawSec: 180,
  floorBucketSec: 10,
  maxPoints: 48,
  minPoints: 8,
  warmupSec: 30,
  confidence: 0.99,
  evidenceFraction: 0.2,
  warmupEvidenceFraction: 0.5,
  sustainedSec: 1800,
  minRelativeGrowth: 0.1,
  minSlopeBytesPerSec: 4096,
  minRiseBytes: 2 * MiB,
  minRecentSlopeRatio: 0.25,
  resolveAfterSec: 300,
  continueConfidence: 0.8,
  minUpdateIntervalSec: 5,
  heartbeatSec: 60,
  etaChangeFraction: 0.2,
  minDropBytes: 1 * MiB,
  dropRelative: 0.01,
  maxPeriodSec: 300,
};

const DROP_RING = 64;
/** Drops smaller than this share of a window's range are a ripple that cannot fake its rise. */
const RIPPLE_SHARE = 0.1;
const DIFF_EWMA_ALPHA = 0.05;

/** Floor points of one window, times in seconds since the key's origin. */
interface FloorWindow {
  lengthSec: number;
  bucketSec: number;
  /** Longest recent sawtooth period of any size (for the ceiling); the buckets may ignore small ones. */
  periodSec: number;
  times: number[];
  values: number[];
  /** Changes whenever the points could have changed: the analysis cache key. */
  signature: string;
}

/** Everything about a window that does not depend on "now" beyond its points. */
interface WindowStats {
  signature: string;
  mk: MannKendallResult;
  slopeFull: number;
  interceptFull: number;
  /** Index of the first point of the rising part (see risingStart). */
  risingFrom: number;
  /** Index of the first point of the recent half of the rising part. */
  recentFrom: number;
  /** Time of the first point of the rising part at or above half the window's rise. */
  halfRiseAt: number;
  /** Theil–Sen slope of the rising part. */
  slopeRising: number;
  /** Theil–Sen slopes of the older and the recent half of the rising part. */
  slopeOld: number;
  slopeRecent: number;
  /** 2 × standard error of slopeRecent − slopeOld. */
  slopeDiffTolerance: number;
  meanTimeOld: number;
  meanTimeRecent: number;
}

interface Judgement {
  basis: GrowthState['basis'];
  floor: FloorWindow;
  stats: WindowStats;
  slope: number;
  consistent: boolean;
  ceiling: number;
  etaSec: number | null;
  startSec: number;
  endSec: number;
}

interface OpenGrowth {
  state: GrowthState;
  baselineBytes: number;
  lastEmitMs: number;
  lastEmitEta: number | null;
  lastEmitSlope: number;
  lastEvalSec: number;
}

/** Times and sizes of the last few drops of one kind; the gaps between them are sawtooth periods. */
class DropLog {
  private readonly times = new Float64Array(DROP_RING);
  private readonly sizes = new Float64Array(DROP_RING);
  private head = 0;
  private size = 0;

  add(t: number, bytes: number): void {
    this.times[this.head] = t;
    this.sizes[this.head] = bytes;
    this.head = (this.head + 1) % DROP_RING;
    if (this.size < DROP_RING) this.size++;
  }

  clear(): void {
    this.head = this.size = 0;
  }

  /**
   * Longest gap g (≤ maxGap) between consecutive drops of at least `minBytes` whose later drop
   * is recent enough to still describe a window of `lengthSec` ending now: inside the window, or
   * within 3g of now (a window shorter than the cycle sits on one ramp and must not be judged on
   * its own). Drops much smaller than what the window rose cannot fake that rise: they are left
   * out, so a small GC ripple (often detected only now and then, which makes its gaps look long)
   * does not blind the detector to a fast leak.
   */
  period(now: number, lengthSec: number, maxGap: number, minBytes: number): number {
    let period = 0;
    let prev = Number.NaN;
    for (let i = 0; i < this.size; i++) {
      const j = (this.head - this.size + i + DROP_RING) % DROP_RING;
      if ((this.sizes[j] as number) < minBytes) continue;
      const t = this.times[j] as number;
      const gap = t - prev;
      if (gap <= maxGap && gap > period && t > now - Math.max(lengthSec, 3 * gap)) period = gap;
      prev = t;
    }
    return period;
  }
}

/** Per-target history: a raw ring, a bucket ring and the drops seen. */
class Series {
  readonly originMs: number;
  firstSec: number;
  lastSec = Number.NEGATIVE_INFINITY;
  lastValue = 0;
  lastLimit: number | null = null;
  // raw ring
  readonly rawT: Float64Array;
  readonly rawV: Float64Array;
  rawHead = 0; // next write
  rawSize = 0;
  // bucket ring (ids ascending)
  readonly bId: Float64Array;
  readonly bTMin: Float64Array;
  readonly bVMin: Float64Array;
  readonly bTMax: Float64Array;
  readonly bVMax: Float64Array;
  bHead = 0;
  bSize = 0;
  // drops: sudden falls (a GC cycle, a burst ending), and falls of the troughs themselves below
  // earlier troughs (a major GC under minor ones): both set the floor's bucket length
  readonly drops = new DropLog();
  readonly levelDrops = new DropLog();
  minSinceDrop = Number.POSITIVE_INFINITY;
  dropAtLast = false;
  /** The value before lastValue. */
  prevValue = 0;
  troughMax = Number.NEGATIVE_INFINITY;
  levelDropInCycle = false;
  /** EWMA of Δ per sample, and of |Δ − that|: the noise around the trend, drops clipped out. */
  diffMean = 0;
  diffScale = 0;
  open: OpenGrowth | null = null;
  lastResolveSec = Number.NEGATIVE_INFINITY;
  readonly cache = new Map<number, WindowStats>();
  /** Bucket-based floors by window (−1: whole history), rebuilt when a new base bucket begins. */
  private readonly floorCache = new Map<number, { newestBucket: number; floor: FloorWindow | null }>();

  constructor(atMs: number, readonly s: Settings) {
    this.originMs = atMs;
    this.firstSec = 0;
    const rawCap = Math.ceil(s.rawSec) + 8;
    this.rawT = new Float64Array(rawCap);
    this.rawV = new Float64Array(rawCap);
    const bCap = Math.ceil(s.windowSec / s.floorBucketSec) + 2;
    this.bId = new Float64Array(bCap);
    this.bTMin = new Float64Array(bCap);
    this.bVMin = new Float64Array(bCap);
    this.bTMax = new Float64Array(bCap);
    this.bVMax = new Float64Array(bCap);
  }

  reset(tSec: number): void {
    this.firstSec = tSec;
    this.rawHead = this.rawSize = 0;
    this.bHead = this.bSize = 0;
    this.drops.clear();
    this.levelDrops.clear();
    this.dropAtLast = false;
    this.minSinceDrop = Number.POSITIVE_INFINITY;
    this.troughMax = Number.NEGATIVE_INFINITY;
    this.levelDropInCycle = false;
    this.diffMean = 0;
    this.diffScale = 0;
    this.cache.clear();
    this.floorCache.clear();
  }

  push(t: number, v: number): void {
    // noise scale: how much Δ strays from its own average (a steady ramp is not noise), with
    // outliers clipped so that drops and steps do not inflate it
    if (this.rawSize > 0) {
      const delta = v - this.lastValue;
      const dev = Math.abs(delta - this.diffMean);
      const limit = this.diffScale > 0 ? 4 * this.diffScale : Number.POSITIVE_INFINITY;
      this.diffScale += DIFF_EWMA_ALPHA * (Math.min(dev, limit) - this.diffScale);
      this.diffMean += DIFF_EWMA_ALPHA * (Math.max(-limit, Math.min(limit, delta)) - this.diffMean);
    }
    // a drop is a sudden fall (over one or two samples) well beyond the noise: a GC, a burst
    // ending. Slow declines and noise dips are not drops; a false drop only costs resolution.
    const threshold = Math.max(this.s.minDropBytes, 5 * this.diffScale, this.s.dropRelative * this.lastValue);
    const fall1 = this.rawSize > 0 ? this.lastValue - v + this.diffMean : 0;
    const fall2 = this.rawSize > 1 && !this.dropAtLast ? this.prevValue - v + 2 * this.diffMean : 0;
    this.dropAtLast = false;
    if (fall1 > threshold || fall2 > threshold) {
      this.dropAtLast = true;
      this.drops.add(t, Math.max(fall1, fall2));
      // the cycle that just ended had its trough at minSinceDrop
      if (Number.isFinite(this.minSinceDrop)) this.troughMax = Math.max(this.troughMax, this.minSinceDrop);
      this.minSinceDrop = v;
      this.levelDropInCycle = false;
    } else if (v < this.minSinceDrop) {
      this.minSinceDrop = v;
    }
    if (!this.levelDropInCycle && this.troughMax - this.minSinceDrop > threshold) {
      this.levelDrops.add(t, this.troughMax - this.minSinceDrop);
      this.levelDropInCycle = true;
      this.troughMax = this.minSinceDrop;
    }

    const cap = this.rawT.length;
    this.rawT[this.rawHead] = t;
    this.rawV[this.rawHead] = v;
    this.rawHead = (this.rawHead + 1) % cap;
    if (this.rawSize < cap) this.rawSize++;

    const id = Math.floor(t / this.s.floorBucketSec);
    const bCap = this.bId.length;
    const newest = (this.bHead - 1 + bCap) % bCap;
    if (this.bSize > 0 && this.bId[newest] === id) {
      if (v < (this.bVMin[newest] as number)) {
        this.bVMin[newest] = v;
        this.bTMin[newest] = t;
      }
      if (v > (this.bVMax[newest] as number)) {
        this.bVMax[newest] = v;
        this.bTMax[newest] = t;
      }
    } else {
      this.bId[this.bHead] = id;
      this.bVMin[this.bHead] = v;
      this.bTMin[this.bHead] = t;
      this.bVMax[this.bHead] = v;
      this.bTMax[this.bHead] = t;
      this.bHead = (this.bHead + 1) % bCap;
      if (this.bSize < bCap) this.bSize++;
    }
    this.lastSec = t;
    this.prevValue = this.lastValue;
    this.lastValue = v;
  }

  rawAt(i: number): number {
    // i = 0 oldest
    const cap = this.rawT.length;
    return (this.rawHead - this.rawSize + i + cap) % cap;
  }

  bucketAt(i: number): number {
    const cap = this.bId.length;
    return (this.bHead - this.bSize + i + cap) % cap;
  }

  rawCoverageSec(): number {
    if (this.rawSize === 0) return 0;
    return this.lastSec - (this.rawT[this.rawAt(0)] as number);
  }

  /** Start of the history windows may use (see floorWindow). */
  usableFromSec(): number {
    return this.lastSec - this.firstSec >= 2 * this.s.warmupSec ? this.firstSec + this.s.warmupSec : this.firstSec;
  }

  /** Sawtooth period relevant to a window of `lengthSec` ending now that rose by `riseBytes`; 0 when none. */
  sawtoothPeriod(lengthSec: number, riseBytes: number): number {
    const now = this.lastSec;
    const max = this.s.maxPeriodSec;
    const minBytes = RIPPLE_SHARE * riseBytes;
    return Math.max(this.drops.period(now, lengthSec, max, minBytes), this.levelDrops.period(now, lengthSec, max, minBytes));
  }

  /** Highest minus lowest sample in the last `lengthSec` (raw, or bucket extremes beyond the raw ring). */
  range(lengthSec: number, useRaw: boolean): number {
    const since = this.lastSec - lengthSec;
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    if (useRaw) {
      for (let i = this.rawSize - 1; i >= 0; i--) {
        const j = this.rawAt(i);
        if ((this.rawT[j] as number) < since) break;
        const v = this.rawV[j] as number;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    } else {
      for (let i = this.bSize - 1; i >= 0; i--) {
        const j = this.bucketAt(i);
        if ((this.bId[j] as number) * this.s.floorBucketSec < since) break;
        if ((this.bVMin[j] as number) < lo) lo = this.bVMin[j] as number;
        if ((this.bVMax[j] as number) > hi) hi = this.bVMax[j] as number;
      }
    }
    return hi > lo ? hi - lo : 0;
  }

  /**
   * Floor points of the window of `lengthSec` ending now. With a cacheKey, a bucket-based floor
   * is rebuilt only when a new base bucket begins (its resolution is a bucket anyway).
   */
  floorWindow(lengthSec: number, cacheKey: number | null = null): FloorWindow | null {
    const s = this.s;
    const now = this.lastSec;
    // once the warm-up is as far behind as it lasted, windows no longer reach back into it: a
    // start-up rise that has long settled says nothing about growth now
    const from = this.usableFromSec();
    if (now - from < lengthSec * 0.95) return null;
    const useRaw = lengthSec <= s.rawSec && lengthSec <= this.rawCoverageSec() + 1;
    if (!useRaw && cacheKey !== null) {
      const newestBucket = this.bSize > 0 ? (this.bId[(this.bHead - 1 + this.bId.length) % this.bId.length] as number) : Number.NaN;
      const cached = this.floorCache.get(cacheKey);
      if (cached && cached.newestBucket === newestBucket) return cached.floor;
      const floor = this.buildFloor(lengthSec, from, useRaw);
      this.floorCache.set(cacheKey, { newestBucket, floor });
      return floor;
    }
    return this.buildFloor(lengthSec, from, useRaw);
  }

  private buildFloor(lengthSec: number, from: number, useRaw: boolean): FloorWindow | null {
    const s = this.s;
    const now = this.lastSec;
    // the floor's buckets must span cycles big enough to fake this window's rise; the ceiling
    // (where the peaks are) must span any cycle at all
    const period = this.sawtoothPeriod(lengthSec, this.range(lengthSec, useRaw));
    const anyPeriod = this.sawtoothPeriod(lengthSec, 0);
    const resolution = useRaw ? 1 : s.floorBucketSec;
    let bucket = Math.max(lengthSec / s.maxPoints, period > 0 ? 1.25 * period : 0, resolution);
    bucket = Math.ceil(bucket / resolution - 1e-9) * resolution;
    const k = Math.floor(lengthSec / bucket + 1e-9);
    if (k < s.minPoints) return null;
    const gNow = Math.floor(now / bucket);
    // with a sawtooth the group still filling may not have reached its trough yet
    const lastGroup = period > 0 && bucket > resolution ? gNow - 1 : gNow;
    const firstGroup = lastGroup - k + 1;
    if (from > (firstGroup + 0.5) * bucket) return null;
    // newest first, stopping at the window's start: a short window costs its own length only
    const times: number[] = [];
    const values: number[] = [];
    let group = Number.NaN;
    const take = (t: number, v: number, g: number): void => {
      if (g > lastGroup) return;
      if (g !== group) {
        group = g;
        times.push(t);
        values.push(v);
      } else if (v <= (values[values.length - 1] as number)) {
        times[times.length - 1] = t;
        values[values.length - 1] = v;
      }
    };
    if (useRaw) {
      for (let i = this.rawSize - 1; i >= 0; i--) {
        const j = this.rawAt(i);
        const t = this.rawT[j] as number;
        const g = Math.floor(t / bucket);
        if (g < firstGroup || t < from) break;
        take(t, this.rawV[j] as number, g);
      }
    } else {
      const per = Math.round(bucket / s.floorBucketSec);
      for (let i = this.bSize - 1; i >= 0; i--) {
        const j = this.bucketAt(i);
        const t = this.bTMin[j] as number;
        const g = Math.floor((this.bId[j] as number) / per);
        if (g < firstGroup || t < from) break;
        take(t, this.bVMin[j] as number, g);
      }
    }
    times.reverse();
    values.reverse();
    if (times.length < s.minPoints) return null;
    const signature = `${bucket}:${lastGroup}:${times.length}:${values[values.length - 1]}:${values[0]}`;
    return { lengthSec, bucketSec: bucket, periodSec: anyPeriod, times, values, signature };
  }

  /** Highest sample of the last `spanSec`, carried forward to now along `slope`. */
  ceiling(slope: number, spanSec: number): number {
    const now = this.lastSec;
    let best = this.lastValue;
    if (spanSec <= this.rawCoverageSec()) {
      for (let i = this.rawSize - 1; i >= 0; i--) {
        const j = this.rawAt(i);
        const t = this.rawT[j] as number;
        if (t < now - spanSec) break;
        best = Math.max(best, (this.rawV[j] as number) + slope * (now - t));
      }
    } else {
      for (let i = this.bSize - 1; i >= 0; i--) {
        const j = this.bucketAt(i);
        const t = this.bTMax[j] as number;
        if ((this.bId[j] as number) * this.s.floorBucketSec + this.s.floorBucketSec < now - spanSec) break;
        best = Math.max(best, (this.bVMax[j] as number) + slope * (now - t));
      }
    }
    return best;
  }
}

function computeStats(floor: FloorWindow): WindowStats {
  const { times, values } = floor;
  const n = times.length;
  const full = theilSen(times, values);
  const factor = serialCorrelationFactor(times, values, full.slope);
  const mk = mannKendall(values, factor);
  // the rising part: from the last point still near the window's minimum. Slopes and the
  // "still rising?" comparison use it, so a flat stretch before an onset, or a burst that
  // rose and stopped, is judged on what it did, not on where the window happened to start.
  const from = risingStart(values);
  const mid = from + ((n - from) >> 1);
  // when the floor first got halfway up its rise: a steady rise took as long for each half, a
  // step took no time for its upper half however long the window
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  let halfRiseAt = times[n - 1] as number;
  for (let i = from; i < n; i++) {
    if ((values[i] as number) >= lo + 0.5 * (hi - lo)) {
      halfRiseAt = times[i] as number;
      break;
    }
  }
  const rising = from === 0 ? full : theilSen(times, values, from, n);
  const old = theilSen(times, values, from, mid);
  const recent = theilSen(times, values, mid, n);
  const seOld = halfSlopeError(times, values, from, mid, old.slope, old.intercept);
  const seRecent = halfSlopeError(times, values, mid, n, recent.slope, recent.intercept);
  return {
    signature: floor.signature,
    mk,
    slopeFull: full.slope,
    interceptFull: full.intercept,
    risingFrom: from,
    recentFrom: mid,
    halfRiseAt,
    slopeRising: rising.slope,
    slopeOld: old.slope,
    slopeRecent: recent.slope,
    slopeDiffTolerance: 2 * Math.sqrt(seOld * seOld + seRecent * seRecent),
    meanTimeOld: meanOf(times, from, mid),
    meanTimeRecent: meanOf(times, mid, n),
  };
}

/** Index of the last point within 10 % of the window's rise above its minimum. */
function risingStart(values: number[]): number {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const near = lo + 0.1 * (hi - lo);
  let from = 0;
  for (let i = 0; i < values.length; i++) if ((values[i] as number) <= near) from = i;
  return from;
}

function meanOf(xs: number[], from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += xs[i] as number;
  return sum / Math.max(1, to - from);
}

/** Standard error of a half-window slope from the robust scale (1.4826·MAD) of its residuals. */
function halfSlopeError(times: number[], values: number[], from: number, to: number, slope: number, intercept: number): number {
  const m = to - from;
  if (m < 3 || !Number.isFinite(slope)) return Number.POSITIVE_INFINITY;
  const resid: number[] = [];
  for (let i = from; i < to; i++) resid.push(Math.abs((values[i] as number) - (intercept + slope * (times[i] as number))));
  resid.sort((a, b) => a - b);
  const mad = resid[resid.length >> 1] as number;
  const sigma = 1.4826 * mad;
  const mean = meanOf(times, from, to);
  let stt = 0;
  for (let i = from; i < to; i++) stt += ((times[i] as number) - mean) ** 2;
  // Theil–Sen is ~90 % as efficient as least squares on Gaussian noise
  return stt > 0 ? (1.1 * sigma) / Math.sqrt(stt) : Number.POSITIVE_INFINITY;
}

function validate(options: GrowthOptions): Settings {
  const s: Settings = { ...DEFAULTS };
  for (const [name, value] of Object.entries(options)) {
    if (name === 'warn' || value === undefined) continue;
    if (!(name in DEFAULTS)) throw new RangeError(`GrowthDetector: unknown option ${name}`);
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new RangeError(`GrowthDetector: option ${name} must be a finite number ≥ 0, got ${String(value)}`);
    }
    (s as Record<string, number>)[name] = value;
  }
  const positive: Array<keyof Settings> = ['windowSec', 'minWindowSec', 'rawSec', 'floorBucketSec', 'maxPoints', 'resolveAfterSec'];
  for (const name of positive) {
    if (!(s[name] > 0)) throw new RangeError(`GrowthDetector: option ${name} must be > 0`);
  }
  if (s.minPoints < 4) throw new RangeError('GrowthDetector: minPoints must be ≥ 4');
  if (s.maxPoints < s.minPoints) throw new RangeError('GrowthDetector: maxPoints must be ≥ minPoints');
  if (s.minWindowSec > s.windowSec) throw new RangeError('GrowthDetector: minWindowSec must be ≤ windowSec');
  for (const name of ['confidence', 'continueConfidence'] as const) {
    if (!(s[name] > 0.5 && s[name] < 1)) throw new RangeError(`GrowthDetector: ${name} must be in (0.5, 1)`);
  }
  return s;
}

export class GrowthDetector {
  private readonly s: Settings;
  private readonly warn: (msg: string) => void;
  private readonly series = new Map<string, Series>();
  private readonly ladder: number[];

  constructor(options: GrowthOptions = {}) {
    this.s = validate(options);
    this.warn = options.warn ?? (() => {});
    const ladder: number[] = [];
    for (let L = this.s.minWindowSec; L < this.s.windowSec; L *= 1.5) ladder.push(L);
    ladder.push(this.s.windowSec);
    this.ladder = ladder;
  }

  /** Number of targets with history. */
  get size(): number {
    return this.series.size;
  }

  /** The open growth of a target, or null. */
  state(key: string): GrowthState | null {
    const open = this.series.get(key)?.open;
    return open ? { ...open.state } : null;
  }

  /** Drop a target's history (it is gone). No event: the caller knows why it went. */
  forget(key: string): void {
    this.series.delete(key);
  }

  observe(key: string, atMs: number, valueBytes: number, limitBytes: number | null): GrowthEvent[] {
    if (!Number.isFinite(atMs)) {
      this.warn(`growth: ${key}: ignoring sample with non-finite time ${String(atMs)}`);
      return [];
    }
    if (!Number.isFinite(valueBytes) || valueBytes < 0) {
      this.warn(`growth: ${key}: ignoring sample with invalid value ${String(valueBytes)}`);
      return [];
    }
    let limit = limitBytes;
    if (limit !== null && (!Number.isFinite(limit) || limit <= 0)) {
      this.warn(`growth: ${key}: treating invalid limit ${String(limit)} as no limit`);
      limit = null;
    }
    let series = this.series.get(key);
    if (!series) {
      series = new Series(atMs, this.s);
      this.series.set(key, series);
    }
    const t = (atMs - series.originMs) / 1000;
    if (t <= series.lastSec) {
      this.warn(`growth: ${key}: ignoring sample at ${atMs}, not after the previous one`);
      return [];
    }
    const events: GrowthEvent[] = [];
    if (series.rawSize > 0 && t - series.lastSec > this.s.windowSec) {
      // sampler stopped for longer than we look back: the old history says nothing about now
      if (series.open) events.push(this.resolve(series, key, atMs, 'no samples for longer than the window'));
      series.reset(t);
    }
    series.push(t, valueBytes);
    series.lastLimit = limit;
    this.evaluate(series, key, atMs, events);
    return events;
  }

  private resolve(series: Series, key: string, atMs: number, reason: string): GrowthEvent {
    series.open = null;
    series.lastResolveSec = series.lastSec;
    return { kind: 'resolve', key, atMs, reason };
  }

  private evaluate(series: Series, key: string, atMs: number, events: GrowthEvent[]): void {
    const s = this.s;
    const now = series.lastSec;
    const value = series.lastValue;
    const limit = series.lastLimit;
    const open = series.open;

    if (open && value < open.baselineBytes - Math.max(s.minDropBytes, 6 * series.diffScale)) {
      events.push(this.resolve(series, key, atMs, 'usage fell below where the growth began (restart or release)'));
      series.reset(now);
      series.push(now, value);
      return;
    }

    if (open && now - open.lastEvalSec < s.minUpdateIntervalSec) {
      // while open, the full judgement runs at the update cadence: nothing is published in between
      open.state.currentBytes = value;
      return;
    }
    if (open) open.lastEvalSec = now;
    const warmupEnd = series.firstSec + s.warmupSec;
    const lenient = Math.min(s.warmupEvidenceFraction, s.evidenceFraction);
    const judged: Judgement[] = [];
    const openers: Judgement[] = [];
    for (const L of this.windowsFor(now - series.usableFromSec())) {
      const fixed = this.ladder.includes(L);
      const cacheKey = fixed ? L : -1; // -1: the whole-history window, whose length moves every second
      const floor = series.floorWindow(L, cacheKey);
      if (!floor) continue;
      const rise = maxMinusMin(floor.values);
      // cheap screen: most targets are flat most of the time
      if (2.5 * rise < s.minRiseBytes) continue;
      if (!open) {
        const urgentPossible = limit !== null && rise >= lenient * Math.max(0, limit - value - 2.5 * rise);
        const sustainedPossible = L >= s.sustainedSec && 2.5 * rise >= s.minRelativeGrowth * Math.min(...floor.values);
        if (!urgentPossible && !sustainedPossible) continue;
      }
      let stats = series.cache.get(cacheKey);
      if (!stats || stats.signature !== floor.signature) {
        stats = computeStats(floor);
        series.cache.set(cacheKey, stats);
      }
      const j = this.judge(series, floor, stats, limit);
      if (!j) continue;
      judged.push(j);
      if (!open) {
        // evidence: the rise actually seen (not slope × length, which a step inflates) must be
        // a fair share of the headroom, or the growth must have gone on for sustainedSec
        const since = floor.times[stats.risingFrom] as number;
        // how long the rise took: from its start, but no longer than twice its upper half took
        const took = Math.min(now - since, 2 * (now - stats.halfRiseAt));
        const seen = Math.min(j.slope * took, rise);
        // growth that began during warm-up is probably warm-up: it needs more of the headroom
        const fraction = since < warmupEnd ? s.warmupEvidenceFraction : s.evidenceFraction;
        const urgent = limit !== null && took >= s.minWindowSec && seen >= fraction * Math.max(0, limit - j.ceiling);
        const floorStart = stats.interceptFull + stats.slopeFull * j.startSec;
        const sustained = L >= s.sustainedSec && stats.slopeFull * (j.endSec - j.startSec) >= s.minRelativeGrowth * Math.max(floorStart, 1);
        if (urgent || sustained) {
          j.basis = urgent ? 'time-to-limit' : 'sustained';
          openers.push(j);
        }
      }
    }

    if (!open) {
      const chosen = chooseReported(openers);
      if (!chosen) return;
      // just after a resolve, long windows still see the old growth: re-open only on growth the
      // resolve test itself would accept
      if (series.lastResolveSec > now - s.windowSec && !this.stillGrowing(series)) return;
      const state = this.stateOf(series, key, chosen, atMs, atMs, chosen.basis);
      const baseline = Math.min(...openers.map((o) => Math.min(...o.floor.values)));
      series.open = {
        state,
        baselineBytes: baseline,
        lastEmitMs: atMs,
        lastEmitEta: state.etaSec,
        lastEmitSlope: state.slopeBytesPerSec,
        lastEvalSec: now,
      };
      events.push({ kind: 'open', state: { ...state } });
      return;
    }

    if (!judged.some((j) => j.floor.lengthSec <= s.resolveAfterSec) && !this.stillGrowing(series)) {
      events.push(this.resolve(series, key, atMs, `no growth in the last ${Math.round(s.resolveAfterSec)} s`));
      return;
    }
    const chosen = chooseReported(judged);
    if (chosen) {
      open.state = this.stateOf(series, key, chosen, open.state.firstDetectedMs, atMs, open.state.basis);
    } else {
      // no window passes right now: keep the last slope, move the clock
      const st = open.state;
      st.currentBytes = value;
      st.limitBytes = limit;
      const fitted = (atMs - st.windowStartMs) / 1000;
      const ceiling = series.ceiling(st.slopeBytesPerSec, Math.max(1, Math.min(Math.max(5, 1.5 * st.sawtoothPeriodSec), fitted)));
      st.etaSec = limit === null ? null : Math.max(0, (limit - ceiling) / st.slopeBytesPerSec);
    }
    const st = open.state;
    const sinceEmit = (atMs - open.lastEmitMs) / 1000;
    if (sinceEmit < s.minUpdateIntervalSec) return;
    const etaChanged =
      (st.etaSec === null) !== (open.lastEmitEta === null) ||
      (st.etaSec !== null && open.lastEmitEta !== null && Math.abs(st.etaSec - open.lastEmitEta) > s.etaChangeFraction * Math.max(open.lastEmitEta, 1));
    const slopeChanged = Math.abs(st.slopeBytesPerSec - open.lastEmitSlope) > s.etaChangeFraction * open.lastEmitSlope;
    if (etaChanged || slopeChanged || sinceEmit >= s.heartbeatSec) {
      open.lastEmitMs = atMs;
      open.lastEmitEta = st.etaSec;
      open.lastEmitSlope = st.slopeBytesPerSec;
      events.push({ kind: 'update', state: { ...st } });
    }
  }

  /** The gates every window must pass, whatever the evidence rule; null when it fails one. */
  private judge(series: Series, floor: FloorWindow, stats: WindowStats, limit: number | null): Judgement | null {
    const s = this.s;
    const n = floor.times.length;
    if (n < s.minPoints || stats.mk.confidence < s.confidence) return null;
    if (n - stats.risingFrom < Math.max(4, s.minPoints / 2)) return null;
    const { slopeFull, slopeRising, slopeOld, slopeRecent } = stats;
    if (!(slopeFull > 0) || !(slopeRising > 0) || !(slopeRecent > 0)) return null;
    if (slopeOld > 0 && slopeRecent < s.minRecentSlopeRatio * slopeOld) return null;
    const consistent = Math.abs(slopeRecent - slopeOld) <= stats.slopeDiffTolerance;
    const slope = consistent ? slopeRising : slopeRecent;
    const startSec = floor.times[0] as number;
    const endSec = series.lastSec;
    if (slope < s.minSlopeBytesPerSec || slope * floor.lengthSec < s.minRiseBytes) return null;
    // peaks of the last cycle, carried forward along the slope — but never from before the stretch
    // this slope was fitted on (a burst's slope carried over minutes would invent a huge ceiling)
    const fittedFrom = floor.times[consistent ? stats.risingFrom : stats.recentFrom] as number;
    const ceiling = series.ceiling(slope, Math.max(1, Math.min(Math.max(5, 1.5 * floor.periodSec), series.lastSec - fittedFrom)));
    if (!consistent && slopeRecent < slopeOld) {
      // levelling off: project the growth still to come if the slope keeps decaying like this
      const optimistic = Math.min(slopeOld, slopeRecent + stats.slopeDiffTolerance);
      const q = optimistic / slopeOld;
      if (q < 1) {
        const tau = (stats.meanTimeRecent - stats.meanTimeOld) / Math.log(1 / q);
        const remaining = optimistic * tau * Math.exp(-(series.lastSec - stats.meanTimeRecent) / tau);
        const saturating = limit !== null ? ceiling + remaining < limit : remaining < s.minRelativeGrowth * ceiling;
        if (saturating) return null;
      }
    }
    const etaSec = limit === null ? null : Math.max(0, (limit - ceiling) / slope);
    return { basis: 'time-to-limit', floor, stats, slope, consistent, ceiling, etaSec, startSec, endSec };
  }

  /** The ladder of window lengths that fit in `age`, plus the whole history when it falls between rungs. */
  private windowsFor(age: number): number[] {
    const out: number[] = [];
    for (const L of this.ladder) {
      if (L > age + 1) break;
      out.push(L);
    }
    const last = out[out.length - 1];
    if (age >= this.s.minWindowSec && age < this.s.windowSec && (last === undefined || age > last * 1.1)) out.push(age);
    return out;
  }

  /** Whether the last resolveAfterSec (longer with a slow sawtooth) still shows growth. */
  private stillGrowing(series: Series): boolean {
    const s = this.s;
    let length = s.resolveAfterSec;
    let floor: FloorWindow | null = null;
    while (length <= s.windowSec) {
      const usable = series.lastSec - series.usableFromSec();
      floor = series.floorWindow(Math.min(length, usable));
      if (floor) break;
      if (length >= usable) break;
      length *= 1.5;
    }
    if (!floor) return true; // too little history to say it stopped
    const fit = theilSen(floor.times, floor.values);
    const mk = mannKendall(floor.values, serialCorrelationFactor(floor.times, floor.values, fit.slope));
    return mk.confidence >= s.continueConfidence && fit.slope >= s.minSlopeBytesPerSec;
  }

  private stateOf(series: Series, key: string, j: Judgement, firstDetectedMs: number, atMs: number, basis: GrowthState['basis']): GrowthState {
    return {
      key,
      status: 'growing',
      slopeBytesPerSec: j.slope,
      currentBytes: series.lastValue,
      limitBytes: series.lastLimit,
      etaSec: j.etaSec,
      confidence: j.stats.mk.confidence,
      // where the growth the slope was fitted on began (the rising part of the window)
      windowStartMs: series.originMs + (j.floor.times[j.stats.risingFrom] as number) * 1000,
      windowEndMs: atMs,
      firstDetectedMs,
      basis,
      sawtoothPeriodSec: j.floor.periodSec,
    };
  }
}

/**
 * The window to report slope and ETA from: the longest one whose halves agree (a straight
 * stretch: most points, least noise), else the shortest (the most recent behaviour).
 */
function chooseReported(judged: Judgement[]): Judgement | null {
  let best: Judgement | null = null;
  for (const j of judged) if (j.consistent && (!best || j.floor.lengthSec > best.floor.lengthSec)) best = j;
  if (best) return best;
  for (const j of judged) if (!best || j.floor.lengthSec < best.floor.lengthSec) best = j;
  return best;
}

function maxMinusMin(values: number[]): number {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return hi - lo;
}
