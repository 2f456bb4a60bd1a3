// The page's computations without a browser: findings matched to targets, the ETA counted from
// now, the trend line to the limit, the overview's order, and the process tree from findings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Finding } from '../../../protocol/findings.js';
import { buildProcessTree, commandShape, etaRemainingSec, findingMatchesTarget, formatBytes, formatDuration, summarisePods, trendLine, type TargetRow } from '../../../server/web/src/model.js';
import { fanoutFinding, growthFinding, oomFinding, spawnFinding } from '../../support/sample-findings.js';

const MiB = 1024 * 1024;
const at = 1_700_000_000_000;

function target(over: Partial<TargetRow>): TargetRow {
  return { targetKey: 'proc:4242:1', kind: 'process', pid: 4242, ppid: null, comm: 'node', cmdline: 'node server.js', namespace: 'payments', pod: 'payment-processor-7d9f', podUid: null, container: 'app', containerId: 'a'.repeat(64), node: 'node-a', firstSeenMs: at, lastSeenMs: at, findingCount: 0, openFindingCount: 0, ...over };
}

test('the trend line runs from the window through the current value to the limit at the ETA', () => {
  const g = growthFinding('g1');
  assert.equal(g.kind, 'growth');
  if (g.kind !== 'growth') return;
  const line = trendLine(g.details);
  // 1 MiB/s over a 60 s window ending at 200 MiB: started at 140 MiB; 56 s to the 256 MiB limit.
  assert.deepEqual(line.points, [
    [at - 60_000, 140 * MiB],
    [at, 200 * MiB],
    [at + 56_000, 256 * MiB],
  ]);
  assert.equal(line.etaAtMs, at + 56_000);
  assert.equal(trendLine({ ...g.details, limitBytes: null, etaSec: null }).etaAtMs, null);
  assert.equal(trendLine({ ...g.details, slopeBytesPerSec: -5 }).etaAtMs, null, 'shrinking never reaches the limit');
  // Without an etaSec the line still meets the limit at the slope.
  assert.equal(trendLine({ ...g.details, etaSec: null }).etaAtMs, at + 56_000);
});

test('the ETA counts down from the finding\'s update and stops at zero', () => {
  const g = growthFinding('g1');
  if (g.kind !== 'growth') return;
  assert.equal(etaRemainingSec(g.details, at, at + 10_000), 46);
  assert.equal(etaRemainingSec(g.details, at, at + 600_000), 0);
  assert.equal(etaRemainingSec({ ...g.details, etaSec: null }, at, at), null);
});

test('findings belong to the process they name, its fan-out and its kill; containers take their whole container', () => {
  const proc = target({});
  const other = target({ targetKey: 'proc:9:1', pid: 9 });
  const ctr = target({ targetKey: 'ctr:/x', kind: 'container', pid: null });
  const g = growthFinding('g1');
  assert.ok(findingMatchesTarget(g, proc));
  assert.ok(!findingMatchesTarget(g, other));
  assert.ok(findingMatchesTarget(g, ctr));
  assert.ok(!findingMatchesTarget(g, target({ node: 'node-b' })), 'another node');
  assert.ok(!findingMatchesTarget(g, target({ containerId: 'b'.repeat(64) })), 'the same pid in another container');
  const kill = oomFinding('o1');
  if (kill.kind === 'oom-kill') kill.details.victim.pid = 9;
  assert.ok(findingMatchesTarget(kill, other));
});

test('the overview puts pods with findings first, soonest OOM first, and charts the growing target', () => {
  const quiet = target({ targetKey: 'ctr:/q', kind: 'container', pid: null, pod: 'quiet', containerId: 'q'.repeat(64) });
  const soonG = growthFinding('g-soon');
  soonG.target = { ...soonG.target, pod: 'soon', pid: 7, containerId: 's'.repeat(64) };
  if (soonG.kind === 'growth') soonG.details.etaSec = 30;
  const soonProc = target({ targetKey: 'proc:7:1', pid: 7, pod: 'soon', containerId: 's'.repeat(64) });
  const soonCtr = target({ targetKey: 'ctr:/s', kind: 'container', pid: null, pod: 'soon', containerId: 's'.repeat(64) });
  const laterG = growthFinding('g-later');
  const laterCtr = target({ targetKey: 'ctr:/l', kind: 'container', pid: null });
  const spawnOnly = spawnFinding('s1');
  spawnOnly.target = { ...spawnOnly.target, pod: 'spawny' };
  const resolved = { ...growthFinding('g-old'), status: 'resolved' as const };
  resolved.target = { ...resolved.target, pod: 'quiet' };
  const pods = summarisePods([quiet, soonCtr, soonProc, laterCtr], [laterG, soonG, spawnOnly, resolved], at + 1000);
  assert.deepEqual(pods.map((p) => p.pod), ['soon', 'payment-processor-7d9f', 'spawny', 'quiet']);
  assert.equal(pods[0]!.etaSec, 29);
  assert.equal(pods[0]!.chartTarget?.targetKey, 'proc:7:1', 'the growing process, not its container');
  assert.equal(pods[1]!.chartTarget?.targetKey, 'ctr:/l', 'the container when the growing process is not tracked');
  assert.equal(pods[3]!.openFindings.length, 0, 'resolved findings are not open');
});

/** The metrics-app shape: server pid 100 spawning python3 /tmp/… collectors, one (201) sampled. */
function serverFanout(): Finding {
  const fan = fanoutFinding('f1');
  if (fan.kind === 'fanout') {
    fan.details.parent = { pid: 100, comm: 'python3', cmdline: 'python3 /app/app.py 8080' };
    fan.details.sampleChildren = [{ pid: 201, comm: 'python3', cmdline: 'python3 /tmp/tmpa.py' }];
  }
  return fan;
}

test('the process tree: fan-out parent, children, killed children placed by command shape, spawn chains', () => {
  const fan = serverFanout();
  const spawn = spawnFinding('s1');
  spawn.target = { ...spawn.target, pid: 202, comm: 'python3', cmdline: 'python3 /tmp/tmpb.py' };
  if (spawn.kind === 'suspicious-spawn') spawn.details.parentChain = [{ pid: 100, comm: 'python3', cmdline: 'python3 /app/app.py 8080' }, { pid: 1, comm: 'tini', cmdline: 'tini -- python3' }];
  const killedChild = oomFinding('o1');
  if (killedChild.kind === 'oom-kill') killedChild.details.victim = { pid: 203, ppid: null, comm: 'python3', cmdline: 'python3 /tmp/tmpc.py', lastRssAnonBytes: 1 };
  const killedStranger = oomFinding('o2');
  if (killedStranger.kind === 'oom-kill') killedStranger.details.victim = { pid: 300, ppid: null, comm: 'java', cmdline: 'java -jar x.jar', lastRssAnonBytes: 1 };
  const roots = buildProcessTree([fan, spawn, killedChild, killedStranger], [target({ pid: 400, comm: 'sh', cmdline: 'sh' })]);
  assert.deepEqual(roots.map((r) => r.pid), [1, 300, 400]);
  const tini = roots[0]!;
  const server = tini.children[0]!;
  assert.equal(server.pid, 100);
  assert.ok(server.fanoutParent);
  assert.deepEqual(server.children.map((c) => c.pid), [201, 202, 203]);
  assert.ok(server.children[1]!.suspicious);
  const killed = server.children[2]!;
  assert.ok(killed.oomKilled && killed.parentInferred && killed.fanoutChild);
  assert.ok(roots[1]!.oomKilled && !roots[1]!.parentInferred, 'a killed process unlike the children stays a root');
});

test('the process tree from reported parents: targets and killed children are placed, not inferred', () => {
  const fan = serverFanout();
  // Killed children of the fan-out parent, one with a command unlike the sampled children.
  const killedLike = oomFinding('o1');
  if (killedLike.kind === 'oom-kill') killedLike.details.victim = { pid: 203, ppid: 100, comm: 'python3', cmdline: 'python3 /tmp/tmpc.py', lastRssAnonBytes: 1 };
  const killedUnlike = oomFinding('o2');
  if (killedUnlike.kind === 'oom-kill') killedUnlike.details.victim = { pid: 204, ppid: 100, comm: 'sh', cmdline: 'sh -c cleanup', lastRssAnonBytes: 1 };
  // A growing worker whose parent is a tracked process target too.
  const worker = target({ targetKey: 'proc:301:1', pid: 301, ppid: 300, comm: 'node', cmdline: 'node worker.js' });
  const main = target({ targetKey: 'proc:300:1', pid: 300, ppid: 1, comm: 'node', cmdline: 'node main.js' });
  const roots = buildProcessTree([fan, killedLike, killedUnlike], [worker, main]);
  assert.deepEqual(roots.map((r) => r.pid), [100, 300], 'pid 1 was never described, so its children are roots');
  const server = roots[0]!;
  assert.deepEqual(server.children.map((c) => c.pid), [201, 203, 204]);
  for (const killed of server.children.slice(1)) {
    assert.ok(killed.oomKilled && killed.fanoutChild, `pid ${killed.pid}`);
    assert.ok(!killed.parentInferred, `pid ${killed.pid}: its parent was reported`);
  }
  assert.deepEqual(roots[1]!.children.map((c) => c.pid), [301]);
});

test('a cycle in reported parents (pid reuse) does not hide processes', () => {
  const a = spawnFinding('s1');
  a.target = { ...a.target, pid: 10 };
  if (a.kind === 'suspicious-spawn') a.details.parentChain = [{ pid: 11, comm: 'x', cmdline: 'x' }];
  const b = spawnFinding('s2');
  b.target = { ...b.target, pid: 11 };
  if (b.kind === 'suspicious-spawn') b.details.parentChain = [{ pid: 10, comm: 'y', cmdline: 'y' }];
  const roots = buildProcessTree([a, b] as Finding[], []);
  const seen: number[] = [];
  const walk = (n: { pid: number; children: Array<{ pid: number; children: never[] }> }) => (seen.push(n.pid), n.children.forEach(walk));
  roots.forEach((r) => walk(r as never));
  assert.deepEqual(seen.sort(), [10, 11]);
});

test('command shape and formatting', () => {
  assert.equal(commandShape('python3', 'python3 /tmp/tmpk3j1.py'), 'python3 /tmp/');
  assert.equal(commandShape('python3', 'python3 -u /app/app.py 8080'), 'python3 /app/');
  assert.equal(commandShape('sleep', null), 'sleep ');
  assert.equal(formatBytes(192 * MiB), '192 MiB');
  assert.equal(formatBytes(1.5 * MiB), '1.5 MiB');
  assert.equal(formatBytes(null), '—');
  assert.equal(formatDuration(59.6), '1m 0s');
  assert.equal(formatDuration(3 * 3600 + 120), '3h 2m');
  assert.equal(formatDuration(null), '—');
});
