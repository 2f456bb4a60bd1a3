// The SQLite store on its own, on this machine's disk, for tuning: durable ingest rates
// (synchronous = FULL: one fsync per commit), read latencies at the resulting size, and what
// opening (quick_check) and retention cost. Prints one JSON object.
//   node --import tsx bench/support/store-ingest.ts [--findings 100000] [--dir /var/tmp/x] [--keep]
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Finding } from '../../protocol/findings.js';
import type { FindingChange, SeriesPoint, TargetInfo } from '../../protocol/messages.js';
import { openStore, type SqliteStore } from '../../server/store/sqlite-store.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const totalFindings = Number(arg('--findings') ?? 100_000);
if (!Number.isInteger(totalFindings) || totalFindings < 1000) {
  console.error('--findings must be an integer >= 1000');
  process.exit(2);
}
const root = arg('--dir') ?? mkdtempSync(join(tmpdir(), 'leakwatch-store-bench-'));
const dataDir = join(root, 'data');
const NOW = Date.now();

type Event = { change: FindingChange; finding: Finding };

function finding(n: number, updatedAt: number): Finding {
  // Blocks of 100 consecutive findings share a node: a batch of 100 is one agent's.
  const node = `node-${Math.floor(n / 100) % 200}`;
  const pid = 1000 + (n % 5000);
  const target = {
    pid,
    comm: 'node',
    cmdline: 'node /app/server.js --port 8080',
    namespace: `ns-${n % 20}`,
    pod: `pod-${n % 1000}`,
    podUid: `uid-${n % 1000}`,
    container: 'app',
    containerId: `${(n % 1000).toString(16).padStart(8, '0')}${'f'.repeat(56)}`,
  };
  if (n % 100 === 0) {
    return {
      id: `spawn-${n}`,
      kind: 'suspicious-spawn',
      status: 'open',
      at: updatedAt,
      updatedAt,
      node,
      target,
      summary: `suspicious spawn: python3 (pid ${pid}) running /tmp/tmp${n}.py`,
      details: {
        rules: [{ id: 'script-in-tmp', reason: 'the script lives in /tmp' }],
        argv: ['python3', `/tmp/tmp${n}.py`],
        exe: '/usr/bin/python3',
        cwd: '/app',
        uid: 1000,
        startTimeMs: updatedAt - 10,
        parentChain: [{ pid: 1, comm: 'node', cmdline: 'node server.js' }],
        script: {
          path: `/tmp/tmp${n}.py`,
          sha256: null,
          sizeBytes: 2048,
          mtimeMs: updatedAt,
          ctimeMs: updatedAt,
          content: `# script ${n}\n${'x = 1\n'.repeat(340)}`,
          contentEncoding: 'utf8',
          truncated: false,
          refused: null,
        },
        provenance: null,
        notes: [],
        occurrences: 1,
        pids: [pid],
      },
    };
  }
  return {
    id: `growth-${n}`,
    kind: 'growth',
    status: 'open',
    at: NOW - 3_600_000,
    updatedAt,
    node,
    target,
    summary: `node (pid ${pid}) in ns-${n % 20}/pod-${n % 1000}/app grows 1.2MiB/s, reaches its limit in 3m`,
    details: {
      scope: 'process',
      slopeBytesPerSec: 1_258_291,
      currentBytes: 200_000_000 + n,
      workingSetBytes: null,
      limitBytes: 512 * 1048576,
      etaSec: 180,
      confidence: 0.97,
      windowStartMs: updatedAt - 60_000,
      windowEndMs: updatedAt,
    },
  };
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

function timed(label: string, count: number, fn: (i: number) => void): { label: string; calls: number; p50Ms: number; p99Ms: number; totalMs: number } {
  const times: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const s = performance.now();
    fn(i);
    times.push(performance.now() - s);
  }
  const totalMs = performance.now() - t0;
  times.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { label, calls: count, p50Ms: r(quantile(times, 0.5)), p99Ms: r(quantile(times, 0.99)), totalMs: Math.round(totalMs) };
}

function ingestRate(store: SqliteStore, label: string, batches: number, perBatch: number, make: (n: number) => Finding, change: FindingChange) {
  let n = 0;
  const outcome = { applied: 0, unchanged: 0, rejected: 0 };
  const stat = timed(label, batches, () => {
    const events: Event[] = [];
    for (let i = 0; i < perBatch; i++) events.push({ change, finding: make(n++) });
    const r = store.ingestFindings(events[0]!.finding.node, events);
    outcome.applied += r.applied;
    outcome.unchanged += r.unchanged;
    outcome.rejected += r.rejected;
  });
  // A rate of batches that changed nothing would measure nothing.
  if (outcome.applied !== batches * perBatch) throw new Error(`${label}: ${JSON.stringify(outcome)}`);
  return { ...stat, findingsPerSec: Math.round((batches * perBatch) / (stat.totalMs / 1000)) };
}

let store = openStore(dataDir);
const results: Record<string, unknown> = { disk: root, findings: totalFindings, settings: store.describe() };

// Fresh findings, 100 per batch (1 in 100 a spawn with a 2 KiB script: a blob write + 2 fsyncs).
const batches100 = Math.floor(totalFindings / 100);
results.open100 = ingestRate(store, 'open, 100 per batch', batches100, 100, (n) => finding(n, NOW - 60_000), 'open');
// The same findings updated (upsert path, history rows), 100 per batch.
results.update100 = ingestRate(store, 'update, 100 per batch', Math.min(batches100, 300), 100, (n) => finding(n, NOW - 30_000 + 1), 'update');
// One finding per commit: the fsync floor.
results.update1 = ingestRate(store, 'update, 1 per batch', 1000, 1, (n) => finding(n, NOW - 20_000), 'update');
// Group commit as the collector's IngestQueue does it: 200 agents x 5 findings in one transaction.
{
  const blocks = Math.floor(totalFindings / 100);
  let round = 0;
  const stat = timed('group commit, 200 batches x 5', 50, () => {
    // Agent a owns the blocks a, a+200, ... of 100 findings each (see finding()).
    const batches = Array.from({ length: 200 }, (_, a) => {
      const block = a + 200 * (round % Math.max(1, Math.floor(blocks / 200)));
      return {
        node: `node-${a}`,
        events: Array.from({ length: 5 }, (_, e) => ({ change: 'update' as FindingChange, finding: finding(block * 100 + ((round * 5 + e) % 100), NOW - 10_000 + round) })),
      };
    });
    round++;
    const r = store.ingestFindingBatches(batches);
    if (r.applied !== 1000) throw new Error(`group commit: ${JSON.stringify(r)}`);
  });
  results.groupCommit = { ...stat, findingsPerSec: Math.round((50 * 1000) / (stat.totalMs / 1000)) };
}

// Series: 2,000 targets, 60 points each, sent 20 targets per message.
{
  const targets: TargetInfo[] = Array.from({ length: 2000 }, (_, i) => ({
    targetKey: `proc:${1000 + (i % 5000)}:${NOW - 7_200_000}`,
    kind: 'process',
    pid: 1000 + (i % 5000),
    ppid: 1,
    comm: 'node',
    cmdline: 'node server.js',
    namespace: `ns-${i % 20}`,
    pod: `pod-${i % 1000}`,
    podUid: `uid-${i % 1000}`,
    container: 'app',
    containerId: null,
  }));
  let m = 0;
  const stat = timed('series, 20 targets x 60 points per message', 100, () => {
    const ts = targets.slice((m % 100) * 20, (m % 100) * 20 + 20);
    const node = `node-${m % 200}`;
    m++;
    const points: SeriesPoint[] = [];
    for (const t of ts) for (let s = 0; s < 60; s++) points.push({ targetKey: t.targetKey, atMs: NOW - 120_000 + s * 1000, anonBytes: 1e8 + s, workingSetBytes: null, limitBytes: 5e8 });
    store.ingestSeries(node, ts, points);
  });
  results.series = { ...stat, pointsPerSec: Math.round((100 * 1200) / (stat.totalMs / 1000)) };
}
// Series in steady state, downsampling as it goes: 200 targets of one node at 1 Hz for 2 hours,
// each message 20 targets x 10 s (so past the first hour every message also buckets 10 s of each).
{
  const keys = Array.from({ length: 200 }, (_, i) => `ctr:/kubepods/steady/${i}`);
  const t0 = NOW - 2 * 3_600_000;
  let msg = 0;
  const seconds = 7200;
  const stat = timed('series steady, 20 targets x 10 points per message, 2 h', (seconds / 10) * 10, () => {
    const slot = Math.floor(msg / 10); // 10 s window
    const group = msg % 10; // which 20 targets
    msg++;
    const points: SeriesPoint[] = [];
    for (const key of keys.slice(group * 20, group * 20 + 20)) {
      for (let s = 0; s < 10; s++) points.push({ targetKey: key, atMs: t0 + (slot * 10 + s) * 1000, anonBytes: 2e8 + ((slot * 10 + s) % 13) * 4096, workingSetBytes: 2.5e8, limitBytes: 5e8 });
    }
    store.ingestSeries('node-steady', [], points);
  });
  const rows = store.series('node-steady', keys[0]!).length;
  results.seriesSteady = { ...stat, pointsPerSec: Math.round((seconds * 200) / (stat.totalMs / 1000)), rowsPerTargetAfter2h: rows };
}

// Reads at this size.
results.reads = [
  timed('listFindings limit 100', 200, () => store.listFindings({ limit: 100 })),
  timed('listFindings kind=suspicious-spawn limit 100', 200, () => store.listFindings({ kind: 'suspicious-spawn', limit: 100 })),
  timed('listFindings namespace+pod', 200, (i) => store.listFindings({ namespace: `ns-${i % 20}`, pod: `pod-${i % 1000}`, limit: 100 })),
  timed('listFindings node, offset 200', 200, (i) => store.listFindings({ node: `node-${i % 200}`, limit: 100, offset: 200 })),
  timed('getFinding (spawn, blob re-attached)', 500, (i) => store.getFinding(`spawn-${(i * 100) % totalFindings}`)),
  timed('getFinding (growth)', 500, (i) => store.getFinding(`growth-${(i * 37 + 1) % totalFindings}`)),
  timed('listTargets limit 100', 50, () => store.listTargets({ limit: 100 })),
  timed('listTargets node', 50, (i) => store.listTargets({ node: `node-${i % 200}` })),
  // Message m wrote targets (m % 100) * 20 .. + 20 on node-<m % 200>.
  timed('series 60 points', 100, (m) => {
    const got = store.series(`node-${m % 200}`, `proc:${1000 + (m % 100) * 20}:${NOW - 7_200_000}`);
    if (got.length !== 60) throw new Error(`series: ${got.length} points`);
  }),
  timed('audit write', 200, (i) => store.audit({ atMs: NOW, actor: 'bench', action: 'finding.read', subject: `growth-${i}` })),
];

store.close();
const dbBytes = statSync(join(dataDir, 'leakwatch.db')).size;
{
  const t0 = performance.now();
  store = openStore(dataDir);
  results.reopenWithQuickCheckMs = Math.round(performance.now() - t0);
  store.close();
  const t1 = performance.now();
  store = openStore(dataDir, { checkOnOpen: false });
  results.reopenWithoutCheckMs = Math.round(performance.now() - t1);
}
results.dbBytes = dbBytes;
{
  const t0 = performance.now();
  // Everything resolved a day ago would go; here nothing is resolved, so this times the scans.
  const report = store.applyRetention({ maxAgeMs: 7 * 86_400_000, maxBlobBytes: 1e12 }, NOW, () => {});
  results.retention = { ms: Math.round(performance.now() - t0), report };
}
store.close();
results.rssMiB = Math.round(process.memoryUsage().rss / 1048576);
if (!process.argv.includes('--keep') && arg('--dir') === undefined) rmSync(root, { recursive: true, force: true });
console.log(JSON.stringify(results, null, 2));
