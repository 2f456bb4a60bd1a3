// The growth detector on generated 1 Hz traces. The shapes and seeds here are deliberately not the
// benchmark's (bench/support/detection-traces.ts), so the detector is not only tuned to one suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GrowthDetector, type GrowthEvent, type GrowthOptions, type GrowthState } from '../../../agent/watch/growth.js';
import { prng } from '../../../common/prng.js';

const MiB = 1024 * 1024;
const T0 = Date.UTC(2025, 9, 22, 8, 15, 32);

const gauss = (rng: () => number): number => Math.sqrt(-2 * Math.log(Math.max(rng(), 1e-12))) * Math.cos(2 * Math.PI * rng());

interface Run {
  events: Array<{ sec: number; ev: GrowthEvent }>;
  opens: Array<{ sec: number; state: GrowthState }>;
  resolves: Array<{ sec: number; reason: string }>;
  /** First second at or over the limit (the simulated OOM), or null. */
  oomSec: number | null;
}

/** Feeds `value(t)` for t = 0 … durationSec−1 (stopping at the limit, as the OOM killer would). */
function feed(value: (t: number) => number, durationSec: number, limitBytes: number | null, options: GrowthOptions = {}, det = new GrowthDetector(options)): Run {
  const run: Run = { events: [], opens: [], resolves: [], oomSec: null };
  for (let t = 0; t < durationSec; t++) {
    const v = Math.max(0, value(t));
    for (const ev of det.observe('pod/app', T0 + t * 1000, v, limitBytes)) {
      run.events.push({ sec: t, ev });
      if (ev.kind === 'open') run.opens.push({ sec: t, state: ev.state });
      if (ev.kind === 'resolve') run.resolves.push({ sec: t, reason: ev.reason });
    }
    if (limitBytes !== null && v >= limitBytes) {
      run.oomSec = t;
      break;
    }
  }
  return run;
}

/** Node/V8-like GC sawtooth: ramps `rate` per second, drops back after ~`amp` (jittered). */
function sawtooth(rng: () => number, amp: number, rate: number): () => number {
  let rise = 0;
  let top = amp * (0.8 + 0.4 * rng());
  return () => {
    const out = rise;
    rise += rate * (0.7 + 0.6 * rng());
    if (rise >= top) {
      rise = 0;
      top = amp * (0.8 + 0.4 * rng());
    }
    return out;
  };
}

const within = (actual: number, expected: number, share: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= share * Math.abs(expected), `${what}: expected ${expected} ± ${share * 100} %, got ${actual}`);

test('linear leak after a quiet start: fires with the right slope (±10 %) and ETA', () => {
  for (const seed of [101, 202, 303]) {
    const rng = prng(seed);
    const rate = (0.2 + 0.2 * rng()) * MiB;
    const leakAt = 300;
    const limit = 512 * MiB;
    const run = feed((t) => 150 * MiB + Math.max(0, t - leakAt) * rate + 0.5 * MiB * gauss(rng), 3 * 3600, limit);
    assert.ok(run.oomSec !== null);
    const open = run.opens[0];
    assert.ok(open, `seed ${seed}: no alert`);
    assert.ok(open.sec > leakAt && open.sec < run.oomSec, `seed ${seed}: alert at ${open.sec}, leak at ${leakAt}, OOM at ${run.oomSec}`);
    within(open.state.slopeBytesPerSec, rate, 0.1, `seed ${seed} slope`);
    const actual = run.oomSec - open.sec;
    assert.ok(open.state.etaSec !== null);
    within(open.state.etaSec, actual, 0.2, `seed ${seed} ETA`);
    // early enough to act: most of the leak's life is still ahead
    assert.ok(actual / (run.oomSec - leakAt) > 0.6, `seed ${seed}: lead ${actual}/${run.oomSec - leakAt}`);
    assert.equal(open.state.limitBytes, limit);
    assert.equal(open.state.status, 'growing');
    assert.equal(open.state.key, 'pod/app');
    assert.ok(open.state.confidence >= 0.99 && open.state.confidence <= 1);
    assert.ok(open.state.windowStartMs < open.state.windowEndMs && open.state.windowEndMs === T0 + open.sec * 1000);
    assert.equal(run.resolves.length, 0, 'a leak that runs to OOM is never resolved');
  }
});

test('pure Node/V8 GC sawtooth (rise ~20 MiB, drop) stays silent for 30 minutes', () => {
  for (const [seed, rate] of [
    [11, 0.5],
    [12, 1],
    [13, 2.5],
  ] as const) {
    const rng = prng(seed);
    const saw = sawtooth(rng, 20 * MiB, rate * MiB);
    const run = feed((t) => 90 * MiB * Math.min(1, 0.5 + t / 8) + saw() + 0.3 * MiB * gauss(rng), 1800, 256 * MiB);
    assert.deepEqual(run.events, [], `seed ${seed} (ramp ${rate} MiB/s)`);
  }
});

test('warm-up then plateau stays silent', () => {
  for (const [seed, tau, share] of [
    [21, 4, 0.45],
    [22, 12, 0.35],
    [23, 25, 0.3],
  ] as const) {
    const rng = prng(seed);
    const limit = 256 * MiB;
    const run = feed((t) => 8 * MiB + (share * limit - 8 * MiB) * (1 - Math.exp(-t / tau)) + 0.4 * MiB * gauss(rng), 1800, limit);
    assert.deepEqual(run.opens, [], `seed ${seed} (τ ${tau} s to ${share * 100} %)`);
  }
});

test('a cache that fills and plateaus stays silent', () => {
  for (const [seed, tauSec, sizeMiB] of [
    [31, 120, 80],
    [32, 400, 110],
    [33, 900, 70],
  ] as const) {
    const rng = prng(seed);
    const saw = sawtooth(rng, 6 * MiB, 0.5 * MiB);
    const run = feed((t) => 130 * MiB + sizeMiB * MiB * (1 - Math.exp(-t / tauSec)) + saw() + 0.4 * MiB * gauss(rng), 5400, 512 * MiB);
    assert.deepEqual(run.opens, [], `seed ${seed} (τ ${tauSec} s, +${sizeMiB} MiB)`);
  }
});

test('leak under a GC sawtooth fires before OOM with the floor’s slope', () => {
  const rng = prng(41);
  const saw = sawtooth(rng, 25 * MiB, 1.2 * MiB);
  const rate = 0.12 * MiB;
  const run = feed((t) => 100 * MiB + saw() + Math.max(0, t - 180) * rate + 0.3 * MiB * gauss(rng), 4 * 3600, 512 * MiB);
  assert.ok(run.oomSec !== null);
  const open = run.opens[0];
  assert.ok(open && open.sec > 180 && open.sec < run.oomSec, `alert at ${open?.sec}, OOM at ${run.oomSec}`);
  within(open.state.slopeBytesPerSec, rate, 0.15, 'slope');
  assert.ok(open.state.sawtoothPeriodSec > 0, 'the sawtooth was recognised');
  // the ETA counts from the sawtooth's peaks, which reach the limit first
  within(open.state.etaSec as number, run.oomSec - open.sec, 0.2, 'ETA');
});

test('two-level GC sawtooth (minor cycles riding on old-space growth, major GC) stays silent', () => {
  for (const seed of [14, 15]) {
    const rng = prng(seed);
    const minor = sawtooth(rng, 15 * MiB, 1.5 * MiB);
    let old = 0;
    let prev = 0;
    const run = feed(
      (t) => {
        const rise = minor();
        if (rise < prev) old += 1.5 * MiB; // each minor GC promotes a little
        prev = rise;
        if (t % 120 === 119) old = 0; // the major GC takes it back
        return 80 * MiB + rise + old + 0.3 * MiB * gauss(rng);
      },
      1800,
      256 * MiB,
    );
    assert.deepEqual(run.opens, [], `seed ${seed}`);
  }
});

test('a long-lived steady service that starts leaking fast is caught within seconds', () => {
  for (const [seed, rate] of [
    [16, 3],
    [17, 8],
  ] as const) {
    const rng = prng(seed);
    const saw = sawtooth(rng, 4 * MiB, 0.5 * MiB);
    const leakAt = 2400;
    const run = feed((t) => 160 * MiB + saw() + Math.max(0, t - leakAt) * rate * MiB + 0.5 * MiB * gauss(rng), 4000, 512 * MiB);
    const open = run.opens[0];
    assert.ok(run.oomSec !== null && open, `seed ${seed}: missed`);
    assert.ok(open.sec > leakAt && open.sec - leakAt <= 30, `seed ${seed}: ${rate} MiB/s leak from ${leakAt} s alerted at ${open.sec} s`);
    assert.ok(open.sec < run.oomSec);
  }
});

test('irregular sampling (every ~2 s, jittered) still measures the slope', () => {
  const rng = prng(18);
  const det = new GrowthDetector();
  const rate = 0.4 * MiB;
  let opened: GrowthState | null = null;
  for (let ms = 0; ms < 3600_000 && !opened; ms += 1500 + Math.floor(rng() * 1000)) {
    const t = ms / 1000;
    for (const ev of det.observe('j', T0 + ms, 100 * MiB + Math.max(0, t - 120) * rate + 0.5 * MiB * gauss(rng), 512 * MiB)) {
      if (ev.kind === 'open') opened = ev.state;
    }
  }
  assert.ok(opened, 'no alert');
  within(opened.slopeBytesPerSec, rate, 0.1, 'slope');
});

test('a stepwise leak (a batch kept every minute) fires with its average rate', () => {
  const rng = prng(19);
  let held = 0;
  let next = 90;
  const run = feed(
    (t) => {
      if (t >= next) {
        held += (6 + 4 * rng()) * MiB; // 8 MiB on average
        next = t + 45 + 30 * rng(); // every 60 s on average
      }
      return 140 * MiB + held + 0.4 * MiB * gauss(rng);
    },
    4 * 3600,
    512 * MiB,
  );
  const open = run.opens[0];
  assert.ok(run.oomSec !== null && open && open.sec < run.oomSec, `alert ${open?.sec}, OOM ${run.oomSec}`);
  within(open.state.slopeBytesPerSec, (8 * MiB) / 60, 0.25, 'slope');
  assert.ok((run.oomSec - open.sec) / (run.oomSec - 90) > 0.6, 'lead');
});

test('growth with no limit fires with etaSec null', () => {
  const rng = prng(51);
  const run = feed((t) => 300 * MiB + t * 0.05 * MiB + 1 * MiB * gauss(rng), 3000, null);
  const open = run.opens[0];
  assert.ok(open, 'no alert without a limit');
  assert.equal(open.state.etaSec, null);
  assert.equal(open.state.limitBytes, null);
  assert.equal(open.state.basis, 'sustained');
  within(open.state.slopeBytesPerSec, 0.05 * MiB, 0.1, 'slope');
});

test('resolves once growth has stopped for resolveAfterSec, and not before', () => {
  const rng = prng(61);
  const stopAt = 900;
  const run = feed((t) => 120 * MiB + Math.min(Math.max(0, t - 60), stopAt - 60) * 0.3 * MiB + 0.4 * MiB * gauss(rng), 2400, 512 * MiB, {
    resolveAfterSec: 240,
  });
  const open = run.opens[0];
  assert.ok(open && open.sec < stopAt, `opened at ${open?.sec}`);
  const resolve = run.resolves[0];
  assert.ok(resolve, 'never resolved');
  assert.ok(resolve.sec >= stopAt + 120 && resolve.sec <= stopAt + 240 + 60, `resolved at ${resolve.sec}, growth stopped at ${stopAt}`);
  assert.match(resolve.reason, /no growth/);
  assert.equal(run.opens.length, 1, 'no re-open on the plateau');
});

test('resolves at once when usage falls back below where the growth began (restart)', () => {
  const rng = prng(62);
  const run = feed((t) => (t < 700 ? 80 * MiB + Math.max(0, t - 30) * 0.4 * MiB : 40 * MiB) + 0.2 * MiB * gauss(rng), 760, 512 * MiB);
  assert.ok(run.opens[0] && run.opens[0].sec < 700);
  const resolve = run.resolves[0];
  assert.ok(resolve && resolve.sec === 700, `resolved at ${resolve?.sec}`);
  assert.match(resolve.reason, /fell below/);
});

test('noise: heavy noise on a flat series stays silent; a noisy leak is still measured', () => {
  for (const seed of [71, 72, 73]) {
    const rng = prng(seed);
    const flat = feed(() => 200 * MiB + 5 * MiB * gauss(rng), 3600, 512 * MiB);
    assert.deepEqual(flat.opens, [], `seed ${seed}: flat σ 5 MiB`);
    const rate = 0.3 * MiB;
    const noisy = feed((t) => 200 * MiB + t * rate + 3 * MiB * gauss(rng), 3 * 3600, 512 * MiB);
    const open = noisy.opens[0];
    assert.ok(open && noisy.oomSec !== null && open.sec < noisy.oomSec, `seed ${seed}: noisy leak missed`);
    within(open.state.slopeBytesPerSec, rate, 0.1, `seed ${seed}: noisy slope`);
  }
});

test('a fast leak in a fresh process (seed 000 child: ~10 MiB/s into 192 MiB) fires before OOM', () => {
  const rng = prng(81);
  let held = 0;
  const run = feed((t) => {
    if (t >= 2) held += 10 * MiB * (0.7 + 0.6 * rng());
    return t === 0 ? 4 * MiB : 9 * MiB + held;
  }, 60, 192 * MiB);
  assert.ok(run.oomSec !== null);
  assert.ok(run.opens[0] && run.opens[0].sec < run.oomSec, `alert ${run.opens[0]?.sec}, OOM ${run.oomSec}`);
  assert.ok((run.opens[0].state.etaSec as number) < 20);
});

test('updates are spaced by minUpdateIntervalSec and carry a fresh ETA', () => {
  const rng = prng(91);
  const run = feed((t) => 100 * MiB + t * 0.5 * MiB + 0.3 * MiB * gauss(rng), 3600, 512 * MiB, { minUpdateIntervalSec: 10, heartbeatSec: 30 });
  const emits = run.events.filter((e) => e.ev.kind !== 'resolve').map((e) => e.sec);
  assert.ok(emits.length >= 3, `only ${emits.length} events`);
  for (let i = 1; i < emits.length; i++) assert.ok(emits[i]! - emits[i - 1]! >= 10, `events at ${emits[i - 1]} and ${emits[i]}`);
  const updates = run.events.flatMap((e) => (e.ev.kind === 'update' ? [{ sec: e.sec, state: e.ev.state }] : []));
  assert.ok(updates.length >= 2);
  const last = updates[updates.length - 1]!;
  within(last.state.etaSec as number, (run.oomSec as number) - last.sec, 0.2, 'ETA in the last update');
  assert.equal(last.state.firstDetectedMs, T0 + (run.opens[0] as { sec: number }).sec * 1000);
});

test('state() reports the open growth; forget() drops the target', () => {
  const det = new GrowthDetector();
  for (let t = 0; t < 400; t++) det.observe('a', T0 + t * 1000, 50 * MiB + t * MiB, 512 * MiB);
  det.observe('b', T0, 10 * MiB, null);
  assert.equal(det.size, 2);
  const st = det.state('a');
  assert.ok(st && st.key === 'a');
  assert.equal(det.state('b'), null);
  det.forget('a');
  assert.equal(det.state('a'), null);
  assert.equal(det.size, 1);
});

test('bad input is ignored with a warning, never thrown', () => {
  const warnings: string[] = [];
  const det = new GrowthDetector({ warn: (m) => warnings.push(m) });
  assert.deepEqual(det.observe('x', T0, Number.NaN, null), []);
  assert.deepEqual(det.observe('x', T0, -5, null), []);
  assert.deepEqual(det.observe('x', Number.POSITIVE_INFINITY, 5, null), []);
  assert.deepEqual(det.observe('x', T0 + 1000, 5 * MiB, null), []);
  assert.deepEqual(det.observe('x', T0 + 1000, 6 * MiB, null), [], 'same timestamp');
  assert.deepEqual(det.observe('x', T0, 6 * MiB, null), [], 'time going backwards');
  assert.deepEqual(det.observe('x', T0 + 2000, 6 * MiB, Number.NaN), []);
  assert.deepEqual(det.observe('x', T0 + 3000, 6 * MiB, -1), []);
  assert.equal(warnings.length, 7, warnings.join('\n'));
  assert.ok(warnings.some((w) => /invalid value/.test(w)));
  assert.ok(warnings.some((w) => /not after the previous/.test(w)));
  assert.ok(warnings.some((w) => /invalid limit/.test(w)));
});

test('a long gap in samples starts the history afresh', () => {
  const det = new GrowthDetector({ windowSec: 600 });
  let events: GrowthEvent[] = [];
  for (let t = 0; t < 300; t++) events = events.concat(det.observe('g', T0 + t * 1000, 50 * MiB + t * MiB, 512 * MiB));
  assert.ok(events.some((e) => e.kind === 'open'));
  const after = det.observe('g', T0 + 2000 * 1000, 60 * MiB, 512 * MiB);
  assert.deepEqual(
    after.map((e) => e.kind),
    ['resolve'],
  );
  assert.equal(det.state('g'), null);
});

test('options are validated', () => {
  assert.throws(() => new GrowthDetector({ windowSec: -1 }), RangeError);
  assert.throws(() => new GrowthDetector({ confidence: 1.5 }), RangeError);
  assert.throws(() => new GrowthDetector({ minWindowSec: 100, windowSec: 50 }), RangeError);
  assert.throws(() => new GrowthDetector({ minPoints: 2 }), RangeError);
  assert.throws(() => new GrowthDetector({ bogus: 1 } as unknown as GrowthOptions), /unknown option bogus/);
  assert.doesNotThrow(() => new GrowthDetector({ windowSec: 1800, warn: () => {} }));
});
