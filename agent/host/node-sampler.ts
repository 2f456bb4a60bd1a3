// One sampling pass over the node: the process table, each process's pod and container, and
// the memory accounting of every container and pod cgroup that has a live process in it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessTable } from './process-table.js';
import { memoryCgroupPath, parsePodCgroup } from './cgroup-path.js';
import { detectMemoryHierarchy, readCgroupMemory, tightestLimit, type MemoryHierarchy } from './cgroup-memory.js';
import { PodNameIndex } from './pod-names.js';
import type { CgroupIdentity, CgroupMemory, ContainerRuntime, ProcessSample, QosClass } from './types.js';

export interface NodeSamplerOptions {
  procRoot?: string;
  cgroupRoot?: string;
  podLogRoot?: string;
  warn?: (msg: string) => void;
  /** How long a process that exited stays answerable through lastSeen(), for OOM attribution. */
  exitedRetentionMs?: number;
  /**
   * How long a container cgroup keeps being read after its last process is gone. A container
   * whose main process was OOM-killed is empty at once, but its oom_kill counter is how the
   * kill shows up when /dev/kmsg is unreadable; kubelet removes the cgroup seconds later.
   */
  emptyContainerRetentionMs?: number;
}

/** A process with the pod and container it runs in (all null for host processes). */
export interface AttributedProcess extends ProcessSample {
  podUid: string | null;
  namespace: string | null;
  pod: string | null;
  container: string | null;
  containerId: string | null;
  runtime: ContainerRuntime | null;
  qos: QosClass | null;
  /** The tightest enclosing memory limit (container, then pod), null when unlimited. */
  limitBytes: number | null;
  oomKills: number;
}

export interface ContainerSample {
  podUid: string;
  namespace: string | null;
  pod: string | null;
  container: string | null;
  containerId: string;
  runtime: ContainerRuntime;
  qos: QosClass;
  cgroupPath: string;
  memory: CgroupMemory | null;
  /** min(container limit, pod limit); null when neither is set. */
  limitBytes: number | null;
  pids: number[];
}

export interface PodSample {
  podUid: string;
  namespace: string | null;
  pod: string | null;
  qos: QosClass;
  cgroupPath: string;
  memory: CgroupMemory | null;
}

export interface NodeSample {
  atMs: number;
  processes: AttributedProcess[];
  containers: ContainerSample[];
  pods: PodSample[];
  /** Wall time the pass took, for the agent's own metrics. */
  durationMs: number;
}

interface ExitedProcess {
  process: AttributedProcess;
  goneAtMs: number;
}

const identityCacheLimit = 10_000;

export class NodeSampler {
  readonly procRoot: string;
  readonly cgroupRoot: string;
  readonly podLogRoot: string;
  private readonly table: ProcessTable;
  private readonly podNames: PodNameIndex;
  private readonly hierarchy: MemoryHierarchy | null;
  private readonly warn: (msg: string) => void;
  private readonly identities = new Map<string, CgroupIdentity | 'skip' | null>();
  private previous = new Map<number, AttributedProcess>();
  private readonly exited = new Map<number, ExitedProcess>();
  private readonly exitedRetentionMs: number;
  private readonly emptyContainerRetentionMs: number;
  /** Containers seen with processes recently, by cgroup path: read on while empty. */
  private readonly recentContainers = new Map<string, { container: ContainerSample; lastLiveMs: number }>();

  constructor(options: NodeSamplerOptions = {}) {
    this.procRoot = options.procRoot ?? '/proc';
    this.cgroupRoot = options.cgroupRoot ?? '/sys/fs/cgroup';
    this.podLogRoot = options.podLogRoot ?? '/var/log/pods';
    this.warn = options.warn ?? (() => {});
    this.exitedRetentionMs = options.exitedRetentionMs ?? 120_000;
    this.emptyContainerRetentionMs = options.emptyContainerRetentionMs ?? 60_000;
    this.table = new ProcessTable({ procRoot: this.procRoot, warn: this.warn });
    this.podNames = new PodNameIndex({ podLogRoot: this.podLogRoot, warn: this.warn });
    this.hierarchy = detectMemoryHierarchy(this.cgroupRoot);
    if (!this.hierarchy) this.warn(`no memory cgroup hierarchy under ${this.cgroupRoot}: container memory and limits will be missing`);
  }

  /** Memory hierarchy in use (v1 or v2), null when none was found. */
  get memoryHierarchy(): MemoryHierarchy | null {
    return this.hierarchy;
  }

  sample(now: number = Date.now()): NodeSample {
    const started = performance.now();
    const processes = this.table.sample();
    const memoryByCgroup = new Map<string, CgroupMemory | null>();
    const readMemory = (path: string): CgroupMemory | null => {
      let memory = memoryByCgroup.get(path);
      if (memory === undefined) {
        memory = this.hierarchy ? readCgroupMemory(this.hierarchy, path, { warn: this.warn }) : null;
        memoryByCgroup.set(path, memory);
      }
      return memory;
    };
    // Sibling containers share their pod and QoS ancestors: one cache per pass spares re-reads.
    const limitCache = new Map<string, number | null>();
    const enclosingLimit = (path: string): number | null =>
      this.hierarchy ? (tightestLimit(this.hierarchy, path, { warn: this.warn, limitCache })?.limitBytes ?? null) : null;

    const containers = new Map<string, ContainerSample>();
    const pods = new Map<string, PodSample>();
    const attributed: AttributedProcess[] = [];
    for (const p of processes) {
      const identity = p.cgroupPath ? this.identityOf(p.cgroupPath) : null;
      if (identity === 'skip') continue;
      if (!identity) {
        attributed.push(hostProcess(p));
        continue;
      }
      const names = this.podNames.lookup(identity.podUid);
      let pod = pods.get(identity.podUid);
      if (!pod) {
        pod = {
          podUid: identity.podUid,
          namespace: names?.namespace ?? null,
          pod: names?.pod ?? null,
          qos: identity.qos,
          cgroupPath: identity.podCgroup,
          memory: readMemory(identity.podCgroup),
        };
        pods.set(identity.podUid, pod);
      }
      let container: ContainerSample | undefined;
      if (identity.containerId && identity.containerCgroup) {
        container = containers.get(identity.containerCgroup);
        if (!container) {
          const memory = readMemory(identity.containerCgroup);
          container = {
            podUid: identity.podUid,
            namespace: pod.namespace,
            pod: pod.pod,
            container: this.podNames.containerName(identity.podUid, identity.containerId),
            containerId: identity.containerId,
            runtime: identity.runtime,
            qos: identity.qos,
            cgroupPath: identity.containerCgroup,
            memory,
            limitBytes: enclosingLimit(identity.containerCgroup),
            pids: [],
          };
          containers.set(identity.containerCgroup, container);
        }
        container.pids.push(p.pid);
      }
      attributed.push({
        ...p,
        podUid: identity.podUid,
        namespace: pod.namespace,
        pod: pod.pod,
        container: container?.container ?? null,
        containerId: identity.containerId,
        runtime: identity.runtime,
        qos: identity.qos,
        limitBytes: container ? container.limitBytes : enclosingLimit(identity.podCgroup),
        oomKills: (container ? container.memory?.oomKills : pod.memory?.oomKills) ?? 0,
      });
    }
    this.rememberExited(attributed, now);
    this.addEmptyContainers(containers, readMemory, now);
    return {
      atMs: now,
      processes: attributed,
      containers: [...containers.values()],
      pods: [...pods.values()],
      durationMs: performance.now() - started,
    };
  }

  /** The last sample of a process, live or exited within the retention window. */
  lastSeen(pid: number): AttributedProcess | undefined {
    return this.previous.get(pid) ?? this.exited.get(pid)?.process;
  }

  close(): void {
    this.table.close();
  }

  private identityOf(cgroupPath: string): CgroupIdentity | 'skip' | null {
    let identity = this.identities.get(cgroupPath);
    if (identity === undefined) {
      if (this.identities.size >= identityCacheLimit) this.identities.clear();
      identity = parsePodCgroup(cgroupPath);
      this.identities.set(cgroupPath, identity);
    }
    return identity;
  }

  private addEmptyContainers(live: Map<string, ContainerSample>, readMemory: (path: string) => CgroupMemory | null, now: number): void {
    for (const [path, c] of live) this.recentContainers.set(path, { container: c, lastLiveMs: now });
    for (const [path, recent] of this.recentContainers) {
      if (live.has(path)) continue;
      // Checked first so that kubelet removing a cgroup, which is routine, is not a warning.
      const present = this.hierarchy !== null && existsSync(join(this.hierarchy.memoryRoot, path));
      const memory = present && now - recent.lastLiveMs <= this.emptyContainerRetentionMs ? readMemory(path) : null;
      if (!memory) {
        // Gone from the hierarchy (kubelet removed it) or kept long enough.
        this.recentContainers.delete(path);
        continue;
      }
      live.set(path, { ...recent.container, memory, pids: [] });
    }
  }

  private rememberExited(current: AttributedProcess[], now: number): void {
    const next = new Map<number, AttributedProcess>();
    for (const p of current) next.set(p.pid, p);
    for (const [pid, p] of this.previous) {
      const successor = next.get(pid);
      if (!successor || successor.startTimeMs !== p.startTimeMs) this.exited.set(pid, { process: p, goneAtMs: now });
    }
    for (const [pid, e] of this.exited) {
      if (now - e.goneAtMs > this.exitedRetentionMs || next.get(pid)?.startTimeMs === e.process.startTimeMs) this.exited.delete(pid);
    }
    this.previous = next;
  }
}

function hostProcess(p: ProcessSample): AttributedProcess {
  return { ...p, podUid: null, namespace: null, pod: null, container: null, containerId: null, runtime: null, qos: null, limitBytes: null, oomKills: 0 };
}
