// The shapes the node readers hand to the rest of the agent. Kept in one file so that
// procfs, cgroup and OOM readers can be written and tested apart from each other.

/** One process as seen in one sampling pass. Sizes are bytes, times epoch milliseconds. */
export interface ProcessSample {
  pid: number;
  ppid: number;
  /** Kernel task name (`/proc/<pid>/comm`, at most 15 characters). */
  comm: string;
  /** argv joined with single spaces, bounded (see ProcessTableOptions.maxCmdlineBytes). */
  cmdline: string;
  /** argv as the kernel holds it, bounded like cmdline. Empty for kernel threads and zombies. */
  argv: string[];
  /** Target of `/proc/<pid>/exe`, or null when it cannot be read (kernel thread, permission). */
  exe: string | null;
  /** Real uid. */
  uid: number;
  /** Process start, epoch ms (boot time + starttime ticks). Used with pid to notice pid reuse. */
  startTimeMs: number;
  /** Innermost pid namespace's pid: the pid the process sees for itself inside its container. */
  nsPid: number;
  /** Every level of NSpid, outermost (host) first. */
  nsPids: number[];
  /** One-letter state from stat/status (R, S, D, Z, ...). */
  state: string;
  rssAnonBytes: number;
  rssFileBytes: number;
  rssShmemBytes: number;
  swapBytes: number;
  /**
   * The process's memory cgroup path relative to the memory hierarchy's root: the v1
   * `memory` controller line or, on a pure v2 host, the `0::` line. Null if unreadable.
   */
  cgroupPath: string | null;
}

export type ContainerRuntime = 'containerd' | 'cri-o' | 'docker' | 'unknown';
export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

/** What a cgroup path says about the pod and container it belongs to. */
export interface CgroupIdentity {
  podUid: string;
  qos: QosClass;
  /** Cgroup path of the pod (relative to the memory hierarchy root). */
  podCgroup: string;
  /** Null when the path is the pod cgroup itself. */
  containerId: string | null;
  runtime: ContainerRuntime;
  /** Cgroup path of the container, null when the path is the pod cgroup itself. */
  containerCgroup: string | null;
}

/** Memory accounting of one cgroup, read in one pass. Bytes; null limit means unlimited. */
export interface CgroupMemory {
  usageBytes: number;
  /** v1 `total_rss` (hierarchical), v2 `anon`. */
  anonBytes: number;
  /** v1 `total_inactive_file`, v2 `inactive_file`. */
  inactiveFileBytes: number;
  /** usage − inactive_file, floored at 0: what kubelet evicts on. */
  workingSetBytes: number;
  limitBytes: number | null;
  /** Cumulative OOM kills in this cgroup (v1 `memory.oom_control` oom_kill, v2 `memory.events` oom_kill). */
  oomKills: number;
  /** v2 `oom_group_kill`; 0 on v1. */
  oomGroupKills: number;
}

/** Names of a pod, from `/var/log/pods/<namespace>_<pod>_<uid>/<container>/`. */
export interface PodNames {
  namespace: string;
  pod: string;
  podUid: string;
  /** Container names found under the pod's log directory. */
  containers: string[];
  /** Container id (full 64-hex) to name, where the log layout tells it. */
  containerNamesById: Map<string, string>;
}

/** A kernel OOM kill, merged from /dev/kmsg and the memcg counters. */
export interface OomKillEvent {
  atMs: number;
  /** Host pid of the victim; null when only a counter moved and kmsg said nothing. */
  pid: number | null;
  comm: string | null;
  /** From the last sample of the victim before it died, when we had one. */
  cmdline: string | null;
  lastRssAnonBytes: number | null;
  /** The memcg whose limit was hit (kmsg `oom_memcg`, or the cgroup whose counter moved). */
  memcg: string | null;
  /** The victim's own memcg (kmsg `task_memcg`). */
  taskMemcg: string | null;
  podUid: string | null;
  containerId: string | null;
  namespace: string | null;
  pod: string | null;
  container: string | null;
  /** Which sources saw this kill. */
  sources: Array<'kmsg' | 'counter'>;
  /** Victim's anon RSS as the kernel reported it at the kill, bytes (kmsg only). */
  kernelAnonRssBytes: number | null;
}
