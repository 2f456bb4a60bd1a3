// Captures for the upload tests: files of random bytes (or a real heap snapshot written by a
// child Node process) with a valid SnapshotMeta, as agent/capture hands them to the spool.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { CapturedFile } from '../../agent/capture/types.js';
import type { CaptureReport, SnapshotKind, SnapshotMeta } from '../../protocol/snapshots.js';

export const newId = (): string => randomBytes(16).toString('hex');

export function sampleMeta(overrides: Partial<SnapshotMeta> = {}): SnapshotMeta {
  return {
    snapshotId: newId(),
    kind: 'heapsnapshot',
    targetKey: 'proc:4242:1700000000000',
    pid: 4242,
    nsPid: 1,
    comm: 'node',
    cmdline: 'node server.js',
    namespace: 'shop',
    pod: 'cart-7d9f',
    podUid: '0b9c1f0e-1111-2222-3333-444455556666',
    container: 'cart',
    containerId: 'c'.repeat(64),
    nodeVersion: process.version,
    trigger: 'on-demand',
    findingId: null,
    commandId: null,
    pairId: null,
    pairIndex: null,
    via: 'inspector',
    takenAtMs: Date.now(),
    durationMs: 120,
    heapUsedBytes: 10 * 1024 * 1024,
    ...overrides,
  };
}

export function sha256Of(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A file of `bytes` random bytes in `dir`, as a finished capture. */
export function fakeCapture(dir: string, bytes: number, meta: Partial<SnapshotMeta> = {}): CapturedFile & { content: Buffer } {
  const m = sampleMeta(meta);
  const content = randomBytes(bytes);
  const path = join(dir, `${m.snapshotId}.capture`);
  writeFileSync(path, content, { mode: 0o600 });
  return { path, bytes, sha256: sha256Of(content), meta: m, content };
}

/** A real heap snapshot of a small child Node process (v8.writeHeapSnapshot). */
export async function realHeapSnapshot(dir: string, meta: Partial<SnapshotMeta> = {}): Promise<CapturedFile> {
  const m = sampleMeta({ kind: 'heapsnapshot' as SnapshotKind, ...meta });
  const path = join(dir, `${m.snapshotId}.capture`);
  const script = `class LeakedThing { constructor(i) { this.i = i; } } globalThis.kept = Array.from({ length: 2000 }, (_, i) => new LeakedThing(i)); require('v8').writeHeapSnapshot(${JSON.stringify(path)});`;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', `${script} process.stdout.write(String(process.pid))`], { timeout: 60_000 });
  const content = readFileSync(path);
  return { path, bytes: statSync(path).size, sha256: sha256Of(content), meta: { ...m, pid: Number(stdout) || m.pid } };
}

export function sampleReport(overrides: Partial<CaptureReport> = {}): CaptureReport {
  return {
    captureId: newId(),
    atMs: Date.now(),
    node: 'node-a',
    targetKey: 'proc:4242:1700000000000',
    pid: 4242,
    namespace: 'shop',
    pod: 'cart-7d9f',
    container: 'cart',
    trigger: 'on-demand',
    findingId: null,
    commandId: null,
    requested: 'heapsnapshot',
    outcome: 'refused',
    reason: 'cgroup headroom 80 MiB is below 2 × heap in use (2 × 60 MiB)',
    reasonCode: 'headroom',
    snapshotIds: [],
    ...overrides,
  };
}
