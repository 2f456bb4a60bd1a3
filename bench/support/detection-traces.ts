// The labelled trace suite for the detection benchmark: memory series at 1 Hz with seeded noise,
// leaks shaped from the incident seeds and controls that must stay silent. Every leak trace ends
// at the first sample at or over its limit (the OOM kill), so the OOM time is known exactly.
//
// Shapes (MiB; rates per second):
//  leaks
//   fast-linear     seed 000's child: ~9 MiB interpreter, then ~10 MiB steps each second into 192
//   slow-linear     seed 002's payment cache: JVM warm-up to ~220, then a creep that reaches 512 in 40–90 min
//   stepwise        a service that keeps each batch's results: 3–12 MiB steps every 30–180 s
//   sawtooth-leak   a Node/V8 GC sawtooth (15–40 MiB) whose floor creeps up to 512 in 20–60 min
//   seed-003        data-processor: ~18 MiB Python, then 0.6–1.0 MiB/s from 10 s into 128
//   late-onset      a steady service (small sawtooth) for 10–20 min, then 0.1–3 MiB/s into 512
//  controls (30 min; caches 60 min)
//   sawtooth        Node/V8: minor cycles of 10–40 MiB at 0.3–3 MiB/s, promotion, major GCs
//   warmup-plateau  exponential approach (τ 3–30 s) to 20–50 % of the limit, then steady
//   bursty          requests that take 10–60 MiB for seconds to a minute, then give it back
//   cache-plateau   a bounded cache filling (τ 1–10 min) by 50–150 MiB on a 80–150 MiB service
//   fixed-seeds     the seeds with their fixes: 003's 100-event ring, 002's bounded cache, 000's deque(maxlen=3)

import { prng } from '../../common/prng.js';
export { prng };

export const MiB = 1024 * 1024;
export const TRACE_START_MS = Date.UTC(2025, 4, 17, 4, 52, 9);

export interface Trace {
  id: string;
  family: string;
  kind: 'leak' | 'control';
  seed: number;
  /** What this variant is, in a few words (for the JSON report). */
  description: string;
  startMs: number;
  stepMs: number;
  /** One value per step, bytes. */
  valuesBytes: Float64Array;
  limitBytes: number | null;
  /** When the leak begins (leaks only). */
  leakStartMs: number | null;
  /** Time of the first sample at or over the limit (leaks only). */
  oomMs: number | null;
}


type Rng = () => number;
const uniform = (rng: Rng, lo: number, hi: number): number => lo + (hi - lo) * rng();
function gauss(rng: Rng): number {
  const u = Math.max(rng(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** A GC sawtooth: ramps at `rate` until a jittered amplitude, then drops back. */
class Sawtooth {
  private rise = 0;
  private target: number;
  constructor(
    private readonly rng: Rng,
    private readonly amplitude: number,
    private readonly rate: number,
    phase = rng(),
  ) {
    this.target = amplitude * uniform(rng, 0.75, 1.25);
    this.rise = this.target * phase;
  }
  /** Value above the floor now; advances one second. */
  step(): number {
    const out = this.rise;
    this.rise += this.rate * uniform(this.rng, 0.6, 1.4);
    if (this.rise >= this.target) {
      this.rise = 0;
      this.target = this.amplitude * uniform(this.rng, 0.75, 1.25);
    }
    return out;
  }
}

interface Built {
  description: string;
  limitBytes: number | null;
  leakStartSec: number | null;
  /** Returns the value at second t (bytes), called for t = 0, 1, 2, … in order. */
  at: (t: number) => number;
  durationSec: number;
}

function finish(family: string, kind: 'leak' | 'control', seed: number, index: number, b: Built): Trace {
  const values: number[] = [];
  let oomSec: number | null = null;
  for (let t = 0; t < b.durationSec; t++) {
    const v = Math.max(0, b.at(t));
    values.push(v);
    if (b.limitBytes !== null && v >= b.limitBytes) {
      oomSec = t;
      break;
    }
  }
  if (kind === 'leak' && oomSec === null) throw new Error(`${family}#${index}: leak did not reach its limit in ${b.durationSec} s`);
  if (kind === 'control' && oomSec !== null) throw new Error(`${family}#${index}: control reached its limit at ${oomSec} s`);
  return {
    id: `${family}-${index}`,
    family,
    kind,
    seed,
    description: b.description,
    startMs: TRACE_START_MS,
    stepMs: 1000,
    valuesBytes: Float64Array.from(values),
    limitBytes: b.limitBytes,
    leakStartMs: b.leakStartSec === null ? null : TRACE_START_MS + b.leakStartSec * 1000,
    oomMs: oomSec === null ? null : TRACE_START_MS + oomSec * 1000,
  };
}

const fmt = (x: number): string => (Math.round(x * 10) / 10).toString();

// ---- leaks ----

function fastLinear(rng: Rng): Built {
  const limit = 192 * MiB;
  const interp = uniform(rng, 7, 11) * MiB;
  const step = uniform(rng, 8, 12);
  let held = 0;
  return {
    description: `interpreter ${fmt(interp / MiB)} MiB, then ~${fmt(step)} MiB steps/s into 192 MiB`,
    limitBytes: limit,
    leakStartSec: 1,
    durationSec: 120,
    at: (t) => {
      if (t === 0) return 3 * MiB;
      if (t >= 2) held += step * uniform(rng, 0.5, 1.5) * MiB;
      return interp + held + 0.1 * MiB * gauss(rng);
    },
  };
}

function slowLinear(rng: Rng): Built {
  const limit = 512 * MiB;
  const base = uniform(rng, 180, 260) * MiB;
  const tau = uniform(rng, 10, 40);
  const noise = uniform(rng, 0.5, 2) * MiB;
  const leakStart = Math.round(uniform(rng, 60, 300));
  const toOomSec = uniform(rng, 40, 90) * 60;
  const rate = (limit - base - 3 * noise) / toOomSec;
  return {
    description: `JVM ${fmt(base / MiB)} MiB (τ ${fmt(tau)} s), cache creeping ${fmt((rate * 3600) / MiB)} MiB/h from ${leakStart} s, σ ${fmt(noise / MiB)} MiB`,
    limitBytes: limit,
    leakStartSec: leakStart,
    durationSec: 4 * 3600,
    at: (t) => base * (1 - Math.exp(-(t + 1) / tau)) + Math.max(0, t - leakStart) * rate + noise * gauss(rng),
  };
}

function stepwise(rng: Rng): Built {
  const limit = (rng() < 0.5 ? 384 : 512) * MiB;
  const base = uniform(rng, 80, 160) * MiB;
  const noise = uniform(rng, 0.3, 1) * MiB;
  const leakStart = Math.round(uniform(rng, 30, 120));
  const minGap = uniform(rng, 30, 90);
  const maxGap = minGap * 2;
  const minStep = uniform(rng, 3, 6);
  let next = leakStart;
  let held = 0;
  return {
    description: `service ${fmt(base / MiB)} MiB, ${fmt(minStep)}–${fmt(minStep * 2)} MiB steps every ${fmt(minGap)}–${fmt(maxGap)} s into ${limit / MiB} MiB`,
    limitBytes: limit,
    leakStartSec: leakStart,
    durationSec: 6 * 3600,
    at: (t) => {
      if (t >= next) {
        held += uniform(rng, minStep, 2 * minStep) * MiB;
        next = t + uniform(rng, minGap, maxGap);
      }
      return base * Math.min(1, 0.3 + t / 5) + held + noise * gauss(rng);
    },
  };
}

function sawtoothLeak(rng: Rng): Built {
  const limit = 512 * MiB;
  const base = uniform(rng, 60, 140) * MiB;
  const amp = uniform(rng, 15, 40) * MiB;
  const ramp = uniform(rng, 0.5, 2) * MiB;
  const saw = new Sawtooth(rng, amp, ramp);
  const leakStart = Math.round(uniform(rng, 120, 300));
  const toOomSec = uniform(rng, 20, 60) * 60;
  const rate = (limit - base - amp) / toOomSec;
  return {
    description: `Node ${fmt(base / MiB)} MiB + sawtooth ${fmt(amp / MiB)} MiB at ${fmt(ramp / MiB)} MiB/s, floor creeping ${fmt((rate * 60) / MiB)} MiB/min from ${leakStart} s`,
    limitBytes: limit,
    leakStartSec: leakStart,
    durationSec: 3 * 3600,
    at: (t) => base * Math.min(1, 0.4 + t / 10) + saw.step() + Math.max(0, t - leakStart) * rate + 0.3 * MiB * gauss(rng),
  };
}

function seed003(rng: Rng): Built {
  const limit = 128 * MiB;
  const python = uniform(rng, 15, 22) * MiB;
  const rate = uniform(rng, 0.6, 1.0) * MiB;
  const noise = uniform(rng, 0.1, 0.3) * MiB;
  let held = 0;
  return {
    description: `Python ${fmt(python / MiB)} MiB, leaked_data growing ${fmt(rate / MiB)} MiB/s from 10 s into 128 MiB`,
    limitBytes: limit,
    leakStartSec: 10,
    durationSec: 600,
    at: (t) => {
      if (t > 10) held += rate * uniform(rng, 0.8, 1.2);
      return python * Math.min(1, 0.3 + t / 3) + held + noise * gauss(rng);
    },
  };
}

function lateOnset(rng: Rng): Built {
  const limit = 512 * MiB;
  const base = uniform(rng, 150, 300) * MiB;
  const saw = new Sawtooth(rng, uniform(rng, 3, 8) * MiB, uniform(rng, 0.3, 1) * MiB);
  const leakStart = Math.round(uniform(rng, 10, 20) * 60);
  // log-uniform 0.1–3 MiB/s: from a slow creep to a leak that kills in two minutes
  const rate = Math.exp(uniform(rng, Math.log(0.1), Math.log(3))) * MiB;
  return {
    description: `steady ${fmt(base / MiB)} MiB service, leak of ${fmt(rate / MiB)} MiB/s from ${fmt(leakStart / 60)} min`,
    limitBytes: limit,
    leakStartSec: leakStart,
    durationSec: 4 * 3600,
    at: (t) => base * (1 - Math.exp(-(t + 1) / 8)) + saw.step() + Math.max(0, t - leakStart) * rate + 0.5 * MiB * gauss(rng),
  };
}

// ---- controls ----

function sawtoothControl(rng: Rng): Built {
  const base = uniform(rng, 50, 150) * MiB;
  const amp = uniform(rng, 10, 40) * MiB;
  const ramp = uniform(rng, 0.3, 3) * MiB;
  // old space: what minor GCs promote, released by the next major GC
  const oldAmp = uniform(rng, 5, 30) * MiB;
  const majorEvery = uniform(rng, 60, 300);
  const promotion = (oldAmp * (amp / ramp)) / majorEvery;
  const saw = new Sawtooth(rng, amp, ramp);
  let old = 0;
  let nextMajor = majorEvery;
  let prevRise = 0;
  const peak = base + amp * 1.25 + oldAmp * 1.5;
  const limit = (peak < 0.6 * 256 * MiB ? 256 : 512) * MiB;
  return {
    description: `Node ${fmt(base / MiB)} MiB, minor GC sawtooth ${fmt(amp / MiB)} MiB at ${fmt(ramp / MiB)} MiB/s, old space +${fmt(oldAmp / MiB)} MiB per major GC every ~${fmt(majorEvery)} s, limit ${limit / MiB} MiB`,
    limitBytes: limit,
    leakStartSec: null,
    durationSec: 1800,
    at: (t) => {
      const rise = saw.step();
      if (rise < prevRise) old += promotion * uniform(rng, 0.5, 1.5);
      prevRise = rise;
      if (t >= nextMajor) {
        old = 0;
        nextMajor = t + majorEvery * uniform(rng, 0.7, 1.3);
      }
      return base * Math.min(1, 0.4 + t / 10) + rise + old + 0.3 * MiB * gauss(rng);
    },
  };
}

function warmupPlateau(rng: Rng): Built {
  const limit = [128, 256, 512][Math.floor(rng() * 3)]! * MiB;
  const start = uniform(rng, 5, 20) * MiB;
  const plateau = Math.max(start + 10 * MiB, uniform(rng, 0.2, 0.5) * limit);
  const tau = uniform(rng, 3, 30);
  const jit = uniform(rng, 0, 0.1) * (plateau - start);
  const jitAt = uniform(rng, 30, 90);
  const saw = new Sawtooth(rng, uniform(rng, 2, 8) * MiB, uniform(rng, 0.2, 1) * MiB);
  const noise = uniform(rng, 0.1, 1) * MiB;
  return {
    description: `start ${fmt(start / MiB)} MiB → plateau ${fmt(plateau / MiB)} of ${limit / MiB} MiB (τ ${fmt(tau)} s), JIT +${fmt(jit / MiB)} MiB at ${fmt(jitAt)} s`,
    limitBytes: limit,
    leakStartSec: null,
    durationSec: 1800,
    at: (t) =>
      start +
      (plateau - start) * (1 - Math.exp(-t / tau)) +
      (t > jitAt ? jit * (1 - Math.exp(-(t - jitAt) / 10)) : 0) +
      saw.step() * Math.min(1, t / 60) +
      noise * gauss(rng),
  };
}

function bursty(rng: Rng): Built {
  const limit = 512 * MiB;
  const base = uniform(rng, 100, 200) * MiB;
  const meanGap = uniform(rng, 30, 120);
  const noise = 0.5 * MiB;
  interface Burst {
    at: number;
    size: number;
    ramp: number;
    hold: number;
    release: number;
  }
  const bursts: Burst[] = [];
  for (let t = uniform(rng, 5, 60); t < 1800; t += -Math.log(Math.max(rng(), 1e-9)) * meanGap) {
    bursts.push({ at: t, size: uniform(rng, 10, 60) * MiB, ramp: uniform(rng, 1, 10), hold: uniform(rng, 2, 40), release: uniform(rng, 1, 3) });
  }
  return {
    description: `service ${fmt(base / MiB)} MiB, bursts of 10–60 MiB every ~${fmt(meanGap)} s lasting seconds to a minute`,
    limitBytes: limit,
    leakStartSec: null,
    durationSec: 1800,
    at: (t) => {
      let extra = 0;
      for (const b of bursts) {
        const dt = t - b.at;
        if (dt < 0 || dt > b.ramp + b.hold + b.release) continue;
        if (dt < b.ramp) extra += (b.size * dt) / b.ramp;
        else if (dt < b.ramp + b.hold) extra += b.size;
        else extra += b.size * (1 - (dt - b.ramp - b.hold) / b.release);
      }
      return base * Math.min(1, 0.4 + t / 10) + extra + noise * gauss(rng);
    },
  };
}

function cachePlateau(rng: Rng): Built {
  const limit = 512 * MiB;
  const base = uniform(rng, 80, 150) * MiB;
  const size = uniform(rng, 50, 150) * MiB;
  const tau = uniform(rng, 60, 600);
  const fillFrom = uniform(rng, 10, 120);
  const saw = new Sawtooth(rng, uniform(rng, 3, 10) * MiB, uniform(rng, 0.3, 1) * MiB);
  return {
    description: `service ${fmt(base / MiB)} MiB, cache filling by ${fmt(size / MiB)} MiB (τ ${fmt(tau / 60)} min) to ${fmt(((base + size) / limit) * 100)} % of 512 MiB`,
    limitBytes: limit,
    leakStartSec: null,
    durationSec: 3600,
    at: (t) => base * Math.min(1, 0.4 + t / 10) + (t > fillFrom ? size * (1 - Math.exp(-(t - fillFrom) / tau)) : 0) + saw.step() + 0.4 * MiB * gauss(rng),
  };
}

function fixedSeed(rng: Rng, index: number): Built {
  const which = index % 10 < 4 ? '003' : index % 10 < 7 ? '002' : '000';
  if (which === '003') {
    const python = uniform(rng, 15, 22) * MiB;
    const noise = uniform(rng, 0.1, 0.3) * MiB;
    return {
      description: `seed 003 fixed: Python ${fmt(python / MiB)} MiB with a 100-event ring (~1 MiB) in 128 MiB`,
      limitBytes: 128 * MiB,
      leakStartSec: null,
      durationSec: 1800,
      at: (t) => python * Math.min(1, 0.3 + t / 3) + Math.min(1, Math.max(0, t - 10) / 10) * MiB + noise * gauss(rng),
    };
  }
  if (which === '002') {
    const base = uniform(rng, 180, 260) * MiB;
    const tau = uniform(rng, 10, 40);
    const cache = uniform(rng, 30, 80) * MiB;
    const cacheTau = uniform(rng, 120, 600);
    const noise = uniform(rng, 0.5, 2) * MiB;
    return {
      description: `seed 002 fixed: JVM ${fmt(base / MiB)} MiB, bounded cache +${fmt(cache / MiB)} MiB (τ ${fmt(cacheTau / 60)} min) in 512 MiB`,
      limitBytes: 512 * MiB,
      leakStartSec: null,
      durationSec: 3600,
      at: (t) => base * (1 - Math.exp(-(t + 1) / tau)) + cache * (1 - Math.exp(-t / cacheTau)) + noise * gauss(rng),
    };
  }
  const interp = uniform(rng, 7, 11) * MiB;
  const block = uniform(rng, 8, 12) * MiB;
  return {
    description: `seed 000 fixed: deque(maxlen=3) of ${fmt(block / MiB)} MiB blocks in 192 MiB`,
    limitBytes: 192 * MiB,
    leakStartSec: null,
    durationSec: 1800,
    at: (t) => {
      if (t === 0) return 3 * MiB;
      const blocks = Math.min(3, t - 1);
      // a fourth block exists for a moment before the oldest is released
      const transient = t > 4 && rng() < 0.5 ? block : 0;
      return interp + Math.max(0, blocks) * block + transient + 0.1 * MiB * gauss(rng);
    },
  };
}

interface Family {
  name: string;
  kind: 'leak' | 'control';
  build: (rng: Rng, index: number) => Built;
}

export const FAMILIES: Family[] = [
  { name: 'fast-linear', kind: 'leak', build: fastLinear },
  { name: 'slow-linear', kind: 'leak', build: slowLinear },
  { name: 'stepwise', kind: 'leak', build: stepwise },
  { name: 'sawtooth-leak', kind: 'leak', build: sawtoothLeak },
  { name: 'seed-003', kind: 'leak', build: seed003 },
  { name: 'late-onset', kind: 'leak', build: lateOnset },
  { name: 'sawtooth', kind: 'control', build: sawtoothControl },
  { name: 'warmup-plateau', kind: 'control', build: warmupPlateau },
  { name: 'bursty', kind: 'control', build: bursty },
  { name: 'cache-plateau', kind: 'control', build: cachePlateau },
  { name: 'fixed-seeds', kind: 'control', build: fixedSeed },
];

/** The suite: `variants` traces per family, seeded from `baseSeed`, family and index. */
export function buildSuite(variants = 10, baseSeed = 20250517): Trace[] {
  const out: Trace[] = [];
  FAMILIES.forEach((family, f) => {
    for (let i = 0; i < variants; i++) {
      const seed = (baseSeed + f * 1009 + i * 7919) >>> 0;
      out.push(finish(family.name, family.kind, seed, i, family.build(prng(seed), i)));
    }
  });
  return out;
}

/**
 * Controls that walk up to the edge of what any detector can tell from a leak, to show where each
 * one starts to false-alarm (not part of the scored suite): a cache filling (τ 5 min) to a
 * growing share of the limit, and a single burst that ramps for 12 s by a growing share of the
 * headroom, holds for a minute and goes away.
 */
export function buildBoundarySuite(seedsPerLevel = 3, baseSeed = 777): Trace[] {
  const out: Trace[] = [];
  const limit = 512 * MiB;
  for (const share of [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) {
    for (let i = 0; i < seedsPerLevel; i++) {
      const seed = (baseSeed + Math.round(share * 100) * 31 + i) >>> 0;
      const rng = prng(seed);
      const base = 0.2 * limit;
      const saw = new Sawtooth(rng, 5 * MiB, 0.5 * MiB);
      const family = `cache to ${Math.round(share * 100)} % of limit`;
      out.push(
        finish(family, 'control', seed, i, {
          description: `cache filling from 20 % to ${Math.round(share * 100)} % of 512 MiB, τ 5 min`,
          limitBytes: limit,
          leakStartSec: null,
          durationSec: 3600,
          at: (t) => base * Math.min(1, 0.4 + t / 10) + (share * limit - base) * (1 - Math.exp(-Math.max(0, t - 60) / 300)) + saw.step() + 0.4 * MiB * gauss(rng),
        }),
      );
    }
  }
  for (const share of [0.1, 0.15, 0.2, 0.25, 0.3, 0.4]) {
    for (let i = 0; i < seedsPerLevel; i++) {
      const seed = (baseSeed + 5000 + Math.round(share * 100) * 31 + i) >>> 0;
      const rng = prng(seed);
      const base = 150 * MiB;
      const size = share * (limit - base);
      const at = 300 + Math.round(uniform(rng, 0, 60));
      const family = `burst of ${Math.round(share * 100)} % of headroom`;
      out.push(
        finish(family, 'control', seed, i, {
          description: `one burst of ${fmt(size / MiB)} MiB ramping for 12 s at ${at} s on a 150 MiB service, held 60 s`,
          limitBytes: limit,
          leakStartSec: null,
          durationSec: 900,
          at: (t) => {
            const dt = t - at;
            const extra = dt < 0 ? 0 : dt < 12 ? (size * dt) / 12 : dt < 72 ? size : dt < 75 ? size * (1 - (dt - 72) / 3) : 0;
            return base * Math.min(1, 0.4 + t / 10) + extra + 0.5 * MiB * gauss(rng);
          },
        }),
      );
    }
  }
  return out;
}
