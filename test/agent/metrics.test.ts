// The agent's metrics on synthetic node samples: which processes are exported (the bound on
// series), that gone processes and resolved findings leave no series behind, and that what
// /metrics renders passes Prometheus's own parser and linter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAgentMetrics, type AgentMetrics } from '../../agent/metrics.js';
import type { AttributedProcess, ContainerSample, NodeSample } from '../../agent/host/node-sampler.js';
import type { CgroupMemory } from '../../agent/host/types.js';
import type { FindingEvent } from '../../agent/watch/watcher.js';
import type { Finding, FindingTarget } from '../../protocol/findings.js';
import { missingBinary, promtoolCheckMetrics } from '../support/promtool.js';
import { prng } from '../../common/prng.js';

const MiB = 1024 * 1024;
const T0 = Date.UTC(2025, 9, 22, 8, 15, 32);


interface Where {
  namespace?: string | null;
  pod?: string | null;
  podUid?: string | null;
  container?: string | null;
  containerId?: string | null;
}

const inPod: Required<Where> = { namespace: 'shop', pod: 'cart-7d9f', podUid: 'uid-cart', container: 'app', containerId: 'c'.repeat(64) };

function proc(pid: number, anonBytes: number, swapBytes = 0, where: Where = inPod, comm = `w${pid}`): AttributedProcess {
  return {
    pid,
    ppid: 1,
    comm,
    cmdline: `/usr/bin/${comm} --token=secret-${pid}`,
    argv: [`/usr/bin/${comm}`, `--token=secret-${pid}`],
    exe: `/usr/bin/${comm}`,
    uid: 1000,
    startTimeMs: T0 - 60_000,
    nsPid: pid,
    nsPids: [pid],
    state: 'S',
    rssAnonBytes: anonBytes,
    rssFileBytes: 0,
    rssShmemBytes: 0,
    swapBytes,
    cgroupPath: null,
    podUid: where.podUid ?? null,
    namespace: where.namespace ?? null,
    pod: where.pod ?? null,
    container: where.container ?? null,
    containerId: where.containerId ?? null,
    runtime: where.podUid ? 'containerd' : null,
    qos: where.podUid ? 'Burstable' : null,
    limitBytes: null,
    oomKills: 0,
  };
}

function memory(anonBytes: number, workingSetBytes: number, limitBytes: number | null): CgroupMemory {
  return { usageBytes: workingSetBytes, anonBytes, inactiveFileBytes: 0, workingSetBytes, limitBytes, oomKills: 0, oomGroupKills: 0 };
}

function container(where: Required<Where>, mem: CgroupMemory | null, limitBytes: number | null, pids: number[] = [1]): ContainerSample {
  return {
    podUid: where.podUid ?? 'uid',
    namespace: where.namespace,
    pod: where.pod,
    container: where.container,
    containerId: where.containerId ?? 'x'.repeat(64),
    runtime: 'containerd',
    qos: 'Burstable',
    cgroupPath: `kubepods/burstable/pod${where.podUid}/${where.containerId}`,
    memory: mem,
    limitBytes,
    pids,
  };
}

function nodeSample(processes: AttributedProcess[], containers: ContainerSample[] = [], atMs = T0): NodeSample {
  return { atMs, processes, containers, pods: [], durationMs: 3 };
}

function targetOf(p: AttributedProcess): FindingTarget {
  return { pid: p.pid, comm: p.comm, cmdline: p.cmdline, namespace: p.namespace, pod: p.pod, podUid: p.podUid, container: p.container, containerId: p.containerId };
}

let findingSeq = 0;
function growthFinding(target: FindingTarget, scope: 'process' | 'container', slope: number, limitBytes: number | null, etaSec: number | null): Finding {
  findingSeq++;
  return {
    id: `growth-${findingSeq}`,
    kind: 'growth',
    status: 'open',
    at: T0,
    updatedAt: T0,
    node: 'node-a',
    target,
    summary: 'grows',
    details: { scope, slopeBytesPerSec: slope, currentBytes: 100 * MiB, workingSetBytes: null, limitBytes, etaSec, confidence: 0.99, windowStartMs: T0 - 60_000, windowEndMs: T0 },
  };
}

function fanoutFinding(parent: AttributedProcess): Finding {
  findingSeq++;
  return {
    id: `fanout-${findingSeq}`,
    kind: 'fanout',
    status: 'open',
    at: T0,
    updatedAt: T0,
    node: 'node-a',
    target: targetOf(parent),
    summary: 'fans out',
    details: {
      parent: { pid: parent.pid, comm: parent.comm, cmdline: parent.cmdline },
      childrenAlive: 30,
      childrenSeen: 40,
      spawnRatePerMin: 60,
      childrenAnonBytes: 300 * MiB,
      childrenSlopeBytesPerSec: null,
      growingChildren: 0,
      limitBytes: null,
      sampleChildren: [],
    },
  };
}

function oomEvent(target: FindingTarget): FindingEvent {
  findingSeq++;
  return {
    change: 'open',
    finding: {
      id: `oom-kill-${findingSeq}`,
      kind: 'oom-kill',
      status: 'open',
      at: T0,
      updatedAt: T0,
      node: 'node-a',
      target,
      summary: 'OOM kill',
      details: { victim: { pid: target.pid, ppid: null, comm: target.comm, cmdline: target.cmdline, lastRssAnonBytes: 200 * MiB }, memcg: null, containerSurvived: true, sources: ['kmsg'], relatedFindings: [] },
    },
  };
}

type Labels = Record<string, string | number>;
async function series(metrics: AgentMetrics, name: string): Promise<Array<{ labels: Labels; value: number }>> {
  const metric = metrics.registry.getSingleMetric(name);
  assert.ok(metric, `metric ${name} is registered`);
  const got = await metric.get();
  return got.values.map((v) => ({ labels: v.labels as Labels, value: v.value }));
}

async function exportedPids(metrics: AgentMetrics): Promise<Set<string>> {
  return new Set((await series(metrics, 'leakwatch_process_memory_anon_bytes')).map((s) => String(s.labels.pid)));
}

/**
 * Expositions rendered by the tests below, each checked by promtool in the last test: a missing
 * promtool then skips that check alone, not the assertions each test makes on its own.
 */
const expositions: Array<{ what: string; text: string }> = [];
function keepForPromtool(what: string, text: string): void {
  expositions.push({ what, text });
}

/** 1,000 processes in 10 pods, sizes spread over 0..1 GiB; pid 5000 is mostly swapped out. */
function thousandProcesses(): AttributedProcess[] {
  const rng = prng(42);
  const out: AttributedProcess[] = [];
  for (let i = 0; i < 1000; i++) {
    const pod = i % 10;
    const where: Where = { namespace: `ns${pod % 3}`, pod: `pod-${pod}`, podUid: `uid-${pod}`, container: 'main', containerId: String(pod).repeat(64).slice(0, 64) };
    out.push(proc(1000 + i, Math.floor(rng() * 1024 * MiB), Math.floor(rng() * 4 * MiB), where));
  }
  out.push(proc(5000, 1 * MiB, 3 * 1024 * MiB, inPod, 'swapped'));
  return out;
}

const bySize = (a: AttributedProcess, b: AttributedProcess): number => b.rssAnonBytes + b.swapBytes - (a.rssAnonBytes + a.swapBytes);

test('of 1,000 processes exactly the top N by anon + swap are exported, each with its anon RSS', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node-a', topN: 20 });
  const processes = thousandProcesses();
  metrics.update(nodeSample(processes), [], 12);

  const exported = await series(metrics, 'leakwatch_process_memory_anon_bytes');
  assert.equal(exported.length, 20);
  const expected = [...processes].sort(bySize).slice(0, 20);
  assert.deepEqual(new Set(exported.map((s) => s.labels.pid)), new Set(expected.map((p) => String(p.pid))));
  // Ranked by anon + swap, so the swapped-out process is in although its RSS is tiny.
  const swapped = exported.find((s) => s.labels.pid === '5000');
  assert.ok(swapped, 'the mostly swapped process is in the top N');
  assert.equal(swapped.value, 1 * MiB);
  assert.deepEqual(swapped.labels, { namespace: 'shop', pod: 'cart-7d9f', container: 'app', pid: '5000', comm: 'swapped' });
  for (const s of exported) {
    const p = processes.find((q) => String(q.pid) === s.labels.pid);
    assert.equal(s.value, p?.rssAnonBytes);
  }
  assert.deepEqual((await series(metrics, 'leakwatch_processes_sampled')).map((s) => s.value), [1001]);

  const text = await metrics.render();
  // Command lines (which can hold secrets) never reach the exposition.
  assert.doesNotMatch(text, /secret-|--token/);
  assert.equal(text.match(/^leakwatch_process_memory_anon_bytes\{/gm)?.length, 20);
  keepForPromtool('1,000 processes, top 20', text);
});

test('a process with an open finding is exported even when it is far from the top N', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node-a', topN: 20 });
  const processes = thousandProcesses();
  const small = [...processes].sort(bySize).slice(-3);
  const [leaker, fanParent, alreadyTop] = [small[0], small[1], [...processes].sort(bySize)[0]];
  assert.ok(leaker && fanParent && alreadyTop);
  const findings = [growthFinding(targetOf(leaker), 'process', 2048, null, null), fanoutFinding(fanParent), growthFinding(targetOf(alreadyTop), 'process', 10, null, null)];
  metrics.update(nodeSample(processes), findings, 12);

  const pids = await exportedPids(metrics);
  // Top 20, plus the two small ones with findings; the top one with a finding is not counted twice.
  assert.equal(pids.size, 22);
  assert.ok(pids.has(String(leaker.pid)));
  assert.ok(pids.has(String(fanParent.pid)));
  assert.ok(pids.has(String(alreadyTop.pid)));
});

test('processes with findings beyond the top N are capped at maxFindingSeries, largest first', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node-a', topN: 20, maxFindingSeries: 50 });
  const processes = thousandProcesses();
  const findings = processes.slice(0, 500).map((p) => growthFinding(targetOf(p), 'process', 100, null, null));
  metrics.update(nodeSample(processes), findings, 12);

  const pids = await exportedPids(metrics);
  assert.equal(pids.size, 70);
  const top = new Set([...processes].sort(bySize).slice(0, 20).map((p) => String(p.pid)));
  const largestWithFindings = processes
    .slice(0, 500)
    .filter((p) => !top.has(String(p.pid)))
    .sort(bySize)
    .slice(0, 50)
    .map((p) => String(p.pid));
  assert.deepEqual(pids, new Set([...top, ...largestWithFindings]));
  assert.equal((await series(metrics, 'leakwatch_growth_slope_bytes_per_second')).length, 50);
});

test('a process that exits, drops out of the top N or loses its finding stops being exported', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node-a', topN: 2 });
  const big = proc(101, 500 * MiB);
  const mid = proc(102, 300 * MiB);
  const leaker = proc(103, 5 * MiB);
  const finding = growthFinding(targetOf(leaker), 'process', 4096, 256 * MiB, 600);
  metrics.update(nodeSample([big, mid, leaker]), [finding], 5);
  assert.deepEqual(await exportedPids(metrics), new Set(['101', '102', '103']));
  assert.equal((await series(metrics, 'leakwatch_growth_slope_bytes_per_second')).length, 1);

  // 101 exits, a newcomer outgrows 102, and 103's finding resolved (the watcher no longer lists it).
  const newcomer = proc(104, 400 * MiB);
  metrics.update(nodeSample([mid, leaker, proc(105, 350 * MiB), newcomer], [], T0 + 1000), [], 5);
  assert.deepEqual(await exportedPids(metrics), new Set(['104', '105']));
  assert.deepEqual(await series(metrics, 'leakwatch_growth_slope_bytes_per_second'), []);
  assert.deepEqual(await series(metrics, 'leakwatch_time_to_oom_seconds'), []);
  const text = await metrics.render();
  for (const pid of ['101', '102', '103']) assert.doesNotMatch(text, new RegExp(`pid="${pid}"`));
  keepForPromtool('after processes left', text);
});

test('growth findings export slope, and time to OOM only when there is a limit', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node-a' });
  const leaker = proc(201, 90 * MiB);
  const ctr = container(inPod, memory(180 * MiB, 200 * MiB, 256 * MiB), 256 * MiB);
  const containerTarget: FindingTarget = { pid: null, comm: null, cmdline: null, namespace: 'shop', pod: 'cart-7d9f', podUid: 'uid-cart', container: 'app', containerId: inPod.containerId };
  const unlimited = proc(202, 50 * MiB, 0, { namespace: 'batch', pod: 'etl-1', podUid: 'uid-etl', container: 'etl', containerId: 'e'.repeat(64) });
  const findings = [
    growthFinding(targetOf(leaker), 'process', 1.5 * MiB, 256 * MiB, 110.5),
    growthFinding(containerTarget, 'container', 2 * MiB, 256 * MiB, 38),
    growthFinding(targetOf(unlimited), 'process', 64 * 1024, null, null),
    // A broken estimate must not become a NaN series (or a thrown update).
    growthFinding(targetOf(proc(203, MiB)), 'process', Number.NaN, 256 * MiB, Number.NaN),
  ];
  metrics.update(nodeSample([leaker, unlimited], [ctr]), findings, 5);

  const slopes = await series(metrics, 'leakwatch_growth_slope_bytes_per_second');
  assert.deepEqual(
    slopes.map((s) => [s.labels, s.value]),
    [
      [{ kind: 'container', namespace: 'shop', pod: 'cart-7d9f', container: 'app', pid: '' }, 2 * MiB],
      [{ kind: 'process', namespace: 'shop', pod: 'cart-7d9f', container: 'app', pid: '201' }, 1.5 * MiB],
      [{ kind: 'process', namespace: 'batch', pod: 'etl-1', container: 'etl', pid: '202' }, 64 * 1024],
    ],
  );
  const etas = await series(metrics, 'leakwatch_time_to_oom_seconds');
  assert.deepEqual(
    etas.map((s) => [s.labels.kind, s.labels.pid, s.value]),
    [
      ['container', '', 38],
      ['process', '201', 110.5],
    ],
  );
});

test('containers export anon, working set and a limit only when they have one', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node-a' });
  const limited = container(inPod, memory(120 * MiB, 150 * MiB, 256 * MiB), 256 * MiB);
  // Two containers of one pod that /var/log/pods does not name: the short ids keep them apart.
  const anonA = { namespace: null, pod: null, podUid: 'uid-anon', container: null, containerId: 'a'.repeat(64) };
  const anonB = { ...anonA, containerId: 'b'.repeat(64) };
  const unlimitedA = container(anonA, memory(10 * MiB, 12 * MiB, null), null);
  const unlimitedB = container(anonB, memory(20 * MiB, 22 * MiB, null), null);
  const unreadable = container({ ...inPod, container: 'sidecar', containerId: 'd'.repeat(64) }, null, null);
  metrics.update(nodeSample([], [limited, unlimitedA, unlimitedB, unreadable]), [], 5);

  const anon = await series(metrics, 'leakwatch_container_memory_anon_bytes');
  assert.deepEqual(
    anon.map((s) => [s.labels, s.value]),
    [
      [{ namespace: 'shop', pod: 'cart-7d9f', container: 'app' }, 120 * MiB],
      [{ namespace: '', pod: 'uid-anon', container: 'aaaaaaaaaaaa' }, 10 * MiB],
      [{ namespace: '', pod: 'uid-anon', container: 'bbbbbbbbbbbb' }, 20 * MiB],
    ],
  );
  assert.deepEqual(
    (await series(metrics, 'leakwatch_container_memory_working_set_bytes')).map((s) => s.value),
    [150 * MiB, 12 * MiB, 22 * MiB],
  );
  assert.deepEqual(
    (await series(metrics, 'leakwatch_container_memory_limit_bytes')).map((s) => [s.labels.container, s.value]),
    [['app', 256 * MiB]],
  );

  // The next pass without the limited container: its three series go.
  metrics.update(nodeSample([], [unlimitedA], T0 + 1000), [], 5);
  assert.deepEqual((await series(metrics, 'leakwatch_container_memory_anon_bytes')).map((s) => s.labels.container), ['aaaaaaaaaaaa']);
  assert.deepEqual(await series(metrics, 'leakwatch_container_memory_limit_bytes'), []);
  keepForPromtool('containers, one gone', await metrics.render());
});

test('OOM kills count per container from 0, and a long-gone container series is retired', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node-a', oomSeriesRetentionMs: 60_000 });
  const ctr = container(inPod, memory(100 * MiB, 100 * MiB, 128 * MiB), 128 * MiB);
  const victim = proc(301, 120 * MiB);
  metrics.update(nodeSample([victim], [ctr]), [], 5);
  const kills = async (): Promise<Array<[string, number]>> =>
    (await series(metrics, 'leakwatch_oom_kills_total')).map((s) => [`${s.labels.namespace}/${s.labels.pod}/${s.labels.container}`, s.value]);
  // Present at 0 before any kill, so increase() in Prometheus sees the first one.
  assert.deepEqual(await kills(), [['shop/cart-7d9f/app', 0]]);

  const hostVictim: FindingTarget = { pid: 77, comm: 'dockerd', cmdline: 'dockerd', namespace: null, pod: null, podUid: null, container: null, containerId: null };
  metrics.update(nodeSample([], [ctr], T0 + 1000), [], 5, { events: [oomEvent(targetOf(victim)), oomEvent(targetOf(victim)), oomEvent(hostVictim)] });
  assert.deepEqual(await kills(), [
    ['shop/cart-7d9f/app', 2],
    ['//', 1],
  ]);

  // Still within retention after the container is gone: the counter keeps its value.
  metrics.update(nodeSample([], [], T0 + 50_000), [], 5);
  assert.deepEqual(await kills(), [
    ['shop/cart-7d9f/app', 2],
    ['//', 1],
  ]);
  metrics.update(nodeSample([], [], T0 + 62_000), [], 5);
  assert.deepEqual(await kills(), []);
});

test('findings: open ones by kind, opened ones counted from the events of the pass', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node-a' });
  const p = proc(401, 10 * MiB);
  const open = [growthFinding(targetOf(p), 'process', 1000, null, null), growthFinding(targetOf(p), 'process', 1000, null, null), fanoutFinding(p)];
  const spawn: FindingEvent = { change: 'open', finding: { ...open[2]!, id: 'spawn-1', kind: 'suspicious-spawn', details: { rules: [], argv: [], exe: null, cwd: null, uid: 0, startTimeMs: T0, parentChain: [], script: null, provenance: null, notes: [], occurrences: 1, pids: [401] } } };
  const events: FindingEvent[] = [
    { change: 'open', finding: open[0]! },
    { change: 'update', finding: open[1]! },
    { change: 'resolve', finding: { ...open[1]!, status: 'resolved' } },
    spawn,
    oomEvent(targetOf(p)),
  ];
  metrics.update(nodeSample([p]), open, 5, { events });

  const byKind = async (name: string): Promise<Record<string, number>> =>
    Object.fromEntries((await series(metrics, name)).map((s) => [s.labels.kind, s.value]));
  assert.deepEqual(await byKind('leakwatch_findings'), { growth: 2, fanout: 1, 'suspicious-spawn': 0, 'oom-kill': 0 });
  assert.deepEqual(await byKind('leakwatch_findings_opened_total'), { growth: 1, fanout: 0, 'suspicious-spawn': 1, 'oom-kill': 1 });

  metrics.update(nodeSample([p]), [], 5, { events: [spawn] });
  assert.deepEqual(await byKind('leakwatch_findings'), { growth: 0, fanout: 0, 'suspicious-spawn': 0, 'oom-kill': 0 });
  assert.deepEqual(await byKind('leakwatch_findings_opened_total'), { growth: 1, fanout: 0, 'suspicious-spawn': 2, 'oom-kill': 1 });
});

test('pass durations land in the histogram in seconds; a non-finite duration is ignored', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node-a' });
  for (const ms of [0.8, 4, 40, 400, Number.NaN, -1]) metrics.update(nodeSample([]), [], ms);
  const text = await metrics.render();
  assert.match(text, /^leakwatch_agent_sampling_duration_seconds_count\{node="node-a"\} 4$/m);
  assert.match(text, /^leakwatch_agent_sampling_duration_seconds_bucket\{le="0\.001",node="node-a"\} 1$/m);
  assert.match(text, /^leakwatch_agent_sampling_duration_seconds_bucket\{le="0\.005",node="node-a"\} 2$/m);
  assert.match(text, /^leakwatch_agent_sampling_duration_seconds_bucket\{le="0\.5",node="node-a"\} 4$/m);
  const sum = Number(/^leakwatch_agent_sampling_duration_seconds_sum\{node="node-a"\} (\S+)$/m.exec(text)?.[1]);
  assert.ok(Math.abs(sum - 0.4448) < 1e-9, `sum ${sum}`);
  // The agent's own CPU and RSS, from prom-client's default collectors.
  assert.match(text, /^leakwatch_agent_process_cpu_seconds_total\{node="node-a"\} \d/m);
  assert.match(text, /^leakwatch_agent_process_resident_memory_bytes\{node="node-a"\} [1-9]\d*$/m);
});

test('hostile names (quotes, backslashes, newlines, non-ASCII) are escaped (promtool checks the result below)', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node "a"', includeHost: true });
  const where = { namespace: 'ns\\x', pod: 'pöd-"1"', podUid: 'u', container: 'c\nd', containerId: 'f'.repeat(64) };
  metrics.update(nodeSample([proc(501, MiB, 0, where, 'a"b\\c\nd'), proc(502, 2 * MiB, 0, {}, 'host\u0007bell')], [container(where, memory(MiB, MiB, MiB), MiB)]), [], 5);
  const text = await metrics.render();
  assert.match(text, /comm="a\\"b\\\\c\\nd"/);
  keepForPromtool('hostile names', text);
});

test('host processes are ranked only when asked for', async () => {
  const host = proc(601, 900 * MiB, 0, {}, 'kubelet');
  const pod = proc(602, 10 * MiB);
  const podOnly = createAgentMetrics({ nodeName: 'node-a' });
  podOnly.update(nodeSample([host, pod]), [], 5);
  assert.deepEqual(await exportedPids(podOnly), new Set(['602']));
  const withHost = createAgentMetrics({ nodeName: 'node-a', includeHost: true });
  withHost.update(nodeSample([host, pod]), [], 5);
  assert.deepEqual(await exportedPids(withHost), new Set(['601', '602']));
});

test('processes with garbage sizes are skipped, not exported as NaN', async () => {
  const metrics = createAgentMetrics({ nodeName: 'node-a' });
  metrics.update(nodeSample([proc(701, Number.NaN), proc(702, -5), proc(703, 3 * MiB, Number.POSITIVE_INFINITY), proc(704, MiB)]), [], 5);
  assert.deepEqual(await exportedPids(metrics), new Set(['704']));
});

test('bad options are refused with a clear error', () => {
  assert.throws(() => createAgentMetrics({ nodeName: 'n', topN: -1 }), /topN must be a whole number >= 0, got -1/);
  assert.throws(() => createAgentMetrics({ nodeName: 'n', maxFindingSeries: 1.5 }), /maxFindingSeries must be a whole number/);
});

test('every exposition rendered above passes promtool check metrics', (t) => {
  const missing = missingBinary('promtool');
  if (missing) {
    console.log(`SKIP: ${missing}`);
    t.skip(`SKIP: ${missing}`);
    return;
  }
  assert.equal(expositions.length, 4, 'the tests above each kept their exposition');
  for (const { what, text } of expositions) {
    // promtool accepts an empty input: make sure there is something to check.
    assert.match(text, /^leakwatch_process_memory_anon_bytes\{|^leakwatch_container_memory_anon_bytes\{/m, what);
    const r = promtoolCheckMetrics(text);
    assert.ok(r.ok, `promtool check metrics on "${what}" (exit ${r.status}):\n${r.output}`);
  }
  // And promtool does reject a broken exposition, so the check above can fail.
  assert.equal(promtoolCheckMetrics('# TYPE leakwatch_x gauge\nleakwatch_x{a="b} 1\n').ok, false);
  assert.equal(promtoolCheckMetrics('# HELP leakwatch_oom_kills a\n# TYPE leakwatch_oom_kills counter\nleakwatch_oom_kills 1\n').ok, false);
});
