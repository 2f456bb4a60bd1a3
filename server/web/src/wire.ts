// The API's shapes, from the modules the collector itself uses (types only: nothing of the
// server is bundled into the page).
export type { Finding, FindingKind, ProcessRef } from '../../../protocol/findings.js';
export type { FindingChange, SeriesPoint, TargetInfo } from '../../../protocol/messages.js';
export type { CaptureReport, SnapshotMeta } from '../../../protocol/snapshots.js';
export type { HeapDiffRecord, HeapDiffGrower } from '../../../protocol/heap-diff-record.js';
import type { SnapshotMeta } from '../../../protocol/snapshots.js';
import type { TargetInfo } from '../../../protocol/messages.js';

/** GET /api/v1/targets (server/store/types.ts TargetRow, restated: that module needs Node's types). */
export interface TargetRow extends TargetInfo {
  node: string;
  firstSeenMs: number;
  lastSeenMs: number;
  findingCount: number;
  openFindingCount: number;
}

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

/** A stored snapshot as GET /api/v1/snapshots lists it (the snapshot API contract). */
export type SnapshotRow = SnapshotMeta & { node: string; agentId: string; bytes: number; sha256: string; storedAtMs: number };
