// What the page computes from the API's answers, without the DOM, so node tests can check it:
// which findings belong to a target, how long until a growth finding reaches its limit now, the
// trend line to draw, the overview's ordering and a container's process tree.
import type { Finding, FindingKind, GrowthDetails, ProcessRef } from '../../../protocol/findings.js';
import type { SeriesPoint } from '../../../protocol/messages.js';
import type { TargetRow } from './wire.js';

export type { Finding, FindingKind, ProcessRef, SeriesPoint, TargetRow };

/** Whether a finding is about this target (a container: the same container; a process: the same pid in it). */
export function findingMatchesTarget(f: Finding, t: TargetRow): boolean {
  if (f.node !== t.node) return false;
  const sameContainer = t.containerId !== null ? f.target.containerId === t.containerId : f.target.pod === t.pod && f.target.namespace === t.namespace;
  if (t.kind === 'container') return sameContainer;
  if (f.target.pid === t.pid && sameContainer) return true;
  // A fan-out finding is about its parent; its children's kills are about the children.
  if (f.kind === 'fanout') return f.details.parent.pid === t.pid && sameContainer;
  if (f.kind === 'oom-kill') return f.details.victim.pid === t.pid && sameContainer;
  return false;
}

/** Seconds left until the limit at the fitted slope, counted from now rather than from the finding. */
export function etaRemainingSec(d: GrowthDetails, updatedAtMs: number, nowMs: number): number | null {
  if (d.etaSec === null) return null;
  return Math.max(0, d.etaSec - (nowMs - updatedAtMs) / 1000);
}

export interface TrendLine {
  /** [time ms, bytes] from the window's start through its end to the limit. */
  points: Array<[number, number]>;
  /** When the line meets the limit, or null without a limit or without growth. */
  etaAtMs: number | null;
}

/** The fitted line of a growth finding, projected to the limit. */
export function trendLine(d: GrowthDetails): TrendLine {
  const end = d.windowEndMs;
  const start = Math.min(d.windowStartMs, end);
  const atStart = d.currentBytes - (d.slopeBytesPerSec * (end - start)) / 1000;
  const points: Array<[number, number]> = [
    [start, atStart],
    [end, d.currentBytes],
  ];
  let etaAtMs: number | null = null;
  if (d.limitBytes !== null && d.slopeBytesPerSec > 0) {
    etaAtMs = d.etaSec !== null ? end + d.etaSec * 1000 : end + ((d.limitBytes - d.currentBytes) / d.slopeBytesPerSec) * 1000;
    if (etaAtMs > end) points.push([etaAtMs, d.limitBytes]);
  }
  return { points, etaAtMs };
}

export interface PodSummary {
  node: string;
  namespace: string | null;
  pod: string | null;
  targets: TargetRow[];
  openFindings: Finding[];
  kinds: Partial<Record<FindingKind, number>>;
  /** The soonest ETA to OOM among open growth findings, seconds from now. */
  etaSec: number | null;
  /** The target whose sparkline stands for the pod: the growing one, else its container. */
  chartTarget: TargetRow | null;
}

/** Pods (and host processes) grouped by node, those with open findings first, soonest OOM first. */
export function summarisePods(targets: TargetRow[], findings: Finding[], nowMs: number): PodSummary[] {
  const key = (node: string, ns: string | null, pod: string | null) => `${node}\u0000${ns ?? ''}\u0000${pod ?? ''}`;
  const pods = new Map<string, PodSummary>();
  const get = (node: string, ns: string | null, pod: string | null): PodSummary => {
    const k = key(node, ns, pod);
    let p = pods.get(k);
    if (!p) {
      p = { node, namespace: ns, pod, targets: [], openFindings: [], kinds: {}, etaSec: null, chartTarget: null };
      pods.set(k, p);
    }
    return p;
  };
  for (const t of targets) get(t.node, t.namespace, t.pod).targets.push(t);
  for (const f of findings) {
    if (f.status !== 'open') continue;
    const p = get(f.node, f.target.namespace, f.target.pod);
    p.openFindings.push(f);
    p.kinds[f.kind] = (p.kinds[f.kind] ?? 0) + 1;
    if (f.kind === 'growth') {
      const eta = etaRemainingSec(f.details, f.updatedAt, nowMs);
      if (eta !== null && (p.etaSec === null || eta < p.etaSec)) p.etaSec = eta;
    }
  }
  for (const p of pods.values()) {
    const growing = p.openFindings.find((f) => f.kind === 'growth');
    // The process that grows when it is tracked, else its container.
    const growingTarget = growing ? p.targets.find((t) => t.kind === 'process' && findingMatchesTarget(growing, t)) ?? p.targets.find((t) => findingMatchesTarget(growing, t)) : undefined;
    const container = p.targets.filter((t) => t.kind === 'container').sort((a, b) => b.lastSeenMs - a.lastSeenMs)[0];
    p.chartTarget = growingTarget ?? container ?? [...p.targets].sort((a, b) => b.lastSeenMs - a.lastSeenMs)[0] ?? null;
  }
  return [...pods.values()].sort((a, b) => {
    const af = a.openFindings.length > 0 ? 0 : 1;
    const bf = b.openFindings.length > 0 ? 0 : 1;
    if (af !== bf) return af - bf;
    if (a.etaSec !== b.etaSec) return (a.etaSec ?? Infinity) - (b.etaSec ?? Infinity);
    return `${a.node}/${a.namespace}/${a.pod}`.localeCompare(`${b.node}/${b.namespace}/${b.pod}`);
  });
}

export interface TreeNode {
  pid: number;
  comm: string;
  cmdline: string;
  children: TreeNode[];
  /** The parent spawning per request (a fan-out finding's parent). */
  fanoutParent: boolean;
  /** A child of a fan-out parent. */
  fanoutChild: boolean;
  oomKilled: boolean;
  /** Ran a suspicious script (a spawn finding's target). */
  suspicious: boolean;
  /** The parent was inferred (same command as the fan-out's children), not reported by the agent. */
  parentInferred: boolean;
  findingIds: string[];
}

/**
 * A container's processes as the collector knows them: fan-out parents and their sampled
 * children, spawn findings' parent chains, OOM-kill victims and process targets, linked by the
 * parent pids the agent reported (targets' and victims' ppid). Agents of the first release (0.1.0) did not report
 * them: there, a killed process whose command matches a fan-out's children is placed under that
 * parent and marked as inferred; anything else without a known parent is a root.
 */
export function buildProcessTree(findings: Finding[], processTargets: TargetRow[]): TreeNode[] {
  const nodes = new Map<number, TreeNode>();
  const parentOf = new Map<number, { pid: number; inferred: boolean }>();
  const node = (ref: { pid: number; comm: string | null; cmdline: string | null }): TreeNode => {
    let n = nodes.get(ref.pid);
    if (!n) {
      n = { pid: ref.pid, comm: ref.comm ?? '?', cmdline: ref.cmdline ?? '', children: [], fanoutParent: false, fanoutChild: false, oomKilled: false, suspicious: false, parentInferred: false, findingIds: [] };
      nodes.set(ref.pid, n);
    } else {
      if (n.comm === '?' && ref.comm) n.comm = ref.comm;
      if (!n.cmdline && ref.cmdline) n.cmdline = ref.cmdline;
    }
    return n;
  };
  const link = (child: number, parent: number, inferred = false) => {
    if (child === parent) return;
    const known = parentOf.get(child);
    if (known && !known.inferred) return;
    parentOf.set(child, { pid: parent, inferred });
  };
  for (const t of processTargets) {
    if (t.pid === null) continue;
    node({ pid: t.pid, comm: t.comm, cmdline: t.cmdline });
    if (t.ppid !== null) link(t.pid, t.ppid);
  }
  const fanoutChildCommands = new Map<string, number>();
  for (const f of findings) {
    if (f.kind === 'fanout') {
      const parent = node(f.details.parent);
      parent.fanoutParent = true;
      parent.findingIds.push(f.id);
      for (const c of f.details.sampleChildren) {
        const child = node(c);
        child.fanoutChild = true;
        link(c.pid, parent.pid);
        fanoutChildCommands.set(commandShape(c.comm, c.cmdline), parent.pid);
      }
    } else if (f.kind === 'suspicious-spawn') {
      if (f.target.pid !== null) {
        const n = node({ pid: f.target.pid, comm: f.target.comm, cmdline: f.target.cmdline });
        n.suspicious = true;
        n.findingIds.push(f.id);
        let child = n.pid;
        for (const p of f.details.parentChain) {
          node(p);
          link(child, p.pid);
          child = p.pid;
        }
      }
    }
  }
  for (const f of findings) {
    if (f.kind !== 'oom-kill' || f.details.victim.pid === null) continue;
    const v = node({ pid: f.details.victim.pid, comm: f.details.victim.comm, cmdline: f.details.victim.cmdline });
    v.oomKilled = true;
    v.findingIds.push(f.id);
    const reportedParent = f.details.victim.ppid ?? null;
    if (reportedParent !== null) {
      link(v.pid, reportedParent);
      if (nodes.get(reportedParent)?.fanoutParent) v.fanoutChild = true;
    } else if (!parentOf.has(v.pid) && v.comm !== '?') {
      const parent = fanoutChildCommands.get(commandShape(v.comm, v.cmdline));
      if (parent !== undefined && parent !== v.pid) {
        link(v.pid, parent, true);
        v.fanoutChild = true;
        v.parentInferred = true;
      }
    }
  }
  const roots: TreeNode[] = [];
  for (const n of nodes.values()) {
    const p = parentOf.get(n.pid);
    const parent = p ? nodes.get(p.pid) : undefined;
    // A cycle in what agents reported (pid reuse) must not hide processes: break it at the root.
    if (parent && !isAncestor(n.pid, p!.pid, parentOf)) {
      parent.children.push(n);
    } else {
      roots.push(n);
    }
  }
  const byPid = (a: TreeNode, b: TreeNode) => a.pid - b.pid;
  for (const n of nodes.values()) n.children.sort(byPid);
  return roots.sort(byPid);
}

/**
 * A command with its varying part dropped: "python3 /tmp/tmpk3j1.py" → "python3 /tmp/", so
 * children started from fresh temp files compare equal and their server ("python3 /app/app.py")
 * does not.
 */
export function commandShape(comm: string, cmdline: string | null): string {
  const argv = (cmdline ?? '').split(' ').filter((a) => a.length > 0);
  const script = argv.slice(1).find((a) => !a.startsWith('-')) ?? '';
  return `${comm} ${script.slice(0, script.lastIndexOf('/') + 1)}`;
}

/** Whether `pid` is an ancestor of (or is) `of` through the recorded links. */
function isAncestor(pid: number, of: number, parentOf: Map<number, { pid: number }>): boolean {
  const seen = new Set<number>();
  let cur: number | undefined = of;
  while (cur !== undefined && !seen.has(cur)) {
    if (cur === pid) return true;
    seen.add(cur);
    cur = parentOf.get(cur)?.pid;
  }
  return false;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${n < 0 ? '-' : ''}${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(sec: number | null): string {
  if (sec === null || !Number.isFinite(sec)) return '—';
  const s = Math.max(0, Math.round(sec));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
