// One agent process for the upload benchmark: the real SnapshotSpool and Uplink, nothing else.
// argv: url token spoolDir capturePath bytes sha256 snapshotId. Prints JSON lines on stdout:
// {"ready":true} once connected (the bench takes the RSS baseline then), {"done":true,...} once
// the collector said snapshot-stored.
import { DiskQueue } from '../../agent/disk-queue.js';
import { SnapshotSpool } from '../../agent/snapshot-spool.js';
import { Uplink } from '../../agent/uplink.js';

const [url, token, spoolDir, path, bytesText, sha256, snapshotId] = process.argv.slice(2) as [string, string, string, string, string, string, string];
const queue = new DiskQueue({ dir: spoolDir });
const spool = new SnapshotSpool({ spoolDir });
// LEAKWATCH_BENCH_CHUNK_BYTES / LEAKWATCH_BENCH_HIGH_WATER_BYTES: for trying other settings.
const chunkBytes = Number(process.env.LEAKWATCH_BENCH_CHUNK_BYTES) || undefined;
const highWaterBytes = Number(process.env.LEAKWATCH_BENCH_HIGH_WATER_BYTES) || undefined;
const uplink = new Uplink({
  url, token, agentId: 'bench-agent', node: 'bench-node', version: 'bench', queue, snapshotSpool: spool,
  snapshotUpload: { ...(chunkBytes ? { chunkBytes } : {}), ...(highWaterBytes ? { highWaterBytes } : {}) },
});
uplink.start();
while (!uplink.state().connected) await new Promise((r) => setTimeout(r, 10));
await new Promise((r) => setTimeout(r, 500));
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
const t0 = performance.now();
await spool.accept({
  path,
  bytes: Number(bytesText),
  sha256,
  meta: {
    snapshotId, kind: 'heapsnapshot', targetKey: 'proc:1:1', pid: 1, nsPid: null, comm: 'node', cmdline: null, namespace: 'bench', pod: 'bench',
    podUid: null, container: null, containerId: null, nodeVersion: process.version, trigger: 'on-demand', findingId: null, commandId: null,
    pairId: null, pairIndex: null, via: 'inspector', takenAtMs: Date.now(), durationMs: 0, heapUsedBytes: null,
  },
});
while (spool.size > 0) await new Promise((r) => setTimeout(r, 5));
const ms = performance.now() - t0;
process.stdout.write(`${JSON.stringify({ done: true, ms, bytesSent: uplink.state().snapshots?.bytesSent })}\n`);
await uplink.close({ flushMs: 0 });
queue.close();
process.exit(0);
