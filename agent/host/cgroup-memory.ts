// Memory accounting of one cgroup, cgroup v1 or v2, read from the cgroup filesystem.
//
// The sampler calls this once per container cgroup per pass (1 Hz, hundreds of containers), so
// each read is a handful of open/read/close calls on tiny kernfs files into one reused buffer,
// and memory.stat is scanned for the few keys we use only.

import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import type { CgroupMemory } from './types.js';

export interface MemoryHierarchy {
  version: 1 | 2;
  /** Directory holding the memory controller's root cgroup (e.g. /sys/fs/cgroup/memory on v1). */
  memoryRoot: string;
}

export interface CgroupReadOptions {
  /**
   * Told why a read gave null. Said once per cgroup and problem, per hierarchy handle: keep
   * the handle detectMemoryHierarchy returned for the life of the sampler.
   */
  warn?: (msg: string) => void;
}

export interface TightestLimitOptions extends CgroupReadOptions {
  /**
   * Limits already read in this pass, keyed by cgroup path. Sibling containers share their
   * pod, QoS and kubepods ancestors, so one Map per pass saves most of the walk's reads.
   */
  limitCache?: Map<string, number | null>;
}

/** The limit that binds a cgroup: the smallest one on the way from it up to the root. */
export interface EnclosingLimit {
  /** Null when the cgroup and every ancestor are unlimited. */
  limitBytes: number | null;
  /** The cgroup (path relative to the memory root) whose limit that is; null when unlimited. */
  cgroup: string | null;
}

// Both versions store "no limit" as PAGE_COUNTER_MAX pages: v1 prints it in bytes
// (9223372036854771712 with 4 KiB pages, less with bigger pages), v2 prints "max". Anything this
// large is no real limit, whatever the page size.
const UNLIMITED_THRESHOLD = 2 ** 62;

/**
 * Which memory hierarchy a cgroup mount point offers. v1 when `<root>/memory/memory.stat`
 * exists: hybrid hosts (v1 memory + a v2 mount without the memory controller) are v1, because
 * that is where the memory accounting lives. v2 when the unified hierarchy at `<root>` (or at
 * `<root>/unified` on a hybrid host that gave memory to v2) lists `memory` in cgroup.controllers.
 */
export function detectMemoryHierarchy(cgroupRoot: string): MemoryHierarchy | null {
  const root = cgroupRoot.replace(/\/+$/, '') || '/';
  const v1Root = joinPath(root, '/memory');
  if (existsSync(joinPath(v1Root, '/memory.stat'))) return { version: 1, memoryRoot: v1Root };
  for (const unified of [root, joinPath(root, '/unified')]) {
    const controllers = readOptional(joinPath(unified, '/cgroup.controllers'));
    if (controllers !== null && controllers.split(/\s+/).includes('memory')) {
      return { version: 2, memoryRoot: unified };
    }
  }
  return null;
}

/**
 * One cgroup's memory accounting. `relPath` is relative to the memory root, as
 * /proc/<pid>/cgroup gives it. Null when the cgroup is gone or a file is missing, unreadable or
 * not what the kernel writes; the reason goes to `warn`.
 */
export function readCgroupMemory(h: MemoryHierarchy, relPath: string, opts: CgroupReadOptions = {}): CgroupMemory | null {
  const result = readMemory(h, relPath);
  return settle(h, `memory ${normalise(relPath)}`, result, opts.warn);
}

/**
 * The limit that matters for a cgroup: walk from it up to the root (container, then pod, QoS
 * level, kubepods = node allocatable) and keep the smallest. Null when the starting cgroup
 * itself cannot be read; an unreadable ancestor is reported to `warn` and passed over.
 */
export function tightestLimit(h: MemoryHierarchy, relPath: string, opts: TightestLimitOptions = {}): EnclosingLimit | null {
  const own = readLimitCached(h, relPath, opts.limitCache);
  const ownLimit = settle(h, `limit ${normalise(relPath)}`, own, opts.warn);
  if (ownLimit === null) return null;
  let best: EnclosingLimit = ownLimit.limitBytes === null ? { limitBytes: null, cgroup: null } : { limitBytes: ownLimit.limitBytes, cgroup: normalise(relPath) };
  for (const ancestor of ancestorsOf(normalise(relPath))) {
    const read = readLimitCached(h, ancestor, opts.limitCache);
    if (read instanceof ReadFailure) {
      // The v2 root has no memory.max (it cannot be limited); nothing to say about that.
      if (ancestor === '/' && read.kind === 'missing-file') continue;
      settle(h, `limit ${ancestor}`, read, opts.warn);
      continue;
    }
    forget(h, `limit ${ancestor}`);
    if (read.limitBytes !== null && (best.limitBytes === null || read.limitBytes < best.limitBytes)) {
      best = { limitBytes: read.limitBytes, cgroup: ancestor };
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------

type FailureKind = 'bad-path' | 'gone' | 'missing-file' | 'unreadable' | 'garbage';

class ReadFailure {
  constructor(
    readonly kind: FailureKind,
    readonly message: string,
  ) {}
}

function readMemory(h: MemoryHierarchy, relPath: string): CgroupMemory | ReadFailure {
  const dir = cgroupDir(h, relPath);
  if (dir instanceof ReadFailure) return dir;
  return h.version === 1 ? readV1(dir, relPath) : readV2(dir, relPath);
}

function readV1(dir: string, relPath: string): CgroupMemory | ReadFailure {
  const usage = readCount(dir, relPath, 'memory.usage_in_bytes');
  if (usage instanceof ReadFailure) return usage;
  const statText = readCgroupFile(dir, relPath, 'memory.stat');
  if (statText instanceof ReadFailure) return statText;
  // total_* are hierarchical (this cgroup and its children); a process's container cgroup may
  // have children, so they are the right numbers. Plain rss/inactive_file only if total_* are
  // absent, as in a flat (use_hierarchy=0) setup on old kernels.
  const stat = pickStat(statText, ['total_rss', 'total_inactive_file', 'rss', 'inactive_file']);
  if (stat instanceof ReadFailure) return garbage(relPath, 'memory.stat', stat.message);
  const anon = stat.get('total_rss') ?? stat.get('rss');
  const inactiveFile = stat.get('total_inactive_file') ?? stat.get('inactive_file');
  if (anon === undefined || inactiveFile === undefined) {
    return garbage(relPath, 'memory.stat', 'has neither total_rss/total_inactive_file nor rss/inactive_file');
  }
  const limit = readLimitV1(dir, relPath);
  if (limit instanceof ReadFailure) return limit;
  const oomText = readCgroupFile(dir, relPath, 'memory.oom_control');
  if (oomText instanceof ReadFailure) return oomText;
  const oom = pickStat(oomText, ['oom_kill', 'under_oom', 'oom_kill_disable']);
  if (oom instanceof ReadFailure) return garbage(relPath, 'memory.oom_control', oom.message);
  if (oom.size === 0) return garbage(relPath, 'memory.oom_control', 'has none of oom_kill_disable/under_oom/oom_kill');
  return {
    usageBytes: usage,
    anonBytes: anon,
    inactiveFileBytes: inactiveFile,
    workingSetBytes: Math.max(0, usage - inactiveFile),
    limitBytes: limit.limitBytes,
    // Kernels before 4.13 have no oom_kill line: no count to give, and none to have moved.
    oomKills: oom.get('oom_kill') ?? 0,
    oomGroupKills: 0,
  };
}

function readV2(dir: string, relPath: string): CgroupMemory | ReadFailure {
  const usage = readCount(dir, relPath, 'memory.current');
  if (usage instanceof ReadFailure) return usage;
  const statText = readCgroupFile(dir, relPath, 'memory.stat');
  if (statText instanceof ReadFailure) return statText;
  const stat = pickStat(statText, ['anon', 'inactive_file']);
  if (stat instanceof ReadFailure) return garbage(relPath, 'memory.stat', stat.message);
  const anon = stat.get('anon');
  const inactiveFile = stat.get('inactive_file');
  if (anon === undefined || inactiveFile === undefined) return garbage(relPath, 'memory.stat', 'lacks anon or inactive_file');
  const limit = readLimitV2(dir, relPath);
  if (limit instanceof ReadFailure) return limit;
  const eventsText = readCgroupFile(dir, relPath, 'memory.events');
  if (eventsText instanceof ReadFailure) return eventsText;
  const events = pickStat(eventsText, ['oom_kill', 'oom_group_kill']);
  if (events instanceof ReadFailure) return garbage(relPath, 'memory.events', events.message);
  const oomKills = events.get('oom_kill');
  if (oomKills === undefined) return garbage(relPath, 'memory.events', 'lacks oom_kill');
  return {
    usageBytes: usage,
    anonBytes: anon,
    inactiveFileBytes: inactiveFile,
    workingSetBytes: Math.max(0, usage - inactiveFile),
    limitBytes: limit.limitBytes,
    oomKills,
    // oom_group_kill arrived in 5.17; before that no group kill was counted.
    oomGroupKills: events.get('oom_group_kill') ?? 0,
  };
}

function readLimitCached(h: MemoryHierarchy, relPath: string, cache: Map<string, number | null> | undefined): { limitBytes: number | null } | ReadFailure {
  const key = normalise(relPath);
  if (cache?.has(key)) return { limitBytes: cache.get(key) ?? null };
  const dir = cgroupDir(h, relPath);
  if (dir instanceof ReadFailure) return dir;
  const read = h.version === 1 ? readLimitV1(dir, relPath) : readLimitV2(dir, relPath);
  if (!(read instanceof ReadFailure)) cache?.set(key, read.limitBytes);
  return read;
}

function readLimitV1(dir: string, relPath: string): { limitBytes: number | null } | ReadFailure {
  const limit = readCount(dir, relPath, 'memory.limit_in_bytes');
  if (limit instanceof ReadFailure) return limit;
  return { limitBytes: limit >= UNLIMITED_THRESHOLD ? null : limit };
}

function readLimitV2(dir: string, relPath: string): { limitBytes: number | null } | ReadFailure {
  const text = readCgroupFile(dir, relPath, 'memory.max');
  if (text instanceof ReadFailure) return text;
  const value = text.trim();
  if (value === 'max') return { limitBytes: null };
  const limit = parseCount(value);
  if (limit === null) return garbage(relPath, 'memory.max', `expected a byte count or "max", got ${quote(value)}`);
  return { limitBytes: limit >= UNLIMITED_THRESHOLD ? null : limit };
}

function readCount(dir: string, relPath: string, file: string): number | ReadFailure {
  const text = readCgroupFile(dir, relPath, file);
  if (text instanceof ReadFailure) return text;
  const value = parseCount(text.trim());
  if (value === null) return garbage(relPath, file, `expected a byte count, got ${quote(text.trim())}`);
  return value;
}

/** Values of the wanted keys of a flat-keyed file ("key value" lines); other lines are skipped unparsed. */
function pickStat(text: string, keys: readonly string[]): Map<string, number> | ReadFailure {
  const found = new Map<string, number>();
  let start = 0;
  while (start < text.length && found.size < keys.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const space = text.indexOf(' ', start);
    if (space > start && space < end) {
      const key = text.slice(start, space);
      if (keys.includes(key)) {
        const raw = text.slice(space + 1, end).trim();
        const value = parseCount(raw);
        if (value === null) return new ReadFailure('garbage', `${key} is ${quote(raw)}, not a count`);
        found.set(key, value);
      }
    }
    start = end + 1;
  }
  return found;
}

function parseCount(text: string): number | null {
  if (!/^\d{1,20}$/.test(text)) return null;
  return Number(text);
}

function cgroupDir(h: MemoryHierarchy, relPath: string): string | ReadFailure {
  // A path from inside a cgroup namespace ("/../../kubepods...") names no directory under our
  // root, and resolving its ".." would quietly read some other cgroup's files.
  if (!relPath.startsWith('/') || relPath.includes('\0') || relPath.split('/').some((s) => s === '..' || s === '.')) {
    return new ReadFailure('bad-path', `cgroup path ${quote(relPath)} is not a plain path under the memory root (read from another cgroup namespace?)`);
  }
  return joinPath(h.memoryRoot, normalise(relPath));
}

// One buffer for every read: the files are tiny (v2 memory.stat is about 1.5 KiB) and reads are
// synchronous, so there is never more than one in flight.
const readBuffer = Buffer.allocUnsafe(16 * 1024);

function readCgroupFile(dir: string, relPath: string, file: string): string | ReadFailure {
  const path = `${dir}/${file}`;
  try {
    const fd = openSync(path, 'r');
    try {
      let length = 0;
      for (;;) {
        const n = readSync(fd, readBuffer, length, readBuffer.length - length, null);
        if (n === 0) break;
        length += n;
        // Bigger than any cgroup memory file we read: let readFileSync take it whole.
        if (length === readBuffer.length) return readFileSync(path, 'utf8');
      }
      return readBuffer.toString('utf8', 0, length);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENODEV') {
      // ENODEV: the cgroup was removed between open and read.
      if (code === 'ENODEV' || !existsSync(dir)) return new ReadFailure('gone', `cgroup ${relPath} is gone (its container or pod exited)`);
      return new ReadFailure('missing-file', `${file} is missing in cgroup ${relPath} (memory controller not enabled there?)`);
    }
    return new ReadFailure('unreadable', `cannot read ${file} of cgroup ${relPath}: ${code ?? (err as Error).message}`);
  }
}

function readOptional(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function garbage(relPath: string, file: string, what: string): ReadFailure {
  return new ReadFailure('garbage', `${file} of cgroup ${relPath} is not what the kernel writes: ${what}`);
}

function quote(text: string): string {
  const shown = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return JSON.stringify(shown);
}

function normalise(relPath: string): string {
  const trimmed = relPath.replace(/\/+/g, '/').replace(/\/$/, '');
  return trimmed === '' ? '/' : trimmed;
}

function joinPath(root: string, relPath: string): string {
  if (relPath === '/') return root;
  return root === '/' ? relPath : root + relPath;
}

function* ancestorsOf(relPath: string): Generator<string> {
  let path = relPath;
  while (path !== '/') {
    const cut = path.lastIndexOf('/');
    path = cut <= 0 ? '/' : path.slice(0, cut);
    yield path;
  }
}

// --- one warning per cgroup and problem ------------------------------------------------------

// Per hierarchy handle: what was read ("memory <path>" or "limit <path>", kept apart so that a
// good limit read does not clear a bad memory read of the same cgroup) -> the last problem said
// about it. A read that succeeds again is dropped, so a later failure is said again. Bounded: on a node with pod churn
// vanished cgroups would otherwise pile up here forever.
const MAX_REMEMBERED_PROBLEMS = 4096;
const problemsSaid = new WeakMap<MemoryHierarchy, Map<string, string>>();

function settle<T>(h: MemoryHierarchy, key: string, result: T | ReadFailure, warn: ((msg: string) => void) | undefined): T | null {
  if (!(result instanceof ReadFailure)) {
    forget(h, key);
    return result;
  }
  let said = problemsSaid.get(h);
  if (said === undefined) {
    said = new Map();
    problemsSaid.set(h, said);
  }
  if (said.get(key) !== result.message) {
    if (said.size >= MAX_REMEMBERED_PROBLEMS) {
      const oldest = said.keys().next();
      if (!oldest.done) said.delete(oldest.value);
    }
    said.set(key, result.message);
    warn?.(result.message);
  }
  return null;
}

function forget(h: MemoryHierarchy, key: string): void {
  problemsSaid.get(h)?.delete(key);
}
