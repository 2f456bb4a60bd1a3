// The API's shapes, from the modules the collector itself uses (types only: nothing of the
// server is bundled into the page).
export type { Finding, FindingKind, ProcessRef } from '../../../protocol/findings.js';
export type { FindingChange, SeriesPoint, TargetInfo } from '../../../protocol/messages.js';
export type { CaptureReport, SnapshotMeta } from '../../../protocol/snapshots.js';
export type { HeapDiffRecord, HeapDiffGrower } from '../../../protocol/heap-diff-record.js';
export type { AgentRow, SnapshotRow, TargetRow } from '../../../protocol/api-rows.js';
