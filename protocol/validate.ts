// Runtime validation of everything that crosses the wire. Both sides receive JSON from a peer
// they do not control, so each message is checked field by field before anything touches it:
// types, enums, bounds. The result is a fresh object holding only the fields the protocol
// defines, so an unexpected key in the input never reaches the store or the agent's logic.
// Errors name the failing field's path (`events[3].finding.target.pid: expected number or null`)
// so an agent author can fix the bug from the error message alone.
import type {
  FanoutDetails,
  Finding,
  FindingKind,
  FindingStatus,
  FindingTarget,
  GrowthDetails,
  OomKillDetails,
  ProcessRef,
  Provenance,
  ScriptEvidence,
  SpawnDetails,
  SpawnRuleMatch,
} from './findings.js';
import type {
  AgentMessage,
  CollectorMessage,
  FindingChange,
  SeriesPoint,
  TargetInfo,
} from './messages.js';
import { SNAPSHOT_ID_PATTERN, type CaptureOutcome, type CaptureReport, type CaptureTrigger, type CaptureVia, type SnapshotKind, type SnapshotMeta } from './snapshots.js';

/** Longest string accepted anywhere except a script's content (UTF-8 bytes). */
export const MAX_STRING_BYTES = 64 * 1024;
/** A script's content (base64 or text) may be larger: scripts are the evidence. */
export const MAX_SCRIPT_CONTENT_BYTES = 1024 * 1024;
export const MAX_ARRAY_ITEMS = 10_000;
export const FINDING_ID_PATTERN = /^[a-z0-9-]{1,80}$/;
/** Agent ids and command ids: printable, no control characters, bounded like a DNS name. */
const MAX_ID_CHARS = 253;

export type ValidationFailure = { ok: false; code: 'unknown-type' | 'bad-message'; error: string };
export type AgentMessageResult = { ok: true; message: AgentMessage } | ValidationFailure;
export type CollectorMessageResult = { ok: true; message: CollectorMessage } | ValidationFailure;
export type FindingResult = { ok: true; finding: Finding } | { ok: false; code: 'bad-message'; error: string };

export const AGENT_MESSAGE_TYPES = ['hello', 'findings', 'series', 'heartbeat', 'command-result', 'snapshot-begin', 'snapshot-end', 'capture-report'] as const;
export const COLLECTOR_MESSAGE_TYPES = ['welcome', 'ack', 'error', 'command', 'snapshot-offset', 'snapshot-stored', 'snapshot-rejected'] as const;

class Invalid extends Error {}

function fail(path: string, expected: string, got: unknown): never {
  throw new Invalid(`${path || 'message'}: ${expected}, got ${describe(got)}`);
}

/** What the value was, without echoing it (it may be huge, or a secret). */
function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return typeof v;
}

const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);

function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'expected object', v);
  return v as Record<string, unknown>;
}

function checkString(v: unknown, path: string, maxBytes: number, orNull: boolean): string {
  if (typeof v !== 'string') fail(path, orNull ? 'expected string or null' : 'expected string', v);
  // Length in UTF-16 units bounds UTF-8 bytes from below (1 unit ≤ 3 bytes); count bytes only near the limit.
  if (v.length > maxBytes || (v.length * 3 > maxBytes && Buffer.byteLength(v, 'utf8') > maxBytes)) {
    throw new Invalid(`${path}: string longer than ${maxBytes} bytes`);
  }
  return v;
}

function str(o: Record<string, unknown>, key: string, path: string, maxBytes = MAX_STRING_BYTES): string {
  return checkString(o[key], join(path, key), maxBytes, false);
}

function strOrNull(o: Record<string, unknown>, key: string, path: string, maxBytes = MAX_STRING_BYTES): string | null {
  const v = o[key];
  return v === null ? null : checkString(v, join(path, key), maxBytes, true);
}

function nonEmptyId(o: Record<string, unknown>, key: string, path: string): string {
  const v = str(o, key, path, MAX_ID_CHARS);
  // eslint-disable-next-line no-control-regex
  if (v.length === 0 || v.length > MAX_ID_CHARS || /[\u0000-\u001f\u007f]/.test(v)) {
    throw new Invalid(`${join(path, key)}: expected 1-${MAX_ID_CHARS} printable characters`);
  }
  return v;
}

function checkNumber(v: unknown, path: string, integer: boolean, min: number, orNull: boolean): number {
  const what = integer ? (min === 0 ? 'non-negative integer' : 'integer') : 'number';
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isSafeInteger(v)) || v < min) {
    fail(path, orNull ? `expected ${what} or null` : `expected ${what}`, v);
  }
  return v;
}

/** Any finite number (measures can be negative: a shrinking slope). */
function num(o: Record<string, unknown>, key: string, path: string): number {
  return checkNumber(o[key], join(path, key), false, -Infinity, false);
}

function numOrNull(o: Record<string, unknown>, key: string, path: string): number | null {
  const v = o[key];
  return v === null ? null : checkNumber(v, join(path, key), false, -Infinity, true);
}

/** Non-negative safe integer: pids, counts, sequence numbers. */
function count(o: Record<string, unknown>, key: string, path: string): number {
  return checkNumber(o[key], join(path, key), true, 0, false);
}

function countOrNull(o: Record<string, unknown>, key: string, path: string): number | null {
  const v = o[key];
  return v === null ? null : checkNumber(v, join(path, key), true, 0, true);
}

function bool(o: Record<string, unknown>, key: string, path: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') fail(join(path, key), 'expected boolean', v);
  return v;
}

function boolOrNull(o: Record<string, unknown>, key: string, path: string): boolean | null {
  const v = o[key];
  if (v !== null && typeof v !== 'boolean') fail(join(path, key), 'expected boolean or null', v);
  return v;
}

function oneOf<T extends string>(o: Record<string, unknown>, key: string, path: string, values: readonly T[]): T {
  const v = o[key];
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw new Invalid(`${join(path, key)}: expected one of ${values.map((x) => `"${x}"`).join(', ')}`);
  }
  return v as T;
}

function oneOfOrNull<T extends string>(o: Record<string, unknown>, key: string, path: string, values: readonly T[]): T | null {
  return o[key] === null ? null : oneOf(o, key, path, values);
}

function array<T>(o: Record<string, unknown>, key: string, path: string, item: (v: unknown, path: string) => T): T[] {
  const v = o[key];
  const p = join(path, key);
  if (!Array.isArray(v)) fail(p, 'expected array', v);
  if (v.length > MAX_ARRAY_ITEMS) throw new Invalid(`${p}: more than ${MAX_ARRAY_ITEMS} items`);
  const out: T[] = new Array<T>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = item(v[i], `${p}[${i}]`);
  return out;
}

const stringItem = (v: unknown, path: string): string => checkString(v, path, MAX_STRING_BYTES, false);

function findingId(v: unknown, path: string): string {
  if (typeof v !== 'string' || !FINDING_ID_PATTERN.test(v)) {
    throw new Invalid(`${path}: expected a finding id matching ${FINDING_ID_PATTERN.source}`);
  }
  return v;
}

// ---- findings

const FINDING_KINDS: readonly FindingKind[] = ['growth', 'fanout', 'suspicious-spawn', 'oom-kill'];
const FINDING_STATUSES: readonly FindingStatus[] = ['open', 'resolved'];
const FINDING_CHANGES: readonly FindingChange[] = ['open', 'update', 'resolve'];

function target(v: unknown, path: string): FindingTarget {
  const o = object(v, path);
  return {
    pid: countOrNull(o, 'pid', path),
    comm: strOrNull(o, 'comm', path),
    cmdline: strOrNull(o, 'cmdline', path),
    namespace: strOrNull(o, 'namespace', path),
    pod: strOrNull(o, 'pod', path),
    podUid: strOrNull(o, 'podUid', path),
    container: strOrNull(o, 'container', path),
    containerId: strOrNull(o, 'containerId', path),
  };
}

function processRef(v: unknown, path: string): ProcessRef {
  const o = object(v, path);
  return { pid: count(o, 'pid', path), comm: str(o, 'comm', path), cmdline: str(o, 'cmdline', path) };
}

function growthDetails(v: unknown, path: string): GrowthDetails {
  const o = object(v, path);
  return {
    scope: oneOf(o, 'scope', path, ['process', 'container'] as const),
    slopeBytesPerSec: num(o, 'slopeBytesPerSec', path),
    currentBytes: num(o, 'currentBytes', path),
    workingSetBytes: numOrNull(o, 'workingSetBytes', path),
    limitBytes: numOrNull(o, 'limitBytes', path),
    etaSec: numOrNull(o, 'etaSec', path),
    confidence: num(o, 'confidence', path),
    windowStartMs: num(o, 'windowStartMs', path),
    windowEndMs: num(o, 'windowEndMs', path),
  };
}

function fanoutDetails(v: unknown, path: string): FanoutDetails {
  const o = object(v, path);
  return {
    parent: processRef(o.parent, join(path, 'parent')),
    childrenAlive: count(o, 'childrenAlive', path),
    childrenSeen: count(o, 'childrenSeen', path),
    spawnRatePerMin: num(o, 'spawnRatePerMin', path),
    childrenAnonBytes: num(o, 'childrenAnonBytes', path),
    childrenSlopeBytesPerSec: numOrNull(o, 'childrenSlopeBytesPerSec', path),
    growingChildren: count(o, 'growingChildren', path),
    limitBytes: numOrNull(o, 'limitBytes', path),
    sampleChildren: array(o, 'sampleChildren', path, processRef),
  };
}

function ruleMatch(v: unknown, path: string): SpawnRuleMatch {
  const o = object(v, path);
  return { id: str(o, 'id', path), reason: str(o, 'reason', path) };
}

function scriptEvidence(v: unknown, path: string): ScriptEvidence | null {
  if (v === null) return null;
  const o = object(v, path);
  return {
    path: str(o, 'path', path),
    sha256: strOrNull(o, 'sha256', path),
    sizeBytes: numOrNull(o, 'sizeBytes', path),
    mtimeMs: numOrNull(o, 'mtimeMs', path),
    ctimeMs: numOrNull(o, 'ctimeMs', path),
    content: strOrNull(o, 'content', path, MAX_SCRIPT_CONTENT_BYTES),
    contentEncoding: oneOfOrNull(o, 'contentEncoding', path, ['utf8', 'base64'] as const),
    truncated: bool(o, 'truncated', path),
    refused: strOrNull(o, 'refused', path),
  };
}

function provenance(v: unknown, path: string): Provenance | null {
  if (v === null) return null;
  const o = object(v, path);
  return {
    path: str(o, 'path', path),
    sha256: str(o, 'sha256', path),
    encoding: oneOf(o, 'encoding', path, ['base64', 'gzip+base64', 'copy'] as const),
    statement: str(o, 'statement', path),
  };
}

function spawnDetails(v: unknown, path: string): SpawnDetails {
  const o = object(v, path);
  return {
    rules: array(o, 'rules', path, ruleMatch),
    argv: array(o, 'argv', path, stringItem),
    exe: strOrNull(o, 'exe', path),
    cwd: strOrNull(o, 'cwd', path),
    uid: count(o, 'uid', path),
    startTimeMs: num(o, 'startTimeMs', path),
    parentChain: array(o, 'parentChain', path, processRef),
    script: scriptEvidence(o.script, join(path, 'script')),
    provenance: provenance(o.provenance, join(path, 'provenance')),
    notes: array(o, 'notes', path, stringItem),
    occurrences: count(o, 'occurrences', path),
    pids: array(o, 'pids', path, (v, p) => checkNumber(v, p, true, 0, false)),
  };
}

function oomDetails(v: unknown, path: string): OomKillDetails {
  const o = object(v, path);
  const vp = join(path, 'victim');
  const victim = object(o.victim, vp);
  return {
    victim: {
      pid: countOrNull(victim, 'pid', vp),
      ppid: victim.ppid === undefined ? null : countOrNull(victim, 'ppid', vp),
      comm: strOrNull(victim, 'comm', vp),
      cmdline: strOrNull(victim, 'cmdline', vp),
      lastRssAnonBytes: numOrNull(victim, 'lastRssAnonBytes', vp),
    },
    memcg: strOrNull(o, 'memcg', path),
    containerSurvived: boolOrNull(o, 'containerSurvived', path),
    sources: array(o, 'sources', path, (s, p) => {
      if (s !== 'kmsg' && s !== 'counter') throw new Invalid(`${p}: expected one of "kmsg", "counter"`);
      return s;
    }),
    relatedFindings: array(o, 'relatedFindings', path, findingId),
  };
}

function finding(v: unknown, path: string): Finding {
  const o = object(v, path);
  const base = {
    id: findingId(o.id, join(path, 'id')),
    status: oneOf(o, 'status', path, FINDING_STATUSES),
    at: num(o, 'at', path),
    updatedAt: num(o, 'updatedAt', path),
    node: str(o, 'node', path),
    target: target(o.target, join(path, 'target')),
    summary: str(o, 'summary', path),
  };
  const kind = oneOf(o, 'kind', path, FINDING_KINDS);
  const dp = join(path, 'details');
  switch (kind) {
    case 'growth':
      return { ...base, kind, details: growthDetails(o.details, dp) };
    case 'fanout':
      return { ...base, kind, details: fanoutDetails(o.details, dp) };
    case 'suspicious-spawn':
      return { ...base, kind, details: spawnDetails(o.details, dp) };
    case 'oom-kill':
      return { ...base, kind, details: oomDetails(o.details, dp) };
  }
}

// ---- series

function targetInfo(v: unknown, path: string): TargetInfo {
  const o = object(v, path);
  return {
    targetKey: str(o, 'targetKey', path),
    kind: oneOf(o, 'kind', path, ['process', 'container'] as const),
    pid: countOrNull(o, 'pid', path),
    // Absent from 0.1.0 agents: unknown, not an error.
    ppid: o.ppid === undefined ? null : countOrNull(o, 'ppid', path),
    comm: strOrNull(o, 'comm', path),
    cmdline: strOrNull(o, 'cmdline', path),
    namespace: strOrNull(o, 'namespace', path),
    pod: strOrNull(o, 'pod', path),
    podUid: strOrNull(o, 'podUid', path),
    container: strOrNull(o, 'container', path),
    containerId: strOrNull(o, 'containerId', path),
  };
}

function seriesPoint(v: unknown, path: string): SeriesPoint {
  const o = object(v, path);
  return {
    targetKey: str(o, 'targetKey', path),
    atMs: num(o, 'atMs', path),
    anonBytes: num(o, 'anonBytes', path),
    workingSetBytes: numOrNull(o, 'workingSetBytes', path),
    limitBytes: numOrNull(o, 'limitBytes', path),
  };
}

// ---- snapshots

const SNAPSHOT_KINDS: readonly SnapshotKind[] = ['heapsnapshot', 'heapprofile'];
const CAPTURE_TRIGGERS: readonly CaptureTrigger[] = ['growth', 'on-demand'];
const CAPTURE_VIAS: readonly CaptureVia[] = ['inspector', 'probe-v8-profiler-next', 'probe-node-inspector'];
const CAPTURE_OUTCOMES: readonly CaptureOutcome[] = ['captured', 'downgraded', 'refused', 'failed'];
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
/** Capture ids share the snapshot id shape (32 lowercase hex). */
const CAPTURE_ID_PATTERN = SNAPSHOT_ID_PATTERN;

function snapshotIdAt(o: Record<string, unknown>, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string' || !SNAPSHOT_ID_PATTERN.test(v)) throw new Invalid(`${join(path, key)}: expected 32 lowercase hex characters`);
  return v;
}

function sha256At(o: Record<string, unknown>, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string' || !SHA256_PATTERN.test(v)) throw new Invalid(`${join(path, key)}: expected a sha256 as 64 lowercase hex characters`);
  return v;
}

function snapshotMeta(v: unknown, path: string): SnapshotMeta {
  const o = object(v, path);
  const pairIndex = countOrNull(o, 'pairIndex', path);
  const findingIdValue = o.findingId === null ? null : findingId(o.findingId, join(path, 'findingId'));
  return {
    snapshotId: snapshotIdAt(o, 'snapshotId', path),
    kind: oneOf(o, 'kind', path, SNAPSHOT_KINDS),
    targetKey: str(o, 'targetKey', path, 1024),
    pid: count(o, 'pid', path),
    nsPid: countOrNull(o, 'nsPid', path),
    comm: strOrNull(o, 'comm', path, 256),
    cmdline: strOrNull(o, 'cmdline', path),
    namespace: strOrNull(o, 'namespace', path, 253),
    pod: strOrNull(o, 'pod', path, 253),
    podUid: strOrNull(o, 'podUid', path, 253),
    container: strOrNull(o, 'container', path, 253),
    containerId: strOrNull(o, 'containerId', path, 253),
    nodeVersion: strOrNull(o, 'nodeVersion', path, 64),
    trigger: oneOf(o, 'trigger', path, CAPTURE_TRIGGERS),
    findingId: findingIdValue,
    commandId: o.commandId === null ? null : nonEmptyId(o, 'commandId', path),
    pairId: strOrNull(o, 'pairId', path, 64),
    pairIndex,
    via: oneOf(o, 'via', path, CAPTURE_VIAS),
    takenAtMs: count(o, 'takenAtMs', path),
    durationMs: count(o, 'durationMs', path),
    heapUsedBytes: countOrNull(o, 'heapUsedBytes', path),
  };
}

function captureReport(v: unknown, path: string): CaptureReport {
  const o = object(v, path);
  const captureId = o.captureId;
  if (typeof captureId !== 'string' || !CAPTURE_ID_PATTERN.test(captureId)) throw new Invalid(`${join(path, 'captureId')}: expected 32 lowercase hex characters`);
  return {
    captureId,
    atMs: count(o, 'atMs', path),
    node: nonEmptyId(o, 'node', path),
    targetKey: strOrNull(o, 'targetKey', path, 1024),
    pid: countOrNull(o, 'pid', path),
    namespace: strOrNull(o, 'namespace', path, 253),
    pod: strOrNull(o, 'pod', path, 253),
    container: strOrNull(o, 'container', path, 253),
    trigger: oneOf(o, 'trigger', path, CAPTURE_TRIGGERS),
    findingId: o.findingId === null ? null : findingId(o.findingId, join(path, 'findingId')),
    commandId: o.commandId === null ? null : nonEmptyId(o, 'commandId', path),
    requested: oneOf(o, 'requested', path, SNAPSHOT_KINDS),
    outcome: oneOf(o, 'outcome', path, CAPTURE_OUTCOMES),
    reason: strOrNull(o, 'reason', path, 4096),
    reasonCode: strOrNull(o, 'reasonCode', path, 64),
    snapshotIds: array(o, 'snapshotIds', path, (x, p) => {
      if (typeof x !== 'string' || !SNAPSHOT_ID_PATTERN.test(x)) throw new Invalid(`${p}: expected 32 lowercase hex characters`);
      return x;
    }),
  };
}

// ---- messages

function agentMessage(o: Record<string, unknown>, type: (typeof AGENT_MESSAGE_TYPES)[number]): AgentMessage {
  switch (type) {
    case 'hello':
      return {
        type,
        protocolVersion: count(o, 'protocolVersion', ''),
        agentId: nonEmptyId(o, 'agentId', ''),
        node: nonEmptyId(o, 'node', ''),
        version: str(o, 'version', '', 256),
        startedAtMs: num(o, 'startedAtMs', ''),
      };
    case 'findings':
      return {
        type,
        seq: count(o, 'seq', ''),
        events: array(o, 'events', '', (v, p) => {
          const e = object(v, p);
          return { change: oneOf(e, 'change', p, FINDING_CHANGES), finding: finding(e.finding, join(p, 'finding')) };
        }),
      };
    case 'series':
      return { type, seq: count(o, 'seq', ''), targets: array(o, 'targets', '', targetInfo), points: array(o, 'points', '', seriesPoint) };
    case 'heartbeat':
      return { type, atMs: num(o, 'atMs', ''), droppedFindings: count(o, 'droppedFindings', ''), queuedFindings: count(o, 'queuedFindings', '') };
    case 'command-result': {
      const m: AgentMessage = { type, commandId: nonEmptyId(o, 'commandId', ''), ok: bool(o, 'ok', '') };
      // `result` is whatever the command defines (bounded by the frame size); kept as sent.
      if (o.result !== undefined) m.result = o.result;
      if (o.error !== undefined) m.error = str(o, 'error', '');
      return m;
    }
    case 'snapshot-begin':
      return { type, meta: snapshotMeta(o.meta, 'meta'), bytes: count(o, 'bytes', ''), sha256: sha256At(o, 'sha256', '') };
    case 'snapshot-end':
      return { type, snapshotId: snapshotIdAt(o, 'snapshotId', ''), bytes: count(o, 'bytes', ''), sha256: sha256At(o, 'sha256', '') };
    case 'capture-report':
      return { type, seq: count(o, 'seq', ''), report: captureReport(o.report, 'report') };
  }
}

function collectorMessage(o: Record<string, unknown>, type: (typeof COLLECTOR_MESSAGE_TYPES)[number]): CollectorMessage {
  switch (type) {
    case 'welcome':
      return {
        type,
        protocolVersion: count(o, 'protocolVersion', ''),
        collectorVersion: str(o, 'collectorVersion', '', 256),
        heartbeatIntervalMs: count(o, 'heartbeatIntervalMs', ''),
      };
    case 'ack':
      return { type, seq: count(o, 'seq', '') };
    case 'error': {
      const m: CollectorMessage = { type, code: str(o, 'code', '', 256), message: str(o, 'message', '') };
      if (o.seq !== undefined) m.seq = count(o, 'seq', '');
      return m;
    }
    case 'command': {
      const c = object(o.command, 'command');
      str(c, 'action', 'command', 256);
      return { type, commandId: nonEmptyId(o, 'commandId', ''), command: { ...c, action: c.action as string } };
    }
    case 'snapshot-offset':
      return { type, snapshotId: snapshotIdAt(o, 'snapshotId', ''), offset: count(o, 'offset', '') };
    case 'snapshot-stored':
      return { type, snapshotId: snapshotIdAt(o, 'snapshotId', ''), sha256: sha256At(o, 'sha256', '') };
    case 'snapshot-rejected':
      return { type, snapshotId: snapshotIdAt(o, 'snapshotId', ''), code: str(o, 'code', '', 64), reason: str(o, 'reason', '', 4096), restart: bool(o, 'restart', '') };
  }
}

function dispatch<T, K extends string>(value: unknown, types: readonly K[], build: (o: Record<string, unknown>, type: K) => T):
  | { ok: true; message: T }
  | ValidationFailure {
  try {
    const o = object(value, '');
    const type = o.type;
    if (typeof type !== 'string') fail('type', 'expected string', type);
    if (!(types as readonly string[]).includes(type)) {
      const shown = type.length > 40 ? `${type.slice(0, 40)}…` : type;
      return { ok: false, code: 'unknown-type', error: `type: unknown message type ${JSON.stringify(shown)} (expected one of ${types.join(', ')})` };
    }
    return { ok: true, message: build(o, type as K) };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, code: 'bad-message', error: err.message };
    throw err;
  }
}

/** A message an agent sent to the collector (already JSON-parsed). */
export function validateAgentMessage(value: unknown): AgentMessageResult {
  return dispatch(value, AGENT_MESSAGE_TYPES, agentMessage);
}

/** A message the collector sent to an agent (already JSON-parsed). */
export function validateCollectorMessage(value: unknown): CollectorMessageResult {
  return dispatch(value, COLLECTOR_MESSAGE_TYPES, collectorMessage);
}

/** One finding on its own (e.g. `leakwatch watch --json` lines, API responses). */
export function validateFinding(value: unknown): FindingResult {
  try {
    return { ok: true, finding: finding(value, '') };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, code: 'bad-message', error: err.message };
    throw err;
  }
}

/** The `seq` of a message that failed validation, when it carried a usable one (for the error reply). */
export function seqOf(value: unknown): number | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const seq = (value as Record<string, unknown>).seq;
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined;
}

function validated<T>(build: () => T): { ok: true; value: T } | { ok: false; error: string } {
  try {
    return { ok: true, value: build() };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, error: err.message };
    throw err;
  }
}

/** A snapshot's metadata on its own (the agent's spool sidecar, the collector's stored row). */
export function validateSnapshotMeta(value: unknown): { ok: true; value: SnapshotMeta } | { ok: false; error: string } {
  return validated(() => snapshotMeta(value, 'meta'));
}

/** A capture report on its own (a command result, the agent's durable report file). */
export function validateCaptureReport(value: unknown): { ok: true; value: CaptureReport } | { ok: false; error: string } {
  return validated(() => captureReport(value, 'report'));
}
