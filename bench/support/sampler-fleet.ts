// A fleet of idle processes for the sampler benchmark, inside a memory cgroup of its own
// (limited, so a mistake cannot eat the machine), and torn down on every exit path.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const memoryRoot = '/sys/fs/cgroup/memory';

export interface MemoryCgroup {
  /** Absolute directory. */
  dir: string;
  /** Path as /proc/<pid>/cgroup shows it. */
  path: string;
  remove(): Promise<void>;
}

/** A v1 memory cgroup with a limit, or null (with the reason) when this machine has none to give. */
export function createMemoryCgroup(name: string, limitBytes: number): MemoryCgroup | string {
  const dir = join(memoryRoot, name);
  try {
    mkdirSync(dir);
  } catch (err) {
    return `cannot create ${dir}: ${(err as Error).message}`;
  }
  try {
    writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
  } catch (err) {
    rmdirSync(dir);
    return `cannot limit ${dir}: ${(err as Error).message}`;
  }
  return {
    dir,
    path: `/${name}`,
    async remove() {
      // rmdir fails while the last tasks are still being torn down; give them a moment.
      for (let i = 0; i < 100 && existsSync(dir); i++) {
        try {
          rmdirSync(dir);
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
  };
}

export interface Fleet {
  pids: number[];
  cgroup: MemoryCgroup | null;
  /** Why there is no cgroup, when there is none. */
  cgroupNote: string | null;
  stop(): Promise<void>;
}

/** Starts `count` × `sleep 3600`, each moving itself into the cgroup before it execs. */
export async function startSleepFleet(count: number, cgroupName: string, limitBytes: number): Promise<Fleet> {
  const made = createMemoryCgroup(cgroupName, limitBytes);
  const cgroup = typeof made === 'string' ? null : made;
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.map((c) => killAndWait(c)));
    await cgroup?.remove();
  };
  try {
    for (let i = 0; i < count; i++) {
      const child = cgroup
        ? spawn('sh', ['-c', `echo $$ > ${cgroup.dir}/cgroup.procs && exec sleep 3600`], { stdio: 'ignore' })
        : spawn('sleep', ['3600'], { stdio: 'ignore' });
      children.push(child);
      await new Promise<void>((res, rej) => {
        child.once('spawn', () => res());
        child.once('error', rej);
      });
    }
    // Wait until every shell has exec'd sleep, so the table sees the steady state.
    const pids = children.map((c) => c.pid!);
    for (let i = 0; i < 200; i++) {
      if (pids.every((pid) => commOf(pid) === 'sleep')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const notReady = pids.filter((pid) => commOf(pid) !== 'sleep');
    if (notReady.length > 0) throw new Error(`${notReady.length} fleet processes never became sleep`);
    return { pids, cgroup, cgroupNote: typeof made === 'string' ? made : null, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function commOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

export async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}
