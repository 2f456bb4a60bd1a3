// What the agent reports: one Finding per problem, updated while it goes on and resolved when it
// stops. The same shape travels over `leakwatch watch --json`, the WebSocket and the HTTP API.

export type FindingKind = 'growth' | 'fanout' | 'suspicious-spawn' | 'oom-kill';
export type FindingStatus = 'open' | 'resolved';

/** The process (or container, when pid is null) a finding is about. */
export interface FindingTarget {
  pid: number | null;
  comm: string | null;
  cmdline: string | null;
  namespace: string | null;
  pod: string | null;
  podUid: string | null;
  container: string | null;
  containerId: string | null;
}

export interface GrowthDetails {
  /** 'process' trends anon RSS + swap of one process; 'container' the cgroup's anon memory. */
  scope: 'process' | 'container';
  slopeBytesPerSec: number;
  currentBytes: number;
  /** Working set beside the anon signal, for containers (what kubelet evicts on). */
  workingSetBytes: number | null;
  limitBytes: number | null;
  /** Seconds until currentBytes reaches limitBytes at the fitted slope; null without a limit. */
  etaSec: number | null;
  /** 0..1, from the trend test. */
  confidence: number;
  windowStartMs: number;
  windowEndMs: number;
}

export interface ProcessRef {
  pid: number;
  comm: string;
  cmdline: string;
}

export interface FanoutDetails {
  parent: ProcessRef;
  /** Children of the parent alive now. */
  childrenAlive: number;
  /** Children seen since the finding opened, alive or not. */
  childrenSeen: number;
  spawnRatePerMin: number;
  childrenAnonBytes: number;
  /** Slope of the children's combined anon memory, bytes/s (null while too few points). */
  childrenSlopeBytesPerSec: number | null;
  /** How many of the children are themselves growing. */
  growingChildren: number;
  limitBytes: number | null;
  sampleChildren: ProcessRef[];
}

export interface SpawnRuleMatch {
  id: string;
  reason: string;
}

export interface ScriptEvidence {
  path: string;
  sha256: string | null;
  sizeBytes: number | null;
  mtimeMs: number | null;
  ctimeMs: number | null;
  /** UTF-8 text, or base64 when contentEncoding says so. Data only: never executed or rendered. */
  content: string | null;
  contentEncoding: 'utf8' | 'base64' | null;
  truncated: boolean;
  /** Why the script could not be read, when it could not (refused symlink, vanished, ...). */
  refused: string | null;
}

export interface Provenance {
  path: string;
  sha256: string;
  encoding: 'base64' | 'gzip+base64' | 'copy';
  /** e.g. "/tmp/tmpk3j1.py is the base64 decoding of /app/resources.dat". */
  statement: string;
}

export interface SpawnDetails {
  rules: SpawnRuleMatch[];
  argv: string[];
  exe: string | null;
  cwd: string | null;
  uid: number;
  startTimeMs: number;
  parentChain: ProcessRef[];
  script: ScriptEvidence | null;
  provenance: Provenance | null;
  notes: string[];
  /** How many times this parent ran this same script (one finding for all of them). */
  occurrences: number;
  /** Pids of the most recent occurrences (bounded). */
  pids: number[];
}

export interface OomKillDetails {
  /** ppid: the victim's parent when the agent had sampled it (null otherwise, and from 0.1.0 agents). */
  victim: { pid: number | null; ppid: number | null; comm: string | null; cmdline: string | null; lastRssAnonBytes: number | null };
  memcg: string | null;
  /** Whether the container's main process outlived the kill: Kubernetes reports nothing then. */
  containerSurvived: boolean | null;
  sources: Array<'kmsg' | 'counter'>;
  /** Ids of the growth and fan-out findings that were open on this container when it happened. */
  relatedFindings: string[];
}

interface FindingBase {
  id: string;
  status: FindingStatus;
  /** First seen, epoch ms. */
  at: number;
  updatedAt: number;
  node: string;
  target: FindingTarget;
  summary: string;
}

export type Finding =
  | (FindingBase & { kind: 'growth'; details: GrowthDetails })
  | (FindingBase & { kind: 'fanout'; details: FanoutDetails })
  | (FindingBase & { kind: 'suspicious-spawn'; details: SpawnDetails })
  | (FindingBase & { kind: 'oom-kill'; details: OomKillDetails });
