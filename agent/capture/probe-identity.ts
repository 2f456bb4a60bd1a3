// Which host process is on the other end of a probe connection. The probe says its pid in its own
// namespace and its start time; neither is taken on its word: the agent looks for a process in
// the host's /proc whose last NSpid and start time (stat field 22, clock ticks since boot, the same
// in every pid namespace) both match, and which holds the probe's end of the connection among its
// open descriptors (the socket inode it reported).
import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface ProbeClaim {
  nsPid: number;
  startTicks: number;
  socketInode: number;
}

export type IdentityResult = { ok: true; pid: number } | { ok: false; reason: string };

export async function resolveProbePid(procRoot: string, claim: ProbeClaim): Promise<IdentityResult> {
  const candidates: number[] = [];
  let entries: string[];
  try {
    entries = await readdir(procRoot);
  } catch (err) {
    return { ok: false, reason: `cannot list ${procRoot}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      const status = await readFile(join(procRoot, name, 'status'), 'utf8');
      const nsPids = /^NSpid:\s*(.+)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number);
      if (!nsPids || nsPids[nsPids.length - 1] !== claim.nsPid) continue;
      if ((await readStartTicks(join(procRoot, name, 'stat'))) !== claim.startTicks) continue;
      candidates.push(pid);
    } catch {
      // Gone between readdir and read: not our peer.
    }
  }
  if (candidates.length === 0) {
    return { ok: false, reason: `no process has NSpid ${claim.nsPid} and start time ${claim.startTicks}` };
  }
  const wanted = `socket:[${claim.socketInode}]`;
  const holders: number[] = [];
  for (const pid of candidates) {
    if (await holdsDescriptor(join(procRoot, String(pid), 'fd'), wanted)) holders.push(pid);
  }
  if (holders.length !== 1) {
    return { ok: false, reason: `${holders.length} of ${candidates.length} matching processes hold ${wanted}` };
  }
  return { ok: true, pid: holders[0]! };
}

export async function readStartTicks(statPath: string): Promise<number> {
  const stat = await readFile(statPath, 'utf8');
  // comm (field 2) may contain spaces and ')': fields 3.. follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[22 - 3]);
}

async function holdsDescriptor(fdDir: string, wanted: string): Promise<boolean> {
  let fds: string[];
  try {
    fds = await readdir(fdDir);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      if ((await readlink(join(fdDir, fd))) === wanted) return true;
    } catch {
      // Closed meanwhile.
    }
  }
  return false;
}
