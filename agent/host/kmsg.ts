// Kernel OOM kills as the kernel logs them, read from /dev/kmsg.
//
// /dev/kmsg hands out one log record per read(): `prio,seq,usec,flags[,more];message\n` then
// dictionary lines (` KEY=value\n`). Non-printable bytes and backslashes in the message come
// escaped as `\xNN`. A reader opened on it starts at the oldest record still in the ring buffer;
// a reader that falls behind gets EPIPE once (its next record was overwritten) and then continues
// from the oldest record left.
//
// The lines an OOM kill leaves, by kernel version (mm/oom_kill.c, mm/memcontrol.c):
//   4.19+  oom-kill:constraint=C,nodemask=N[,cpuset=X,mems_allowed=M](,oom_memcg=P|,global_oom)[,task_memcg=P],task=COMM,pid=N,uid=N
//   5.0+   <reason>: Killed process N (COMM) total-vm:XkB, anon-rss:XkB, file-rss:XkB, shmem-rss:XkB, UID:N pgtables:XkB oom_score_adj:N
//   < 5.0  <reason>: Kill process N (COMM) score S or sacrifice child          (the chosen task)
//          Killed process N (COMM) total-vm:XkB, anon-rss:XkB, file-rss:XkB[, shmem-rss:XkB]   (the actual victim)
//          Killed process N (COMM), UID N, total-vm:...                        (RHEL/CentOS 7 kernels)
//   < 4.19 Task in /victim/memcg killed as a result of limit of /limited/memcg
//   4.19+  Tasks in /memcg are going to be killed due to memory.oom.group set  (then one Killed line per member)
// where <reason> is `Memory cgroup out of memory`, `Out of memory` or
// `Out of memory (oom_kill_allocating_task)`. The header with the summary line is rate limited by
// the kernel; the Killed line is not, so a Killed line may come without its summary.

import { closeSync, constants, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';

export interface KmsgRecord {
  /** Log level, 0 (emerg) to 7 (debug). */
  priority: number;
  /** Syslog facility: 0 for the kernel, 1 for records written to /dev/kmsg from user space. */
  facility: number;
  seq: number;
  /** Kernel timestamp: microseconds since boot on the kernel's log clock. */
  monotonicUsec: number;
  /** '-' for a whole line; 'c' / '+' mark line fragments on kernels that logged them apart. */
  flags: string;
  /** The message with `\xNN` escapes decoded. */
  message: string;
  /** The record's ` KEY=value` continuation lines (SUBSYSTEM, DEVICE, ...). */
  dictionary: Record<string, string>;
}

const HEADER = /^(\d+),(\d+),(\d+),([^,;]*)(?:,[^;]*)?;/;

/**
 * One /dev/kmsg record. Null when the text is not a record (no `prio,seq,usec,flags;` header).
 * Extra header fields after the flags (`caller=T123` with CONFIG_PRINTK_CALLER) are ignored.
 */
export function parseKmsgRecord(text: string): KmsgRecord | null {
  const newline = text.indexOf('\n');
  const head = newline < 0 ? text : text.slice(0, newline);
  const match = HEADER.exec(head);
  if (!match) return null;
  const prio = Number(match[1]);
  const seq = Number(match[2]);
  const usec = Number(match[3]);
  if (!Number.isSafeInteger(prio) || !Number.isSafeInteger(seq) || !Number.isSafeInteger(usec)) return null;
  const dictionary: Record<string, string> = {};
  if (newline >= 0) {
    for (const line of text.slice(newline + 1).split('\n')) {
      if (!line.startsWith(' ')) continue;
      const eq = line.indexOf('=');
      if (eq < 0) continue;
      dictionary[line.slice(1, eq)] = unescapeKmsg(line.slice(eq + 1));
    }
  }
  return {
    priority: prio & 7,
    facility: prio >> 3,
    seq,
    monotonicUsec: usec,
    flags: match[4]!,
    message: unescapeKmsg(head.slice(match[0].length)),
    dictionary,
  };
}

/** Decodes the kernel's `\xNN` escapes; the bytes are taken as UTF-8 (task names usually are). */
function unescapeKmsg(text: string): string {
  if (!text.includes('\\x')) return text;
  const latin1 = text.replace(/\\x([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

/** Which OOM killed a task: a memory cgroup's limit, the whole machine, or not said (old Killed lines). */
export type OomScope = 'memcg' | 'global' | 'unknown';

/** 4.19+ one-line summary, printed just before the victim is killed. */
export interface OomSummaryLine {
  kind: 'oom-kill';
  /** CONSTRAINT_NONE, CONSTRAINT_CPUSET, CONSTRAINT_MEMORY_POLICY or CONSTRAINT_MEMCG. */
  constraint: string;
  scope: OomScope;
  /** The memcg whose limit was hit (`oom_memcg`); null for a global OOM. */
  oomMemcg: string | null;
  /** The victim's memcg (`task_memcg`), as the kernel sees the hierarchy. */
  taskMemcg: string | null;
  comm: string;
  pid: number;
  uid: number;
}

/** The line saying the SIGKILL was sent, with the victim's memory at that moment. */
export interface OomKilledLine {
  kind: 'killed-process';
  scope: OomScope;
  pid: number;
  comm: string;
  totalVmBytes: number;
  anonRssBytes: number;
  fileRssBytes: number;
  /** Absent before 4.5 (and on some vendor kernels). */
  shmemRssBytes: number | null;
  uid: number | null;
  oomScoreAdj: number | null;
}

/** Before 5.0: the task the OOM killer chose; the Killed line that follows may name one of its children. */
export interface OomSelectedLine {
  kind: 'kill-process';
  scope: OomScope;
  pid: number;
  comm: string;
  score: number;
}

/** Before 4.19: which memcg the victim was in and whose limit was hit. Names no pid. */
export interface OomTaskInLine {
  kind: 'task-in';
  taskMemcg: string;
  oomMemcg: string;
}

/** cgroup v2 memory.oom.group: every task of this memcg is about to be killed. */
export interface OomGroupLine {
  kind: 'oom-group';
  memcg: string;
}

export type OomKillLine = OomSummaryLine | OomKilledLine | OomSelectedLine | OomTaskInLine | OomGroupLine;

// The task name may contain anything a process can put in its comm, parentheses and commas
// included (`((d-logind))` is real), so names are matched greedily up to the fixed text that
// follows them.
const KILLED = /^(?:([^:]*): )?Killed process (\d+) \((.*)\),? (?:UID:? ?(\d+),? )?total-vm:(\d+)kB, anon-rss:(\d+)kB, file-rss:(\d+)kB(?:, shmem-rss:(\d+)kB)?(.*)$/s;
const SELECTED = /^(?:([^:]*): )?Kill process (\d+) \((.*)\) score (\d+) or sacrifice child$/s;
const TASK_IN = /^Task in (.+) killed as a result of limit of (.+)$/s;
const GROUP = /^Tasks in (.+) are going to be killed due to memory\.oom\.group set$/s;
const SUMMARY_TAIL = /,task=(.*),pid=(\d+),uid=(-?\d+)$/s;

/** The OOM-kill meaning of one kernel log message, or null when it is not one of the lines above. */
export function parseOomKill(message: string): OomKillLine | null {
  const text = message.trimEnd();
  if (text.startsWith('oom-kill:')) return parseSummary(text);
  if (text.includes('Killed process ')) {
    const m = KILLED.exec(text);
    if (!m) return null;
    const rest = m[9] ?? '';
    const uid = m[4] ?? /\bUID:(\d+)/.exec(rest)?.[1];
    const adj = /\boom_score_adj:(-?\d+)/.exec(rest)?.[1];
    return {
      kind: 'killed-process',
      scope: scopeOf(m[1]),
      pid: Number(m[2]),
      comm: m[3]!,
      totalVmBytes: Number(m[5]) * 1024,
      anonRssBytes: Number(m[6]) * 1024,
      fileRssBytes: Number(m[7]) * 1024,
      shmemRssBytes: m[8] === undefined ? null : Number(m[8]) * 1024,
      uid: uid === undefined ? null : Number(uid),
      oomScoreAdj: adj === undefined ? null : Number(adj),
    };
  }
  let m = SELECTED.exec(text);
  if (m) return { kind: 'kill-process', scope: scopeOf(m[1]), pid: Number(m[2]), comm: m[3]!, score: Number(m[4]) };
  m = TASK_IN.exec(text);
  if (m) return { kind: 'task-in', taskMemcg: m[1]!, oomMemcg: m[2]! };
  m = GROUP.exec(text);
  if (m) return { kind: 'oom-group', memcg: m[1]! };
  return null;
}

function scopeOf(reason: string | undefined): OomScope {
  if (reason === undefined) return 'unknown';
  if (reason.startsWith('Memory cgroup out of memory')) return 'memcg';
  if (reason.startsWith('Out of memory')) return 'global';
  return 'unknown';
}

function parseSummary(text: string): OomSummaryLine | null {
  const constraint = /^oom-kill:constraint=([A-Z_]+),/.exec(text);
  const tail = SUMMARY_TAIL.exec(text);
  if (!constraint || !tail) return null;
  // The middle holds nodemask/cpuset/mems_allowed (whose values contain commas: "0-1,4") and
  // the memcg part; only the memcg keys are needed, and they come last.
  const middle = text.slice(constraint[0].length - 1, tail.index);
  let oomMemcg: string | null = null;
  let taskMemcg: string | null = null;
  const taskAt = middle.indexOf(',task_memcg=');
  const oomAt = middle.indexOf(',oom_memcg=');
  if (taskAt >= 0) taskMemcg = middle.slice(taskAt + ',task_memcg='.length);
  if (oomAt >= 0) oomMemcg = middle.slice(oomAt + ',oom_memcg='.length, taskAt > oomAt ? taskAt : undefined);
  const globalOom = /,global_oom(?:,|$)/.test(middle);
  const pid = Number(tail[2]);
  if (!Number.isSafeInteger(pid)) return null;
  return {
    kind: 'oom-kill',
    constraint: constraint[1]!,
    scope: oomMemcg !== null || constraint[1] === 'CONSTRAINT_MEMCG' ? 'memcg' : globalOom ? 'global' : 'unknown',
    oomMemcg,
    taskMemcg,
    comm: tail[1]!,
    pid,
    uid: Number(tail[3]),
  };
}

/** One OOM kill as the kernel log told it, its summary and Killed lines merged. */
export interface KmsgOomKill {
  pid: number;
  comm: string;
  uid: number | null;
  scope: OomScope;
  /** From the summary line; null when only a Killed line came. */
  constraint: string | null;
  /** The memcg whose limit was hit (`oom_memcg`, or the legacy "limit of" / oom.group memcg). */
  memcg: string | null;
  /** The victim's memcg (`task_memcg`, or legacy "Task in"). Kernel's view of the hierarchy. */
  taskMemcg: string | null;
  totalVmBytes: number | null;
  anonRssBytes: number | null;
  fileRssBytes: number | null;
  shmemRssBytes: number | null;
  /** Sequence number of the record that completed this kill. */
  seq: number;
  monotonicUsec: number;
  /** Epoch ms of the kill, from the kernel timestamp (see KmsgFollower on how it is placed). */
  atMs: number;
  /** Which lines were seen: a summary without a Killed line means the kill was skipped or its line lost. */
  lines: Array<'oom-kill' | 'killed-process'>;
}

/** File operations the follower uses; tests replace them to produce EPIPE and the like. */
export interface KmsgIo {
  openSync(path: string, flags: number): number;
  /** Like fs.readSync: position null reads at the file position (what /dev/kmsg needs). */
  readSync(fd: number, buffer: Buffer, offset: number, length: number, position: number | null): number;
  fstatSync(fd: number): { isFile(): boolean; size: number };
  closeSync(fd: number): void;
}

const nodeIo: KmsgIo = { openSync, readSync, fstatSync, closeSync };

export interface KmsgFollowerOptions {
  /** Default `/dev/kmsg`. A regular file is followed like `tail -f` (fixtures, saved logs). */
  path?: string;
  /** Where `uptime` is read to place kernel timestamps in wall time. Default `/proc`. */
  procRoot?: string;
  /**
   * Report the records already there when the follower opens. Default false: only kills that
   * happen after open() are reported, as the memcg counters' first reading is a baseline too.
   */
  fromStart?: boolean;
  warn?: (msg: string) => void;
  /** Wall clock, epoch ms. */
  now?: () => number;
  /** Initial read buffer; at least 8 KiB (a record never exceeds the kernel's 8 KiB ext-console limit). */
  readBufferBytes?: number;
  io?: KmsgIo;
}

export interface KmsgFollowerStats {
  records: number;
  kills: number;
  /** Times the kernel said our next record was overwritten (EPIPE), or the file was truncated. */
  gaps: number;
  /** Records lost in those gaps, from the jump in sequence numbers. */
  lostRecords: number;
}

interface PendingSummary {
  line: OomSummaryLine;
  record: KmsgRecord;
  atMs: number;
  poll: number;
}

interface Context<T> {
  value: T;
  usec: number;
}

const MIN_BUFFER = 8192;
const MAX_BUFFER = 1 << 20;
/** A busy log must not hold one poll forever. */
const MAX_RECORDS_PER_POLL = 100_000;
/** A legacy "Task in"/oom.group/"Kill process" line belongs to a Killed line this close after it. */
const CONTEXT_USEC = 10_000_000;
const GAP_WARN_INTERVAL_MS = 60_000;
/** Fragments of one logged line are joined up to this length; an OOM line is far shorter. */
const MAX_FRAGMENT_CHARS = 4096;
/** At most this much of a followed regular file is read in one poll. */
const MAX_FILE_BYTES_PER_POLL = 4 << 20;

/**
 * Follows the kernel log and returns OOM kills as they are logged.
 *
 * Call open() at start (poll() opens on first use otherwise), then poll() once per sampling
 * pass: it reads every record available without blocking and returns the kills completed.
 *
 * What is skipped at open: on /dev/kmsg the follower drains the ring buffer once (reads to
 * EAGAIN), which is exact and needs no clock comparison (the log clock stops in suspend while
 * uptime does not, so comparing the two can drop new records for good). On a regular file it
 * starts at the current end. `fromStart` turns both off.
 *
 * Timestamps: atMs = (wall clock − uptime at open) + kernel usec / 1000. On the device, a record
 * read in this poll was logged after the previous poll drained the log, so atMs is clamped into
 * [previous poll, now], which bounds the error by one poll interval whatever the clocks do.
 *
 * Grouping: the summary line and the Killed line of one kill come back to back; they are merged
 * when the pids agree or the Killed line is the very next record (the kernel may report a thread
 * of the chosen process). A summary still alone after one more poll is reported on its own.
 *
 * When the log cannot be opened or read (no device in the container, EPERM without CAP_SYSLOG)
 * the follower warns once and stays inert: poll() returns [] and `available` is false.
 */
export class KmsgFollower {
  readonly path: string;
  private readonly procRoot: string;
  private readonly fromStart: boolean;
  private readonly warn: (msg: string) => void;
  private readonly now: () => number;
  private readonly io: KmsgIo;
  private buffer: Buffer;
  private fd: number | null = null;
  private state: 'new' | 'open' | 'inert' | 'closed' = 'new';
  private isFile = false;
  private fileOffset = 0;
  private bootEpochMs: number | null = null;
  private lastDrainMs = 0;
  private lastSeq: number | null = null;
  private pollCount = 0;
  private lastGapWarnMs = -Infinity;
  private pending: PendingSummary | null = null;
  private taskIn: Context<OomTaskInLine> | null = null;
  private group: Context<OomGroupLine> | null = null;
  private selected: Context<OomSelectedLine> | null = null;
  /** The message so far of a line the kernel logged in fragments, while it has not parsed. */
  private fragment: { message: string; open: boolean } | null = null;
  private readonly counters: KmsgFollowerStats = { records: 0, kills: 0, gaps: 0, lostRecords: 0 };

  constructor(options: KmsgFollowerOptions = {}) {
    this.path = options.path ?? '/dev/kmsg';
    this.procRoot = options.procRoot ?? '/proc';
    this.fromStart = options.fromStart ?? false;
    this.warn = options.warn ?? (() => {});
    this.now = options.now ?? Date.now;
    this.io = options.io ?? nodeIo;
    this.buffer = Buffer.alloc(Math.min(MAX_BUFFER, Math.max(MIN_BUFFER, options.readBufferBytes ?? 16384)));
  }

  /** False once the log proved unreadable (after a warning), or after close(). */
  get available(): boolean {
    return this.state === 'new' || this.state === 'open';
  }

  get stats(): KmsgFollowerStats {
    return { ...this.counters };
  }

  open(): void {
    if (this.state !== 'new') return;
    // Boot time on the wall clock, to place kernel timestamps (microseconds since boot).
    const uptimeMs = readUptimeMs(this.procRoot);
    const wallAtUptime = this.now();
    this.bootEpochMs = uptimeMs === null ? null : wallAtUptime - uptimeMs;
    try {
      this.fd = this.io.openSync(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
      this.isFile = this.io.fstatSync(this.fd).isFile();
    } catch (err) {
      this.becomeInert(`cannot open ${this.path} (${errorText(err)})`);
      return;
    }
    this.state = 'open';
    this.lastDrainMs = this.now();
    if (this.fromStart) {
      // History is older than the open: nothing to clamp it to on the first poll.
      this.lastDrainMs = -Infinity;
      return;
    }
    if (this.isFile) {
      this.fileOffset = this.io.fstatSync(this.fd).size;
      return;
    }
    this.drainDevice();
  }

  /** Reads what the kernel logged since the last poll; returns the OOM kills it completed. */
  poll(): KmsgOomKill[] {
    if (this.state === 'new') this.open();
    if (this.state !== 'open') return [];
    this.pollCount++;
    const kills: KmsgOomKill[] = [];
    const pollStartMs = this.now();
    if (this.isFile) this.readFile(kills);
    else this.readDevice(kills, pollStartMs);
    // A summary read in an earlier poll would have had its Killed line by now.
    if (this.pending && this.pending.poll < this.pollCount) {
      kills.push(this.summaryAlone(this.pending));
      this.pending = null;
    }
    this.lastDrainMs = this.now();
    this.counters.kills += kills.length;
    return kills;
  }

  close(): void {
    if (this.fd !== null) {
      try {
        this.io.closeSync(this.fd);
      } catch {
        // nothing useful to do
      }
    }
    this.fd = null;
    this.state = 'closed';
  }

  private becomeInert(reason: string): void {
    this.warn(
      `kmsg: ${reason}; OOM kills will be seen only through memcg counters, without the victim's pid and name ` +
        `(the agent needs /dev/kmsg mounted read-only and CAP_SYSLOG when kernel.dmesg_restrict=1)`,
    );
    if (this.fd !== null) {
      try {
        this.io.closeSync(this.fd);
      } catch {
        // already unusable
      }
    }
    this.fd = null;
    this.state = 'inert';
  }

  /** Reads the ring buffer to its end, keeping only the sequence number, so poll() sees only new records. */
  private drainDevice(): void {
    for (let i = 0; i < MAX_RECORDS_PER_POLL; i++) {
      const n = this.readRecord();
      if (n === 'again' || n === 'dead') return;
      if (n === 'gap') continue;
      const record = parseKmsgRecord(this.buffer.toString('utf8', 0, n));
      if (record) this.lastSeq = record.seq;
    }
  }

  private readDevice(kills: KmsgOomKill[], pollStartMs: number): void {
    for (let i = 0; i < MAX_RECORDS_PER_POLL; i++) {
      const n = this.readRecord();
      if (n === 'again' || n === 'dead') return;
      if (n === 'gap') continue;
      const record = parseKmsgRecord(this.buffer.toString('utf8', 0, n));
      if (record) this.handleRecord(record, kills, { min: this.lastDrainMs, max: Math.max(pollStartMs, this.now()) });
    }
  }

  /** One read() of one record: its length, or what stopped the read. */
  private readRecord(): number | 'again' | 'gap' | 'dead' {
    for (;;) {
      try {
        const n = this.io.readSync(this.fd!, this.buffer, 0, this.buffer.length, null);
        return n === 0 ? 'again' : n;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return 'again';
        if (code === 'EINTR') continue;
        if (code === 'EPIPE') {
          this.noteGap('records were overwritten before we read them');
          return 'gap';
        }
        if (code === 'EINVAL' && this.buffer.length < MAX_BUFFER) {
          // The record is larger than our buffer (older kernels keep it for the next read).
          this.buffer = Buffer.alloc(Math.min(MAX_BUFFER, this.buffer.length * 2));
          continue;
        }
        this.becomeInert(`reading ${this.path} failed (${errorText(err)})`);
        return 'dead';
      }
    }
  }

  private noteGap(why: string): void {
    this.counters.gaps++;
    this.fragment = null;
    const nowMs = this.now();
    if (nowMs - this.lastGapWarnMs >= GAP_WARN_INTERVAL_MS) {
      this.lastGapWarnMs = nowMs;
      this.warn(`kmsg: gap in ${this.path}: ${why} (gaps so far: ${this.counters.gaps}); an OOM kill in the gap is seen only by the memcg counters`);
    }
  }

  private readFile(kills: KmsgOomKill[]): void {
    let size: number;
    try {
      size = this.io.fstatSync(this.fd!).size;
    } catch (err) {
      this.becomeInert(`cannot stat ${this.path} (${errorText(err)})`);
      return;
    }
    if (size < this.fileOffset) {
      this.noteGap('the file was truncated');
      this.fileOffset = 0;
      this.lastSeq = null;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < MAX_FILE_BYTES_PER_POLL) {
      let n: number;
      try {
        n = this.io.readSync(this.fd!, this.buffer, 0, this.buffer.length, this.fileOffset + total);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EINTR') break;
        this.becomeInert(`reading ${this.path} failed (${errorText(err)})`);
        return;
      }
      if (n === 0) break; // end of file: like EAGAIN on the device
      chunks.push(Buffer.from(this.buffer.subarray(0, n)));
      total += n;
    }
    if (total === 0) return;
    const data = Buffer.concat(chunks, total);
    // Only whole lines: a record being appended right now is read on the next poll.
    const end = data.lastIndexOf(0x0a);
    if (end < 0) return;
    this.fileOffset += end + 1;
    const lines = data.toString('utf8', 0, end).split('\n');
    let recordText: string | null = null;
    for (const line of lines) {
      if (line.startsWith(' ') && recordText !== null) {
        recordText += '\n' + line;
        continue;
      }
      if (recordText !== null) this.handleText(recordText, kills);
      recordText = line.startsWith(' ') ? null : line;
    }
    if (recordText !== null) this.handleText(recordText, kills);
  }

  private handleText(text: string, kills: KmsgOomKill[]): void {
    const record = parseKmsgRecord(text);
    if (record) this.handleRecord(record, kills, null);
  }

  private handleRecord(record: KmsgRecord, kills: KmsgOomKill[], clamp: { min: number; max: number } | null): void {
    this.counters.records++;
    if (this.lastSeq !== null && record.seq > this.lastSeq + 1) {
      const lost = record.seq - this.lastSeq - 1;
      this.counters.lostRecords += lost;
    }
    this.lastSeq = record.seq;

    const line = this.parseWithFragments(record);
    if (!line) return;
    const atMs = this.toEpochMs(record.monotonicUsec, clamp);
    switch (line.kind) {
      case 'oom-kill':
        if (this.pending) kills.push(this.summaryAlone(this.pending));
        this.pending = { line, record, atMs, poll: this.pollCount };
        return;
      case 'killed-process': {
        const pending = this.pending;
        if (pending && (pending.line.pid === line.pid || record.seq === pending.record.seq + 1)) {
          this.pending = null;
          kills.push(this.merge(pending.line, line, record, atMs));
        } else {
          kills.push(this.killedAlone(line, record, atMs));
        }
        return;
      }
      case 'task-in':
        this.taskIn = { value: line, usec: record.monotonicUsec };
        return;
      case 'oom-group':
        this.group = { value: line, usec: record.monotonicUsec };
        return;
      case 'kill-process':
        this.selected = { value: line, usec: record.monotonicUsec };
        return;
    }
  }

  /**
   * Kernels that stored pr_cont() pieces as separate records mark them ('c' opens a line, '+'
   * continues it; newer kernels may leave an unmergeable piece flagged 'c'). A record that parses
   * on its own is a whole line; one that does not is joined to the unparsed pieces before it.
   */
  private parseWithFragments(record: KmsgRecord): OomKillLine | null {
    const alone = parseOomKill(record.message);
    if (alone) {
      this.fragment = null;
      return alone;
    }
    const opensLine = record.flags.includes('c') || record.flags.includes('+');
    const continues = record.flags.includes('+') || (this.fragment?.open ?? false);
    if (continues && this.fragment && this.fragment.message.length < MAX_FRAGMENT_CHARS) {
      const joined = this.fragment.message + record.message;
      const line = parseOomKill(joined);
      this.fragment = line ? null : { message: joined, open: opensLine };
      return line;
    }
    this.fragment = { message: record.message, open: opensLine };
    return null;
  }

  private merge(summary: OomSummaryLine, killed: OomKilledLine, record: KmsgRecord, atMs: number): KmsgOomKill {
    return {
      pid: killed.pid,
      comm: killed.comm,
      uid: killed.uid ?? summary.uid,
      scope: killed.scope !== 'unknown' ? killed.scope : summary.scope,
      constraint: summary.constraint,
      memcg: summary.oomMemcg,
      taskMemcg: summary.taskMemcg,
      totalVmBytes: killed.totalVmBytes,
      anonRssBytes: killed.anonRssBytes,
      fileRssBytes: killed.fileRssBytes,
      shmemRssBytes: killed.shmemRssBytes,
      seq: record.seq,
      monotonicUsec: record.monotonicUsec,
      atMs,
      lines: ['oom-kill', 'killed-process'],
    };
  }

  private killedAlone(killed: OomKilledLine, record: KmsgRecord, atMs: number): KmsgOomKill {
    const near = <T>(c: Context<T> | null): T | null =>
      c !== null && record.monotonicUsec >= c.usec && record.monotonicUsec - c.usec <= CONTEXT_USEC ? c.value : null;
    const taskIn = near(this.taskIn);
    const group = near(this.group);
    const selected = near(this.selected);
    // "Task in" describes one kill; an oom.group line covers every Killed line of its burst.
    if (taskIn) this.taskIn = null;
    let scope = killed.scope;
    if (scope === 'unknown') scope = selected?.scope ?? (taskIn || group ? 'memcg' : 'unknown');
    return {
      pid: killed.pid,
      comm: killed.comm,
      uid: killed.uid,
      scope,
      constraint: null,
      memcg: taskIn?.oomMemcg ?? group?.memcg ?? null,
      taskMemcg: taskIn?.taskMemcg ?? null,
      totalVmBytes: killed.totalVmBytes,
      anonRssBytes: killed.anonRssBytes,
      fileRssBytes: killed.fileRssBytes,
      shmemRssBytes: killed.shmemRssBytes,
      seq: record.seq,
      monotonicUsec: record.monotonicUsec,
      atMs,
      lines: ['killed-process'],
    };
  }

  private summaryAlone(p: PendingSummary): KmsgOomKill {
    return {
      pid: p.line.pid,
      comm: p.line.comm,
      uid: p.line.uid,
      scope: p.line.scope,
      constraint: p.line.constraint,
      memcg: p.line.oomMemcg,
      taskMemcg: p.line.taskMemcg,
      totalVmBytes: null,
      anonRssBytes: null,
      fileRssBytes: null,
      shmemRssBytes: null,
      seq: p.record.seq,
      monotonicUsec: p.record.monotonicUsec,
      atMs: p.atMs,
      lines: ['oom-kill'],
    };
  }

  private toEpochMs(usec: number, clamp: { min: number; max: number } | null): number {
    const nowMs = this.now();
    const estimate = this.bootEpochMs === null ? nowMs : this.bootEpochMs + usec / 1000;
    if (clamp === null) return Math.round(estimate);
    return Math.round(Math.min(clamp.max, Math.max(clamp.min, estimate)));
  }
}

function readUptimeMs(procRoot: string): number | null {
  try {
    const seconds = Number(readFileSync(join(procRoot, 'uptime'), 'utf8').split(/\s+/)[0]);
    return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : null;
  } catch {
    return null;
  }
}

function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ? `${e.code}: ${e.message}` : String(err);
}
