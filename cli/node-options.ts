// The flags that say where the node's trees are. Every command that reads the node takes them,
// so the DaemonSet (host trees under /host/...) and fixture trees go through the same code.
import type { Command } from 'commander';

export interface NodeRootOptions {
  procRoot: string;
  cgroupRoot: string;
  podLogRoot: string;
  kmsg: string;
}

export function addNodeRootOptions(command: Command): Command {
  return command
    .option('--proc-root <dir>', 'procfs of the node (env LEAKWATCH_PROC_ROOT)', process.env.LEAKWATCH_PROC_ROOT ?? '/proc')
    .option('--cgroup-root <dir>', 'cgroup filesystem root, v1 or v2 (env LEAKWATCH_CGROUP_ROOT)', process.env.LEAKWATCH_CGROUP_ROOT ?? '/sys/fs/cgroup')
    .option('--pod-log-root <dir>', 'kubelet pod log directory, for pod and container names (env LEAKWATCH_POD_LOG_ROOT)', process.env.LEAKWATCH_POD_LOG_ROOT ?? '/var/log/pods')
    .option('--kmsg <path>', 'kernel log device, for OOM kills (env LEAKWATCH_KMSG)', process.env.LEAKWATCH_KMSG ?? '/dev/kmsg');
}
