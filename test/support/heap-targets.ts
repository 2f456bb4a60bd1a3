// Real Node.js targets with known leaks, each writing two heap snapshots with
// v8.writeHeapSnapshot() (one process, so object ids are comparable, as on one inspector session).
// Every target bounds itself: a fixed number of objects and --max-old-space-size.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type LeakKind = 'sessions' | 'listeners' | 'buffers' | 'control';

/** The class each leak should surface as (DevTools' class name) and a name its retainer path must show. */
export const expected: Record<Exclude<LeakKind, 'control'>, { className: string; holder: string }> = {
  sessions: { className: 'Session', holder: 'sessions' },
  listeners: { className: 'RequestState', holder: 'tick' },
  buffers: { className: 'system / JSArrayBufferData', holder: 'retainedBuffers' },
};

// Shared shape: warm up (code paths run, caches filled), snapshot A, leak, snapshot B.
const prelude = `
const v8 = require('node:v8');
const { EventEmitter } = require('node:events');
const [fileA, fileB] = process.argv.slice(2);
function churn(n) { let s = 0; for (let i = 0; i < n; i++) { const o = { i, t: [i, i + 1] }; s += o.t.length; } return s; }
`;

const programs: Record<LeakKind, string> = {
  sessions: `
class Session { constructor(id) { this.id = id; this.createdAt = id * 2; this.hits = 0; this.flags = 1; this.user = null; this.cart = null; this.lastSeen = 0; this.ttl = 30; } }
const sessions = new Map();
function handle(i) { sessions.set(i, new Session(i)); churn(10); }
for (let i = 0; i < 2000; i++) handle(i);
v8.writeHeapSnapshot(fileA);
for (let i = 2000; i < 22000; i++) handle(i);
v8.writeHeapSnapshot(fileB);
`,
  listeners: `
class RequestState { constructor(i) { this.i = i; this.count = 0; this.started = i; this.bytes = 0; this.a = 0; this.b = 0; this.c = 0; this.d = 0; this.e = 0; this.f = 0; } }
const bus = new EventEmitter();
bus.setMaxListeners(0);
function serve(i) { const state = new RequestState(i); bus.on('tick', () => { state.count++; }); churn(10); }
for (let i = 0; i < 1000; i++) serve(i);
v8.writeHeapSnapshot(fileA);
for (let i = 1000; i < 16000; i++) serve(i);
v8.writeHeapSnapshot(fileB);
`,
  buffers: `
const retainedBuffers = [];
function receive(i) { retainedBuffers.push(Buffer.alloc(64 * 1024, i & 0xff)); churn(10); }
for (let i = 0; i < 10; i++) receive(i);
v8.writeHeapSnapshot(fileA);
for (let i = 10; i < 310; i++) receive(i);
v8.writeHeapSnapshot(fileB);
`,
  control: `
const cache = new Map();
function work(i) { cache.set(i % 500, { i, v: [i, i * 2] }); churn(200); return JSON.stringify({ i }).length; }
for (let i = 0; i < 20000; i++) work(i);
v8.writeHeapSnapshot(fileA);
for (let i = 20000; i < 40000; i++) work(i);
v8.writeHeapSnapshot(fileB);
`,
};

export interface SnapshotPair {
  dir: string;
  before: string;
  after: string;
  cleanup(): void;
}

/** Runs the target under `node` (default: this one) and returns its two snapshot files. */
export function takeSnapshotPair(kind: LeakKind, node: string = process.execPath): SnapshotPair {
  const dir = mkdtempSync(join(tmpdir(), `leakwatch-heap-${kind}-`));
  const script = join(dir, `${kind}.cjs`);
  writeFileSync(script, prelude + programs[kind]);
  const before = join(dir, 'before.heapsnapshot');
  const after = join(dir, 'after.heapsnapshot');
  const r = spawnSync(node, ['--max-old-space-size=128', script, before, after], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`target ${kind} failed (${r.status ?? r.signal}): ${r.stderr}`);
  }
  return { dir, before, after, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
