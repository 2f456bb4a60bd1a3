// Evidence about a new process, taken the moment it is first seen: temp scripts vanish, so
// what is not read now is lost. Every read tolerates the process exiting under us and returns
// what it got, with a note. Nothing read here is ever executed: script bytes are stored as
// text or base64 and hashed.

import { promises as fsp } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { posix } from 'node:path';
import type { ProcessSample } from '../host/types.js';
import {
  DEFAULT_MAX_HASH_BYTES,
  DEFAULT_MAX_READ_BYTES,
  readFileInRoot,
  readProcFileLink,
  type Refusal,
  type RefusalReason,
} from '../host/container-fs.js';
import { searchProvenance, type Provenance, type ProvenanceLimits, type ProvenanceSearch } from './provenance.js';
import {
  DEFAULT_SPAWN_RULE_CONFIG,
  evaluateSpawnRules,
  isSuspicious,
  parseInvocation,
  type Invocation,
  type ParentFacts,
  type SpawnFacts,
  type SpawnRuleConfig,
  type SpawnRuleMatch,
} from './spawn-rules.js';

export interface ParentLink {
  pid: number;
  nsPid: number;
  comm: string;
  cmdline: string;
  exe: string | null;
  uid: number;
  startTimeMs: number;
}

export interface ScriptContent {
  /** 'utf8': `data` is the text itself. 'base64': the bytes were not valid UTF-8. */
  encoding: 'utf8' | 'base64';
  data: string;
  /** Bytes of the file held in `data` (a truncated tail cut mid-character is dropped). */
  storedBytes: number;
  truncated: boolean;
}

export interface ScriptEvidence {
  /** The operand as written in argv. */
  argPath: string;
  /** Absolute container-view path; null when relative and the cwd is unknown. */
  path: string | null;
  /** After symlinks were resolved inside the root. */
  resolvedPath: string | null;
  state: 'present' | 'deleted' | 'refused' | 'unknown';
  /** Where the bytes came from: the path in the root, or an fd still open on the deleted script. */
  readFrom: 'path' | 'open-fd' | null;
  deletedOpenFd: number | null;
  sizeBytes: number | null;
  mtimeMs: number | null;
  ctimeMs: number | null;
  mode: number | null;
  uid: number | null;
  /** sha256 of the whole file; null when it could not be read to the end (see maxHashBytes). */
  sha256: string | null;
  content: ScriptContent | null;
}

export interface ExeEvidence {
  path: string;
  /** sha256 of the running executable's bytes (through /proc/<pid>/exe, so a deleted or memfd exe still hashes). */
  sha256: string | null;
  sizeBytes: number | null;
}

export interface RefusedPath {
  /** What we tried to read. */
  what: 'script' | 'exe' | 'cwd' | 'provenance' | 'process';
  path: string;
  reason: RefusalReason;
  detail: string;
}

export interface ProvenanceEvidence extends Provenance {
  /** e.g. "/tmp/tmpk3j1.py is the base64 decoding of /app/resources.dat". */
  statement: string;
}

export interface ProvenanceSearchSummary {
  /** Whose root was searched. */
  rootPid: number;
  dirs: string[];
  filesSeen: number;
  filesRead: number;
  dirsSeen: number;
  stoppedBy: ProvenanceSearch['stoppedBy'];
}

export interface SpawnEvidence {
  collectedAtMs: number;
  pid: number;
  ppid: number;
  nsPid: number;
  comm: string;
  argv: string[];
  cmdline: string;
  exe: string | null;
  uid: number;
  startTimeMs: number;
  cgroupPath: string | null;
  /** Container-view cwd (readlink /proc/<pid>/cwd), without a ` (deleted)` suffix. */
  cwd: string | null;
  invocation: Invocation;
  /** Parent first, up to the container's init (nsPid 1) or the last process in the same cgroup. */
  parentChain: ParentLink[];
  script: ScriptEvidence | null;
  exeFile: ExeEvidence | null;
  refused: RefusedPath[];
  provenance: ProvenanceEvidence | null;
  provenanceSearch: ProvenanceSearchSummary | null;
  notes: string[];
  /** False when the process exited or its pid was reused while we read. */
  complete: boolean;
}

export interface SpawnEvidenceOptions {
  /** Default '/proc' ('/host/proc' in the DaemonSet). */
  procRoot?: string;
  /** Other processes by host pid, for the parent chain. */
  lookup: (pid: number) => ProcessSample | undefined;
  /** Script bytes kept in the evidence. Default 256 KiB. */
  maxScriptBytes?: number;
  /** The script (and a suspicious exe) is hashed to EOF up to this many bytes. Default 64 MiB. */
  maxHashBytes?: number;
  /** Default 32 links. */
  maxParentChain?: number;
  /** Open fds looked at when searching for a deleted script. Default 1024. */
  maxFdScan?: number;
  /** false to skip the provenance search; limits to bound it. Default on with provenance.ts defaults. */
  provenance?: boolean | ProvenanceLimits;
  /** Rule settings (judgeSpawn); also the world-writable dirs that make an exe worth hashing. */
  rules?: Partial<SpawnRuleConfig>;
  now?: () => number;
  /** Our own fd directory, see container-fs. */
  selfFdDir?: string;
  /**
   * Remembers searches by (root, dirs, script sha256): a server that runs the same decoded
   * script per request is searched once per TTL, not once per request.
   */
  provenanceCache?: ProvenanceCache;
  warn?: (msg: string) => void;
}

export interface SpawnJudgement {
  rules: SpawnRuleMatch[];
  evidence: SpawnEvidence;
}

const MAX_CMDLINE_BYTES = 128 * 1024;
const ARGV_RETRIES = 5;
const ARGV_RETRY_MS = 5;

/** USER_HZ is 100 on every Linux architecture Node runs on; /proc reports start times in it. */
const TICKS_PER_SECOND = 100;
/** btime has whole-second resolution; start times computed from it differ by up to a second. */
const START_TIME_TOLERANCE_MS = 2500;

/** One provenance search's outcome, as the cache keeps it. */
export interface CachedProvenance {
  atMs: number;
  match: Provenance | null;
  summary: ProvenanceSearchSummary;
}

/**
 * Bounded memo of provenance searches; entries expire after ttlMs. A search still running is
 * shared too: a server spawning one collector per request starts the next before the first
 * search over its tree has finished, and one walk of that tree is enough.
 */
export class ProvenanceCache {
  private readonly entries = new Map<string, CachedProvenance>();
  private readonly inFlight = new Map<string, Promise<CachedProvenance>>();
  constructor(
    readonly maxEntries = 256,
    readonly ttlMs = 60_000,
  ) {}

  get(key: string, nowMs: number): CachedProvenance | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (nowMs - e.atMs > this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  set(key: string, nowMs: number, match: Provenance | null, summary: ProvenanceSearchSummary): void {
    this.entries.delete(key);
    this.entries.set(key, { atMs: nowMs, match, summary });
    // Map iterates in insertion order: the first key is the oldest.
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /** The search for key that is running now, if one is. */
  running(key: string): Promise<CachedProvenance> | undefined {
    return this.inFlight.get(key);
  }

  /** Shares search with later askers until it settles; its result is then an ordinary entry. */
  track(key: string, search: Promise<CachedProvenance>): void {
    this.inFlight.set(key, search);
    const done = (): void => {
      if (this.inFlight.get(key) === search) this.inFlight.delete(key);
    };
    search.then(done, done);
  }

  get size(): number {
    return this.entries.size;
  }
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function stripDeleted(p: string): { path: string; deleted: boolean } {
  return p.endsWith(' (deleted)') ? { path: p.slice(0, -' (deleted)'.length), deleted: true } : { path: p, deleted: false };
}

/** Raw starttime (field 22 of /proc/<pid>/stat) in ticks; null when the process is gone or the file is garbage. */
async function readStartTicks(procRoot: string, pid: number): Promise<string | null> {
  try {
    const text = await fsp.readFile(`${procRoot}/${pid}/stat`, 'latin1');
    // comm may hold spaces and parentheses: fields restart after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ticks = rest[19];
    return ticks !== undefined && /^\d+$/.test(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

/**
 * argv from /proc/<pid>/cmdline, bounded. Between the exe switch and the new stack's setup an
 * exec'ing process shows an empty cmdline for a moment; a sample taken then has no argv.
 */
export async function readArgv(procRoot: string, pid: number, maxBytes = MAX_CMDLINE_BYTES): Promise<string[] | null> {
  let handle: Awaited<ReturnType<typeof fsp.open>> | undefined;
  try {
    handle = await fsp.open(`${procRoot}/${pid}/cmdline`, 'r');
    const buf = Buffer.alloc(maxBytes);
    let got = 0;
    while (got < maxBytes) {
      const { bytesRead } = await handle.read(buf, got, maxBytes - got, null);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got === 0) return [];
    const text = buf.subarray(0, got).toString('utf8');
    return (text.endsWith('\0') ? text.slice(0, -1) : text).split('\0');
  } catch {
    return null;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

async function readBootTimeMs(procRoot: string): Promise<number | null> {
  try {
    const text = await fsp.readFile(`${procRoot}/stat`, 'latin1');
    const m = /^btime (\d+)$/m.exec(text);
    return m ? Number(m[1]) * 1000 : null;
  } catch {
    return null;
  }
}

async function readLink(path: string): Promise<{ ok: true; target: string } | { ok: false; code: string | undefined }> {
  try {
    return { ok: true, target: await fsp.readlink(path) };
  } catch (err) {
    return { ok: false, code: errCode(err) };
  }
}

/** The content as text when it is UTF-8, else base64. A truncation cut inside a character does not make it binary. */
export function contentOf(bytes: Buffer, truncated: boolean): ScriptContent {
  if (isUtf8(bytes)) return { encoding: 'utf8', data: bytes.toString('utf8'), storedBytes: bytes.length, truncated };
  if (truncated) {
    for (let cut = 1; cut <= 3 && cut < bytes.length; cut++) {
      const head = bytes.subarray(0, bytes.length - cut);
      if (isUtf8(head)) return { encoding: 'utf8', data: head.toString('utf8'), storedBytes: head.length, truncated };
    }
  }
  return { encoding: 'base64', data: bytes.toString('base64'), storedBytes: bytes.length, truncated };
}

function linkOf(p: ProcessSample): ParentLink {
  return { pid: p.pid, nsPid: p.nsPid, comm: p.comm, cmdline: p.cmdline, exe: p.exe, uid: p.uid, startTimeMs: p.startTimeMs };
}

/**
 * Parents from the direct one upwards. Stops after the container's init (nsPid 1) or host
 * pid 1, and before a process in another cgroup (the runtime's shim is not the container's).
 */
export function parentChainOf(sample: ProcessSample, lookup: (pid: number) => ProcessSample | undefined, max = 32): { chain: ParentLink[]; note: string | null } {
  const chain: ParentLink[] = [];
  const seen = new Set<number>([sample.pid]);
  let ppid = sample.ppid;
  while (ppid > 0 && chain.length < max) {
    if (seen.has(ppid)) return { chain, note: `parent chain loops at pid ${ppid} (pid reuse between samples)` };
    seen.add(ppid);
    const p = lookup(ppid);
    if (!p) return { chain, note: `parent pid ${ppid} is not in the process table (it exited)` };
    if (sample.cgroupPath !== null && p.cgroupPath !== null && p.cgroupPath !== sample.cgroupPath) return { chain, note: null };
    chain.push(linkOf(p));
    if (p.nsPid === 1 || p.pid === 1) return { chain, note: null };
    ppid = p.ppid;
  }
  return { chain, note: chain.length >= max ? `parent chain cut at ${max} links` : null };
}

function absoluteIn(cwd: string | null, arg: string): string | null {
  if (arg.startsWith('/')) return posix.normalize(arg);
  return cwd === null ? null : posix.join(cwd, arg);
}

/** An fd of the process that still points at the (deleted) script, found by its link text. */
async function findDeletedScriptFd(procRoot: string, pid: number, paths: string[], relativeArg: string | null, maxFds: number): Promise<number | null> {
  let names: string[];
  try {
    names = await fsp.readdir(`${procRoot}/${pid}/fd`);
  } catch {
    return null;
  }
  const wanted = new Set(paths.map((p) => `${p} (deleted)`));
  const suffix = relativeArg ? `/${posix.normalize(relativeArg)} (deleted)` : null;
  for (const name of names.slice(0, maxFds)) {
    if (!/^\d+$/.test(name)) continue;
    const l = await readLink(`${procRoot}/${pid}/fd/${name}`);
    if (!l.ok) continue;
    if (wanted.has(l.target) || (suffix !== null && l.target.endsWith(suffix))) return Number(name);
  }
  return null;
}

/** `/dev/fd/3`, `/proc/self/fd/3`, `/dev/stdin`: the script is one of the process's own fds. */
export function fdOfScriptPath(path: string, nsPid: number): number | null {
  const p = posix.normalize(path);
  if (p === '/dev/stdin') return 0;
  const dev = /^\/dev\/fd\/(\d+)$/.exec(p);
  if (dev) return Number(dev[1]);
  const proc = /^\/proc\/(self|thread-self|\d+)\/fd\/(\d+)$/.exec(p);
  if (!proc) return null;
  const who = proc[1] as string;
  if (/^\d+$/.test(who) && Number(who) !== nsPid) return null;
  return Number(proc[2]);
}

function isSuspiciousExe(exe: string | null, worldWritable: string[]): boolean {
  if (!exe) return false;
  if (exe.startsWith('/memfd:')) return true;
  const { path, deleted } = stripDeleted(exe);
  return deleted || worldWritable.some((d) => path.startsWith(d.endsWith('/') ? d : `${d}/`));
}

interface CollectState {
  procRoot: string;
  notes: string[];
  refused: RefusedPath[];
  /** Set once the process is known gone: later reads go through the fallback root, if any. */
  gone: boolean;
}

function noteRefusal(state: CollectState, what: RefusedPath['what'], r: Refusal): void {
  state.refused.push({ what, path: r.path, reason: r.reason, detail: r.detail });
}

async function collectScript(sample: ProcessSample, inv: Invocation, cwd: string | null, rootPid: number, state: CollectState, opts: SpawnEvidenceOptions): Promise<ScriptEvidence | null> {
  if (inv.program !== 'script' || inv.scriptArg === null) return null;
  const argPath = inv.scriptArg;
  const path = absoluteIn(cwd, argPath);
  const ev: ScriptEvidence = {
    argPath, path, resolvedPath: null, state: 'unknown', readFrom: null, deletedOpenFd: null,
    sizeBytes: null, mtimeMs: null, ctimeMs: null, mode: null, uid: null, sha256: null, content: null,
  };
  if (path === null) {
    state.notes.push(`script ${argPath} is relative and the cwd is unknown: not read`);
    return ev;
  }
  const maxBytes = opts.maxScriptBytes ?? DEFAULT_MAX_READ_BYTES;
  const readOpts = { maxBytes, hashAll: true, maxHashBytes: opts.maxHashBytes ?? DEFAULT_MAX_HASH_BYTES, selfFdDir: opts.selfFdDir };
  const ownFd = fdOfScriptPath(path, sample.nsPid);
  if (ownFd !== null) return collectFdScript(sample, ev, ownFd, state, readOpts);
  const r = await readFileInRoot(state.procRoot, rootPid, path, { ...readOpts, procSelfPid: rootPid === sample.pid ? sample.nsPid : undefined });
  if (r.ok) {
    Object.assign(ev, {
      resolvedPath: r.resolvedPath, state: 'present', readFrom: 'path', sizeBytes: r.stat.sizeBytes, mtimeMs: r.stat.mtimeMs,
      ctimeMs: r.stat.ctimeMs, mode: r.stat.mode, uid: r.stat.uid, sha256: r.sha256, content: contentOf(r.bytes, r.truncated),
    } satisfies Partial<ScriptEvidence>);
    if (r.sha256 === null) state.notes.push(`script larger than ${readOpts.maxHashBytes} bytes: sha256 not computed`);
    return ev;
  }
  if (r.reason === 'no-process') {
    state.gone = true;
    noteRefusal(state, 'process', r);
    return ev;
  }
  if (r.reason !== 'missing') {
    ev.state = 'refused';
    noteRefusal(state, 'script', r);
    return ev;
  }
  // Missing: deleted after start, unless a relative path met a cwd that moved since.
  const fd = state.gone ? null : await findDeletedScriptFd(state.procRoot, sample.pid, [path], argPath.startsWith('/') ? null : argPath, opts.maxFdScan ?? 1024);
  if (fd !== null) {
    ev.state = 'deleted';
    ev.deletedOpenFd = fd;
    const viaFd = await readProcFileLink(state.procRoot, sample.pid, `fd/${fd}`, readOpts);
    if (viaFd.ok) {
      Object.assign(ev, {
        readFrom: 'open-fd', sizeBytes: viaFd.stat.sizeBytes, mtimeMs: viaFd.stat.mtimeMs, ctimeMs: viaFd.stat.ctimeMs,
        mode: viaFd.stat.mode, uid: viaFd.stat.uid, sha256: viaFd.sha256, content: contentOf(viaFd.bytes, viaFd.truncated),
      } satisfies Partial<ScriptEvidence>);
      state.notes.push(`script ${path} was deleted; its bytes were read from fd ${fd}, which the process still holds open`);
    } else {
      noteRefusal(state, 'script', viaFd);
    }
    return ev;
  }
  if (argPath.startsWith('/') && !state.gone) {
    ev.state = 'deleted';
    state.notes.push(`script ${path} no longer exists: deleted before it could be read`);
  } else {
    state.notes.push(`script ${argPath} not found from the current cwd ${cwd ?? '?'} (the process may have changed directory)`);
  }
  noteRefusal(state, 'script', r);
  return ev;
}

/** The script is an fd of the process (`bash /dev/fd/3`, `bash <(...)`): read it through /proc/<pid>/fd. */
async function collectFdScript(
  sample: ProcessSample,
  ev: ScriptEvidence,
  fd: number,
  state: CollectState,
  readOpts: { maxBytes: number; hashAll: boolean; maxHashBytes: number },
): Promise<ScriptEvidence> {
  if (state.gone) {
    state.notes.push(`script is fd ${fd} of a process that is gone: not read`);
    return ev;
  }
  const link = await readLink(`${state.procRoot}/${sample.pid}/fd/${fd}`);
  if (link.ok) {
    const t = stripDeleted(link.target);
    ev.resolvedPath = t.path;
    if (t.deleted) {
      ev.state = 'deleted';
      ev.deletedOpenFd = fd;
    }
  }
  const r = await readProcFileLink(state.procRoot, sample.pid, `fd/${fd}`, readOpts);
  if (!r.ok) {
    if (ev.state !== 'deleted') ev.state = 'refused';
    noteRefusal(state, 'script', r);
    return ev;
  }
  Object.assign(ev, {
    state: ev.state === 'deleted' ? 'deleted' : 'present', readFrom: 'open-fd', sizeBytes: r.stat.sizeBytes, mtimeMs: r.stat.mtimeMs,
    ctimeMs: r.stat.ctimeMs, mode: r.stat.mode, uid: r.stat.uid, sha256: r.sha256, content: contentOf(r.bytes, r.truncated),
  } satisfies Partial<ScriptEvidence>);
  state.notes.push(`script ${ev.path ?? ev.argPath} is fd ${fd} of the process${ev.resolvedPath ? ` (${ev.resolvedPath})` : ''}`);
  return ev;
}

async function collectExe(sample: ProcessSample, state: CollectState, opts: SpawnEvidenceOptions): Promise<ExeEvidence | null> {
  const worldWritable = opts.rules?.worldWritableDirs ?? DEFAULT_SPAWN_RULE_CONFIG.worldWritableDirs;
  if (!isSuspiciousExe(sample.exe, worldWritable) || state.gone) return null;
  const path = stripDeleted(sample.exe as string).path;
  const r = await readProcFileLink(state.procRoot, sample.pid, 'exe', { maxBytes: 0, hashAll: true, maxHashBytes: opts.maxHashBytes ?? DEFAULT_MAX_HASH_BYTES });
  if (!r.ok) {
    noteRefusal(state, 'exe', r);
    return { path, sha256: null, sizeBytes: null };
  }
  return { path, sha256: r.sha256, sizeBytes: r.stat.sizeBytes };
}

function statementOf(scriptPath: string, p: Provenance): string {
  switch (p.encoding) {
    case 'base64':
      return `${scriptPath} is the base64 decoding of ${p.path}`;
    case 'gzip+base64':
      return `${scriptPath} is the gunzipped base64 decoding of ${p.path}`;
    case 'copy':
      return `${scriptPath} is a byte-for-byte copy of ${p.path}`;
  }
}

/** Searches the parent's view for the script's source and records it on the evidence. */
export async function attachProvenance(evidence: SpawnEvidence, opts: SpawnEvidenceOptions): Promise<void> {
  const script = evidence.script;
  if (opts.provenance === false || !script || script.sha256 === null || script.sizeBytes === null) return;
  const procRoot = opts.procRoot ?? '/proc';
  const limits = typeof opts.provenance === 'object' ? opts.provenance : {};
  const parent = opts.lookup(evidence.ppid);

  // The parent decoded the file, so its cwd and root are where to look. If it is gone, the
  // child inherited its cwd at fork and shares its root in the usual container.
  let rootPid = evidence.pid;
  let cwd = evidence.cwd;
  const dirs: string[] = [];
  if (parent) {
    const l = await readLink(`${procRoot}/${parent.pid}/cwd`);
    if (l.ok) {
      rootPid = parent.pid;
      cwd = stripDeleted(l.target).path;
      const pInv = parseInvocation(parent.argv, parent.exe);
      if (pInv.program === 'script' && pInv.scriptArg !== null) {
        const p = absoluteIn(cwd, pInv.scriptArg);
        if (p !== null) dirs.push(posix.dirname(p));
      }
    } else {
      evidence.notes.push(`parent ${parent.pid} cwd unreadable (${l.code ?? 'error'}): searching from the child's cwd in the child's root`);
    }
  }
  if (cwd === null) {
    evidence.notes.push('no cwd known for the parent or the child: provenance not searched');
    return;
  }
  const exclude = [script.path, script.resolvedPath].filter((p): p is string => p !== null);
  const target = { sha256: script.sha256, sizeBytes: script.sizeBytes };
  const searchDirs = [cwd, ...dirs.filter((d) => d !== cwd)];
  const rootStart = rootPid === evidence.pid ? evidence.startTimeMs : (parent?.startTimeMs ?? 0);
  const cacheKey = `${rootPid}@${rootStart}|${searchDirs.join('\0')}|${exclude.join('\0')}|${script.sha256}`;
  const nowMs = (opts.now ?? Date.now)();
  const cache = opts.provenanceCache;
  const cached = cache?.get(cacheKey, nowMs);
  const running = cached ? undefined : cache?.running(cacheKey);
  let match: Provenance | null;
  if (cached) {
    match = cached.match;
    evidence.provenanceSearch = cached.summary;
    evidence.notes.push(`provenance from a search ${Math.round((nowMs - cached.atMs) / 1000)} s ago`);
  } else if (running) {
    const shared = await running;
    match = shared.match;
    evidence.provenanceSearch = shared.summary;
    evidence.notes.push('provenance from a search of the same tree that was already running');
  } else {
    const search = (async (): Promise<CachedProvenance & { refused: ProvenanceSearch['refused'] }> => {
      const found = await searchProvenance(target, { procRoot, pid: rootPid, cwd, extraDirs: searchDirs.slice(1), excludePaths: exclude }, limits);
      const summary: ProvenanceSearchSummary = {
        rootPid,
        dirs: searchDirs,
        filesSeen: found.filesSeen,
        filesRead: found.filesRead,
        dirsSeen: found.dirsSeen,
        stoppedBy: found.stoppedBy,
      };
      cache?.set(cacheKey, nowMs, found.match, summary);
      return { atMs: nowMs, match: found.match, summary, refused: found.refused };
    })();
    cache?.track(cacheKey, search);
    const done = await search;
    match = done.match;
    evidence.provenanceSearch = done.summary;
    for (const r of done.refused) evidence.refused.push({ what: 'provenance', ...r });
    if (done.summary.stoppedBy) evidence.notes.push(`provenance search stopped at its ${done.summary.stoppedBy} bound`);
  }
  if (match) evidence.provenance = { ...match, statement: statementOf(script.path ?? script.argPath, match) };
}

/**
 * Everything worth keeping about a new process, read now. Never throws for a vanished process
 * or unreadable files: those become notes and refusals and `complete: false`.
 */
export async function collectSpawnEvidence(sample: ProcessSample, opts: SpawnEvidenceOptions): Promise<SpawnEvidence> {
  const procRoot = opts.procRoot ?? '/proc';
  const now = opts.now ?? Date.now;
  const state: CollectState = { procRoot, notes: [], refused: [], gone: false };
  const ticksBefore = await readStartTicks(procRoot, sample.pid);
  if (ticksBefore === null) {
    state.gone = true;
    state.notes.push(`process ${sample.pid} exited before evidence could be taken: argv and exe are from the sample`);
  } else {
    const btime = await readBootTimeMs(procRoot);
    if (btime !== null) {
      const startMs = btime + (Number(ticksBefore) * 1000) / TICKS_PER_SECOND;
      if (Math.abs(startMs - sample.startTimeMs) > START_TIME_TOLERANCE_MS) {
        // Another process now holds this pid: reading its files would mix two processes.
        state.gone = true;
        state.notes.push(`pid ${sample.pid} now belongs to a process started at ${new Date(startMs).toISOString()}, not the sampled one: only the sample is kept`);
      }
    }
  }

  let argv = sample.argv;
  if (argv.length === 0 && sample.exe !== null && sample.state !== 'Z' && !state.gone) {
    // Sampled mid-exec (see readArgv): the argv is worth a few milliseconds' wait.
    for (let i = 0; i < ARGV_RETRIES && argv.length === 0; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, ARGV_RETRY_MS));
      const fresh = await readArgv(procRoot, sample.pid);
      if (fresh === null) break;
      argv = fresh;
    }
    if (argv.length > 0) state.notes.push('argv re-read from /proc: the sample caught the process in the middle of exec');
  }
  const invocation = parseInvocation(argv, sample.exe);
  const evidence: SpawnEvidence = {
    collectedAtMs: now(),
    pid: sample.pid,
    ppid: sample.ppid,
    nsPid: sample.nsPid,
    comm: sample.comm,
    argv: [...argv],
    cmdline: argv === sample.argv ? sample.cmdline : argv.join(' '),
    exe: sample.exe,
    uid: sample.uid,
    startTimeMs: sample.startTimeMs,
    cgroupPath: sample.cgroupPath,
    cwd: null,
    invocation,
    parentChain: [],
    script: null,
    exeFile: null,
    refused: state.refused,
    provenance: null,
    provenanceSearch: null,
    notes: state.notes,
    complete: true,
  };

  const chain = parentChainOf(sample, opts.lookup, opts.maxParentChain ?? 32);
  evidence.parentChain = chain.chain;
  if (chain.note) state.notes.push(chain.note);


  let rootPid = sample.pid;
  if (!state.gone) {
    const l = await readLink(`${procRoot}/${sample.pid}/cwd`);
    if (l.ok) {
      const c = stripDeleted(l.target);
      evidence.cwd = c.path;
      if (c.deleted) state.notes.push(`cwd ${c.path} was deleted`);
    } else if (l.code === 'ENOENT' || l.code === 'ESRCH') {
      state.gone = true;
    } else {
      state.refused.push({ what: 'cwd', path: `${procRoot}/${sample.pid}/cwd`, reason: l.code === 'EACCES' || l.code === 'EPERM' ? 'permission' : 'io-error', detail: `readlink: ${l.code ?? 'error'}` });
    }
  }
  if (state.gone) {
    // The temp script may outlive its process; the parent usually shares the container's root.
    const parent = opts.lookup(sample.ppid);
    if (parent && (await readStartTicks(procRoot, parent.pid)) !== null) {
      // Absolute paths only: with the child's cwd unknown, a relative script is not guessed at.
      rootPid = parent.pid;
      state.notes.push(`reading through the parent's root (pid ${parent.pid})`);
    } else {
      rootPid = 0;
    }
  }

  if (rootPid > 0) {
    evidence.script = await collectScript(sample, invocation, evidence.cwd, rootPid, state, opts);
    evidence.exeFile = await collectExe(sample, state, opts);
  } else if (invocation.program === 'script') {
    evidence.script = {
      argPath: invocation.scriptArg as string, path: absoluteIn(null, invocation.scriptArg as string), resolvedPath: null, state: 'unknown',
      readFrom: null, deletedOpenFd: null, sizeBytes: null, mtimeMs: null, ctimeMs: null, mode: null, uid: null, sha256: null, content: null,
    };
    state.notes.push('no live root to read the script through');
  }

  if (!state.gone) {
    const ticksAfter = await readStartTicks(procRoot, sample.pid);
    if (ticksAfter !== ticksBefore) {
      state.gone = true;
      state.notes.push(ticksAfter === null ? `process ${sample.pid} exited while evidence was taken` : `pid ${sample.pid} was reused while evidence was taken`);
    }
  }
  evidence.complete = !state.gone && ticksBefore !== null;

  if (opts.provenance !== false) await attachProvenance(evidence, opts);
  if (state.gone && opts.warn) opts.warn(`spawn evidence for pid ${sample.pid} is partial: ${state.notes.join('; ')}`);
  return evidence;
}

/** The rule inputs, from evidence already taken (no further reads). */
export function spawnFactsOf(evidence: SpawnEvidence, parent: ProcessSample | undefined): SpawnFacts {
  const s = evidence.script;
  const parentFacts: ParentFacts | null = parent
    ? { pid: parent.pid, comm: parent.comm, argv: parent.argv, exe: parent.exe, startTimeMs: parent.startTimeMs }
    : null;
  return {
    argv: evidence.argv,
    exe: evidence.exe,
    startTimeMs: evidence.startTimeMs,
    cwd: evidence.cwd,
    invocation: evidence.invocation,
    script: s
      ? { argPath: s.argPath, path: s.path, resolvedPath: s.resolvedPath, state: s.state, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, deletedOpenFd: s.deletedOpenFd }
      : null,
    parent: parentFacts,
  };
}

/**
 * Judges a process at first sight. The cheap part (argv, exe, cwd, the script's bytes and
 * times) is read for every process; the provenance search only runs when a rule matched.
 * Returns null when no rule matches.
 */
export async function judgeSpawn(sample: ProcessSample, opts: SpawnEvidenceOptions): Promise<SpawnJudgement | null> {
  const evidence = await collectSpawnEvidence(sample, { ...opts, provenance: false });
  const parent = opts.lookup(sample.ppid);
  const rules = evaluateSpawnRules(spawnFactsOf(evidence, parent), opts.rules);
  if (!isSuspicious(rules)) return null;
  if (opts.provenance !== false) await attachProvenance(evidence, opts);
  return { rules, evidence };
}
