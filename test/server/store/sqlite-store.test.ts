// The embedded store on real SQLite files and real blob files in temp dirs: what goes in comes
// back, re-sends and stale updates change nothing, evidence lives in 0600 files, retention
// deletes what it says and logs it, and a killed writer loses nothing it acknowledged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { Finding, FindingTarget, ScriptEvidence } from '../../../protocol/findings.js';
import type { FindingChange, SeriesPoint, TargetInfo } from '../../../protocol/messages.js';
import { openStore, StoreOpenError, type SqliteStore, type SqliteStoreOptions } from '../../../server/store/sqlite-store.js';
import { APPLICATION_ID, MIGRATIONS } from '../../../server/store/sqlite-schema.js';
import type { FindingFilter } from '../../../server/store/types.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const STORE_MODULE = new URL('../../../server/store/sqlite-store.ts', import.meta.url).href;
const NOW = Date.now();
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

// ---- fixtures: findings shaped as protocol/findings.ts says

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'data');
}

function open(t: { after: (fn: () => void) => void }, dir: string, opts: SqliteStoreOptions = {}): SqliteStore {
  const store = openStore(dir, opts);
  t.after(() => store.close());
  return store;
}

const CTR_A = 'a'.repeat(64);
const CTR_B = 'b'.repeat(64);

function target(over: Partial<FindingTarget> = {}): FindingTarget {
  return {
    pid: 4242,
    comm: 'node',
    cmdline: 'node server.js',
    namespace: 'payments',
    pod: 'payment-processor-7d9f',
    podUid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    container: 'app',
    containerId: CTR_A,
    ...over,
  };
}

function growth(id: string, at = NOW - 10 * MIN, over: Partial<FindingTarget> = {}, node = 'node-a'): Finding {
  return {
    id,
    kind: 'growth',
    status: 'open',
    at,
    updatedAt: at,
    node,
    target: target(over),
    summary: `node (pid ${over.pid ?? 4242}) grows 1.0MiB/s`,
    details: {
      scope: 'process',
      slopeBytesPerSec: 1048576.5,
      currentBytes: 200 * 1048576,
      workingSetBytes: null,
      limitBytes: 256 * 1048576,
      etaSec: 56.25,
      confidence: 0.99,
      windowStartMs: at - MIN,
      windowEndMs: at,
    },
  };
}

function containerGrowth(id: string, at = NOW - 10 * MIN): Finding {
  return {
    id,
    kind: 'growth',
    status: 'open',
    at,
    updatedAt: at,
    node: 'node-a',
    target: target({ pid: null, comm: null, cmdline: null, namespace: 'shop', pod: 'cart-5c6d', container: 'cart', containerId: CTR_B }),
    summary: 'container shop/cart-5c6d/cart grows 300KiB/s',
    details: {
      scope: 'container',
      slopeBytesPerSec: 307200,
      currentBytes: 100 * 1048576,
      workingSetBytes: 140 * 1048576,
      limitBytes: 512 * 1048576,
      etaSec: 1400,
      confidence: 0.9,
      windowStartMs: at - 5 * MIN,
      windowEndMs: at,
    },
  };
}

function fanout(id: string, at = NOW - 9 * MIN): Finding {
  return {
    id,
    kind: 'fanout',
    status: 'open',
    at,
    updatedAt: at,
    node: 'node-a',
    target: target({ pid: 777, comm: 'python3', cmdline: 'python3 worker.py', namespace: 'batch', pod: 'worker-1', container: 'w' }),
    summary: 'python3 (pid 777) keeps 12 children',
    details: {
      parent: { pid: 777, comm: 'python3', cmdline: 'python3 worker.py' },
      childrenAlive: 12,
      childrenSeen: 40,
      spawnRatePerMin: 3.5,
      childrenAnonBytes: 120 * 1048576,
      childrenSlopeBytesPerSec: null,
      growingChildren: 0,
      limitBytes: null,
      sampleChildren: [{ pid: 5000, comm: 'python3', cmdline: 'python3 -c work' }],
    },
  };
}

function script(content: string | null, encoding: ScriptEvidence['contentEncoding'] = 'utf8'): ScriptEvidence {
  return {
    path: '/tmp/tmpk3j1.py',
    sha256: 'c'.repeat(64),
    sizeBytes: content === null ? null : Buffer.byteLength(content, encoding === 'base64' ? 'base64' : 'utf8'),
    mtimeMs: NOW - 2000,
    ctimeMs: NOW - 2000,
    content,
    contentEncoding: content === null ? null : encoding,
    truncated: false,
    refused: null,
  };
}

function spawnFinding(id: string, evidence: ScriptEvidence | null = script('import os\nprint(os.getpid())\n'), at = NOW - 8 * MIN): Finding {
  return {
    id,
    kind: 'suspicious-spawn',
    status: 'open',
    at,
    updatedAt: at,
    node: 'node-a',
    target: target({ pid: 5151, comm: 'python3', cmdline: 'python3 /tmp/tmpk3j1.py' }),
    summary: 'suspicious spawn: python3 (pid 5151) running /tmp/tmpk3j1.py',
    details: {
      rules: [{ id: 'script-in-tmp', reason: 'the script lives in /tmp' }],
      argv: ['python3', '/tmp/tmpk3j1.py'],
      exe: '/usr/bin/python3.11',
      cwd: '/app',
      uid: 1000,
      startTimeMs: at - 5.5,
      parentChain: [{ pid: 4242, comm: 'node', cmdline: 'node server.js' }],
      script: evidence,
      provenance: { path: '/app/resources.dat', sha256: 'd'.repeat(64), encoding: 'base64', statement: '/tmp/tmpk3j1.py is the base64 decoding of /app/resources.dat' },
      notes: ['a note'],
      occurrences: 1,
      pids: [5151],
    },
  };
}

function oomKill(id: string, at = NOW - 7 * MIN): Finding {
  return {
    id,
    kind: 'oom-kill',
    status: 'open',
    at,
    updatedAt: at,
    node: 'node-a',
    target: target(),
    summary: 'OOM kill: node (pid 4242) in payments/payment-processor-7d9f/app holding 250MiB anon',
    details: {
      victim: { pid: 4242, ppid: null, comm: 'node', cmdline: 'node server.js', lastRssAnonBytes: 250 * 1048576 },
      memcg: '/kubepods/burstable/pod0f1e/aaaa',
      containerSurvived: true,
      sources: ['kmsg', 'counter'],
      relatedFindings: ['growth-0123456789abcdef'],
    },
  };
}

function everyKind(): Finding[] {
  return [growth('growth-p1'), containerGrowth('growth-c1'), fanout('fanout-1'), spawnFinding('spawn-1'), oomKill('oom-1')];
}

const opens = (findings: Finding[]) => findings.map((finding) => ({ change: 'open' as FindingChange, finding }));
const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const byId = (a: Finding, b: Finding) => a.id.localeCompare(b.id);

function withoutContent(f: Finding): Finding {
  const c = copy(f);
  if (c.kind === 'suspicious-spawn' && c.details.script) c.details.script.content = null;
  return c;
}

function blobFiles(dir: string): string[] {
  const root = join(dir, 'blobs');
  const out: string[] = [];
  for (const fan of readdirSync(root)) for (const name of readdirSync(join(root, fan))) out.push(join(root, fan, name));
  return out.sort();
}

const mode = (path: string) => statSync(path).mode & 0o777;

// ---- findings

test('every finding kind round-trips through ingest, get and list', (t) => {
  const store = open(t, tempDir(t));
  const findings = everyKind();
  const result = store.ingestFindings('node-a', opens(findings));
  assert.deepEqual(result, { applied: 5, unchanged: 0, rejected: 0 });
  for (const f of findings) assert.deepEqual(store.getFinding(f.id), f, f.kind);
  assert.equal(store.getFinding('nope'), null);
  // Lists leave script content out (everything else about the script stays).
  const listed = store.listFindings();
  assert.deepEqual([...listed].sort(byId), findings.map(withoutContent).sort(byId));
  const spawn = listed.find((f) => f.kind === 'suspicious-spawn');
  assert.ok(spawn?.kind === 'suspicious-spawn' && spawn.details.script);
  assert.equal(spawn.details.script.contentEncoding, 'utf8');
  assert.equal(spawn.details.script.path, '/tmp/tmpk3j1.py');
});

test('listFindings filters by kind, status, node, namespace, pod and since; newest first with limit and offset', (t) => {
  const store = open(t, tempDir(t));
  store.ingestFindings('node-a', opens(everyKind()));
  const other = growth('growth-b1', NOW - 30 * MIN, { namespace: 'payments', pod: 'other-pod' }, 'node-b');
  store.ingestFindings('node-b', opens([other]));
  store.ingestFindings('node-a', [{ change: 'resolve', finding: { ...oomKill('oom-1'), updatedAt: NOW - MIN } }]);

  const ids = (fs: Finding[]) => fs.map((f) => f.id);
  assert.deepEqual(ids(store.listFindings({ kind: 'growth' })).sort(), ['growth-b1', 'growth-c1', 'growth-p1']);
  assert.deepEqual(ids(store.listFindings({ node: 'node-b' })), ['growth-b1']);
  assert.deepEqual(ids(store.listFindings({ status: 'resolved' })), ['oom-1']);
  assert.deepEqual(ids(store.listFindings({ namespace: 'payments', pod: 'payment-processor-7d9f' })).sort(), ['growth-p1', 'oom-1', 'spawn-1']);
  assert.deepEqual(ids(store.listFindings({ pod: 'other-pod' })), ['growth-b1']);
  assert.deepEqual(ids(store.listFindings({ namespace: 'batch' })), ['fanout-1']);
  assert.deepEqual(ids(store.listFindings({ since: NOW - 8 * MIN })).sort(), ['oom-1', 'spawn-1']);
  assert.deepEqual(ids(store.listFindings({ kind: 'growth', node: 'node-a', namespace: 'shop' })), ['growth-c1']);

  const all = store.listFindings();
  const updated = all.map((f) => f.updatedAt);
  assert.deepEqual(updated, [...updated].sort((a, b) => b - a), 'newest first');
  assert.deepEqual(ids(store.listFindings({ limit: 2 })), ids(all).slice(0, 2));
  assert.deepEqual(ids(store.listFindings({ limit: 2, offset: 2 })), ids(all).slice(2, 4));
  assert.throws(() => store.listFindings({ limit: -1 }), RangeError);
  assert.throws(() => store.listFindings({ offset: 1.5 }), RangeError);
});

test('an update that moves a finding to another target is found under the new one; an ordinary update keeps the target', (t) => {
  const store = open(t, tempDir(t));
  const f = growth('g-move', NOW - 10 * MIN, { pid: 100 });
  store.ingestFindings('node-a', opens([f]));
  // Ordinary: same target, newer state (the store writes only what changes).
  store.ingestFindings('node-a', [{ change: 'update', finding: { ...copy(f), updatedAt: NOW - 9 * MIN, summary: 'grows faster' } as Finding }]);
  assert.equal(store.getFinding('g-move')?.summary, 'grows faster');
  assert.deepEqual(store.listFindings({ namespace: 'payments', pod: 'payment-processor-7d9f' }).map((x) => x.id), ['g-move']);
  // Moved: the pid, pod and container change under the same id.
  const moved = { ...copy(f), updatedAt: NOW - 8 * MIN, target: target({ pid: 200, pod: 'payment-processor-new', containerId: CTR_B }) } as Finding;
  store.ingestFindings('node-a', [{ change: 'update', finding: moved }]);
  assert.deepEqual(store.getFinding('g-move'), moved);
  assert.deepEqual(store.listFindings({ namespace: 'payments', pod: 'payment-processor-7d9f' }), []);
  assert.deepEqual(store.listFindings({ namespace: 'payments', pod: 'payment-processor-new' }).map((x) => x.id), ['g-move']);
  const ctr = `ctr:/kubepods/burstable/pod0f1e/${CTR_B}`;
  store.ingestSeries('node-a', [targetInfo(`proc:100:${NOW - HOUR}`), targetInfo(`proc:200:${NOW - HOUR}`), targetInfo(ctr, { kind: 'container', pid: null, ppid: null, comm: null, cmdline: null, containerId: CTR_B })], [
    point(`proc:100:${NOW - HOUR}`, NOW - 3 * MIN, 1),
    point(`proc:200:${NOW - HOUR}`, NOW - 2 * MIN, 1),
    point(ctr, NOW - MIN, 1),
  ]);
  const counts = Object.fromEntries(store.listTargets().map((r) => [r.targetKey, r.findingCount]));
  assert.deepEqual(counts, { [`proc:100:${NOW - HOUR}`]: 0, [`proc:200:${NOW - HOUR}`]: 1, [ctr]: 1 });
});

test('a target described again with other details is updated; the same details change only its times', (t) => {
  const store = open(t, tempDir(t));
  const key = `proc:300:${NOW - HOUR}`;
  store.ingestSeries('node-a', [targetInfo(key)], [point(key, NOW - 5 * MIN, 1)]);
  store.ingestSeries('node-a', [targetInfo(key)], [point(key, NOW - 4 * MIN, 1)]);
  assert.deepEqual(
    store.listTargets().map((r) => [r.cmdline, r.pod, r.firstSeenMs, r.lastSeenMs]),
    [['node server.js', 'payment-processor-7d9f', NOW - 5 * MIN, NOW - 4 * MIN]],
  );
  store.ingestSeries('node-a', [targetInfo(key, { cmdline: 'node server.js --inspect', pod: 'renamed-pod' })], [point(key, NOW - 3 * MIN, 1)]);
  assert.deepEqual(
    store.listTargets().map((r) => [r.cmdline, r.pod, r.firstSeenMs, r.lastSeenMs]),
    [['node server.js --inspect', 'renamed-pod', NOW - 5 * MIN, NOW - 3 * MIN]],
  );
  assert.deepEqual(store.listTargets({ namespace: 'payments', pod: 'renamed-pod' }).map((r) => r.targetKey), [key]);
  assert.deepEqual(store.listTargets({ namespace: 'payments', pod: 'payment-processor-7d9f' }), []);
});

test('a re-sent batch changes nothing', (t) => {
  const dir = tempDir(t);
  const store = open(t, dir);
  const batch = opens(everyKind());
  store.ingestFindings('node-a', batch);
  const before = { list: store.listFindings(), events: store.findingEvents('spawn-1'), blobs: blobFiles(dir) };
  const blobMtime = statSync(before.blobs[0] ?? '').mtimeMs;

  const again = store.ingestFindings('node-a', copy(batch));
  assert.deepEqual(again, { applied: 0, unchanged: 5, rejected: 0 });
  assert.deepEqual(store.listFindings(), before.list);
  assert.deepEqual(store.findingEvents('spawn-1'), before.events);
  assert.equal(store.findingEvents('spawn-1').length, 1);
  assert.deepEqual(blobFiles(dir), before.blobs);
  assert.equal(statSync(before.blobs[0] ?? '').mtimeMs, blobMtime, 'the evidence file is not even touched');
});

test('an older update never overwrites a newer one; history keeps both', (t) => {
  const store = open(t, tempDir(t));
  const f = growth('g1', NOW - 10 * MIN);
  const newer = { ...copy(f), updatedAt: NOW - 2 * MIN, summary: 'newer' } as Finding;
  const older = { ...copy(f), updatedAt: NOW - 5 * MIN, summary: 'older' } as Finding;
  store.ingestFindings('node-a', [{ change: 'open', finding: f }, { change: 'update', finding: newer }]);
  const r = store.ingestFindings('node-a', [{ change: 'update', finding: older }]);
  assert.deepEqual(r, { applied: 0, unchanged: 1, rejected: 0 });
  assert.equal(store.getFinding('g1')?.summary, 'newer');
  assert.equal(store.getFinding('g1')?.updatedAt, NOW - 2 * MIN);
  assert.deepEqual(
    store.findingEvents('g1').map((e) => [e.change, e.summary]),
    [
      ['open', f.summary],
      ['update', 'older'],
      ['update', 'newer'],
    ],
  );
});

test('a resolve marks the finding resolved, even at the same updatedAt and with status left open', (t) => {
  const store = open(t, tempDir(t));
  const f = growth('g1');
  store.ingestFindings('node-a', opens([f]));
  // status says open: the change is what counts.
  store.ingestFindings('node-a', [{ change: 'resolve', finding: { ...copy(f), summary: `${f.summary} — resolved: exited` } }]);
  const got = store.getFinding('g1');
  assert.equal(got?.status, 'resolved');
  assert.equal(got?.summary, `${f.summary} — resolved: exited`);
  assert.equal(got?.at, f.at);
  assert.deepEqual(store.listFindings({ status: 'open' }), []);
  // A stale open re-sent after the resolve does not reopen it.
  store.ingestFindings('node-a', opens([f]));
  assert.equal(store.getFinding('g1')?.status, 'resolved');
});

test('a finding id owned by another node is ignored and logged', (t) => {
  const logs: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  const store = open(t, tempDir(t), { log: (msg, fields) => logs.push({ msg, fields }) });
  store.ingestFindings('node-a', opens([growth('g1')]));
  const forged = { ...growth('g1', NOW - MIN), summary: 'forged', node: 'node-b' } as Finding;
  const r = store.ingestFindings('node-b', [{ change: 'update', finding: forged }]);
  assert.deepEqual(r, { applied: 0, unchanged: 0, rejected: 1 });
  assert.equal(store.getFinding('g1')?.summary, growth('g1').summary);
  assert.equal(store.findingEvents('g1').length, 1);
  assert.deepEqual(logs, [{ msg: 'ingest: ignored a finding id that belongs to another node', fields: { id: 'g1', node: 'node-b', ownerNode: 'node-a' } }]);
});

test('a batch is one transaction: one bad finding stores none of it', (t) => {
  const store = open(t, tempDir(t));
  const bad = { ...growth('g2'), kind: 'nonsense' } as unknown as Finding;
  assert.throws(() => store.ingestFindings('node-a', opens([growth('g1'), bad])), /CHECK constraint/);
  assert.deepEqual(store.listFindings(), []);
  assert.deepEqual(store.findingEvents('g1'), []);
});

test('ingestFindingBatches stores several nodes in one call', (t) => {
  const store = open(t, tempDir(t));
  const r = store.ingestFindingBatches([
    { node: 'node-a', events: opens([growth('a1')]) },
    { node: 'node-b', events: opens([growth('b1', NOW - MIN, {}, 'node-b')]) },
  ]);
  assert.deepEqual(r, { applied: 2, unchanged: 0, rejected: 0 });
  assert.equal(store.getFinding('b1')?.node, 'node-b');
  assert.equal(store.listFindings({ node: 'node-a' }).length, 1);
});

test('unicode, NUL and <script> in summaries and evidence come back unchanged', (t) => {
  const dir = tempDir(t);
  let store = openStore(dir);
  const summary = `漏れ 🚨 <script>alert("x")</script> "quoted" \\ back\\slash \u0000 nul \u202e rtl e\u0301`;
  const f = { ...spawnFinding('s1', script(`# ${summary}\nprint('é')\n`)), summary } as Finding;
  f.target.cmdline = `python3 -c '<img src=x onerror=alert(1)>' ${summary}`;
  store.ingestFindings('node-a', opens([f]));
  store.audit({ atMs: NOW, actor: 'tok-ü', action: 'finding.read', subject: summary });
  assert.deepEqual(store.getFinding('s1'), f);
  store.close();
  store = open(t, dir);
  assert.deepEqual(store.getFinding('s1'), f);
  assert.equal(store.listFindings()[0]?.summary, summary);
  assert.equal(store.listAudit()[0]?.subject, summary);
});

// ---- evidence

test('script content is stored as a 0600 blob file by its sha256 and re-attached by getFinding', (t) => {
  const dir = tempDir(t);
  const content = 'import base64\nexec(base64.b64decode(open("/app/resources.dat").read()))\n';
  const f = spawnFinding('s1', script(content));
  let store = openStore(dir);
  store.ingestFindings('node-a', opens([f]));
  const sha = createHash('sha256').update(content, 'utf8').digest('hex');
  const path = store.blobPath(sha);
  assert.equal(path, join(dir, 'blobs', sha.slice(0, 2), sha));
  assert.equal(readFileSync(path ?? '', 'utf8'), content);
  assert.equal(mode(path ?? ''), 0o600);
  assert.equal(mode(join(dir, 'blobs', sha.slice(0, 2))), 0o700);
  assert.equal(mode(join(dir, 'blobs')), 0o700);
  store.close();

  // The database holds a reference, not the script.
  const raw = new Database(join(dir, 'leakwatch.db'), { readonly: true });
  const stored = raw.prepare('SELECT detailsJson FROM findings WHERE id = ?').pluck().get('s1') as string;
  const refs = raw.prepare('SELECT sha256, sizeBytes FROM finding_blobs WHERE findingId = ?').all('s1');
  raw.close();
  assert.ok(!stored.includes('b64decode'), stored);
  assert.ok(stored.includes(sha));
  assert.deepEqual(refs, [{ sha256: sha, sizeBytes: Buffer.byteLength(content) }]);

  store = open(t, dir);
  assert.deepEqual(store.getFinding('s1'), f);
});

test('binary (base64) evidence is stored as its bytes; content that would not round-trip stays inline', (t) => {
  const dir = tempDir(t);
  const store = open(t, dir);
  const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 0x7f, 10, 13]);
  const binary = spawnFinding('bin', script(bytes.toString('base64'), 'base64'));
  // Base64 with a line break decodes to bytes that re-encode differently: kept as sent.
  const odd = spawnFinding('odd', script('AAEC\n/w==', 'base64'), NOW - 7 * MIN);
  const lone = spawnFinding('lone', script('x\ud800y'), NOW - 6 * MIN);
  store.ingestFindings('node-a', opens([binary, odd, lone]));
  const sha = createHash('sha256').update(bytes).digest('hex');
  assert.deepEqual(readFileSync(store.blobPath(sha) ?? ''), bytes);
  assert.equal(blobFiles(dir).length, 1);
  for (const f of [binary, odd, lone]) assert.deepEqual(store.getFinding(f.id), f, f.id);
  assert.ok(store.listFindings().every((f) => f.kind !== 'suspicious-spawn' || f.details.script?.content === null));
});

test('a blob reference sent by an agent is dropped, so a finding cannot expose another blob', (t) => {
  const store = open(t, tempDir(t));
  const secret = store.putBlob(Buffer.from('heap snapshot with secrets'));
  const f = spawnFinding('s1', { ...script(null), contentBlob: { sha256: secret, sizeBytes: 26 } } as ScriptEvidence);
  store.ingestFindings('node-a', opens([f]));
  const got = store.getFinding('s1');
  assert.ok(got?.kind === 'suspicious-spawn' && got.details.script);
  assert.equal(got.details.script.content, null);
  assert.ok(!('contentBlob' in got.details.script));
  assert.ok(!JSON.stringify(got).includes('secrets'));
});

test('evidence whose blob is gone comes back without content and with a note saying so', (t) => {
  const store = open(t, tempDir(t));
  const f = spawnFinding('s1');
  store.ingestFindings('node-a', opens([f]));
  const content = f.kind === 'suspicious-spawn' ? (f.details.script?.content ?? '') : '';
  const path = store.blobPath(createHash('sha256').update(content).digest('hex'));
  unlinkSync(path ?? '');
  const got = store.getFinding('s1');
  assert.ok(got?.kind === 'suspicious-spawn' && got.details.script);
  assert.equal(got.details.script.content, null);
  assert.equal(got.details.script.contentEncoding, null);
  assert.equal(got.details.notes.length, 2);
  assert.match(got.details.notes[1] ?? '', /no longer stored/);
});

test('putBlob stores identical bytes once; blobPath refuses traversal, bad names, symlinks and missing blobs', (t) => {
  const dir = tempDir(t);
  const store = open(t, dir);
  const blobs = join(dir, 'blobs');
  const sha = store.putBlob(Buffer.from('evidence'));
  assert.equal(store.putBlob(Buffer.from('evidence')), sha);
  assert.equal(blobFiles(dir).length, 1);
  const path = store.blobPath(sha);
  assert.ok(path?.startsWith(blobs + sep));
  assert.equal(readFileSync(path ?? '', 'utf8'), 'evidence');

  for (const bad of ['../../etc/passwd', '..', '', `${sha}/../${sha}`, `../${sha}`, sha.toUpperCase(), `${sha} `, sha.slice(1), `${sha}0`, '%2e%2e%2fetc', `${sha.slice(0, 2)}/${sha}`]) {
    assert.equal(store.blobPath(bad), null, JSON.stringify(bad));
  }
  assert.equal(store.blobPath(42 as unknown as string), null);
  assert.equal(store.blobPath('e'.repeat(64)), null, 'valid but never stored');

  // A symlink planted where a blob would be is not followed, nor a symlinked fan-out dir.
  const planted = `ab${'0'.repeat(62)}`;
  mkdirSync(join(blobs, 'ab'), { mode: 0o700 });
  symlinkSync('/etc/passwd', join(blobs, 'ab', planted));
  assert.equal(store.blobPath(planted), null);
  const outside = mkdtempSync(join(tmpdir(), 'leakwatch-outside-'));
  t.after(() => rmSync(outside, { recursive: true, force: true }));
  const viaDir = `cd${'1'.repeat(62)}`;
  writeFileSync(join(outside, viaDir), 'not a blob');
  symlinkSync(outside, join(blobs, 'cd'));
  assert.equal(store.blobPath(viaDir), null);
});

// ---- agents, targets, series

test('agents: upsert keeps first sighting and dropped count; a reopened store has none connected', (t) => {
  const dir = tempDir(t);
  let store = openStore(dir);
  store.recordAgent({ agentId: 'a1', node: 'node-a', version: '0.1.0', atMs: 1000, connected: true });
  store.recordAgent({ agentId: 'a2', node: 'node-b', version: '0.1.0', atMs: 1500, connected: true, droppedFindings: 2 });
  store.recordAgent({ agentId: 'a1', node: 'node-a', version: '0.1.0', atMs: 2000, connected: false, droppedFindings: 5 });
  store.recordAgent({ agentId: 'a1', node: 'node-a', version: '0.2.0', atMs: 3000, connected: true });
  assert.deepEqual(store.listAgents(), [
    { agentId: 'a1', node: 'node-a', version: '0.2.0', firstSeenMs: 1000, lastSeenMs: 3000, connected: true, droppedFindings: 5 },
    { agentId: 'a2', node: 'node-b', version: '0.1.0', firstSeenMs: 1500, lastSeenMs: 1500, connected: true, droppedFindings: 2 },
  ]);
  store.close();
  store = open(t, dir);
  assert.deepEqual(
    store.listAgents().map((a) => [a.agentId, a.connected, a.lastSeenMs]),
    [
      ['a1', false, 3000],
      ['a2', false, 1500],
    ],
  );
});

function targetInfo(targetKey: string, over: Partial<TargetInfo> = {}): TargetInfo {
  const proc = targetKey.startsWith('proc:');
  return {
    targetKey,
    kind: proc ? 'process' : 'container',
    pid: proc ? Number(targetKey.split(':')[1]) : null,
    ppid: proc ? 1 : null,
    comm: proc ? 'node' : null,
    cmdline: proc ? 'node server.js' : null,
    namespace: 'payments',
    pod: 'payment-processor-7d9f',
    podUid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    container: 'app',
    containerId: CTR_A,
    ...over,
  };
}

function point(targetKey: string, atMs: number, anonBytes: number, limitBytes: number | null = 512 * 1048576): SeriesPoint {
  return { targetKey, atMs, anonBytes, workingSetBytes: anonBytes + 1000, limitBytes };
}

test('targets list with finding counts, telling apart incarnations of a reused pid', (t) => {
  const store = open(t, tempDir(t));
  const t0 = NOW - HOUR;
  const first = `proc:100:${t0}`;
  const second = `proc:100:${t0 + 20 * MIN}`;
  const ctr = '/kubepods/burstable/pod0f1e/' + CTR_A;
  store.ingestSeries('node-a', [targetInfo(first, { containerId: CTR_B }), targetInfo(second), targetInfo(`ctr:${ctr}`, { kind: 'container', pid: null, ppid: null, comm: null, cmdline: null })], [
    point(first, t0 + MIN, 1),
    point(first, t0 + 2 * MIN, 2),
    point(second, t0 + 21 * MIN, 3),
    point(`ctr:${ctr}`, t0 + 22 * MIN, 4),
  ]);
  // Same pid on another node: none of these findings are about it.
  store.ingestSeries('node-b', [targetInfo(`proc:100:${t0}`)], [point(`proc:100:${t0}`, t0 + MIN, 1)]);
  store.ingestFindings('node-a', [
    { change: 'open', finding: growth('g-first', t0 + 5 * MIN, { pid: 100, containerId: CTR_B }) },
    { change: 'open', finding: growth('g-second', t0 + 25 * MIN, { pid: 100 }) },
    { change: 'resolve', finding: { ...oomKill('oom-second', t0 + 30 * MIN), target: target({ pid: 100 }) } as Finding },
  ]);

  const rows = store.listTargets();
  const row = (node: string, key: string) => rows.find((r) => r.node === node && r.targetKey === key);
  assert.equal(rows.length, 4);
  assert.deepEqual([row('node-a', first)?.findingCount, row('node-a', first)?.openFindingCount], [1, 1]);
  assert.deepEqual([row('node-a', second)?.findingCount, row('node-a', second)?.openFindingCount], [2, 1]);
  assert.deepEqual([row('node-a', `ctr:${ctr}`)?.findingCount, row('node-a', `ctr:${ctr}`)?.openFindingCount], [2, 1]);
  assert.deepEqual([row('node-b', first)?.findingCount, row('node-b', first)?.openFindingCount], [0, 0]);
  assert.deepEqual(row('node-a', first), {
    ...targetInfo(first, { containerId: CTR_B }),
    node: 'node-a',
    firstSeenMs: t0 + MIN,
    lastSeenMs: t0 + 2 * MIN,
    findingCount: 1,
    openFindingCount: 1,
  });
  assert.deepEqual(
    store.listTargets({ node: 'node-b' }).map((r) => r.targetKey),
    [first],
  );
  assert.equal(store.listTargets({ namespace: 'payments', pod: 'payment-processor-7d9f' }).length, 4);
  assert.equal(store.listTargets({ pod: 'nope' }).length, 0);
  assert.equal(store.listTargets({ limit: 1 })[0]?.targetKey, `ctr:${ctr}`, 'most recently seen first');
});

test('targets come in pages: offset walks every target once, each page with its own counts; a page past 1000 is refused', (t) => {
  const store = open(t, tempDir(t));
  const t0 = NOW - HOUR;
  // 240 process targets on 120 pids, two incarnations each (the second starts 30 min later), and
  // one container; pid p has p % 4 findings, spread over both incarnations and both statuses.
  const keys: string[] = [];
  for (let pid = 1; pid <= 120; pid++) {
    const a = `proc:${pid}:${t0}`;
    const b = `proc:${pid}:${t0 + 30 * MIN}`;
    store.ingestSeries('node-a', [targetInfo(a), targetInfo(b)], [point(a, t0 + pid * 1000, 1), point(b, t0 + 30 * MIN + pid * 1000, 1)]);
    keys.push(a, b);
  }
  const ctrKey = `ctr:/kubepods/burstable/pod0f1e/${CTR_A}`;
  store.ingestSeries('node-a', [targetInfo(ctrKey, { kind: 'container', pid: null, ppid: null, comm: null, cmdline: null })], [point(ctrKey, t0, 1)]);
  keys.push(ctrKey);
  const events: Array<{ change: FindingChange; finding: Finding }> = [];
  const expected = new Map<string, [number, number]>(keys.map((k) => [k, [0, 0]]));
  for (let pid = 1; pid <= 120; pid++) {
    for (let i = 0; i < pid % 4; i++) {
      const late = i % 2 === 1;
      const resolved = i === 2;
      const at = t0 + (late ? 40 : 10) * MIN + i;
      events.push({ change: resolved ? 'resolve' : 'open', finding: growth(`g-${pid}-${i}`, at, { pid }) });
      const key = `proc:${pid}:${late ? t0 + 30 * MIN : t0}`;
      const [all, open] = expected.get(key)!;
      expected.set(key, [all + 1, open + (resolved ? 0 : 1)]);
      const [cAll, cOpen] = expected.get(ctrKey)!;
      expected.set(ctrKey, [cAll + 1, cOpen + (resolved ? 0 : 1)]);
    }
  }
  store.ingestFindings('node-a', events);

  assert.equal(store.listTargets().length, 100, 'a page of 100 by default');
  const walked: string[] = [];
  for (let offset = 0; ; offset += 70) {
    const page = store.listTargets({ limit: 70, offset });
    for (const r of page) {
      walked.push(r.targetKey);
      assert.deepEqual([r.findingCount, r.openFindingCount], expected.get(r.targetKey), r.targetKey);
    }
    if (page.length < 70) break;
  }
  assert.equal(walked.length, keys.length);
  assert.equal(new Set(walked).size, keys.length, 'no target twice, none left out');
  const seen = walked.map((k) => store.listTargets({ limit: 1000 }).find((r) => r.targetKey === k)!.lastSeenMs);
  assert.deepEqual(seen, [...seen].sort((a, b) => b - a), 'most recently seen first across pages');
  assert.equal(store.listTargets({ limit: 1000 }).length, keys.length);
  assert.throws(() => store.listTargets({ limit: 1001 }), /limit must be at most 1000/);
  assert.throws(() => store.listTargets({ offset: -1 }), /offset must be a non-negative integer/);
});

test('series round-trip: ranges, re-sent points, thinning that keeps the peak', (t) => {
  const store = open(t, tempDir(t));
  const key = 'proc:4242:1000';
  const points: SeriesPoint[] = [];
  for (let i = 0; i < 100; i++) points.push(point(key, NOW - 100_000 + i * 1000, 1000 + i * 10 + (i === 37 ? 99_999 : 0)));
  points[5] = { ...points[5]!, workingSetBytes: null, limitBytes: null };
  store.ingestSeries('node-a', [targetInfo(key)], points);
  store.ingestSeries('node-a', [], points.slice(0, 10)); // re-sent without its target
  assert.deepEqual(store.series('node-a', key), points);
  assert.deepEqual(store.series('node-a', key, { sinceMs: points[10]!.atMs, untilMs: points[19]!.atMs }), points.slice(10, 20));
  assert.deepEqual(store.series('node-b', key), []);
  assert.deepEqual(store.series('node-a', 'proc:1:1'), []);

  const thin = store.series('node-a', key, { maxPoints: 10 });
  assert.ok(thin.length <= 10 && thin.length >= 9, `${thin.length} points`);
  assert.equal(Math.max(...thin.map((p) => p.anonBytes)), 1000 + 370 + 99_999, 'the spike survives thinning');
  assert.deepEqual(
    thin.map((p) => p.atMs),
    [...thin.map((p) => p.atMs)].sort((a, b) => a - b),
  );
  assert.deepEqual(store.series('node-a', key, { maxPoints: 1000 }), points);

  // Points may arrive for a target not yet described: it is listed from its key.
  store.ingestSeries('node-a', [], [point('ctr:/kubepods/x', NOW, 5)]);
  const ctr = store.listTargets().find((r) => r.targetKey === 'ctr:/kubepods/x');
  assert.equal(ctr?.kind, 'container');
  assert.equal(ctr?.firstSeenMs, NOW);
});

/** What a series should read as: 10 s buckets (max anon and working set, newest limit) before `boundary`, raw after. */
function bucketed(raw: SeriesPoint[], boundary: number): SeriesPoint[] {
  const out: SeriesPoint[] = [];
  const first = raw[0];
  if (!first) return out;
  for (let b = Math.floor(first.atMs / 10_000) * 10_000; b < boundary; b += 10_000) {
    const inBucket = raw.filter((p) => p.atMs >= b && p.atMs < b + 10_000);
    const last = inBucket[inBucket.length - 1];
    if (!last) continue;
    if (inBucket.length === 1) {
      out.push(last);
      continue;
    }
    out.push({
      targetKey: last.targetKey,
      atMs: b,
      anonBytes: Math.max(...inBucket.map((p) => p.anonBytes)),
      workingSetBytes: Math.max(...inBucket.map((p) => p.workingSetBytes ?? 0)),
      limitBytes: last.limitBytes,
    });
  }
  out.push(...raw.filter((p) => p.atMs >= boundary));
  return out;
}

test('series older than an hour become 10 s buckets (max anon, last limit) as points arrive, in one message or many', (t) => {
  const store = open(t, tempDir(t));
  const start = Math.floor((NOW - 2 * HOUR) / 10_000) * 10_000;
  const limitAt = (at: number) => (at < start + 30 * MIN + 5000 ? 256 : 512) * 1048576;
  const rawFor = (key: string) => {
    const raw: SeriesPoint[] = [];
    for (let at = start; at <= NOW; at += 1000) raw.push(point(key, at, 1_000_000 + ((at / 1000) % 17) * 1000, limitAt(at)));
    return raw;
  };
  const boundary = Math.floor((NOW - HOUR) / 10_000) * 10_000;

  const once = 'ctr:/kubepods/pod1/once';
  const rawOnce = rawFor(once);
  store.ingestSeries('node-a', [targetInfo(once, { kind: 'container', pid: null })], rawOnce);
  const expectedOnce = bucketed(rawOnce, boundary);
  assert.deepEqual(store.series('node-a', once), expectedOnce);
  assert.ok(expectedOnce.some((p) => p.limitBytes === 256 * 1048576) && expectedOnce.some((p) => p.limitBytes === 512 * 1048576));
  assert.equal(expectedOnce.filter((p) => p.atMs < boundary).length, (boundary - start) / 10_000, 'one row per 10 s before the last hour');

  // As an agent sends them: 10 s of points per message, 720 messages.
  const steady = 'ctr:/kubepods/pod1/steady';
  const rawSteady = rawFor(steady);
  for (let i = 0; i < rawSteady.length; i += 10) store.ingestSeries('node-a', i === 0 ? [targetInfo(steady)] : [], rawSteady.slice(i, i + 10));
  assert.deepEqual(store.series('node-a', steady), bucketed(rawSteady, boundary));

  // Re-sending what is already bucketed changes nothing.
  store.ingestSeries('node-a', [], rawOnce.slice(0, 100));
  assert.deepEqual(store.series('node-a', once), expectedOnce);
});

test('retention buckets the series of a target that stopped sending; a late point merges into its bucket, once', (t) => {
  const dir = tempDir(t);
  let store = openStore(dir);
  const key = 'proc:4242:1000';
  const raw: SeriesPoint[] = [];
  for (let at = Math.floor((NOW - 3 * HOUR) / 10_000) * 10_000; at <= NOW - 90 * MIN; at += 2000) raw.push(point(key, at, 5_000_000 + ((at / 2000) % 7) * 100));
  store.ingestSeries('node-a', [targetInfo(key)], raw);
  store.ingestFindings('node-a', opens([growth('g1', NOW - 3 * HOUR, { pid: 4242 })]));
  // Bucketed up to an hour before its own newest point; the last hour of it is raw still.
  const lastOwn = Math.floor((NOW - 150 * MIN) / 10_000) * 10_000;
  assert.deepEqual(store.series('node-a', key), bucketed(raw, lastOwn));

  const logs: string[] = [];
  const report = store.applyRetention({ maxAgeMs: 7 * DAY, maxBlobBytes: 1e9 }, NOW, (msg) => logs.push(msg));
  const expected = bucketed(raw, Math.floor((NOW - HOUR) / 10_000) * 10_000);
  assert.deepEqual(store.series('node-a', key), expected);
  assert.equal(report.seriesPointsDownsampled, bucketed(raw, lastOwn).length - expected.length);
  assert.ok(report.seriesPointsDownsampled > 0);
  assert.equal(report.seriesPointsDeleted, 0);
  assert.ok(logs.includes('retention: downsampled series'));
  assert.equal(store.applyRetention({ maxAgeMs: 7 * DAY, maxBlobBytes: 1e9 }, NOW, () => {}).seriesPointsDownsampled, 0);
  assert.deepEqual(store.series('node-a', key), expected);

  const bucket = expected[3]!;
  const late = point(key, bucket.atMs + 4500, bucket.anonBytes + 77, 999);
  store.ingestSeries('node-a', [], [late]);
  store.ingestSeries('node-a', [], [late]);
  store.close();
  store = open(t, dir);
  const got = store.series('node-a', key);
  assert.equal(got.length, expected.length);
  // Max anon; the limit of the newest point in the bucket, which was already in it (its last raw point is later).
  assert.deepEqual(got[3], { ...bucket, anonBytes: late.anonBytes, workingSetBytes: late.workingSetBytes });
  assert.deepEqual(got.slice(4), expected.slice(4));
});

// ---- audit

test('audit entries list newest first, filtered by since and action', (t) => {
  const store = open(t, tempDir(t));
  store.audit({ atMs: 1000, actor: 'ops', action: 'finding.read', subject: 'growth-1' });
  store.audit({ atMs: 2000, actor: 'ops', action: 'snapshot.download', subject: 'snap-1', detail: '12 MiB', remote: '10.0.0.7' });
  store.audit({ atMs: 3000, actor: '-', action: 'token.rejected', subject: '/api/v1/findings', remote: '10.0.0.8' });
  const all = store.listAudit();
  assert.deepEqual(
    all.map((a) => a.action),
    ['token.rejected', 'snapshot.download', 'finding.read'],
  );
  assert.deepEqual(all[1], { id: 2, atMs: 2000, actor: 'ops', action: 'snapshot.download', subject: 'snap-1', detail: '12 MiB', remote: '10.0.0.7' });
  assert.deepEqual(all[2], { id: 1, atMs: 1000, actor: 'ops', action: 'finding.read', subject: 'growth-1' });
  assert.deepEqual(
    store.listAudit({ since: 2000 }).map((a) => a.id),
    [3, 2],
  );
  assert.deepEqual(
    store.listAudit({ action: 'finding.read' }).map((a) => a.id),
    [1],
  );
  assert.deepEqual(
    store.listAudit({ limit: 1 }).map((a) => a.id),
    [3],
  );
});

// ---- retention

test('retention deletes old resolved findings with their history, targets and evidence, logging each', (t) => {
  const dir = tempDir(t);
  const store = open(t, dir);
  const old = NOW - 10 * DAY;
  const oldGrowth = growth('g-old', old - HOUR, { pid: 300 });
  const oldSpawn = spawnFinding('s-old', script('print("old")\n'), old - HOUR);
  const recentResolved = growth('g-recent', NOW - 2 * HOUR, { pid: 301 });
  const longOpen = growth('g-open', old - HOUR, { pid: 302 });
  store.ingestFindings('node-a', opens([oldGrowth, oldSpawn, recentResolved, longOpen]));
  store.ingestFindings('node-a', [
    { change: 'update', finding: { ...copy(longOpen), updatedAt: old } as Finding },
    { change: 'update', finding: { ...copy(longOpen), updatedAt: NOW - MIN } as Finding },
    { change: 'resolve', finding: { ...copy(oldGrowth), updatedAt: old } as Finding },
    { change: 'resolve', finding: { ...copy(oldSpawn), updatedAt: old } as Finding },
    { change: 'resolve', finding: { ...copy(recentResolved), updatedAt: NOW - HOUR } as Finding },
  ]);
  const oldKey = `proc:300:${old - 2 * HOUR}`;
  const openKey = `proc:302:${old - 2 * HOUR}`;
  store.ingestSeries('node-a', [targetInfo(oldKey), targetInfo(openKey)], [
    point(oldKey, old - 90 * MIN, 1),
    point(oldKey, old - 80 * MIN, 2),
    point(openKey, old - 90 * MIN, 3),
    point(openKey, NOW - 2 * MIN, 4),
  ]);
  const oldBlob = blobFiles(dir)[0] ?? '';
  utimesSync(oldBlob, new Date(old), new Date(old));
  // An evidence file nothing refers to, stored long ago (a crash between write and commit)...
  const stray = store.putBlob(Buffer.from('stray'));
  const strayPath = store.blobPath(stray) ?? '';
  utimesSync(strayPath, new Date(NOW - DAY), new Date(NOW - DAY));
  // ...one just written, whose finding may not have committed yet...
  const fresh = store.putBlob(Buffer.from('fresh'));
  // ...and a write that crashed before its rename.
  const part = join(dir, 'blobs', stray.slice(0, 2), `${stray}.part`);
  writeFileSync(part, 'half');
  utimesSync(part, new Date(NOW - DAY), new Date(NOW - DAY));

  const logs: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  const report = store.applyRetention({ maxAgeMs: 7 * DAY, maxBlobBytes: 1e9 }, NOW, (msg, fields) => logs.push({ msg, fields }));

  assert.deepEqual(store.listFindings().map((f) => f.id).sort(), ['g-open', 'g-recent']);
  assert.deepEqual(store.findingEvents('g-old'), []);
  assert.deepEqual(store.findingEvents('s-old'), []);
  assert.deepEqual(
    store.findingEvents('g-open').map((e) => e.change),
    ['open', 'update'],
    'the old update is trimmed, its open kept',
  );
  assert.deepEqual(store.listTargets().map((r) => r.targetKey), [openKey]);
  assert.deepEqual(store.series('node-a', oldKey), []);
  assert.deepEqual(store.series('node-a', openKey).map((p) => p.anonBytes), [4], 'points older than maxAgeMs go');
  assert.equal(existsSync(oldBlob), false);
  assert.equal(existsSync(strayPath), false);
  assert.equal(existsSync(part), false);
  assert.ok(store.blobPath(fresh), 'young unreferenced blob kept (grace)');
  assert.deepEqual(report, {
    findingsDeleted: 2,
    seriesPointsDeleted: 3,
    blobsDeleted: 2,
    bytesFreed: Buffer.byteLength('print("old")\n') + 5,
    seriesPointsDownsampled: 0,
    targetsDeleted: 1,
    findingUpdatesTrimmed: 1,
    snapshotsDeleted: 0,
    snapshotBytesFreed: 0,
  });
  const deletedFindings = logs.filter((l) => l.msg === 'retention: deleted finding');
  assert.deepEqual(deletedFindings.map((l) => [l.fields.id, l.fields.kind, l.fields.resolvedAtMs]).sort(), [
    ['g-old', 'growth', old],
    ['s-old', 'suspicious-spawn', old],
  ]);
  assert.deepEqual(logs.find((l) => l.msg === 'retention: deleted target')?.fields, { node: 'node-a', targetKey: oldKey, seriesPoints: 2 });
  assert.deepEqual(
    logs
      .filter((l) => l.msg === 'retention: deleted blob')
      .map((l) => [l.fields.reason, l.fields.bytes])
      .sort((a, b) => Number(a[1]) - Number(b[1])),
    [
      ['unreferenced', 5],
      ['unreferenced', Buffer.byteLength('print("old")\n')],
    ],
  );
  assert.ok(logs.some((l) => l.msg === 'retention: deleted partial blob' && l.fields.path === part));

  const second = store.applyRetention({ maxAgeMs: 7 * DAY, maxBlobBytes: 1e9 }, NOW, () => {});
  assert.deepEqual([second.findingsDeleted, second.blobsDeleted, second.seriesPointsDeleted], [0, 0, 0]);
});

test('retention deletes thousands of findings in several transactions, each logged', (t) => {
  const store = open(t, tempDir(t));
  const many = Array.from({ length: 2500 }, (_, i) => ({ change: 'resolve' as FindingChange, finding: { ...growth(`g${i}`, NOW - 30 * DAY + i), status: 'resolved' } as Finding }));
  store.ingestFindings('node-a', many);
  store.ingestFindings('node-a', opens([growth('keep')]));
  const deleted: unknown[] = [];
  const report = store.applyRetention({ maxAgeMs: DAY, maxBlobBytes: 1e9 }, NOW, (msg, fields) => {
    if (msg === 'retention: deleted finding') deleted.push(fields.id);
  });
  assert.equal(report.findingsDeleted, 2500);
  assert.equal(new Set(deleted).size, 2500);
  assert.deepEqual(store.listFindings().map((f) => f.id), ['keep']);
});

test('retention keeps blobs under the byte bound by deleting the oldest stored first', (t) => {
  const dir = tempDir(t);
  const store = open(t, dir);
  const findings = [0, 1, 2, 3].map((i) => spawnFinding(`s${i}`, script(`${'#'.repeat(1000)} script ${i}\n`), NOW - (10 - i) * MIN));
  store.ingestFindings('node-a', opens(findings));
  const size = Buffer.byteLength(`${'#'.repeat(1000)} script 0\n`);
  const shas = [0, 1, 2, 3].map((i) => createHash('sha256').update(`${'#'.repeat(1000)} script ${i}\n`).digest('hex'));
  // Stored at different times, newest first in the array order given below.
  [3, 1, 0, 2].forEach((i, rank) => {
    const when = new Date(NOW - (rank + 1) * HOUR);
    utimesSync(store.blobPath(shas[i]!) ?? '', when, when);
  });
  const logs: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  const report = store.applyRetention({ maxAgeMs: 7 * DAY, maxBlobBytes: 2 * size + 10 }, NOW, (msg, fields) => logs.push({ msg, fields }));
  // Oldest stored: s2 (4 h), then s0 (3 h).
  assert.deepEqual(
    logs.filter((l) => l.msg === 'retention: deleted blob').map((l) => [l.fields.sha256, l.fields.reason, l.fields.findings]),
    [
      [shas[2], 'over-byte-bound', ['s2']],
      [shas[0], 'over-byte-bound', ['s0']],
    ],
  );
  assert.deepEqual([report.blobsDeleted, report.bytesFreed, report.findingsDeleted], [2, 2 * size, 0]);
  assert.equal(blobFiles(dir).length, 2);
  const lost = store.getFinding('s2');
  assert.ok(lost?.kind === 'suspicious-spawn');
  assert.equal(lost.details.script?.content, null);
  assert.match(lost.details.notes.join('\n'), /no longer stored/);
  assert.deepEqual(store.getFinding('s3'), findings[3]);
  assert.throws(() => store.applyRetention({ maxAgeMs: -1, maxBlobBytes: 0 }, NOW, () => {}), RangeError);
});

// ---- opening, reopening, durability

test('a reopened store serves everything it had; the data dir is 0700 and the database 0600', (t) => {
  const dir = tempDir(t);
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  let store = openStore(dir);
  const findings = everyKind();
  store.ingestFindings('node-a', opens(findings));
  store.ingestSeries('node-a', [targetInfo('proc:4242:1')], [point('proc:4242:1', NOW - 5000, 1), point('proc:4242:1', NOW, 2)]);
  store.recordAgent({ agentId: 'a1', node: 'node-a', version: '0.1.0', atMs: NOW, connected: false });
  store.audit({ atMs: NOW, actor: 'ops', action: 'finding.read', subject: 'spawn-1' });
  const before = { list: store.listFindings(), targets: store.listTargets(), series: store.series('node-a', 'proc:4242:1'), agents: store.listAgents(), audit: store.listAudit() };
  store.close();
  store.close(); // twice is harmless
  assert.equal(existsSync(join(dir, 'leakwatch.pid')), false);

  store = open(t, dir);
  // What the durability claims rest on: WAL fsynced at every commit, the lock held, space reclaimable.
  assert.deepEqual(store.describe(), { journalMode: 'wal', synchronous: 'FULL', lockingMode: 'exclusive', autoVacuum: 'incremental', schemaVersion: MIGRATIONS.length });
  assert.equal(mode(dir), 0o700);
  assert.equal(mode(join(dir, 'leakwatch.db')), 0o600);
  assert.equal(mode(join(dir, 'leakwatch.db-wal')), 0o600);
  for (const f of findings) assert.deepEqual(store.getFinding(f.id), f);
  assert.deepEqual(
    { list: store.listFindings(), targets: store.listTargets(), series: store.series('node-a', 'proc:4242:1'), agents: store.listAgents(), audit: store.listAudit() },
    before,
  );
  assert.throws(() => (store.close(), store.listFindings()), /closed/);
});

function startChild(script: string, args: string[]): { child: ChildProcess; lines: string[]; line: (match: (l: string) => boolean) => Promise<string>; exited: Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: Array<{ match: (l: string) => boolean; resolve: (l: string) => void }> = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of [...waiters]) if (w.match(l)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(l));
  });
  const line = (match: (l: string) => boolean) =>
    new Promise<string>((resolve, reject) => {
      const found = lines.find(match);
      if (found !== undefined) return resolve(found);
      const timer = setTimeout(() => reject(new Error(`child said ${lines.slice(-5).join(' | ')}; stderr ${stderr}`)), 20_000);
      waiters.push({ match, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      void exited.then(() => setTimeout(() => reject(new Error(`child exited; stderr ${stderr}`)), 100));
    });
  return { child, lines, line, exited };
}

test('a writer SIGKILLed mid-way loses no acknowledged batch', async (t) => {
  const dir = tempDir(t);
  const childScript = join(dir, '..', 'writer.ts');
  // Acknowledges (prints) a batch only after ingestFindings returned, as the collector does.
  writeFileSync(
    childScript,
    `import { writeSync } from 'node:fs';
import { openStore } from ${JSON.stringify(STORE_MODULE)};
const store = openStore(process.argv[2]);
writeSync(1, 'ready\\n');
for (let seq = 1; seq <= 1_000_000; seq++) {
  const events = [];
  for (let i = 0; i < 20; i++) {
    const id = 's' + seq + '-' + i;
    const spawn = i === 0;
    events.push({ change: 'open', finding: {
      id, kind: spawn ? 'suspicious-spawn' : 'growth', status: 'open', at: seq, updatedAt: seq, node: 'node-a',
      target: { pid: i, comm: 'x', cmdline: 'x', namespace: 'ns', pod: 'p', podUid: 'u', container: 'c', containerId: 'id' },
      summary: 'batch ' + seq,
      details: spawn
        ? { rules: [], argv: [], exe: null, cwd: null, uid: 0, startTimeMs: 0, parentChain: [], notes: [], occurrences: 1, pids: [1], provenance: null,
            script: { path: '/tmp/s', sha256: null, sizeBytes: null, mtimeMs: null, ctimeMs: null, content: 'script of batch ' + seq, contentEncoding: 'utf8', truncated: false, refused: null } }
        : { scope: 'process', slopeBytesPerSec: 1, currentBytes: seq, workingSetBytes: null, limitBytes: null, etaSec: null, confidence: 1, windowStartMs: 0, windowEndMs: seq },
    } });
  }
  store.ingestFindings('node-a', events);
  writeSync(1, seq + '\\n');
}
`,
  );
  const writer = startChild(childScript, [dir]);
  await writer.line((l) => l === 'ready');
  await writer.line((l) => Number(l) >= 40);
  // A little later, so the kill lands wherever the writer happens to be: in a commit, a blob write, between batches.
  await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 50)));
  writer.child.kill('SIGKILL');
  await writer.exited;
  assert.equal(writer.child.signalCode, 'SIGKILL');
  const acked = writer.lines.filter((l) => /^\d+$/.test(l)).map(Number);
  assert.ok(acked.length >= 40);

  const store = open(t, dir);
  for (const seq of acked) {
    for (let i = 0; i < 20; i++) assert.ok(store.getFinding(`s${seq}-${i}`), `batch ${seq} finding ${i}`);
    const spawn = store.getFinding(`s${seq}-0`);
    assert.ok(spawn?.kind === 'suspicious-spawn' && spawn.details.script?.content === `script of batch ${seq}`, `batch ${seq} evidence`);
  }
  // Whatever committed is whole: no batch is stored in part.
  const stored = store.listFindings({ limit: 1_000_000 });
  const perBatch = new Map<string, number>();
  for (const f of stored) perBatch.set(f.summary, (perBatch.get(f.summary) ?? 0) + 1);
  for (const [batch, n] of perBatch) assert.equal(n, 20, batch);
  // At most the one batch that committed before its ack was printed goes beyond what was acknowledged.
  assert.ok(perBatch.size >= acked.length && perBatch.size <= acked.length + 1, `${perBatch.size} stored, ${acked.length} acknowledged`);
  console.log(`acknowledged ${acked.length} batches before SIGKILL; ${perBatch.size} stored`);
});

test('a database held by another collector is a clear error naming its pid, in this process or another', async (t) => {
  const dir = tempDir(t);
  const first = openStore(dir);
  assert.throws(
    () => openStore(dir, { lockTimeoutMs: 50 }),
    (err: unknown) =>
      err instanceof StoreOpenError &&
      err.reason === 'in-use' &&
      err.message === `${join(dir, 'leakwatch.db')} is in use by another collector (pid ${process.pid}): stop it or use another --data-dir`,
  );
  // The failed open disturbed nothing.
  first.ingestFindings('node-a', opens([growth('g1')]));
  first.close();

  const holderScript = join(dir, '..', 'holder.ts');
  writeFileSync(
    holderScript,
    `import { openStore } from ${JSON.stringify(STORE_MODULE)};
// Kept referenced: a collected Database closes its connection, and with it the lock.
const store = openStore(process.argv[2]);
process.stdout.write('holding\\n');
setInterval(() => store.dataDir, 1000);
`,
  );
  const holder = startChild(holderScript, [dir]);
  t.after(() => holder.child.kill('SIGKILL'));
  await holder.line((l) => l === 'holding');
  assert.throws(() => openStore(dir), new RegExp(`is in use by another collector \\(pid ${holder.child.pid}\\)`));
  // Killed, it leaves no stale lock behind.
  holder.child.kill('SIGKILL');
  await holder.exited;
  const store = open(t, dir);
  assert.ok(store.getFinding('g1'));
});

test('a corrupt or foreign database file is a clear error', (t) => {
  const expectCorrupt = (dir: string, detail: RegExp) =>
    assert.throws(
      () => openStore(dir),
      (err: unknown) =>
        err instanceof StoreOpenError &&
        err.reason === 'corrupt' &&
        err.message.startsWith(`${join(dir, 'leakwatch.db')} is not a leakwatch database or is corrupt: move it away or restore a backup`) &&
        detail.test(err.message),
    );

  const garbage = tempDir(t);
  mkdirSync(garbage);
  writeFileSync(join(garbage, 'leakwatch.db'), Buffer.from('this is not sqlite at all, just some garbage bytes '.repeat(200)));
  expectCorrupt(garbage, /file is not a database/);

  const foreign = tempDir(t);
  mkdirSync(foreign);
  const other = new Database(join(foreign, 'leakwatch.db'));
  other.exec('CREATE TABLE recipes (name TEXT)');
  other.close();
  expectCorrupt(foreign, /application_id 0/);

  // Damage inside the file, past a valid header: found at open by quick_check.
  const damaged = tempDir(t);
  let store = openStore(damaged);
  for (let b = 0; b < 20; b++) store.ingestFindings('node-a', opens(Array.from({ length: 50 }, (_, i) => growth(`g${b}-${i}`, NOW - i))));
  store.close();
  const path = join(damaged, 'leakwatch.db');
  const pages = statSync(path).size / 4096;
  assert.ok(pages > 10, `${pages} pages`);
  const fd = openSync(path, 'r+');
  for (let page = 2; page < pages; page += 3) writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, page * 4096);
  closeSync(fd);
  expectCorrupt(damaged, /quick_check|malformed|corrupt/i);

  // A newer leakwatch's database is refused, not misread.
  const newer = tempDir(t);
  store = openStore(newer);
  store.close();
  const raw = new Database(join(newer, 'leakwatch.db'));
  raw.pragma('user_version = 99');
  raw.close();
  assert.throws(
    () => openStore(newer),
    (err: unknown) => err instanceof StoreOpenError && err.reason === 'newer-schema' && new RegExp(`schema 99; this one knows up to ${MIGRATIONS.length}`).test(err.message),
  );
});

/** Query plans of the SQL a store ran, read from its statement cache after it was used. */
function plansOf(store: SqliteStore, dbPath: string): Array<{ sql: string; plan: string[] }> {
  const sqls = [...(store as unknown as { statements: Map<string, unknown> }).statements.keys()];
  store.close();
  const db = new Database(dbPath, { readonly: true });
  try {
    const named = { kind: 'growth', status: 'open', action: 'a', node: 'node-a', namespace: 'payments', pod: 'p', since: 0, limit: 100, offset: 0, id: 'x', pid: 1, startMs: 1, nextStartMs: 2, containerId: 'c' };
    return sqls
      .filter((sql) => /^\s*(SELECT|WITH)/i.test(sql))
      .map((sql) => {
        const stmt = db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
        const positional = (sql.match(/\?/g) ?? []).length;
        const rows = (sql.includes('@') ? stmt.all(named) : stmt.all(...Array.from({ length: positional }, () => 'x'))) as Array<{ detail: string }>;
        return { sql: sql.replace(/\s+/g, ' ').trim(), plan: rows.map((r) => r.detail) };
      });
  } finally {
    db.close();
  }
}

test('every query the API makes reads findings and targets through an index, never a full scan', (t) => {
  const dir = tempDir(t);
  const store = openStore(dir);
  t.after(() => store.close());
  store.ingestFindings('node-a', opens(everyKind()));
  store.ingestSeries('node-a', [targetInfo(`proc:4242:${NOW - HOUR}`), targetInfo(`ctr:/kubepods/x/${CTR_A}`, { kind: 'container', pid: null, ppid: null, comm: null, cmdline: null })], [
    point(`proc:4242:${NOW - HOUR}`, NOW - MIN, 1),
    point(`ctr:/kubepods/x/${CTR_A}`, NOW - MIN, 1),
  ]);
  const filters: FindingFilter[] = [
    {},
    { kind: 'suspicious-spawn' },
    { status: 'open' },
    { node: 'node-a' },
    { namespace: 'payments' },
    { namespace: 'payments', pod: 'payment-processor-7d9f' },
    { pod: 'payment-processor-7d9f' },
    { since: NOW - HOUR },
    { kind: 'growth', node: 'node-a', status: 'open', offset: 100 },
  ];
  for (const f of filters) store.listFindings(f);
  store.getFinding('growth-p1');
  for (const f of [{}, { node: 'node-a' }, { namespace: 'payments' }, { namespace: 'payments', pod: 'x' }, { offset: 100 }]) store.listTargets(f);
  store.series('node-a', `proc:4242:${NOW - HOUR}`);
  store.listAgents();
  store.listAudit({ action: 'finding.read' });
  store.applyRetention({ maxAgeMs: DAY, maxBlobBytes: 1e12 }, NOW, () => {});

  const plans = plansOf(store, join(dir, 'leakwatch.db'));
  const of = (pattern: RegExp) => plans.filter((p) => pattern.test(p.sql)).flatMap((p) => p.plan);
  for (const { sql, plan } of plans) {
    if (!/\b(findings|targets)\b/.test(sql) || /SELECT DISTINCT sha256|FROM targets ORDER BY node, targetKey|FROM agents|FROM audit/.test(sql)) continue;
    for (const line of plan) assert.doesNotMatch(line, /^SCAN (findings|targets)( AS \w+)?$/, `${sql}\n${plan.join('\n')}`);
  }
  const listing = (where: string) => of(new RegExp(`FROM findings ${where}\\s*ORDER BY updatedAt DESC`));
  // (Ties on updatedAt are ordered by id in a small sort: "TEMP B-TREE FOR LAST TERM OF ORDER BY".)
  assert.match(listing('').join('|'), /^SCAN findings USING INDEX findings_updated\b/);
  assert.match(listing('WHERE kind = @kind').join('|'), /SEARCH findings USING INDEX findings_kind \(kind=\?\)/);
  assert.match(listing('WHERE node = @node').join('|'), /SEARCH findings USING INDEX findings_node_(pid|container) \(node=\?\)/);
  assert.match(listing('WHERE namespace = @namespace AND pod = @pod').join('|'), /SEARCH findings USING INDEX findings_ns_pod \(namespace=\? AND pod=\?\)/);
  assert.match(listing('WHERE updatedAt >= @since').join('|'), /SEARCH findings USING INDEX findings_updated \(updatedAt>\?\)/);
  assert.match(of(/WHERE node = \? AND containerId = \?/).join('|'), /SEARCH findings USING INDEX findings_node_container \(node=\? AND containerId=\?\)/);
  assert.match(of(/WHERE node = @node AND pid = @pid/).join('|'), /SEARCH findings USING (COVERING )?INDEX findings_node_pid \(node=\? AND pid=\?\)/);
  assert.match(of(/ORDER BY lastSeenMs DESC, node, targetKey LIMIT/).join('|'), /SCAN targets USING INDEX targets_last_seen/);
  assert.match(of(/SELECT MIN\(n.startMs\)/).join('|'), /SEARCH n USING PRIMARY KEY \(node=\? AND targetKey>\? AND targetKey<\?\)/);
  assert.match(of(/WHERE status = 'resolved' AND updatedAt < \?/).join('|'), /SEARCH findings USING INDEX findings_updated \(updatedAt<\?\)/);
});

/** A data directory whose database stopped at schema `version`, as an older leakwatch left it. */
function databaseAtSchema(dir: string, version: number): Database.Database {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const raw = new Database(join(dir, 'leakwatch.db'));
  raw.pragma('journal_mode = WAL');
  raw.pragma(`application_id = ${APPLICATION_ID}`);
  for (const migrate of MIGRATIONS.slice(0, version)) migrate(raw);
  raw.pragma(`user_version = ${version}`);
  return raw;
}

test('a schema 1 database is upgraded in place: its findings kept, the indexes updates do not need dropped', (t) => {
  const dir = tempDir(t);
  const raw = databaseAtSchema(dir, 1);
  const f = growth('growth-v1');
  raw.prepare(`INSERT INTO findings (id, kind, status, node, namespace, pod, podUid, container, containerId, pid, at, updatedAt, summary, targetJson, detailsJson, receivedMs)
    VALUES (?, 'growth', 'open', 'node-a', 'payments', 'payment-processor-7d9f', ?, 'app', ?, 4242, ?, ?, ?, ?, ?, ?)`).run(
    f.id, f.target.podUid, f.target.containerId, f.at, f.updatedAt, f.summary, JSON.stringify(f.target), JSON.stringify(f.details), NOW,
  );
  const v1Indexes = (raw.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'findings' AND sql IS NOT NULL ORDER BY name`).pluck().all() as string[]);
  raw.close();
  assert.ok(v1Indexes.includes('findings_status') && v1Indexes.includes('findings_node'));

  const store = open(t, dir);
  assert.equal(store.describe().schemaVersion, MIGRATIONS.length);
  assert.deepEqual(store.getFinding('growth-v1'), f);
  assert.deepEqual(store.listFindings({ node: 'node-a', status: 'open' }).map((x) => x.id), ['growth-v1']);
  store.close();
  const db = new Database(join(dir, 'leakwatch.db'), { readonly: true });
  t.after(() => db.close());
  const indexes = db.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'findings' AND sql IS NOT NULL ORDER BY name`).all() as Array<{ name: string; sql: string }>;
  assert.deepEqual(
    indexes.map((i) => i.name),
    ['findings_kind', 'findings_node_container', 'findings_node_pid', 'findings_ns_pod', 'findings_updated'],
  );
  assert.match(indexes.find((i) => i.name === 'findings_ns_pod')!.sql, /\(namespace, pod\)$/);
});

test('a schema 4 database gains target parents: its targets kept with ppid unknown, new ones stored with theirs', (t) => {
  const dir = tempDir(t);
  const raw = databaseAtSchema(dir, 4);
  const old = `proc:100:${NOW - HOUR}`;
  raw.prepare(`INSERT INTO targets (node, targetKey, kind, pid, startMs, comm, cmdline, namespace, pod, podUid, container, containerId, firstSeenMs, lastSeenMs)
    VALUES ('node-a', ?, 'process', 100, ?, 'node', 'node server.js', 'payments', 'payment-processor-7d9f', NULL, 'app', ?, ?, ?)`).run(old, NOW - HOUR, CTR_A, NOW - 2 * MIN, NOW - MIN);
  raw.close();

  const store = open(t, dir);
  assert.equal(store.describe().schemaVersion, MIGRATIONS.length);
  const child = `proc:101:${NOW - HOUR}`;
  store.ingestSeries('node-a', [targetInfo(child, { ppid: 100 })], [point(child, NOW - 30_000, 1)]);
  const byKey = new Map(store.listTargets().map((r) => [r.targetKey, r]));
  assert.equal(byKey.get(old)?.ppid, null, 'a target stored before the column: parent unknown');
  assert.equal(byKey.get(old)?.cmdline, 'node server.js');
  assert.equal(byKey.get(child)?.ppid, 100);
  // A new parent (the old one died and the process was reparented) replaces the stored one.
  store.ingestSeries('node-a', [targetInfo(child, { ppid: 1 })], [point(child, NOW - 20_000, 1)]);
  assert.equal(store.listTargets().find((r) => r.targetKey === child)?.ppid, 1);
});

test('a data dir that cannot be used is a clear error', (t) => {
  const dir = tempDir(t);
  writeFileSync(dir, 'a file, not a directory');
  assert.throws(
    () => openStore(dir),
    (err: unknown) => err instanceof StoreOpenError && err.reason === 'data-dir' && err.message.startsWith(`cannot use data directory ${dir}: `),
  );
});

test('a shared directory holding other files is refused, not locked down', (t) => {
  const dir = tempDir(t);
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'notes.txt'), 'someone else');
  assert.throws(
    () => openStore(dir),
    (err: unknown) => err instanceof StoreOpenError && err.reason === 'data-dir' && /holds files that are not leakwatch's \(notes\.txt\)/.test(err.message),
  );
  assert.equal(mode(dir), 0o755);
  assert.equal(existsSync(join(dir, 'leakwatch.db')), false);
  // Private already: its other files are the owner's business.
  chmodSync(dir, 0o700);
  open(t, dir);
});
