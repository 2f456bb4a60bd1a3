// Heap snapshots and sampling heap profiles on the wire: what a capture produced (or why it was
// refused), and how its bytes travel from the agent's spool to the collector with resume.
//
// Upload, one snapshot at a time per agent:
//   agent → `snapshot-begin` {meta, bytes, sha256}        (bytes and sha256 are known: the spool file is complete)
//   collector → `snapshot-offset` {snapshotId, offset}    (bytes it already holds in its .part; 0 when new;
//                                                          === bytes when it is already stored)
//   agent → binary frames from that offset (see encodeChunkFrame), respecting bufferedAmount
//   agent → `snapshot-end` {snapshotId, bytes, sha256}
//   collector → `snapshot-stored` {snapshotId, sha256}     (verified, fsynced, renamed: the agent may delete its copy)
//            or `snapshot-rejected` {snapshotId, reason, restart}
// After a reconnect the agent sends `snapshot-begin` again and the collector answers with the
// offset its .part holds, so only the missing tail travels.

export type SnapshotKind = 'heapsnapshot' | 'heapprofile';
export type CaptureTrigger = 'growth' | 'on-demand';
/** How the bytes were obtained; the probe says which in-process path it used. */
export type CaptureVia = 'inspector' | 'probe-v8-profiler-next' | 'probe-node-inspector';

/** Who and what a stored snapshot is. Sent by the agent in snapshot-begin; served by the API. */
export interface SnapshotMeta {
  /** Chosen by the agent: 32 lowercase hex (random). Used in file names: validated strictly. */
  snapshotId: string;
  kind: SnapshotKind;
  targetKey: string;
  /** Host pid and the pid inside the target's own pid namespace. */
  pid: number;
  nsPid: number | null;
  comm: string | null;
  cmdline: string | null;
  namespace: string | null;
  pod: string | null;
  podUid: string | null;
  container: string | null;
  containerId: string | null;
  /** `process.version` of the target, e.g. 'v20.20.2', when it could be read. */
  nodeVersion: string | null;
  trigger: CaptureTrigger;
  /** The growth finding that caused an automatic capture. */
  findingId: string | null;
  /** The collector command that asked for an on-demand capture. */
  commandId: string | null;
  /** Snapshots taken on one inspector session share a pairId (object ids comparable); index 0, 1. */
  pairId: string | null;
  pairIndex: number | null;
  via: CaptureVia;
  /** When the capture started, and how long the target was paused (full snapshot) or profiled. */
  takenAtMs: number;
  durationMs: number;
  /** The target's V8 heap in use just before the capture (Runtime.getHeapUsage / process.memoryUsage). */
  heapUsedBytes: number | null;
}

export type CaptureOutcome =
  /** What was asked was stored in the spool (and goes to the collector). */
  | 'captured'
  /** A full snapshot was refused by a gate and a sampling profile was taken instead. */
  | 'downgraded'
  /** Nothing was taken; `reason` says why (gate, SIGUSR1 not caught, rate limit, ...). */
  | 'refused'
  /** It was tried and went wrong (timeout, inspector unreachable, peer not the target, ...). */
  | 'failed';

/** One capture attempt, whatever became of it: every refusal is recorded with its reason. */
export interface CaptureReport {
  /** 32 lowercase hex, chosen by the agent. */
  captureId: string;
  atMs: number;
  node: string;
  targetKey: string | null;
  pid: number | null;
  namespace: string | null;
  pod: string | null;
  container: string | null;
  trigger: CaptureTrigger;
  findingId: string | null;
  commandId: string | null;
  requested: SnapshotKind;
  outcome: CaptureOutcome;
  /** Plain language, set for downgraded / refused / failed: "cgroup headroom 80 MiB is below 2 × heap in use (2 × 60 MiB)". */
  reason: string | null;
  /** Stable id of the gate or failure: 'sigusr1-not-caught', 'headroom', 'busy', 'rate-limit', 'timeout', 'not-node', 'peer-mismatch', 'spool-full', ... */
  reasonCode: string | null;
  snapshotIds: string[];
}

/** The command a collector sends to an agent for an on-demand capture (CommandMessage.command). */
export interface SnapshotCommand {
  action: 'snapshot';
  namespace: string;
  pod: string;
  container?: string;
  /** Host pid; without it the agent picks the Node.js process of the container with the most anon memory. */
  pid?: number;
  kind?: SnapshotKind;
}

export const SNAPSHOT_ID_PATTERN = /^[0-9a-f]{32}$/;

/**
 * Binary frame carrying snapshot bytes: 'LWS1' magic, u8 id length (32), the id in ASCII,
 * u64 big-endian offset of the first payload byte, then the payload.
 */
export const CHUNK_FRAME_MAGIC = 'LWS1';
