// The seed incidents (../shared/seeds) replayed on the real kernel, each in its own pod-shaped
// memory cgroup, with `leakwatch watch --json` watching the node: each must end in the findings
// that would have saved its on-call engineer the night.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoAvailability, findWorkloadsDir, runScenario, type ScenarioHandle, type ScenarioEvent } from '../../demo/scenarios.js';
import { startWatch, type WatchLine, type WatchSession } from '../support/watch-session.js';

const availability = demoAvailability();
const skip = availability.ok ? false : `SKIP: ${availability.ok ? '' : availability.reason}`;
if (skip) console.log(skip);

const incidents = ['metrics-app', 'data-processor', 'payment-processor', 'stress-test'] as const;
type Incident = (typeof incidents)[number];

const MiB = 1024 * 1024;

function oomExits(events: readonly ScenarioEvent[]) {
  return events.filter((e) => e.kind === 'exited' && e.reason === 'OOMKilled');
}

describe('seed incidents end in the right findings', { skip, timeout: 240_000 }, () => {
  let logRoot: string;
  let watch: WatchSession;
  const runs = new Map<Incident, ScenarioHandle>();
  const startedAt = new Map<Incident, number>();

  before(async () => {
    logRoot = mkdtempSync(join(tmpdir(), 'leakwatch-seeds-'));
    watch = startWatch(['--pod-log-root', join(logRoot, 'pods')]);
    // The watcher's first pass is the baseline for OOM counters and spawn judging.
    await new Promise((r) => setTimeout(r, 2500));
    // The incidents run side by side, as pods do on a node; each is bounded by its own limit.
    for (const name of incidents) {
      startedAt.set(name, Date.now());
      runs.set(name, await runScenario(name, { logRoot }));
    }
  });

  after(async () => {
    await Promise.all([...runs.values()].map((r) => r.stop()));
    await watch?.stop();
    rmSync(logRoot, { recursive: true, force: true });
  });

  test('metrics-app (seeds 000/001): the spawned collector, its provenance, the fan-out, growth and OOM kills; the server answers throughout', async () => {
    const run = runs.get('metrics-app')!;
    const outcome = await run.finished;
    assert.equal(outcome.reason, 'completed', JSON.stringify(outcome));
    // Give the watcher two passes to report the last kills.
    await new Promise((r) => setTimeout(r, 3000));
    const uid = run.pod.uid;
    const findings = watch.findingsFor(uid);
    const lines = watch.linesFor(uid);

    const requests = run.events.filter((e) => e.kind === 'request');
    assert.equal(requests.length, 21);
    assert.ok(requests.every((r) => r.kind === 'request' && r.status === 200), 'the server answered every request');
    assert.match(requests.at(-1)!.kind === 'request' ? (requests.at(-1) as { body: string }).body : '', /Counter value: 21/);

    const spawns = lines.filter((l): l is WatchLine & { kind: 'suspicious-spawn' } => l.kind === 'suspicious-spawn' && l.event === 'open');
    assert.ok(spawns.length >= 1, 'suspicious spawn reported');
    const first = spawns[0]!;
    const ids = first.details.rules.map((r) => r.id);
    assert.ok(ids.includes('tmp-script'), `rules ${ids.join(',')}`);
    assert.match(first.details.script?.path ?? '', /^\/tmp\/.*\.py$/);
    assert.ok(first.details.script?.content?.includes('global_memory'), 'script content kept as evidence');
    const resources = readFileSync(join(findWorkloadsDir(), 'metrics-app', 'resources.dat'));
    assert.ok(first.details.provenance, `provenance found: ${first.details.notes.join('; ')}`);
    assert.match(first.details.provenance.path, /resources\.dat$/);
    assert.equal(first.details.provenance.encoding, 'base64');
    assert.equal(first.details.provenance.sha256, createHash('sha256').update(resources).digest('hex'));
    assert.ok(first.details.parentChain.length >= 1 && /app\.py/.test(first.details.parentChain[0]!.cmdline), 'parent chain names the server');
    // One finding for the server running the same decoded script again and again, with the
    // evidence of the first child, counting the rest.
    assert.equal(spawns.length, 1, spawns.map((s) => s.summary).join(' | '));
    const firstCollector = run.events.find((e) => e.kind === 'log' && /^collector: started pid \d+/.test(e.line));
    assert.ok(firstCollector && firstCollector.kind === 'log');
    assert.equal(first.target.pid, Number(/pid (\d+)/.exec(firstCollector.line)![1]), 'the evidence is the first child');
    const latest = findings.find((f) => f.id === first.id);
    assert.ok(latest?.kind === 'suspicious-spawn' && latest.details.occurrences >= 15, `occurrences ${latest?.kind === 'suspicious-spawn' ? latest.details.occurrences : '?'}`);

    const fanout = findings.find((f) => f.kind === 'fanout');
    assert.ok(fanout, `fan-out reported; kinds seen: ${[...new Set(findings.map((f) => f.kind))].join(',')}`);
    assert.match(fanout.target.cmdline ?? '', /app\.py/);

    const kills = findings.filter((f): f is WatchLine & { kind: 'oom-kill' } => f.kind === 'oom-kill');
    assert.ok(kills.length >= 3, `OOM kills reported: ${kills.length}`);

    // The growth an on-call engineer needs: the container heading for its limit, with an ETA,
    // before the first collector is killed. The collectors themselves are the fan-out, not one
    // growth finding each; the flat serving before the load is not growth.
    const growth = lines.filter((l): l is WatchLine & { kind: 'growth' } => l.kind === 'growth' && l.event === 'open');
    assert.ok(growth.length >= 1, `growth reported: ${lines.filter((l) => l.kind !== 'suspicious-spawn').map((l) => l.summary).join(' | ')}`);
    const climb = growth[0]!;
    assert.equal(climb.details.scope, 'container', climb.summary);
    assert.equal(climb.target.container, 'metrics-app');
    assert.equal(climb.target.pid, null);
    assert.equal(climb.details.limitBytes, 192 * MiB);
    assert.ok(climb.details.slopeBytesPerSec > 0 && climb.details.etaSec !== null && climb.details.etaSec > 0, `an ETA ahead: ${climb.summary}`);
    assert.ok(climb.at > requests[0]!.atMs, `growth reported ${requests[0]!.atMs - climb.at} ms before the first request, while the server only served`);
    const firstKillAt = Math.min(...kills.map((k) => k.at), ...run.events.filter((e) => e.kind === 'oom-kill').map((e) => e.atMs));
    assert.ok(climb.at < firstKillAt, `growth opened ${climb.at - firstKillAt} ms after the first OOM kill: ${climb.summary}`);
    assert.ok(!growth.some((g) => g.details.scope === 'process'), `no growth finding per collector: ${growth.map((g) => g.summary).join(' | ')}`);
    console.log(`metrics-app: container growth opened ${((firstKillAt - climb.at) / 1000).toFixed(1)} s before the first OOM kill: ${climb.summary}`);
    assert.ok(kills.every((k) => k.details.victim.pid !== null && k.details.victim.comm === 'python3'), 'each kill names its victim');
    assert.ok(kills.some((k) => /\/tmp\/.*\.py/.test(k.details.victim.cmdline ?? '')), 'victims are the spawned collectors');
    // Their parent is the server (the spawn findings' parent chain names it): the web page's
    // process tree places each killed collector under it from what was sampled, not by guess.
    const server = first.details.parentChain[0]!.pid;
    const placed = kills.filter((k) => k.details.victim.ppid === server);
    assert.ok(placed.length >= 1, `victims' parents ${kills.map((k) => k.details.victim.ppid).join(', ')}; the server is ${server}`);
    assert.ok(kills.every((k) => k.details.containerSurvived === true), 'the server lived on: the kills Kubernetes never reports');
  });

  test('data-processor (seed 003): growth with an ETA before the kill, within 25% of when it came', async () => {
    const run = runs.get('data-processor')!;
    const kill = await run.waitFor((e) => e.kind === 'exited' && e.reason === 'OOMKilled', 150_000);
    await new Promise((r) => setTimeout(r, 2000));
    const lines = watch.linesFor(run.pod.uid);
    const growth = lines.find((l): l is WatchLine & { kind: 'growth' } => l.kind === 'growth' && l.event === 'open');
    assert.ok(growth, `growth reported: ${lines.map((l) => l.summary).join(' | ')}`);
    assert.ok(growth.at < kill.atMs, 'reported before the kill');
    assert.ok(growth.details.limitBytes === 128 * MiB, `limit ${growth.details.limitBytes}`);
    assert.ok(growth.details.etaSec !== null && growth.details.slopeBytesPerSec > 0);
    const predicted = growth.updatedAt + growth.details.etaSec * 1000;
    const remaining = kill.atMs - growth.updatedAt;
    const error = Math.abs(predicted - kill.atMs) / remaining;
    assert.ok(error <= 0.25, `ETA error ${(error * 100).toFixed(0)}%: predicted ${new Date(predicted).toISOString()}, killed ${new Date(kill.atMs).toISOString()}`);
    const oom = lines.find((l) => l.kind === 'oom-kill');
    assert.ok(oom, 'the kill itself is reported');
  });

  test('payment-processor (seed 002): growth with an ETA under a sawtooth, and nothing before the trend is real', async () => {
    const run = runs.get('payment-processor')!;
    const kill = await run.waitFor((e) => e.kind === 'exited' && e.reason === 'OOMKilled', 180_000);
    await new Promise((r) => setTimeout(r, 2000));
    const lines = watch.linesFor(run.pod.uid);
    const growth = lines.filter((l): l is WatchLine & { kind: 'growth' } => l.kind === 'growth' && l.event === 'open');
    assert.ok(growth.length >= 1, `growth reported: ${lines.map((l) => l.summary).join(' | ')}`);
    const first = growth[0]!;
    assert.ok(first.at < kill.atMs, 'reported before the kill');
    assert.ok(first.details.etaSec !== null);
    // The warm-up and the first sawtooth cycles are not a trend.
    const since = first.at - startedAt.get('payment-processor')!;
    assert.ok(since >= 15_000, `growth reported ${since} ms after start, before the trend was real`);
    assert.ok(!lines.some((l) => l.kind === 'fanout' || l.kind === 'suspicious-spawn'), 'no other finding');
  });

  test('stress-test (seed 004): one OOM-kill finding per kill', async () => {
    const run = runs.get('stress-test')!;
    const outcome = await run.finished;
    assert.equal(outcome.reason, 'completed', JSON.stringify(outcome));
    await new Promise((r) => setTimeout(r, 7000));
    const exits = oomExits(run.events);
    assert.ok(exits.length >= 3, `kills: ${exits.length}`);
    const kills = watch.findingsFor(run.pod.uid).filter((f): f is WatchLine & { kind: 'oom-kill' } => f.kind === 'oom-kill');
    const victims = exits.map((e) => (e.kind === 'exited' ? e.pid : -1)).sort();
    assert.deepEqual(kills.map((k) => k.details.victim.pid).sort(), victims, 'one finding per kill, naming each victim');
    assert.ok(kills.every((k) => k.details.sources.includes('kmsg') && k.details.sources.includes('counter')), 'seen by both sources, reported once');
    assert.ok(kills.every((k) => k.details.containerSurvived === false), 'the container died with its main process');
  });
});
