// The seams of agent/capture/: what a capture hands on (a complete file in the agent's work
// directory, with its sha256 computed while it was written), where it goes (the bounded
// outgoing snapshot spool, which the uplink drains), and the in-process probe as a second way in.
import type { CaptureReport, CaptureVia, SnapshotKind, SnapshotMeta } from '../../protocol/snapshots.js';

/** A finished capture file: complete on disk, fsynced, 0600. */
export interface CapturedFile {
  path: string;
  bytes: number;
  sha256: string;
  meta: SnapshotMeta;
}

/**
 * The outgoing spool (agent/snapshot-spool.ts): bounded on disk (default 2 GiB). accept() moves
 * the file in (rename on the same filesystem) and schedules its upload; it throws SpoolFullError
 * when the file would not fit, and the capture reports that as 'spool-full'.
 */
export interface SnapshotSink {
  /** Directory on the spool's filesystem where captures write their files before accept(). */
  readonly workDir: string;
  /** Bytes still free under the bound, for the gate that refuses a capture that would not fit. */
  freeBytes(): number;
  accept(file: CapturedFile): Promise<void>;
}

export class SpoolFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpoolFullError';
  }
}

/** Where capture reports go: the uplink sends them to the collector (queued like findings). */
export type CaptureReportSink = (report: CaptureReport) => void;

/** A target process running the opt-in probe (`node --require leakwatch/probe`). */
export interface ProbeConnection {
  /** Host pid of the target (matched by NSpid and start time). */
  readonly pid: number;
  readonly via: Extract<CaptureVia, 'probe-v8-profiler-next' | 'probe-node-inspector'>;
  readonly nodeVersion: string;
  /** process.memoryUsage().heapUsed, asked of the target now. */
  heapUsedBytes(signal?: AbortSignal): Promise<number>;
  /**
   * Take a capture in the target and stream it into outPath (never whole in memory), computing
   * sha256 on the way. A sampling profile samples for sampleMs.
   */
  capture(kind: SnapshotKind, outPath: string, options: { sampleMs?: number; signal?: AbortSignal }): Promise<{ bytes: number; sha256: string }>;
}

/** The agent's registry of connected probes (agent/capture/probe-server.ts). */
export interface ProbeRegistry {
  find(pid: number): ProbeConnection | null;
}
