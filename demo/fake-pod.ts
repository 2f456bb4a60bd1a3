// A pod-shaped memory cgroup on this machine's real kernel, with the pod-log directories kubelet
// would have written, so the agent sees what it would see on a Kubernetes node. Used by
// `leakwatch demo` and by the tests. cgroup v1 (`/sys/fs/cgroup/memory`), cgroupfs driver layout:
// kubepods/<qos>/pod<uid>/<64-hex id>.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CGROUP_ROOT = '/sys/fs/cgroup';
const MEMORY_ROOT = join(CGROUP_ROOT, 'memory');
/** Tests may allocate on purpose; no fake container may be given more than this. */
export const MAX_TEST_LIMIT_BYTES = 256 * 1024 * 1024;

export type FakeNodeAvailability = { ok: true } | { ok: false; reason: string };

/** Whether this machine lets us build real memory cgroups (root and a writable v1 memory controller). */
export function fakeNodeAvailability(): FakeNodeAvailability {
  if (process.platform !== 'linux') return { ok: false, reason: 'not Linux' };
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return { ok: false, reason: 'not root (real memory cgroups need root)' };
  if (!existsSync(join(MEMORY_ROOT, 'memory.limit_in_bytes'))) return { ok: false, reason: `no cgroup v1 memory controller at ${MEMORY_ROOT}` };
  try {
    accessSync(MEMORY_ROOT, constants.W_OK);
  } catch {
    return { ok: false, reason: `${MEMORY_ROOT} is not writable` };
  }
  return { ok: true };
}

export interface FakeContainerSpec {
  name: string;
  limitBytes: number;
}

export interface FakeContainer {
  name: string;
  /** 64-hex container id, as containerd would name it. */
  id: string;
  limitBytes: number;
  /** Path relative to the memory hierarchy root, e.g. `/kubepods/burstable/pod<uid>/<id>`. */
  cgroupPath: string;
  /** Absolute directory of the container cgroup. */
  cgroupDir: string;
}

export interface FakePod {
  namespace: string;
  name: string;
  uid: string;
  qos: 'burstable' | 'besteffort' | 'guaranteed';
  podCgroupPath: string;
  podCgroupDir: string;
  containers: FakeContainer[];
  /** Temp directory standing for `/var/log/pods`. */
  podLogRoot: string;
  /** Temp directory standing for `/var/log/containers`, the sibling of podLogRoot. */
  containerLogRoot: string;
  /** Start a process inside a container's cgroup: it joins before exec, so nothing runs outside the limit. */
  spawnIn(container: string, command: string, args: string[], options?: SpawnOptions): ChildProcess;
  /** Host pids currently in the container's cgroup. */
  pids(container: string): number[];
  /** Kill every process in the pod and remove its cgroups and log directories. Safe to call twice. */
  destroy(): Promise<void>;
}

export interface FakePodSpec {
  namespace?: string;
  name?: string;
  qos?: 'burstable' | 'besteffort' | 'guaranteed';
  containers: FakeContainerSpec[];
  /** Pod-level limit; defaults to the sum of the containers' limits, as kubelet sets it. */
  podLimitBytes?: number;
  /** Reuse an existing log root (several pods on one fake node). */
  logRoot?: string;
}

const livePods = new Set<FakePod>();
let exitHookInstalled = false;

/** Builds the pod. Throws with the reason when fakeNodeAvailability() is not ok. */
export function createFakePod(spec: FakePodSpec): FakePod {
  const availability = fakeNodeAvailability();
  if (!availability.ok) throw new Error(`cannot build a fake pod: ${availability.reason}`);
  for (const c of spec.containers) {
    if (c.limitBytes <= 0 || c.limitBytes > MAX_TEST_LIMIT_BYTES) {
      throw new Error(`container ${c.name}: limit ${c.limitBytes} outside (0, ${MAX_TEST_LIMIT_BYTES}]`);
    }
  }
  const namespace = spec.namespace ?? 'default';
  const name = spec.name ?? `fake-${randomBytes(3).toString('hex')}`;
  const qos = spec.qos ?? 'burstable';
  const uid = randomUUID();
  const qosPath = qos === 'guaranteed' ? '/kubepods' : `/kubepods/${qos}`;
  const podCgroupPath = `${qosPath}/pod${uid}`;
  const podCgroupDir = join(MEMORY_ROOT, podCgroupPath);
  mkdirSync(podCgroupDir, { recursive: true });
  const podLimit = spec.podLimitBytes ?? spec.containers.reduce((sum, c) => sum + c.limitBytes, 0);
  writeFileSync(join(podCgroupDir, 'memory.limit_in_bytes'), String(podLimit));

  const logBase = spec.logRoot ?? mkdtempSync(join(tmpdir(), 'leakwatch-node-'));
  const podLogRoot = join(logBase, 'pods');
  const containerLogRoot = join(logBase, 'containers');
  mkdirSync(containerLogRoot, { recursive: true });
  const podLogDir = join(podLogRoot, `${namespace}_${name}_${uid}`);

  const containers: FakeContainer[] = spec.containers.map((c) => {
    const id = randomBytes(32).toString('hex');
    const cgroupPath = `${podCgroupPath}/${id}`;
    const cgroupDir = join(MEMORY_ROOT, cgroupPath);
    mkdirSync(cgroupDir);
    writeFileSync(join(cgroupDir, 'memory.limit_in_bytes'), String(c.limitBytes));
    // kubelet's layout: /var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log, and
    // /var/log/containers/<pod>_<ns>_<container>-<id>.log pointing at it.
    mkdirSync(join(podLogDir, c.name), { recursive: true });
    writeFileSync(join(podLogDir, c.name, '0.log'), '');
    writeFileSync(join(containerLogRoot, `${name}_${namespace}_${c.name}-${id}.log`), '');
    return { name: c.name, id, limitBytes: c.limitBytes, cgroupPath, cgroupDir };
  });

  const byName = (n: string): FakeContainer => {
    const found = containers.find((c) => c.name === n);
    if (!found) throw new Error(`no container ${n} in pod ${namespace}/${name}`);
    return found;
  };

  let destroyed = false;
  const pod: FakePod = {
    namespace,
    name,
    uid,
    qos,
    podCgroupPath,
    podCgroupDir,
    containers,
    podLogRoot,
    containerLogRoot,
    spawnIn(container, command, args, options = {}) {
      const target = byName(container);
      // The shell writes its own pid into the cgroup and then execs the workload, so the
      // workload's first allocation is already charged to (and limited by) the container.
      return spawn('/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', join(target.cgroupDir, 'cgroup.procs'), command, ...args], {
        stdio: 'ignore',
        ...options,
      });
    },
    pids(container) {
      return readPids(byName(container).cgroupDir);
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      livePods.delete(pod);
      for (const c of containers) await emptyAndRemove(c.cgroupDir);
      await emptyAndRemove(podCgroupDir);
      rmSync(podLogDir, { recursive: true, force: true });
      for (const c of containers) rmSync(join(containerLogRoot, `${name}_${namespace}_${c.name}-${c.id}.log`), { force: true });
      if (!spec.logRoot) rmSync(logBase, { recursive: true, force: true });
    },
  };
  livePods.add(pod);
  installExitHook();
  return pod;
}

function readPids(cgroupDir: string): number[] {
  try {
    return readFileSync(join(cgroupDir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

async function emptyAndRemove(cgroupDir: string): Promise<void> {
  if (!existsSync(cgroupDir)) return;
  for (let attempt = 0; attempt < 50; attempt++) {
    for (const pid of readPids(cgroupDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      rmdirSync(cgroupDir);
      return;
    } catch (err) {
      // EBUSY until the killed tasks are reaped by their parents.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`could not remove cgroup ${cgroupDir}: processes still inside`);
}

/** A test that dies mid-way must not leave workloads running in cgroups behind it. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pod of livePods) {
      for (const c of pod.containers) {
        for (const pid of readPids(c.cgroupDir)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
    }
  });
}
