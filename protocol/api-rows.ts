// Rows the collector's HTTP API answers with, beyond the wire messages: agents, targets and stored
// snapshots. Types only, so that the store (server/store/types.ts), the CLI and the web page (which
// cannot import the store's module: it needs Node's types) share one definition.
import type { TargetInfo } from './messages.js';
import type { SnapshotMeta } from './snapshots.js';

/** GET /api/v1/agents. */
export interface AgentRow {
  agentId: string;
  node: string;
  version: string;
  firstSeenMs: number;
  lastSeenMs: number;
  connected: boolean;
  droppedFindings: number;
}

/** GET /api/v1/targets. */
export interface TargetRow extends TargetInfo {
  node: string;
  firstSeenMs: number;
  lastSeenMs: number;
  /** Findings about this target, any status. */
  findingCount: number;
  openFindingCount: number;
}

/** A stored, verified snapshot as GET /api/v1/snapshots lists it. */
export interface SnapshotRow extends SnapshotMeta {
  node: string;
  agentId: string;
  bytes: number;
  sha256: string;
  storedAtMs: number;
}
