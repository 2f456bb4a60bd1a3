// `leakwatch ps`: one table of processes grouped by pod and container, like `kubectl top`
// but per process, with each process's share of the tightest memory limit around it.
import type { Command } from 'commander';
import { NodeSampler, type AttributedProcess, type ContainerSample } from '../../agent/host/node-sampler.js';
import { formatBytes, printable, renderTable } from '../format.js';
import { addNodeRootOptions, type NodeRootOptions } from '../node-options.js';

interface PsOptions extends NodeRootOptions {
  json?: boolean;
  podsOnly?: boolean;
  all?: boolean;
}

/** The stable JSON shape of one row of `leakwatch ps --json`. */
export interface PsRow {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
  exe: string | null;
  uid: number;
  startTimeMs: number;
  nsPid: number;
  namespace: string | null;
  pod: string | null;
  podUid: string | null;
  container: string | null;
  containerId: string | null;
  runtime: string | null;
  qos: string | null;
  rssAnonBytes: number;
  rssFileBytes: number;
  rssShmemBytes: number;
  swapBytes: number;
  limitBytes: number | null;
  /** (anon + swap) / limit, percent; null without a limit. */
  percentOfLimit: number | null;
  oomKills: number;
}

export function registerPs(program: Command): void {
  addNodeRootOptions(
    program
      .command('ps')
      .description('list processes grouped by pod and container, with anon RSS, share of the memory limit and OOM kills')
      .option('--json', 'print a JSON array of processes')
      .option('--pods-only', 'only processes that run in a pod')
      .option('--all', 'include kernel threads and processes with no memory'),
  ).action((options: PsOptions) => {
    const warnings: string[] = [];
    const sampler = new NodeSampler({ ...options, warn: (m) => warnings.push(m) });
    const sample = sampler.sample();
    sampler.close();
    const rows = toRows(sample.processes, options);
    if (options.json) {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    } else {
      process.stdout.write(`${renderPs(rows, sample.containers)}\n`);
    }
    for (const w of new Set(warnings)) process.stderr.write(`leakwatch: ${w}\n`);
  });
}

export function toRows(processes: AttributedProcess[], options: { podsOnly?: boolean; all?: boolean }): PsRow[] {
  return processes
    .filter((p) => !options.podsOnly || p.podUid !== null)
    .filter((p) => options.all || p.argv.length > 0 || p.rssAnonBytes + p.rssFileBytes > 0)
    .map((p) => ({
      pid: p.pid,
      ppid: p.ppid,
      comm: p.comm,
      cmdline: p.cmdline,
      exe: p.exe,
      uid: p.uid,
      startTimeMs: p.startTimeMs,
      nsPid: p.nsPid,
      namespace: p.namespace,
      pod: p.pod,
      podUid: p.podUid,
      container: p.container,
      containerId: p.containerId,
      runtime: p.runtime,
      qos: p.qos,
      rssAnonBytes: p.rssAnonBytes,
      rssFileBytes: p.rssFileBytes,
      rssShmemBytes: p.rssShmemBytes,
      swapBytes: p.swapBytes,
      limitBytes: p.limitBytes,
      percentOfLimit: p.limitBytes ? round1((100 * (p.rssAnonBytes + p.swapBytes)) / p.limitBytes) : null,
      oomKills: p.oomKills,
    }))
    .sort(byGroupThenMemory);
}

function groupKey(r: PsRow): string {
  if (r.podUid === null) return '~host';
  return `${r.namespace ?? '?'}/${r.pod ?? r.podUid}/${r.container ?? r.containerId ?? ''}`;
}

function byGroupThenMemory(a: PsRow, b: PsRow): number {
  const ga = groupKey(a);
  const gb = groupKey(b);
  if (ga !== gb) return ga < gb ? -1 : 1;
  return b.rssAnonBytes + b.swapBytes - (a.rssAnonBytes + a.swapBytes);
}

function renderPs(rows: PsRow[], containers: ContainerSample[]): string {
  const header = ['POD / CONTAINER', 'PID', 'PPID', 'ANON', 'FILE', 'SWAP', '%LIMIT', 'LIMIT', 'OOM', 'COMMAND'];
  const table: string[][] = [];
  let lastGroup = '';
  for (const r of rows) {
    const group = groupKey(r);
    const first = group !== lastGroup;
    lastGroup = group;
    const label = r.podUid === null ? '(host)' : `${r.namespace ?? '?'}/${r.pod ?? r.podUid.slice(0, 8)} ${r.container ?? (r.containerId ?? '').slice(0, 12)}`;
    table.push([
      first ? label : '',
      String(r.pid),
      String(r.ppid),
      formatBytes(r.rssAnonBytes),
      formatBytes(r.rssFileBytes),
      formatBytes(r.swapBytes),
      r.percentOfLimit === null ? '-' : `${r.percentOfLimit.toFixed(1)}%`,
      formatBytes(r.limitBytes),
      first && r.podUid !== null ? String(r.oomKills) : '',
      printable(r.cmdline || `[${r.comm}]`),
    ]);
  }
  const podCount = new Set(rows.filter((r) => r.podUid).map((r) => r.podUid)).size;
  const summary = `${rows.length} processes, ${podCount} pods, ${containers.length} containers`;
  return `${renderTable(header, table, new Set([1, 2, 3, 4, 5, 6, 7, 8]))}\n${summary}`;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
