// The node's process table, re-read once per sampling pass.
//
// Cost is the point of this module: the agent samples every process on the node each second,
// so a pass must stay under ~10 µs per process. What we measured on the dev VM (kernel 6.18,
// 2 vCPU, 573 processes, µs per process): open/read/close of statm 2.4, of stat 3.5, of status
// 5.0; pread on a kept statm fd 0.8, on a kept status fd 3.1; readdir of /proc 0.3. Hence:
//
// - One statm fd is kept open per live pid and re-read each pass with pread at offset 0 (which
//   makes procfs regenerate the content): no path walk, no open/close per pass. The fd is bound
//   to the task it was opened on: once that task is reaped the read fails with ESRCH (verified
//   on this kernel), so a listed pid whose fd says ESRCH is a new process (pid reuse) or one
//   that died since the listing. A zombie's statm reads all zeros, not ESRCH.
// - status (RSS split, swap, PPid, NSpid, Uid) is read only when statm's resident or shared
//   count moved, when the process is new, when its parent vanished (reparenting), and on the
//   periodic refresh. resident = anon+file+shmem and shared = file+shmem, so while neither moves
//   the anon figure cannot have moved either; swap is caught up with by the periodic refresh.
// - status is opened per read rather than kept: each kept procfs fd that has been read pins a
//   page-sized seq_file buffer in the kernel, charged to the agent's memory cgroup (measured
//   ~4.4 KiB per fd), and status is only read when something changed. Keeping it too would
//   save ~2 µs per status read and double that kernel memory.
// - Identity (comm, cmdline, exe, memory cgroup) is read when a process is first seen, when
//   statm's text size or status's Name changes (an exec), and on the periodic refresh: a
//   process can exec, rewrite its argv or be moved to another cgroup without changing pid.
//   The periodic refresh is staggered by pid so it costs the same every pass instead of
//   spiking every Nth one.
// - Past maxCachedFds, processes are read with open/read/close of stat, which carries the
//   start time (pid reuse) and the resident count (change detection) in one file. The cap is
//   also held to half of our own RLIMIT_NOFILE, and an EMFILE/ENFILE shrinks it on the spot
//   (closing kept fds) so the rest of the agent, and this table's own reads, still get fds.
// - Samples are reused while nothing in them changed, so a quiet process costs no allocation.
import { closeSync, constants as fsConstants, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import {
  parseBootTimeSec,
  parseCmdline,
  parseMemoryCgroupPath,
  parseStat,
  parseStatmInto,
  parseStatus,
  ProcParseError,
  type ProcFileKind,
  type ProcStatus,
  type StatmValues,
} from './proc-parse.js';
import type { ProcessSample } from './types.js';

/**
 * Clock ticks per second of the times in `/proc/<pid>/stat`. The kernel reports them in
 * USER_HZ, which is part of the Linux ABI and fixed at 100 on every architecture Kubernetes
 * runs on (x86, arm64, ppc64le, s390x), whatever the kernel's internal HZ. `getconf CLK_TCK`
 * would say the same, but Node has no sysconf and spawning getconf to learn a constant is not
 * worth it.
 */
export const clockTicksPerSecond = 100;

export interface ProcessTableOptions {
  /** Root of the proc filesystem to read (`/host/proc` in the DaemonSet, a fixture in tests). */
  procRoot?: string;
  /** Bound on the bytes of `/proc/<pid>/cmdline` read per process. */
  maxCmdlineBytes?: number;
  /** Most statm fds kept open; processes beyond it are read with open/read/close. */
  maxCachedFds?: number;
  /** Every process's status and identity are re-read at least once per this many passes. */
  fullRefreshEveryPasses?: number;
  warn?: (msg: string) => void;
}

/** Counters for the agent's own metrics. */
export interface ProcessTableStats {
  passes: number;
  /** Processes in the last pass. */
  processes: number;
  fdsOpen: number;
  /** The cap in force: the option, held to half of RLIMIT_NOFILE, lowered after an EMFILE. */
  maxCachedFds: number;
  /** Processes of the last pass read without a kept fd because of maxCachedFds. */
  uncachedProcesses: number;
  statusReadsLastPass: number;
  statusReadsTotal: number;
  /** Identity re-reads (comm, cmdline, exe, cgroup) of already-known processes. */
  identityReadsLastPass: number;
  newProcessesLastPass: number;
  exitedLastPass: number;
  pidReusesTotal: number;
  permissionErrorsTotal: number;
  parseErrorsTotal: number;
  lastPassMs: number;
}

/** The proc root itself cannot be used (not listable, no boot time). Thrown by sample(). */
export class ProcRootError extends Error {
  override readonly name = 'ProcRootError';
}

interface Entry {
  pid: number;
  /** Kept statm fd, or -1 when this process is read through open/read/close of stat. */
  fd: number;
  startTimeTicks: number;
  kernelThread: boolean;
  /** Which pass of the refresh cycle this process refreshes on. */
  refreshPhase: number;
  /** From statm (kept fd) or stat (no fd); sharedPages and textPages are -1 without an fd. */
  residentPages: number;
  sharedPages: number;
  textPages: number;
  statusName: string;
  state: string;
  ppid: number;
  uid: number;
  nsPids: readonly number[];
  rssAnonBytes: number;
  rssFileBytes: number;
  rssShmemBytes: number;
  swapBytes: number;
  comm: string;
  cmdline: string;
  argv: readonly string[];
  exe: string | null;
  cgroupPath: string | null;
  startTimeMs: number;
  /** A missing parent we already re-checked, so an invisible parent is not re-read every pass. */
  checkedMissingParent: number;
  seenPass: number;
  /** Frozen sample handed out while nothing in it changes. */
  sample: ProcessSample | null;
}

// Outcomes of reading a file, as negative byte counts so the hot path returns plain numbers.
const GONE = -1; // exited (ENOENT, ESRCH, empty read)
const DENIED = -2; // EACCES/EPERM, reported once per file kind
const BROKEN = -3; // unparseable or an unexpected error, reported once per kind
const NO_FDS = -4; // EMFILE/ENFILE: the kept fds were cut back, the caller may retry once

/** Kept fds closed when the process runs out of fds, so everyone else gets some back. */
const fdHeadroom = 64;

/** 'unreadable': a file did not parse, already reported; the process is left out. */
type Refresh = 'ok' | 'gone' | 'reused' | 'unreadable';

const statmReadBytes = 256; // seven counts: far below 256 bytes
const statReadBytes = 4096; // 52 counts of up to 20 digits plus a 64-byte comm stay under 1.2 KiB
const defaultMaxCachedFds = 4096;
const defaultFullRefreshEveryPasses = 30;
const defaultMaxCmdlineBytes = 4096;

export class ProcessTable {
  readonly procRoot: string;
  private readonly maxCmdlineBytes: number;
  private maxCachedFds: number;
  private readonly fullRefreshEveryPasses: number;
  private readonly warnFn: (msg: string) => void;
  private readonly entries = new Map<number, Entry>();
  /** One buffer for every read: procfs files are read whole, parsed, and forgotten. */
  private readonly buf: Buffer;
  private readonly statm: StatmValues = { sizePages: 0, residentPages: 0, sharedPages: 0, textPages: 0 };
  private readonly warned = new Set<string>();
  private bootTimeMs: number | null = null;
  private closed = false;
  private pass = 0;
  private fdsOpen = 0;
  private counters = {
    processes: 0,
    uncachedProcesses: 0,
    statusReadsLastPass: 0,
    statusReadsTotal: 0,
    identityReadsLastPass: 0,
    newProcessesLastPass: 0,
    exitedLastPass: 0,
    pidReusesTotal: 0,
    permissionErrorsTotal: 0,
    parseErrorsTotal: 0,
    lastPassMs: 0,
  };

  constructor(options: ProcessTableOptions = {}) {
    this.procRoot = (options.procRoot ?? '/proc').replace(/\/+$/, '') || '/';
    this.maxCmdlineBytes = positiveInt('maxCmdlineBytes', options.maxCmdlineBytes ?? defaultMaxCmdlineBytes);
    const fdLimit = ownFdLimit();
    const wanted = nonNegativeInt('maxCachedFds', options.maxCachedFds ?? defaultMaxCachedFds);
    this.maxCachedFds = fdLimit === null ? wanted : Math.min(wanted, Math.floor(fdLimit / 2));
    this.fullRefreshEveryPasses = positiveInt('fullRefreshEveryPasses', options.fullRefreshEveryPasses ?? defaultFullRefreshEveryPasses);
    this.warnFn = options.warn ?? (() => {});
    // status is the largest file read; 64 KiB holds it even with thousands of supplementary groups.
    this.buf = Buffer.allocUnsafe(Math.max(64 * 1024, this.maxCmdlineBytes));
  }

  /**
   * One pass over every pid under the proc root. Processes that exit mid-pass are left out
   * silently. Samples are frozen and the same object is returned again while nothing in it
   * changed; copy before modifying. RSS figures are current as of this pass, swap as of the
   * last status read (see the top of the file for why); `state`, `uid` and `ppid` are as of the last status read, which is at
   * most fullRefreshEveryPasses old and fresh whenever memory moved or the parent exited.
   * Throws ProcRootError when the root cannot be listed or has no readable boot time.
   */
  sample(): ProcessSample[] {
    if (this.closed) throw new Error('ProcessTable is closed');
    const started = performance.now();
    if (this.bootTimeMs === null) this.bootTimeMs = this.readBootTimeMs();
    const names = this.listRoot();
    const pass = ++this.pass;
    const c = this.counters;
    c.statusReadsLastPass = 0;
    c.identityReadsLastPass = 0;
    c.newProcessesLastPass = 0;
    c.exitedLastPass = 0;
    c.uncachedProcesses = 0;

    const live: Entry[] = [];
    for (const name of names) {
      const pid = pidOf(name);
      if (pid < 0) continue;
      let entry: Entry | null | undefined = this.entries.get(pid);
      if (entry) {
        const outcome = this.refresh(entry, pass);
        if (outcome !== 'ok') {
          this.forget(entry);
          // 'gone' on a listed pid: the process died after the listing, or its pid was reused.
          const previous = entry;
          entry = outcome === 'unreadable' ? null : this.discover(pid, pass);
          if (!entry) {
            if (outcome !== 'unreadable') c.exitedLastPass++;
            continue;
          }
          if (entry.startTimeTicks !== previous.startTimeTicks) c.pidReusesTotal++;
        }
      } else {
        entry = this.discover(pid, pass);
        if (!entry) continue;
      }
      entry.seenPass = pass;
      if (entry.fd < 0) c.uncachedProcesses++;
      live.push(entry);
    }

    for (const entry of this.entries.values()) {
      if (entry.seenPass !== pass) {
        this.forget(entry);
        c.exitedLastPass++;
      }
    }

    this.recheckOrphans(live);

    const out: ProcessSample[] = new Array(live.length);
    for (let i = 0; i < live.length; i++) {
      const e = live[i]!;
      out[i] = e.sample ?? (e.sample = freezeSample(e));
    }
    c.processes = out.length;
    c.lastPassMs = performance.now() - started;
    return out;
  }

  stats(): ProcessTableStats {
    return { passes: this.pass, fdsOpen: this.fdsOpen, maxCachedFds: this.maxCachedFds, ...this.counters };
  }

  /** Closes every kept fd. The table cannot sample afterwards. */
  close(): void {
    for (const entry of this.entries.values()) this.forget(entry);
    this.closed = true;
  }

  private listRoot(): string[] {
    for (let attempt = 0; ; attempt++) {
      try {
        return readdirSync(this.procRoot);
      } catch (err) {
        const code = errCode(err);
        // Listing needs an fd too: give kept ones back and try once more.
        if ((code === 'EMFILE' || code === 'ENFILE') && attempt === 0) {
          this.outOfFds(code);
          continue;
        }
        throw new ProcRootError(`cannot list ${this.procRoot} (${code}): set the proc root to a mounted procfs`);
      }
    }
  }

  private readBootTimeMs(): number {
    const path = `${this.procRoot}/stat`;
    const n = this.readPath(path, 'proc-stat', this.buf.length);
    if (n < 0) throw new ProcRootError(`cannot read ${path}: set the proc root to a mounted procfs`);
    const sec = parseBootTimeSec(this.buf, n);
    if (sec instanceof ProcParseError) throw new ProcRootError(`${path}: ${sec.reason}`);
    return sec * 1000;
  }

  /** A pid seen for the first time (or again after its old process went away). */
  private discover(pid: number, pass: number): Entry | null {
    const dir = `${this.procRoot}/${pid}`;
    let fd = -1;
    if (this.fdsOpen < this.maxCachedFds) {
      fd = this.openKept(`${dir}/statm`, pid);
      if (fd === NO_FDS) fd = -1; // the cap was just lowered: read this one without a kept fd
      else if (fd < 0) return null;
    }
    const entry = this.readNew(pid, dir, fd, pass);
    if (!entry && fd >= 0) this.closeKept(fd);
    if (entry) this.counters.newProcessesLastPass++;
    return entry;
  }

  private readNew(pid: number, dir: string, fd: number, pass: number): Entry | null {
    // stat first: start time is what tells this process from a later one with the same pid.
    const statLen = this.readPath(`${dir}/stat`, 'stat', statReadBytes);
    if (statLen < 0) return null;
    const stat = parseStat(this.buf, statLen);
    if (stat instanceof ProcParseError) return this.parseFailed(stat, pid);

    let residentPages = stat.rssPages;
    let sharedPages = -1;
    let textPages = -1;
    if (fd >= 0) {
      const n = this.preadKept(fd, pid);
      if (n < 0) return null;
      const bad = parseStatmInto(this.buf, n, this.statm);
      if (bad) return this.parseFailed(bad, pid);
      residentPages = this.statm.residentPages;
      sharedPages = this.statm.sharedPages;
      textPages = this.statm.textPages;
    }

    const status = this.readStatus(dir, pid);
    if (!status) return null;

    const bootTimeMs = this.bootTimeMs ?? 0;
    const entry: Entry = {
      pid,
      fd,
      startTimeTicks: stat.startTimeTicks,
      kernelThread: stat.kernelThread,
      refreshPhase: pid % this.fullRefreshEveryPasses,
      residentPages,
      sharedPages,
      textPages,
      statusName: status.name,
      state: status.state,
      ppid: status.ppid,
      uid: status.uid,
      nsPids: Object.freeze(status.nsPids ?? [pid]),
      rssAnonBytes: status.rssAnonBytes,
      rssFileBytes: status.rssFileBytes,
      rssShmemBytes: status.rssShmemBytes,
      swapBytes: status.swapBytes,
      comm: stat.comm,
      cmdline: '',
      argv: [],
      exe: null,
      cgroupPath: null,
      startTimeMs: bootTimeMs + Math.round((stat.startTimeTicks * 1000) / clockTicksPerSecond),
      checkedMissingParent: -1,
      seenPass: pass,
      sample: null,
    };
    this.readIdentity(entry, dir);
    this.entries.set(pid, entry);
    return entry;
  }

  /** Re-reads a known process; 'gone' or 'reused' make the caller drop it and look again. */
  private refresh(e: Entry, pass: number): Refresh {
    const full = (pass + e.refreshPhase) % this.fullRefreshEveryPasses === 0;
    let needStatus = full;
    let needIdentity = full;
    let changed = false;
    if (e.fd >= 0) {
      const n = this.preadKept(e.fd, e.pid);
      if (n < 0) return 'gone';
      const bad = parseStatmInto(this.buf, n, this.statm);
      if (bad) {
        this.parseFailed(bad, e.pid);
        return 'unreadable';
      }
      const s = this.statm;
      if (s.residentPages !== e.residentPages || s.sharedPages !== e.sharedPages) needStatus = true;
      if (s.textPages !== e.textPages) needStatus = needIdentity = true;
      e.residentPages = s.residentPages;
      e.sharedPages = s.sharedPages;
      e.textPages = s.textPages;
    } else {
      const n = this.readPath(`${this.procRoot}/${e.pid}/stat`, 'stat', statReadBytes);
      if (n < 0) return 'gone';
      const stat = parseStat(this.buf, n);
      if (stat instanceof ProcParseError) {
        this.parseFailed(stat, e.pid);
        return 'unreadable';
      }
      if (stat.startTimeTicks !== e.startTimeTicks) return 'reused';
      if (stat.rssPages !== e.residentPages) needStatus = true;
      e.residentPages = stat.rssPages;
      if (stat.state !== e.state || stat.ppid !== e.ppid) {
        e.state = stat.state;
        e.ppid = stat.ppid;
        changed = true;
      }
      this.adoptFd(e);
    }

    if (needStatus) {
      const dir = `${this.procRoot}/${e.pid}`;
      const status = this.readStatus(dir, e.pid);
      if (status === null) return 'gone';
      if (this.applyStatus(e, status)) changed = true;
      if (status.name !== e.statusName) {
        e.statusName = status.name;
        needIdentity = true;
      }
    }

    // A zombie's identity files read empty or as the root cgroup: keep what it had in life.
    // Kernel threads never exec and have no argv, exe or memory cgroup of their own.
    if (needIdentity && e.state !== 'Z' && !e.kernelThread) {
      const dir = `${this.procRoot}/${e.pid}`;
      const n = this.readPath(`${dir}/stat`, 'stat', statReadBytes);
      if (n < 0) return 'gone';
      const stat = parseStat(this.buf, n);
      if (stat instanceof ProcParseError) {
        this.parseFailed(stat, e.pid);
        return 'unreadable';
      }
      // Redundant with the kept fd on procfs, but it is what catches reuse where ESRCH is not
      // available (fixture trees, the open/read/close path between stat reads).
      if (stat.startTimeTicks !== e.startTimeTicks) return 'reused';
      if (stat.comm !== e.comm) {
        e.comm = stat.comm;
        changed = true;
      }
      if (this.readIdentity(e, dir)) changed = true;
      this.counters.identityReadsLastPass++;
    }
    if (changed) e.sample = null;
    return 'ok';
  }

  /** Copies status into the entry; true when a sampled field changed. */
  private applyStatus(e: Entry, s: ProcStatus): boolean {
    let changed = false;
    if (e.state !== s.state) (e.state = s.state), (changed = true);
    if (e.ppid !== s.ppid) (e.ppid = s.ppid), (changed = true);
    if (e.uid !== s.uid) (e.uid = s.uid), (changed = true);
    if (e.rssAnonBytes !== s.rssAnonBytes) (e.rssAnonBytes = s.rssAnonBytes), (changed = true);
    if (e.rssFileBytes !== s.rssFileBytes) (e.rssFileBytes = s.rssFileBytes), (changed = true);
    if (e.rssShmemBytes !== s.rssShmemBytes) (e.rssShmemBytes = s.rssShmemBytes), (changed = true);
    if (e.swapBytes !== s.swapBytes) (e.swapBytes = s.swapBytes), (changed = true);
    const ns = s.nsPids ?? [e.pid];
    if (!sameNumbers(ns, e.nsPids)) (e.nsPids = Object.freeze(ns)), (changed = true);
    return changed;
  }

  /** Reads cmdline, exe and cgroup into the entry; true when one of them changed. */
  private readIdentity(e: Entry, dir: string): boolean {
    let changed = false;
    if (e.kernelThread) {
      // exe always fails with ENOENT (an exception per read) and cmdline is empty; the cgroup is
      // still read once so the sample says where the thread sits (the root, normally).
      const cg = this.readPath(`${dir}/cgroup`, 'cgroup', this.buf.length);
      if (cg > 0) e.cgroupPath = parseMemoryCgroupPath(this.buf, cg);
      return true;
    }
    const n = this.readPath(`${dir}/cmdline`, 'cmdline', this.maxCmdlineBytes);
    if (n >= 0) {
      const parsed = parseCmdline(this.buf, n, this.maxCmdlineBytes);
      // An exiting process's cmdline reads empty; an empty read never replaces a known one.
      if (parsed.cmdline !== e.cmdline && (parsed.argv.length > 0 || e.argv.length === 0)) {
        e.cmdline = parsed.cmdline;
        e.argv = Object.freeze(parsed.argv);
        changed = true;
      }
    }
    const exe = this.readExe(`${dir}/exe`);
    if (exe !== null && exe !== e.exe) (e.exe = exe), (changed = true);
    const cg = this.readPath(`${dir}/cgroup`, 'cgroup', this.buf.length);
    if (cg > 0) {
      const path = parseMemoryCgroupPath(this.buf, cg);
      if (path !== null && path !== e.cgroupPath) (e.cgroupPath = path), (changed = true);
    }
    return changed;
  }

  /** status of a pid, or null when it exited or cannot be read (already reported). */
  private readStatus(dir: string, pid: number): ProcStatus | null {
    const n = this.readPath(`${dir}/status`, 'status', this.buf.length);
    if (n < 0) return null;
    this.counters.statusReadsLastPass++;
    this.counters.statusReadsTotal++;
    const status = parseStatus(this.buf, n);
    if (status instanceof ProcParseError) return this.parseFailed(status, pid);
    return status;
  }

  /**
   * After the listing, a process whose parent is gone has been reparented; a parent that
   * started after its child is a new process on a reused pid. Either way PPid is stale.
   */
  private recheckOrphans(live: Entry[]): void {
    for (const e of live) {
      if (e.ppid <= 0 || e.checkedMissingParent === e.ppid) continue;
      const parent = this.entries.get(e.ppid);
      if (parent && parent.startTimeTicks <= e.startTimeTicks) continue;
      const before = e.ppid;
      const status = this.readStatus(`${this.procRoot}/${e.pid}`, e.pid);
      if (status && this.applyStatus(e, status)) e.sample = null;
      // Parents outside our view (hidepid, fixture trees) stay missing: check once per ppid.
      if (e.ppid === before) e.checkedMissingParent = before;
    }
  }

  /** Gives an fd-less process a kept fd once the cap allows; its stat was just checked. */
  private adoptFd(e: Entry): void {
    if (this.fdsOpen >= this.maxCachedFds) return;
    const fd = this.openKept(`${this.procRoot}/${e.pid}/statm`, e.pid);
    if (fd < 0) return;
    const n = this.preadKept(fd, e.pid);
    if (n < 0 || parseStatmInto(this.buf, n, this.statm)) {
      this.closeKept(fd);
      return;
    }
    e.fd = fd;
    e.sharedPages = this.statm.sharedPages;
    e.textPages = this.statm.textPages;
  }

  /** Lowers the fd cap below what is open now and closes kept fds down to it. */
  private outOfFds(code: string): void {
    const kept = this.fdsOpen;
    this.maxCachedFds = Math.max(0, Math.min(this.maxCachedFds, this.fdsOpen - fdHeadroom));
    for (const e of this.entries.values()) {
      if (this.fdsOpen <= this.maxCachedFds) break;
      if (e.fd < 0) continue;
      this.closeKept(e.fd);
      // Back to the stat path, whose resident count continues the statm one.
      e.fd = -1;
      e.sharedPages = -1;
      e.textPages = -1;
    }
    this.warnOnce(
      'no-fds',
      `out of file descriptors (${code}) with ${kept} kept; keeping at most ${this.maxCachedFds} from now on and reading the other processes with open/read/close (raise RLIMIT_NOFILE to keep them all)`,
    );
  }

  private forget(e: Entry): void {
    if (e.fd >= 0) this.closeKept(e.fd);
    e.fd = -1;
    if (this.entries.get(e.pid) === e) this.entries.delete(e.pid);
  }

  private openKept(path: string, pid: number): number {
    try {
      const fd = openSync(path, fsConstants.O_RDONLY);
      this.fdsOpen++;
      return fd;
    } catch (err) {
      return this.failed(err, path, 'statm');
    }
  }

  private closeKept(fd: number): void {
    try {
      closeSync(fd);
    } catch {
      // Closing a valid fd does not fail on Linux; nothing to do if it somehow does.
    }
    this.fdsOpen--;
  }

  /** pread at offset 0 of a kept statm fd: bytes read, or GONE/BROKEN. */
  private preadKept(fd: number, pid: number): number {
    let n: number;
    try {
      n = readSync(fd, this.buf, 0, statmReadBytes, 0);
    } catch (err) {
      return this.failed(err, `${this.procRoot}/${pid}/statm`, 'statm');
    }
    return n === 0 ? GONE : n;
  }

  /** open/read/close of one file into the shared buffer: bytes read, or GONE/DENIED/BROKEN/NO_FDS. */
  private readPath(path: string, kind: ProcFileKind, limit: number): number {
    let fd = -1;
    for (let attempt = 0; fd < 0; attempt++) {
      try {
        fd = openSync(path, fsConstants.O_RDONLY);
      } catch (err) {
        const outcome = this.failed(err, path, kind);
        // Out of fds: failed() closed some kept ones, so one retry can succeed.
        if (outcome !== NO_FDS || attempt > 0) return outcome;
      }
    }
    try {
      const n = readSync(fd, this.buf, 0, limit, 0);
      // An empty stat or status is a process caught between exit and reaping's last step.
      return n === 0 && kind !== 'cmdline' ? GONE : n;
    } catch (err) {
      return this.failed(err, path, kind);
    } finally {
      closeSync(fd);
    }
  }

  private readExe(path: string): string | null {
    try {
      return readlinkSync(path);
    } catch (err) {
      // ENOENT: kernel thread or exiting process; those have no executable to name.
      this.failed(err, path, 'exe');
      return null;
    }
  }

  /** Classifies a failed read; warns once per kind for anything but an exited process. */
  private failed(err: unknown, path: string, kind: ProcFileKind | 'exe'): number {
    const code = errCode(err);
    if (code === 'ENOENT' || code === 'ESRCH') return GONE;
    if (code === 'EMFILE' || code === 'ENFILE') {
      this.outOfFds(code);
      return NO_FDS;
    }
    if (code === 'EACCES' || code === 'EPERM') {
      this.counters.permissionErrorsTotal++;
      this.warnOnce(
        `denied:${kind}`,
        `permission denied (${code}) reading ${path}; ${kind === 'exe' || kind === 'cmdline' || kind === 'cgroup' ? `${kind} is left empty` : 'the process is skipped'} where this happens, and further permission errors on ${kind} files are not reported (the agent needs root with CAP_SYS_PTRACE and an unrestricted /proc)`,
      );
      return DENIED;
    }
    this.warnOnce(`error:${kind}:${code}`, `unexpected ${code} reading ${path}; treated as an exited process, not reported again for ${kind} files`);
    return BROKEN;
  }

  private parseFailed(error: ProcParseError, pid: number): null {
    this.counters.parseErrorsTotal++;
    this.warnOnce(`parse:${error.file}`, `${this.procRoot}/${pid}/${error.file}: ${error.reason}; that process is skipped, further unparseable ${error.file} files are not reported`);
    return null;
  }

  private warnOnce(key: string, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.warnFn(msg);
  }
}

function freezeSample(e: Entry): ProcessSample {
  const sample: ProcessSample = {
    pid: e.pid,
    ppid: e.ppid,
    comm: e.comm,
    cmdline: e.cmdline,
    // Frozen arrays shared with the entry: safe to hand out because nobody can change them.
    argv: e.argv as string[],
    exe: e.exe,
    uid: e.uid,
    startTimeMs: e.startTimeMs,
    nsPid: e.nsPids[e.nsPids.length - 1] ?? e.pid,
    nsPids: e.nsPids as number[],
    state: e.state,
    rssAnonBytes: e.rssAnonBytes,
    rssFileBytes: e.rssFileBytes,
    rssShmemBytes: e.rssShmemBytes,
    swapBytes: e.swapBytes,
    cgroupPath: e.cgroupPath,
  };
  return Object.freeze(sample);
}

/** Pid of a /proc entry name, -1 for the non-pid entries (self, sys, meminfo, ...). */
function pidOf(name: string): number {
  const len = name.length;
  if (len === 0 || len > 10) return -1;
  let pid = 0;
  for (let i = 0; i < len; i++) {
    const c = name.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    pid = pid * 10 + c;
  }
  return pid > 0 ? pid : -1;
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Soft RLIMIT_NOFILE of this process, from /proc/self/limits (Node has no getrlimit). */
function ownFdLimit(): number | null {
  try {
    const fd = openSync('/proc/self/limits', fsConstants.O_RDONLY);
    try {
      const buf = Buffer.alloc(8192);
      const text = buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0));
      const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
      return m && m[1] !== 'unlimited' ? Number(m[1]) : null;
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
}

function errCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`ProcessTable option ${name} must be a positive integer, got ${value}`);
  return value;
}

function nonNegativeInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`ProcessTable option ${name} must be a non-negative integer, got ${value}`);
  return value;
}
