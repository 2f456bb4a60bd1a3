// Pod and container identity from a cgroup path. Pure string work: no file access, so every
// layout can be tested from strings and the sampler can call it once per new path.
//
// Layouts (kubelet builds the pod part, the runtime names the container part):
//   cgroupfs driver  /kubepods[/burstable|/besteffort]/pod<uid>/<container>
//   systemd driver   /kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_with_underscores>.slice/<container>
//   containerd's systemd "slice:prefix:id" form, which shows up as one literal directory when
//   containerd runs nested (k3s, kind): .../kubepods-<qos>-pod<uid>.slice:cri-containerd:<id>
// Any prefix may come before the kubepods part (kind/minikube nodes are containers themselves:
// /docker/<node-id>/kubepods/..., /kubelet.slice/kubelet-kubepods.slice/..., /system.slice/containerd.service/...).

import type { CgroupIdentity, ContainerRuntime, QosClass } from './types.js';

/**
 * The memory cgroup path in `/proc/<pid>/cgroup` text: the v1 line whose controller list holds
 * `memory`, else the v2 `0::` line. A hybrid host (v1 memory + a v2 mount without memory) has
 * both, and the v1 line is the one whose files hold the accounting. Null when neither exists.
 */
export function memoryCgroupPath(procCgroupText: string): string | null {
  let unifiedPath: string | null = null;
  for (const line of procCgroupText.split('\n')) {
    // hierarchy-id:controller-list:path. The path itself may contain ':' (containerd's nested
    // systemd form), so split on the first two colons only.
    const first = line.indexOf(':');
    if (first < 0) continue;
    const second = line.indexOf(':', first + 1);
    if (second < 0) continue;
    const hierarchyId = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1).trimEnd();
    if (!path.startsWith('/')) continue;
    if (controllers.split(',').includes('memory')) return path;
    if (hierarchyId === '0' && controllers === '') unifiedPath = path;
  }
  return unifiedPath;
}

// Pod UIDs are UUIDs, except static (mirror) pods whose UID is a 32-hex hash of the manifest.
const podUidPattern = (sep: string) => ['{8}', '{4}', '{4}', '{4}', '{12}'].map((n) => `[0-9a-f]${n}`).join(`${sep}?`);
const CGROUPFS_POD = new RegExp(`^pod(${podUidPattern('-')})$`, 'i');
// systemd escapes '-' as '_' inside unit names, so the UID's dashes come back as underscores.
const POD_UID_SYSTEMD = podUidPattern('_');
const SYSTEMD_POD = new RegExp(
  `^(?:[\\w.-]+-)?kubepods-(?:(burstable|besteffort)-)?pod(${POD_UID_SYSTEMD})\\.slice$`,
  'i',
);
const CONTAINER_ID = /^[0-9a-f]{64}$/;
// Container cgroup names by runtime. crio-conmon-* holds CRI-O's per-container monitor process,
// not the workload; it sits beside the container's own crio-<id> cgroup.
const CONTAINER_SCOPE = /^(cri-containerd|crio-conmon|crio|docker)-([0-9a-f]{64})(?:\.scope)?$/;
const RUNTIME_BY_PREFIX: Record<string, ContainerRuntime> = {
  'cri-containerd': 'containerd',
  crio: 'cri-o',
  docker: 'docker',
};

/**
 * Pod identity of a cgroup path (relative to the cgroup hierarchy root).
 *
 * - `'skip'`: inside a pod but never a workload: `crio-conmon-<id>` cgroups.
 * - null: not inside a pod cgroup (system services, the kubepods/QoS levels themselves,
 *   docker containers outside Kubernetes), or a path we cannot place.
 *
 * Pod sandboxes ("pause" containers) get a container cgroup like any other container under
 * every layout here (containerd: cri-containerd-<sandbox id>.scope; cgroupfs: bare id), so the
 * path cannot tell them apart. The sampler excludes them later: a container whose every process
 * is the pause binary (see {@link isSandboxCommand}) is a sandbox.
 *
 * Runtime is 'unknown' for a bare 64-hex container directory (cgroupfs driver): containerd,
 * cri-dockerd and dockershim all name the container cgroup by the bare id there, so the path
 * does not say which runtime made it. CRI-O keeps its `crio-` prefix even under cgroupfs.
 *
 * The outermost pod in the path wins: on a node that runs inside a pod (a kind node in a
 * pod), every process of the inner cluster is, for this node, memory of that outer pod.
 *
 * A path seen from inside a cgroup namespace starts with `/..` segments. A systemd pod slice is
 * still recognised (its name carries the QoS), but podCgroup/containerCgroup then keep those
 * segments and do not name a directory under the hierarchy root; a cgroupfs path loses its
 * kubepods ancestor and gives null. The agent must read /proc/<pid>/cgroup from the host's
 * cgroup namespace for the paths to be usable.
 */
export function parsePodCgroup(path: string): CgroupIdentity | 'skip' | null {
  const segments = path.split('/').filter((s) => s !== '');
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const pod = podAt(segments, i);
    if (pod === null) {
      // containerd's nested systemd form packs pod and container into one directory name.
      const packed = parsePackedSystemdSegment(segment);
      if (packed === null) continue;
      if (packed === 'skip') return 'skip';
      const cgroup = joinSegments(segments, i + 1);
      return { ...packed, podCgroup: cgroup, containerCgroup: cgroup };
    }
    const podCgroup = joinSegments(segments, i + 1);
    const containerSegment = segments[i + 1];
    if (containerSegment === undefined) {
      return { podUid: pod.podUid, qos: pod.qos, podCgroup, containerId: null, runtime: 'unknown', containerCgroup: null };
    }
    const container = parseContainerSegment(containerSegment);
    if (container === 'skip') return 'skip';
    if (container === null) {
      // A child of the pod cgroup we do not recognise (another runtime's naming): still the
      // pod's memory, so attribute it to the pod rather than drop it or invent a container.
      return { podUid: pod.podUid, qos: pod.qos, podCgroup, containerId: null, runtime: 'unknown', containerCgroup: null };
    }
    return {
      podUid: pod.podUid,
      qos: pod.qos,
      podCgroup,
      containerId: container.id,
      runtime: container.runtime,
      // Deeper cgroups (a container that makes its own sub-cgroups) belong to the same container.
      containerCgroup: joinSegments(segments, i + 2),
    };
  }
  return null;
}

/**
 * Whether a process is a pod sandbox's pause process (`/pause` from the pause image;
 * OpenShift's infra image runs `/usr/bin/pod`). `exe` is the `/proc/<pid>/exe` target as the
 * host sees it, which for a container process is the path inside the container's root.
 */
export function isSandboxCommand(comm: string, exe: string | null): boolean {
  const exeBase = exe === null ? null : exe.slice(exe.lastIndexOf('/') + 1).replace(/ \(deleted\)$/, '');
  if (comm === 'pause') return exeBase === null || exeBase === 'pause';
  if (comm === 'pod') return exe === '/usr/bin/pod';
  return false;
}

interface PodPart {
  podUid: string;
  qos: QosClass;
}

function podAt(segments: string[], i: number): PodPart | null {
  const segment = segments[i]!;
  const systemd = SYSTEMD_POD.exec(segment);
  if (systemd) {
    return { podUid: systemd[2]!.replaceAll('_', '-').toLowerCase(), qos: qosFromName(systemd[1]) };
  }
  const cgroupfs = CGROUPFS_POD.exec(segment);
  if (!cgroupfs) return null;
  // A bare pod<uid> directory only counts under kubepods, directly (Guaranteed) or through a
  // QoS directory, so that an unrelated "pod..." directory elsewhere is not taken for a pod.
  const parent = segments[i - 1];
  if (parent === 'kubepods') return { podUid: cgroupfs[1]!.toLowerCase(), qos: 'Guaranteed' };
  if ((parent === 'burstable' || parent === 'besteffort') && segments[i - 2] === 'kubepods') {
    return { podUid: cgroupfs[1]!.toLowerCase(), qos: qosFromName(parent) };
  }
  return null;
}

function qosFromName(name: string | undefined): QosClass {
  switch (name?.toLowerCase()) {
    case 'burstable':
      return 'Burstable';
    case 'besteffort':
      return 'BestEffort';
    default:
      return 'Guaranteed';
  }
}

function parseContainerSegment(segment: string): { id: string; runtime: ContainerRuntime } | 'skip' | null {
  if (CONTAINER_ID.test(segment)) return { id: segment, runtime: 'unknown' };
  const scope = CONTAINER_SCOPE.exec(segment);
  if (!scope) return null;
  const prefix = scope[1]!;
  if (prefix === 'crio-conmon') return 'skip';
  return { id: scope[2]!, runtime: RUNTIME_BY_PREFIX[prefix] ?? 'unknown' };
}

function parsePackedSystemdSegment(segment: string): Omit<CgroupIdentity, 'podCgroup' | 'containerCgroup'> | 'skip' | null {
  const parts = segment.split(':');
  if (parts.length !== 3) return null;
  const [slice, prefix, id] = parts as [string, string, string];
  const pod = SYSTEMD_POD.exec(slice);
  if (!pod || !CONTAINER_ID.test(id)) return null;
  if (prefix === 'crio-conmon') return 'skip';
  return {
    podUid: pod[2]!.replaceAll('_', '-').toLowerCase(),
    qos: qosFromName(pod[1]),
    containerId: id,
    runtime: RUNTIME_BY_PREFIX[prefix] ?? 'unknown',
  };
}

function joinSegments(segments: string[], count: number): string {
  return '/' + segments.slice(0, count).join('/');
}
