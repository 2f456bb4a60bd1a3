// The wire protocol between an agent and the collector: one WebSocket per agent, authenticated
// at the upgrade with a bearer token; JSON text frames, each with a `type`, validated on receipt
// by the side that receives them; binary frames carry snapshot bytes (the snapshot issue).
// Nothing in agent/ imports server/ or the reverse: both import this module.
import type { Finding } from './findings.js';
import type { CaptureReport, SnapshotMeta } from './snapshots.js';

export const PROTOCOL_VERSION = 1;
/** The WebSocket path agents connect to. */
export const AGENT_WS_PATH = '/api/v1/agents/connect';

/** Close codes (4000-4999 are ours, RFC 6455 §7.4.2). */
export const CloseCode = {
  /** A frame that is not valid JSON or not a valid message: the agent has a bug or is not ours. */
  badMessage: 4400,
  /** Token missing or wrong (sent as HTTP 401 at the upgrade; this code if it happens later). */
  unauthorized: 4401,
  /** Token valid but without the `agent` scope. */
  forbidden: 4403,
  /** Another connection took over this agent id. */
  replaced: 4409,
  /** The collector is shutting down: reconnect later. */
  goingAway: 1001,
  /** A frame larger than maxPayload (ws closes with this on its own). */
  tooBig: 1009,
} as const;

/** One memory point of a target that has (or had) a finding, for the charts. */
export interface SeriesPoint {
  /** Stable key of the target on its node: `proc:<pid>:<startMs>` or `ctr:<cgroup path>`. */
  targetKey: string;
  atMs: number;
  anonBytes: number;
  workingSetBytes: number | null;
  limitBytes: number | null;
}

/** Who a target is, sent with its first points so the collector can list targets. */
export interface TargetInfo {
  targetKey: string;
  kind: 'process' | 'container';
  pid: number | null;
  /**
   * The process's parent (host pid), so a container's process tree is drawn from what was
   * sampled. Null for containers and where unknown; 0.1.0 agents do not send it.
   */
  ppid: number | null;
  comm: string | null;
  cmdline: string | null;
  namespace: string | null;
  pod: string | null;
  podUid: string | null;
  container: string | null;
  containerId: string | null;
}

export type FindingChange = 'open' | 'update' | 'resolve';

// ---- agent → collector

export interface HelloMessage {
  type: 'hello';
  protocolVersion: number;
  /** Stable per agent (node name unless configured). */
  agentId: string;
  node: string;
  version: string;
  startedAtMs: number;
}

/** Findings as they changed, oldest first. Acknowledged with `ack` once stored durably. */
export interface FindingsMessage {
  type: 'findings';
  seq: number;
  events: Array<{ change: FindingChange; finding: Finding }>;
}

export interface SeriesMessage {
  type: 'series';
  seq: number;
  targets: TargetInfo[];
  points: SeriesPoint[];
}

export interface HeartbeatMessage {
  type: 'heartbeat';
  atMs: number;
  /** Findings the agent's queue dropped since it started (queue full while offline). */
  droppedFindings: number;
  queuedFindings: number;
}

export interface CommandResultMessage {
  type: 'command-result';
  commandId: string;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** Start (or resume) uploading one spooled snapshot; the collector answers `snapshot-offset`. */
export interface SnapshotBeginMessage {
  type: 'snapshot-begin';
  meta: SnapshotMeta;
  /** Size and sha256 of the whole file: the spool file is complete before its upload begins. */
  bytes: number;
  sha256: string;
}

/** All bytes were sent as chunk frames; the collector verifies and answers stored or rejected. */
export interface SnapshotEndMessage {
  type: 'snapshot-end';
  snapshotId: string;
  bytes: number;
  sha256: string;
}

/** One capture attempt (refusals included), acknowledged with `ack` once stored, like findings. */
export interface CaptureReportMessage {
  type: 'capture-report';
  seq: number;
  report: CaptureReport;
}

export type AgentMessage =
  | HelloMessage
  | FindingsMessage
  | SeriesMessage
  | HeartbeatMessage
  | CommandResultMessage
  | SnapshotBeginMessage
  | SnapshotEndMessage
  | CaptureReportMessage;

// ---- collector → agent

export interface WelcomeMessage {
  type: 'welcome';
  protocolVersion: number;
  collectorVersion: string;
  /** How often the agent should send a heartbeat. */
  heartbeatIntervalMs: number;
}

export interface AckMessage {
  type: 'ack';
  seq: number;
}

export interface ErrorMessage {
  type: 'error';
  /** Machine-readable: 'bad-json', 'bad-message', 'unknown-type', 'not-hello', 'store-failed', ... */
  code: string;
  message: string;
  /** The seq of the message that failed, when it had one. */
  seq?: number;
}

export interface CommandMessage {
  type: 'command';
  commandId: string;
  /** e.g. { action: 'snapshot', pid: 123 } — defined by the snapshot issue. */
  command: { action: string; [key: string]: unknown };
}

/** The bytes of the snapshot the collector already holds: chunks resume from here (=== bytes: stored). */
export interface SnapshotOffsetMessage {
  type: 'snapshot-offset';
  snapshotId: string;
  offset: number;
}

/** Verified, fsynced, renamed and listed: the agent may delete its copy. */
export interface SnapshotStoredMessage {
  type: 'snapshot-stored';
  snapshotId: string;
  sha256: string;
}

/**
 * The upload failed. restart: begin again (the collector answers with the offset it still holds);
 * otherwise the collector will never take this snapshot and the agent drops it.
 */
export interface SnapshotRejectedMessage {
  type: 'snapshot-rejected';
  snapshotId: string;
  /** Stable: 'offset-mismatch', 'past-end', 'truncated', 'sha-mismatch', 'too-big', 'id-conflict', 'store-failed', ... */
  code: string;
  reason: string;
  restart: boolean;
}

export type CollectorMessage =
  | WelcomeMessage
  | AckMessage
  | ErrorMessage
  | CommandMessage
  | SnapshotOffsetMessage
  | SnapshotStoredMessage
  | SnapshotRejectedMessage;
