// Parsers for the few procfs files the process table reads. Each takes the bytes it was given
// (a Buffer and a length, or a string) and returns values, or a ProcParseError it does not
// throw: a garbage or truncated file is an ordinary outcome when the source is a fixture tree,
// a future kernel or a process caught mid-exit, and the caller decides what to skip.
//
// The hot ones (statm, stat, status) scan bytes instead of splitting strings: the table calls
// them for hundreds of processes per pass, and a split allocates an array plus one string per
// field where a byte scan allocates nothing.

export type ProcFileKind = 'stat' | 'statm' | 'status' | 'cmdline' | 'cgroup' | 'proc-stat';

/** A file that does not have the shape the kernel writes. Returned, never thrown. */
export class ProcParseError extends Error {
  override readonly name = 'ProcParseError';
  constructor(
    readonly file: ProcFileKind,
    readonly reason: string,
  ) {
    super(`unparseable ${file}: ${reason}`);
  }
}

/** Fields of `/proc/<pid>/stat` the table uses. */
export interface ProcStat {
  pid: number;
  /** Task name as the kernel holds it (up to 15 bytes), may contain spaces and parentheses. */
  comm: string;
  state: string;
  ppid: number;
  /** Field 9 has PF_KTHREAD: a kernel thread, which has no mm, argv, exe or cgroup to follow. */
  kernelThread: boolean;
  /** Field 22: start time in clock ticks (USER_HZ) since boot. */
  startTimeTicks: number;
  /** Field 24: resident set in pages. */
  rssPages: number;
}

/** The leading fields of `/proc/<pid>/statm`, in pages. */
export interface StatmValues {
  sizePages: number;
  residentPages: number;
  /** File-backed plus shmem resident pages (RssFile + RssShmem). */
  sharedPages: number;
  /** Size of the executable's text mapping; only exec (or prctl PR_SET_MM) changes it. */
  textPages: number;
}

/** Fields of `/proc/<pid>/status` the table uses. Memory figures are bytes. */
export interface ProcStatus {
  /** `Name:` as printed (the kernel escapes newlines and backslashes in it). */
  name: string;
  state: string;
  ppid: number;
  /** Real uid (first of the four `Uid:` values). */
  uid: number;
  /** `NSpid:` levels, outermost first; null on kernels older than 4.1 that do not print it. */
  nsPids: number[] | null;
  /** False for kernel threads and zombies, which have no mm and print no memory lines. */
  hasMemory: boolean;
  rssAnonBytes: number;
  rssFileBytes: number;
  rssShmemBytes: number;
  swapBytes: number;
}

export interface ParsedCmdline {
  argv: string[];
  /** argv joined with single spaces. */
  cmdline: string;
  /** The read filled the bound, so the last argument may be cut short. */
  truncated: boolean;
}

const NL = 10;
const SPACE = 32;
const TAB = 9;
const ZERO = 48;
const NINE = 57;
const COLON = 58;

/** Largest count we accept; beyond it a "number" is garbage, not a size (2^53 bytes is 8 PiB). */
const maxSafe = Number.MAX_SAFE_INTEGER;

function asBytes(input: Buffer | string, length?: number): { buf: Buffer; len: number } {
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const len = length === undefined ? buf.length : Math.max(0, Math.min(length, buf.length));
  return { buf, len };
}

/**
 * Unsigned decimal in buf[start, end); -1 when empty, not all digits, or beyond 2^53.
 * Exported for the table's tests; callers normally use the file parsers.
 */
export function parseUint(buf: Buffer, start: number, end: number): number {
  if (end <= start) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c < ZERO || c > NINE) return -1;
    value = value * 10 + (c - ZERO);
  }
  return value > maxSafe ? -1 : value;
}

/**
 * `/proc/<pid>/statm` into `out` without allocating. Returns undefined on success.
 * The kernel ends the line with a newline; a read without one was cut short.
 */
export function parseStatmInto(buf: Buffer, len: number, out: StatmValues): ProcParseError | undefined {
  if (len === 0) return new ProcParseError('statm', 'empty');
  if (buf[len - 1] !== NL) return new ProcParseError('statm', 'no trailing newline (truncated)');
  let field = 0;
  let start = 0;
  for (let i = 0; i < len && field < 4; i++) {
    const c = buf[i]!;
    if (c !== SPACE && c !== NL) continue;
    const v = parseUint(buf, start, i);
    if (v < 0) return new ProcParseError('statm', `field ${field + 1} is not a count`);
    if (field === 0) out.sizePages = v;
    else if (field === 1) out.residentPages = v;
    else if (field === 2) out.sharedPages = v;
    else out.textPages = v;
    field++;
    start = i + 1;
    if (c === NL) break;
  }
  if (field < 4) return new ProcParseError('statm', `only ${field} of 4 fields`);
  return undefined;
}

export function parseStatm(input: Buffer | string, length?: number): StatmValues | ProcParseError {
  const { buf, len } = asBytes(input, length);
  const out: StatmValues = { sizePages: 0, residentPages: 0, sharedPages: 0, textPages: 0 };
  return parseStatmInto(buf, len, out) ?? out;
}

/**
 * `/proc/<pid>/stat`. The comm field is bracketed but may itself hold spaces and `) (`, so it
 * runs from the first `(` to the LAST `)`; fields after it are counted from there.
 */
export function parseStat(input: Buffer | string, length?: number): ProcStat | ProcParseError {
  const { buf, len } = asBytes(input, length);
  if (len === 0) return new ProcParseError('stat', 'empty');
  if (buf[len - 1] !== NL) return new ProcParseError('stat', 'no trailing newline (truncated)');
  const open = buf.indexOf(0x28 /* ( */);
  const close = buf.lastIndexOf(0x29 /* ) */, len - 1);
  if (open < 1 || close < open || open >= len) return new ProcParseError('stat', 'no (comm) field');
  const pid = parseUint(buf, 0, open - 1);
  if (pid < 0 || buf[open - 1] !== SPACE) return new ProcParseError('stat', 'pid is not a number');
  const comm = buf.toString('utf8', open + 1, close);
  // After ") " come fields 3.. separated by single spaces: state(3) ppid(4) ... flags(9) ... starttime(22) ... rss(24).
  let field = 3;
  let start = close + 2;
  if (buf[close + 1] !== SPACE) return new ProcParseError('stat', 'no space after comm');
  let state = '';
  let ppid = -1;
  let flags = -1;
  let startTimeTicks = -1;
  let rssPages = -1;
  for (let i = start; i < len; i++) {
    const c = buf[i]!;
    if (c !== SPACE && c !== NL) continue;
    if (field === 3) {
      if (i - start !== 1) return new ProcParseError('stat', 'state is not one letter');
      state = String.fromCharCode(buf[start]!);
    } else if (field === 4) {
      ppid = parseUint(buf, start, i);
      if (ppid < 0) return new ProcParseError('stat', 'ppid is not a number');
    } else if (field === 9) {
      flags = parseUint(buf, start, i);
      if (flags < 0) return new ProcParseError('stat', 'flags is not a number');
    } else if (field === 22) {
      startTimeTicks = parseUint(buf, start, i);
      if (startTimeTicks < 0) return new ProcParseError('stat', 'starttime is not a number');
    } else if (field === 24) {
      rssPages = parseUint(buf, start, i);
      if (rssPages < 0) return new ProcParseError('stat', 'rss is not a number');
      break;
    }
    field++;
    start = i + 1;
    if (c === NL) break;
  }
  if (rssPages < 0) return new ProcParseError('stat', `truncated after field ${field - 1}`);
  // PF_KTHREAD is bit 21; flags fit in 32 bits, so the bitwise test is exact.
  const kernelThread = (flags & 0x00200000) !== 0;
  return { pid, comm, state, ppid, kernelThread, startTimeTicks, rssPages };
}

// Keys of /proc/<pid>/status we read, as bytes for comparing in place.
const keyName = Buffer.from('Name');
const keyState = Buffer.from('State');
const keyPPid = Buffer.from('PPid');
const keyUid = Buffer.from('Uid');
const keyNSpid = Buffer.from('NSpid');
const keyVmRSS = Buffer.from('VmRSS');
const keyRssAnon = Buffer.from('RssAnon');
const keyRssFile = Buffer.from('RssFile');
const keyRssShmem = Buffer.from('RssShmem');
const keyVmSwap = Buffer.from('VmSwap');
const keyThreads = Buffer.from('Threads');

function keyIs(buf: Buffer, start: number, keyLen: number, key: Buffer): boolean {
  if (keyLen !== key.length) return false;
  for (let i = 0; i < keyLen; i++) if (buf[start + i] !== key[i]) return false;
  return true;
}

function skipBlanks(buf: Buffer, i: number, end: number): number {
  while (i < end && (buf[i] === TAB || buf[i] === SPACE)) i++;
  return i;
}

/** First number of a status value, `-1` if there is none. */
function firstNumber(buf: Buffer, start: number, end: number): number {
  const s = skipBlanks(buf, start, end);
  let e = s;
  while (e < end && buf[e]! >= ZERO && buf[e]! <= NINE) e++;
  if (e === s || (e < end && buf[e] !== TAB && buf[e] !== SPACE)) return -1;
  return parseUint(buf, s, e);
}

/** A `kB` value of status in bytes; -1 when it does not start with a number. */
function kbValue(buf: Buffer, start: number, end: number): number {
  const kb = firstNumber(buf, start, end);
  if (kb < 0) return -1;
  return kb * 1024;
}

function numberList(buf: Buffer, start: number, end: number): number[] | null {
  const out: number[] = [];
  let i = skipBlanks(buf, start, end);
  while (i < end) {
    let e = i;
    while (e < end && buf[e] !== TAB && buf[e] !== SPACE) e++;
    const v = parseUint(buf, i, e);
    if (v < 0) return null;
    out.push(v);
    i = skipBlanks(buf, e, end);
  }
  return out.length > 0 ? out : null;
}

/**
 * `/proc/<pid>/status`. A last line without a newline was cut by the read and is ignored. The
 * kernel prints `Threads:` after the memory block for every task, kernel threads and zombies
 * included, so a file without it was cut short. Name, State, PPid and Uid are required; memory
 * lines only when the process has an mm (a `VmRSS:` line): kernel threads and zombies print
 * none and get zeros.
 */
export function parseStatus(input: Buffer | string, length?: number): ProcStatus | ProcParseError {
  const { buf, len } = asBytes(input, length);
  if (len === 0) return new ProcParseError('status', 'empty');
  let name: string | null = null;
  let state: string | null = null;
  let ppid = -1;
  let uid = -1;
  let nsPids: number[] | null = null;
  let hasMemory = false;
  let rssAnon = -1;
  let rssFile = -1;
  let rssShmem = -1;
  let swap = -1;
  let complete = false;
  let lineStart = 0;
  while (lineStart < len) {
    const lineEnd = buf.indexOf(NL, lineStart);
    if (lineEnd < 0 || lineEnd >= len) break; // cut short: the partial last line cannot be trusted
    let colon = lineStart;
    while (colon < lineEnd && buf[colon] !== COLON) colon++;
    if (colon < lineEnd) {
      const keyLen = colon - lineStart;
      const v = colon + 1;
      // Dispatch on the first letter, then compare the whole key.
      switch (buf[lineStart]) {
        case 0x4e: // N
          if (keyIs(buf, lineStart, keyLen, keyName)) name = buf.toString('utf8', skipBlanks(buf, v, lineEnd), lineEnd);
          else if (keyIs(buf, lineStart, keyLen, keyNSpid)) {
            nsPids = numberList(buf, v, lineEnd);
            if (!nsPids) return new ProcParseError('status', 'NSpid is not a list of numbers');
          }
          break;
        case 0x53: // S
          if (keyIs(buf, lineStart, keyLen, keyState)) {
            const s = skipBlanks(buf, v, lineEnd);
            if (s >= lineEnd) return new ProcParseError('status', 'State is empty');
            state = String.fromCharCode(buf[s]!);
          }
          break;
        case 0x50: // P
          if (keyIs(buf, lineStart, keyLen, keyPPid)) {
            ppid = firstNumber(buf, v, lineEnd);
            if (ppid < 0) return new ProcParseError('status', 'PPid is not a number');
          }
          break;
        case 0x55: // U
          if (keyIs(buf, lineStart, keyLen, keyUid)) {
            uid = firstNumber(buf, v, lineEnd);
            if (uid < 0) return new ProcParseError('status', 'Uid is not a number');
          }
          break;
        case 0x52: // R
          if (keyIs(buf, lineStart, keyLen, keyRssAnon)) {
            rssAnon = kbValue(buf, v, lineEnd);
            if (rssAnon < 0) return new ProcParseError('status', 'RssAnon is not a number');
          } else if (keyIs(buf, lineStart, keyLen, keyRssFile)) {
            rssFile = kbValue(buf, v, lineEnd);
            if (rssFile < 0) return new ProcParseError('status', 'RssFile is not a number');
          } else if (keyIs(buf, lineStart, keyLen, keyRssShmem)) {
            rssShmem = kbValue(buf, v, lineEnd);
            if (rssShmem < 0) return new ProcParseError('status', 'RssShmem is not a number');
          }
          break;
        case 0x54: // T
          if (keyIs(buf, lineStart, keyLen, keyThreads)) complete = true;
          break;
        case 0x56: // V
          if (keyIs(buf, lineStart, keyLen, keyVmRSS)) hasMemory = true;
          else if (keyIs(buf, lineStart, keyLen, keyVmSwap)) {
            swap = kbValue(buf, v, lineEnd);
            if (swap < 0) return new ProcParseError('status', 'VmSwap is not a number');
          }
          break;
      }
      // Threads follows the memory block in every task's status: past it there is nothing we need.
      if (complete) break;
    }
    lineStart = lineEnd + 1;
  }
  if (!complete) return new ProcParseError('status', 'ends before the Threads line (truncated)');
  if (name === null) return new ProcParseError('status', 'no Name line');
  if (state === null) return new ProcParseError('status', 'no State line');
  if (ppid < 0) return new ProcParseError('status', 'no PPid line');
  if (uid < 0) return new ProcParseError('status', 'no Uid line');
  if (hasMemory) {
    if (rssAnon < 0 || rssFile < 0 || rssShmem < 0 || swap < 0) {
      return new ProcParseError('status', 'memory lines missing after VmRSS (truncated)');
    }
  }
  return {
    name,
    state,
    ppid,
    uid,
    nsPids,
    hasMemory,
    rssAnonBytes: Math.max(0, rssAnon),
    rssFileBytes: Math.max(0, rssFile),
    rssShmemBytes: Math.max(0, rssShmem),
    swapBytes: Math.max(0, swap),
  };
}

/**
 * `/proc/<pid>/cmdline`: NUL-separated argv. `maxBytes` is the bound the caller read with; a
 * read that filled it is marked truncated and a UTF-8 sequence cut at the end is dropped.
 * Trailing NULs are padding (programs that rewrite their title clear the rest of the area)
 * and produce no empty arguments; empty arguments in the middle are kept.
 */
export function parseCmdline(input: Buffer | string, length?: number, maxBytes?: number): ParsedCmdline {
  const { buf, len: rawLen } = asBytes(input, length);
  let len = maxBytes !== undefined ? Math.min(rawLen, maxBytes) : rawLen;
  const truncated = maxBytes !== undefined && rawLen >= maxBytes;
  if (truncated) len = completeUtf8Length(buf, len);
  while (len > 0 && buf[len - 1] === 0) len--;
  if (len === 0) return { argv: [], cmdline: '', truncated };
  const argv: string[] = [];
  let start = 0;
  for (let i = 0; i <= len; i++) {
    if (i === len || buf[i] === 0) {
      argv.push(buf.toString('utf8', start, i));
      start = i + 1;
    }
  }
  return { argv, cmdline: argv.join(' '), truncated };
}

/** Length of buf[0, len) without a multi-byte UTF-8 sequence cut at its end. */
function completeUtf8Length(buf: Buffer, len: number): number {
  // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
  let i = len - 1;
  let continuation = 0;
  while (i >= 0 && continuation < 3 && (buf[i]! & 0xc0) === 0x80) {
    i--;
    continuation++;
  }
  if (i < 0) return len;
  const lead = buf[i]!;
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return need > continuation + 1 ? i : len;
}

/**
 * The memory cgroup path from `/proc/<pid>/cgroup`: the v1 line whose controller list names
 * `memory`, else the v2 `0::` line. Lines are `id:controllers:path`; the path may contain `:`.
 * Null when neither line is there.
 */
export function parseMemoryCgroupPath(input: Buffer | string, length?: number): string | null {
  const { buf, len } = asBytes(input, length);
  const text = buf.toString('utf8', 0, len);
  let unified: string | null = null;
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    if (first < 0) continue;
    const second = line.indexOf(':', first + 1);
    if (second < 0) continue;
    const id = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (path === '') continue;
    if (controllers !== '' && controllers.split(',').includes('memory')) return path;
    if (id === '0' && controllers === '') unified = path;
  }
  return unified;
}

/** `btime` (boot time, seconds since the epoch) from `/proc/stat`. */
export function parseBootTimeSec(input: Buffer | string, length?: number): number | ProcParseError {
  const { buf, len } = asBytes(input, length);
  const text = buf.toString('latin1', 0, len);
  const m = /^btime[ \t]+(\d+)[ \t]*$/m.exec(text);
  if (!m) return new ProcParseError('proc-stat', 'no btime line');
  const sec = Number(m[1]);
  if (!Number.isSafeInteger(sec) || sec <= 0) return new ProcParseError('proc-stat', 'btime is not a positive number');
  // The last line without a newline may be cut mid-number.
  const end = m.index + m[0].length;
  if (end >= len || text.charCodeAt(end) !== NL) return new ProcParseError('proc-stat', 'btime line cut short (truncated)');
  return sec;
}
