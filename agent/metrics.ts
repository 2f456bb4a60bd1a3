// The agent's /metrics: what one sampling pass saw, in Prometheus's terms. Raw per-process series
// belong to Prometheus (DESIGN.md, "Scale"), but a node runs thousands of processes and every
// label set is a series Prometheus keeps for hours, so per-process gauges are bounded:
//
//   process series  <= topN (largest anon + swap on the node) + maxFindingSeries (processes with
//                      an open finding that are not already in the top N)
//   growth series   <= maxFindingSeries per gauge (open growth findings, steepest first)
//   container series = the containers on the node (kubelet's max-pods bounds them)
//   OOM-kill series  = containers seen within oomSeriesRetentionMs, plus victims' containers
//
// Gauges are rebuilt from scratch on every update, so a process that exits or drops out of the
// top N, or a finding that resolves, stops being exported at once instead of piling up series.
//
// Labels hold names and numbers only; command lines stay out (they can carry secrets passed as
// arguments, and /metrics is served without authentication).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AttributedProcess, ContainerSample, NodeSample } from './host/node-sampler.js';
import type { FindingEvent } from './watch/watcher.js';
import type { Finding, FindingKind, FindingTarget } from '../protocol/findings.js';

export interface AgentMetricsOptions {
  nodeName: string;
  /** Largest processes (anon + swap) exported per node. Default 20. */
  topN?: number;
  /** Most processes-with-findings, and growth findings, exported beyond the top N. Default 100. */
  maxFindingSeries?: number;
  /** Also rank processes outside pods (host daemons) for the top N. Default false, like the watcher. */
  includeHost?: boolean;
  /** How long an OOM-kill counter series outlives the last sight of its container. Default 15 min. */
  oomSeriesRetentionMs?: number;
}

export interface AgentMetricsExtra {
  /** What the watcher's pass returned: opened findings are counted, oom-kill findings are kills. */
  events?: FindingEvent[];
}

export interface AgentMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  update(sample: NodeSample, openFindings: Finding[], passDurationMs: number, extra?: AgentMetricsExtra): void;
  render(): Promise<string>;
}

/** Every finding kind, so each counter and gauge starts at 0 rather than appearing on first use. */
const findingKinds = ['growth', 'fanout', 'suspicious-spawn', 'oom-kill'] as const satisfies readonly FindingKind[];
// Fails to compile when protocol/findings.ts gains a kind this list lacks.
const everyKindListed: Exclude<FindingKind, (typeof findingKinds)[number]> extends never ? true : never = true;
void everyKindListed;

type WorkloadLabel = 'namespace' | 'pod' | 'container';
type ProcessLabel = WorkloadLabel | 'pid' | 'comm';
type GrowthLabel = WorkloadLabel | 'kind' | 'pid';

interface WorkloadLabels {
  namespace: string;
  pod: string;
  container: string;
}

/**
 * Names for a workload. When /var/log/pods does not name a pod or container, its uid and short
 * container id stand in: two unnamed containers of one pod must still be two series.
 */
function workloadLabels(w: { namespace: string | null; pod: string | null; podUid: string | null; container: string | null; containerId: string | null }): WorkloadLabels {
  return {
    namespace: w.namespace ?? '',
    pod: w.pod ?? w.podUid ?? '',
    container: w.container ?? (w.containerId ? w.containerId.slice(0, 12) : ''),
  };
}

const labelKey = (l: WorkloadLabels): string => `${l.namespace}\0${l.pod}\0${l.container}`;

const isSize = (n: number): boolean => Number.isFinite(n) && n >= 0;

export function createAgentMetrics(options: AgentMetricsOptions): AgentMetrics {
  const topN = wholeAtLeast(options.topN ?? 20, 0, 'topN');
  const maxFindingSeries = wholeAtLeast(options.maxFindingSeries ?? 100, 0, 'maxFindingSeries');
  const includeHost = options.includeHost ?? false;
  const oomRetentionMs = options.oomSeriesRetentionMs ?? 15 * 60_000;

  const registry = new Registry();
  registry.setDefaultLabels({ node: options.nodeName });
  const registers = [registry];

  const containerAnon = new Gauge<WorkloadLabel>({
    name: 'leakwatch_container_memory_anon_bytes',
    help: 'Anonymous memory of the container cgroup (v1 total_rss, v2 anon), the signal leaks grow in.',
    labelNames: ['namespace', 'pod', 'container'],
    registers,
  });
  const containerWorkingSet = new Gauge<WorkloadLabel>({
    name: 'leakwatch_container_memory_working_set_bytes',
    help: 'Container cgroup usage minus inactive file cache: what kubelet evicts on.',
    labelNames: ['namespace', 'pod', 'container'],
    registers,
  });
  const containerLimit = new Gauge<WorkloadLabel>({
    name: 'leakwatch_container_memory_limit_bytes',
    help: 'Tightest memory limit over the container (container or pod cgroup); absent when unlimited.',
    labelNames: ['namespace', 'pod', 'container'],
    registers,
  });
  const processAnon = new Gauge<ProcessLabel>({
    name: 'leakwatch_process_memory_anon_bytes',
    help: `Anonymous RSS of the ${topN} processes with the most anon + swap on the node, and of every process with an open finding.`,
    labelNames: ['namespace', 'pod', 'container', 'pid', 'comm'],
    registers,
  });
  const processesSampled = new Gauge({
    name: 'leakwatch_processes_sampled',
    help: 'Processes seen in the last pass; leakwatch_process_memory_anon_bytes exports only some of them.',
    registers,
  });
  const growthSlope = new Gauge<GrowthLabel>({
    name: 'leakwatch_growth_slope_bytes_per_second',
    help: 'Fitted growth rate of an open growth finding (process: anon + swap; container: cgroup anon).',
    labelNames: ['kind', 'namespace', 'pod', 'container', 'pid'],
    registers,
  });
  const timeToOom = new Gauge<GrowthLabel>({
    name: 'leakwatch_time_to_oom_seconds',
    help: 'Time until an open growth finding reaches its memory limit at the fitted slope; absent without a limit.',
    labelNames: ['kind', 'namespace', 'pod', 'container', 'pid'],
    registers,
  });
  const oomKills = new Counter<WorkloadLabel>({
    name: 'leakwatch_oom_kills_total',
    help: 'Kernel OOM kills by container (kernel log and memcg counters merged, one per kill).',
    labelNames: ['namespace', 'pod', 'container'],
    registers,
  });
  const findingsOpen = new Gauge<'kind' | 'status'>({
    name: 'leakwatch_findings',
    help: 'Findings the agent holds open, by kind. An OOM kill is an event, not a state: see leakwatch_findings_opened_total.',
    labelNames: ['kind', 'status'],
    registers,
  });
  const findingsOpened = new Counter<'kind'>({
    name: 'leakwatch_findings_opened_total',
    help: 'Findings opened since the agent started, by kind.',
    labelNames: ['kind'],
    registers,
  });
  const samplingDuration = new Histogram({
    name: 'leakwatch_agent_sampling_duration_seconds',
    help: 'Wall time of one agent pass: sampling /proc and the cgroups, then running the detectors.',
    // A pass takes ~1 ms on an idle machine and a few hundred on a node with thousands of processes.
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  collectDefaultMetrics({ register: registry, prefix: 'leakwatch_agent_' });
  // prom-client exports these three gauges with a counter's `_total` suffix, which promtool's lint
  // rejects; the same counts stay available per handle type in `leakwatch_agent_nodejs_active_handles` etc.
  for (const misnamed of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
    registry.removeSingleMetric(`leakwatch_agent_nodejs_${misnamed}`);
  }

  for (const kind of findingKinds) {
    findingsOpened.inc({ kind }, 0);
    findingsOpen.set({ kind, status: 'open' }, 0);
  }

  /** Last time each OOM-kill series' container was seen, to retire series of containers long gone. */
  const oomSeriesSeenMs = new Map<string, { labels: WorkloadLabels; atMs: number }>();

  const touchOomSeries = (labels: WorkloadLabels, atMs: number): void => {
    const key = labelKey(labels);
    // A series created at 0 lets Prometheus's increase() see the first kill as 0 -> 1.
    if (!oomSeriesSeenMs.has(key)) oomKills.inc(labels, 0);
    oomSeriesSeenMs.set(key, { labels, atMs });
  };

  const updateContainers = (containers: ContainerSample[], atMs: number): void => {
    containerAnon.reset();
    containerWorkingSet.reset();
    containerLimit.reset();
    for (const c of containers) {
      const labels = workloadLabels(c);
      touchOomSeries(labels, atMs);
      if (!c.memory) continue;
      if (isSize(c.memory.anonBytes)) containerAnon.set(labels, c.memory.anonBytes);
      if (isSize(c.memory.workingSetBytes)) containerWorkingSet.set(labels, c.memory.workingSetBytes);
      if (c.limitBytes !== null && isSize(c.limitBytes)) containerLimit.set(labels, c.limitBytes);
    }
  };

  const updateProcesses = (processes: AttributedProcess[], openFindings: Finding[]): void => {
    processAnon.reset();
    processesSampled.set(processes.length);
    const exported = new Set<AttributedProcess>();
    const sized = processes.filter((p) => isSize(p.rssAnonBytes) && isSize(p.swapBytes));
    const ranked = sized
      .filter((p) => (includeHost || p.podUid !== null) && p.rssAnonBytes + p.swapBytes > 0)
      .sort((a, b) => b.rssAnonBytes + b.swapBytes - (a.rssAnonBytes + a.swapBytes));
    for (const p of ranked.slice(0, topN)) exported.add(p);

    const findingPids = new Set<number>();
    for (const f of openFindings) if (f.target.pid !== null) findingPids.add(f.target.pid);
    const withFindings = sized
      .filter((p) => findingPids.has(p.pid) && !exported.has(p))
      .sort((a, b) => b.rssAnonBytes + b.swapBytes - (a.rssAnonBytes + a.swapBytes));
    for (const p of withFindings.slice(0, maxFindingSeries)) exported.add(p);

    for (const p of exported) {
      processAnon.set({ ...workloadLabels(p), pid: String(p.pid), comm: p.comm }, p.rssAnonBytes);
    }
  };

  const updateGrowth = (openFindings: Finding[]): void => {
    growthSlope.reset();
    timeToOom.reset();
    const growth = openFindings
      .flatMap((f) => (f.kind === 'growth' && f.status === 'open' && Number.isFinite(f.details.slopeBytesPerSec) ? [f] : []))
      .sort((a, b) => b.details.slopeBytesPerSec - a.details.slopeBytesPerSec)
      .slice(0, maxFindingSeries);
    for (const f of growth) {
      const labels = growthLabels(f.details.scope, f.target);
      growthSlope.set(labels, f.details.slopeBytesPerSec);
      const eta = f.details.etaSec;
      if (f.details.limitBytes !== null && eta !== null && Number.isFinite(eta)) timeToOom.set(labels, Math.max(0, eta));
    }
  };

  const updateFindings = (openFindings: Finding[], events: FindingEvent[], atMs: number): void => {
    findingsOpen.reset();
    const open = new Map<FindingKind, number>(findingKinds.map((k) => [k, 0]));
    for (const f of openFindings) if (f.status === 'open') open.set(f.kind, (open.get(f.kind) ?? 0) + 1);
    for (const [kind, n] of open) findingsOpen.set({ kind, status: 'open' }, n);

    for (const e of events) {
      if (e.change !== 'open') continue;
      findingsOpened.inc({ kind: e.finding.kind });
      if (e.finding.kind === 'oom-kill') {
        const labels = workloadLabels(e.finding.target);
        touchOomSeries(labels, atMs);
        oomKills.inc(labels);
      }
    }
  };

  const retireOomSeries = (atMs: number): void => {
    for (const [key, { labels, atMs: seenMs }] of oomSeriesSeenMs) {
      if (atMs - seenMs <= oomRetentionMs) continue;
      oomKills.remove(labels);
      oomSeriesSeenMs.delete(key);
    }
  };

  return {
    registry,
    contentType: registry.contentType,
    update(sample, openFindings, passDurationMs, extra = {}) {
      const atMs = Number.isFinite(sample.atMs) ? sample.atMs : Date.now();
      updateContainers(sample.containers, atMs);
      updateProcesses(sample.processes, openFindings);
      updateGrowth(openFindings);
      updateFindings(openFindings, extra.events ?? [], atMs);
      retireOomSeries(atMs);
      if (isSize(passDurationMs)) samplingDuration.observe(passDurationMs / 1000);
    },
    render: () => registry.metrics(),
  };

  function growthLabels(scope: 'process' | 'container', target: FindingTarget): Record<GrowthLabel, string> {
    return { kind: scope, ...workloadLabels(target), pid: scope === 'process' && target.pid !== null ? String(target.pid) : '' };
  }
}

function wholeAtLeast(n: number, min: number, name: string): number {
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${name} must be a whole number >= ${min}, got ${n}`);
  return n;
}
