// Reads files inside a process's root (`<procRoot>/<pid>/root/...`) without ever leaving it.
//
// The kernel resolves an absolute symlink met under /proc/<pid>/root against *our* root, so
// a container could plant `/tmp/x -> /etc/shadow` and have us read the host's file. We never
// hand the kernel a multi-component path: each directory is opened with O_NOFOLLOW and the
// next name is looked up through `/proc/self/fd/<dirfd>/<name>`, which anchors the lookup in
// the directory we already hold (an openat() emulation; Node has no openat). Symlinks are
// resolved by us, as the container would see them: absolute targets restart at the container
// root, `..` stops at the root, at most 40 links (Linux's MAXSYMLINKS). The final file is
// opened with O_NOFOLLOW | O_NONBLOCK and its fstat identity (dev+ino) must match what we
// checked, so a swap between check and open is refused rather than read.

import { constants as fsc, promises as fsp, type BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';

export const DEFAULT_MAX_READ_BYTES = 256 * 1024;
export const DEFAULT_MAX_HASH_BYTES = 64 * 1024 * 1024;
/** Linux follows at most 40 symlinks in one lookup; a container sees the same limit. */
export const MAX_SYMLINKS = 40;
const MAX_PATH_BYTES = 4096;
const READ_CHUNK_BYTES = 64 * 1024;
const PROC_SUPER_MAGIC = 0x9fa0;
const LSTAT_BATCH = 16;

export type RefusalReason =
  /** Not absolute, empty, contains NUL, or longer than PATH_MAX. */
  | 'invalid-path'
  /** `<procRoot>/<pid>/root` cannot be opened: the process is gone or never existed. */
  | 'no-process'
  | 'missing'
  /** A component before the last one exists but is not a directory. */
  | 'not-directory'
  /** The final entry is a directory, FIFO, socket or device: never opened. */
  | 'not-regular'
  /** More than 40 symlinks on the way (a loop, or a maze). */
  | 'symlink-loop'
  /** An entry we checked turned into a symlink before we opened it: following it could leave the root. */
  | 'symlink-escape'
  /**
   * The path goes through procfs `self`/`thread-self`, which name whoever reads them (us), not
   * the target; refused unless procSelfPid says which pid to substitute.
   */
  | 'proc-self'
  /** The file opened is not the one checked (dev+ino differ): it was replaced in between. */
  | 'changed'
  | 'too-large'
  | 'permission'
  | 'io-error';

export interface Refusal {
  ok: false;
  reason: RefusalReason;
  detail: string;
  /** The path as asked for, in the container's view. */
  path: string;
}

export type EntryKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char-device' | 'block-device' | 'other';

/** An lstat/fstat result, JSON-safe (dev and ino are decimal strings: overlayfs inode numbers exceed 2^53). */
export interface EntryStat {
  kind: EntryKind;
  sizeBytes: number;
  /** Permission bits only (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtimeMs: number;
  ctimeMs: number;
  dev: string;
  ino: string;
}

export interface RootAccessOptions {
  /**
   * Where our own open descriptors are visible. Always our own procfs, even when procRoot is
   * `/host/proc`: the descriptors belong to this process.
   */
  selfFdDir?: string;
  /**
   * The target's pid as its own procfs knows it (innermost NSpid): `/proc/self` inside the
   * root is rewritten to `/proc/<procSelfPid>`. Without it such paths are refused.
   */
  procSelfPid?: number;
}

export interface OpenOptions extends RootAccessOptions {
  /** Refuse with 'too-large' instead of opening a file bigger than this. */
  refuseLargerThan?: number;
  /** Test seam: runs after the final entry was checked and before it is opened. */
  beforeOpen?: () => Promise<void> | void;
}

export interface OpenedFile {
  ok: true;
  /** The caller owns it and must close it. */
  handle: FileHandle;
  stat: EntryStat;
  /** Container-view path after symlinks were resolved in the root. */
  resolvedPath: string;
}

export interface ReadOptions extends OpenOptions {
  /** Bytes kept; the rest is not returned (default 256 KiB). */
  maxBytes?: number;
  /** Keep hashing past maxBytes so sha256 covers the whole file (up to maxHashBytes). */
  hashAll?: boolean;
  maxHashBytes?: number;
}

export interface FileRead {
  ok: true;
  bytes: Buffer;
  /** True when the file holds more than `bytes`. */
  truncated: boolean;
  /** sha256 (hex) of the whole file as read to EOF; null when reading stopped before EOF. */
  sha256: string | null;
  /** Bytes read from the file in total (may exceed bytes.length when hashing went on). */
  bytesSeen: number;
  stat: EntryStat;
  resolvedPath: string;
}

export interface StatResult {
  ok: true;
  stat: EntryStat;
  resolvedPath: string;
}

export interface DirEntry {
  name: string;
  kind: EntryKind;
  sizeBytes: number;
  mtimeMs: number;
}

export interface DirListing {
  ok: true;
  entries: DirEntry[];
  /** True when the directory held more than maxEntries names. */
  truncated: boolean;
  resolvedPath: string;
}

export interface StatOptions extends RootAccessOptions {
  /** Resolve a final symlink (in the root) and stat its target (default true). */
  followFinal?: boolean;
}

export interface ListOptions extends RootAccessOptions {
  maxEntries?: number;
}

export function kindOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'char-device';
  if (st.isBlockDevice()) return 'block-device';
  return 'other';
}

export function toEntryStat(st: BigIntStats): EntryStat {
  return {
    kind: kindOf(st),
    sizeBytes: Number(st.size),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    nlink: Number(st.nlink),
    mtimeMs: Number(st.mtimeNs) / 1e6,
    ctimeMs: Number(st.ctimeNs) / 1e6,
    dev: st.dev.toString(),
    ino: st.ino.toString(),
  };
}

/** Maps an errno code to the refusal we report; `context` picks the meaning of ambiguous codes. */
export function reasonForErrno(code: string | undefined, context: 'root' | 'lookup' | 'open' = 'lookup'): RefusalReason {
  switch (code) {
    case 'ENOENT':
    case 'ESRCH':
      return context === 'root' ? 'no-process' : 'missing';
    case 'ENOTDIR':
      return context === 'root' ? 'no-process' : 'not-directory';
    case 'ELOOP':
      return context === 'open' ? 'symlink-escape' : 'symlink-loop';
    case 'EACCES':
    case 'EPERM':
      return 'permission';
    case 'EISDIR':
    case 'ENXIO':
    case 'ENODEV':
      return 'not-regular';
    case 'EFBIG':
    case 'EOVERFLOW':
      return 'too-large';
    case 'ENAMETOOLONG':
      return 'invalid-path';
    default:
      return 'io-error';
  }
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function refuse(path: string, reason: RefusalReason, detail: string): Refusal {
  return { ok: false, reason, detail, path };
}

function sameIdentity(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

function splitPath(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

function joinContainer(names: string[]): string {
  return '/' + names.join('/');
}

/** Directories held open during a walk; index 0 is the container root. */
interface DirChain {
  handles: FileHandle[];
  names: string[];
}

function top(chain: DirChain): FileHandle {
  // The root handle is always present, so the array is never empty.
  return chain.handles[chain.handles.length - 1] as FileHandle;
}

async function closeQuietly(h: FileHandle | undefined): Promise<void> {
  if (!h) return;
  try {
    await h.close();
  } catch {
    // Closing a descriptor we own only fails if it is already closed: nothing to do.
  }
}

async function closeChain(chain: DirChain): Promise<void> {
  for (const h of chain.handles) await closeQuietly(h);
  chain.handles.length = 0;
}

async function isProcfs(dirPath: string): Promise<boolean> {
  try {
    return (await fsp.statfs(dirPath)).type === PROC_SUPER_MAGIC;
  } catch {
    // Cannot tell: treat as procfs, so `self` is never followed on a guess.
    return true;
  }
}

interface Resolved {
  ok: true;
  chain: DirChain;
  /** Name of the final entry inside top(chain); null when the path names a directory we hold (`/`, `/a/..`). */
  finalName: string | null;
  /** lstat of the final entry (or fstat of the held directory when finalName is null). */
  finalStat: BigIntStats;
  resolvedPath: string;
}

/**
 * Walks `path` under `<procRoot>/<pid>/root` one component at a time. On success the caller
 * owns `chain` and must close it (closeChain). On refusal everything is already closed.
 */
async function resolveInRoot(
  procRoot: string,
  pid: number,
  path: string,
  followFinal: boolean,
  opts: RootAccessOptions,
): Promise<Resolved | Refusal> {
  if (typeof path !== 'string' || !path.startsWith('/')) return refuse(String(path), 'invalid-path', 'path must be absolute in the container');
  if (path.includes('\0')) return refuse(path, 'invalid-path', 'path contains a NUL byte');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return refuse(path, 'invalid-path', `path longer than ${MAX_PATH_BYTES} bytes`);
  if (!Number.isInteger(pid) || pid <= 0) return refuse(path, 'invalid-path', `bad pid ${pid}`);

  const selfFd = opts.selfFdDir ?? '/proc/self/fd';
  const rootPath = `${procRoot}/${pid}/root`;
  let rootHandle: FileHandle;
  try {
    // Following this one link is the point: it is the kernel's handle on the process's root.
    rootHandle = await fsp.open(rootPath, fsc.O_RDONLY | fsc.O_DIRECTORY);
  } catch (err) {
    return refuse(path, reasonForErrno(errCode(err), 'root'), `cannot open ${rootPath}: ${errText(err)}`);
  }
  const chain: DirChain = { handles: [rootHandle], names: [] };
  const pending = splitPath(path);
  let links = 0;

  const fail = async (reason: RefusalReason, detail: string): Promise<Refusal> => {
    await closeChain(chain);
    return refuse(path, reason, detail);
  };

  while (pending.length > 0) {
    const name = pending.shift() as string;
    if (name === '..') {
      // Clamped at the root, as the kernel does for a process whose root this is.
      if (chain.handles.length > 1) {
        await closeQuietly(chain.handles.pop());
        chain.names.pop();
      }
      continue;
    }
    const isLast = pending.length === 0;
    const entry = `${selfFd}/${top(chain).fd}/${name}`;
    const here = joinContainer([...chain.names, name]);
    let st: BigIntStats;
    try {
      st = await fsp.lstat(entry, { bigint: true });
    } catch (err) {
      return fail(reasonForErrno(errCode(err)), `${here}: ${errCode(err) ?? errText(err)}`);
    }
    if (st.isSymbolicLink() && (!isLast || followFinal)) {
      links += 1;
      if (links > MAX_SYMLINKS) return fail('symlink-loop', `more than ${MAX_SYMLINKS} symlinks while resolving (last: ${here})`);
      if ((name === 'self' || name === 'thread-self') && (await isProcfs(`${selfFd}/${top(chain).fd}`))) {
        const me = opts.procSelfPid;
        if (me === undefined || !Number.isInteger(me) || me <= 0) return fail('proc-self', `${here} would name the reading process, not the target`);
        pending.unshift(...(name === 'self' ? [String(me)] : [String(me), 'task', String(me)]));
        continue;
      }
      let target: string;
      try {
        target = await fsp.readlink(entry);
      } catch (err) {
        return fail(reasonForErrno(errCode(err)), `${here}: readlink: ${errCode(err) ?? errText(err)}`);
      }
      if (target === '') return fail('missing', `${here} is an empty symlink`);
      if (target.startsWith('/')) {
        // Absolute targets mean the container's root, not ours.
        for (const h of chain.handles.splice(1)) await closeQuietly(h);
        chain.names.length = 0;
      }
      pending.unshift(...splitPath(target));
      if (pending.length > 4096) return fail('invalid-path', 'symlink expansion too long');
      continue;
    }
    if (isLast) {
      return { ok: true, chain, finalName: name, finalStat: st, resolvedPath: here };
    }
    if (!st.isDirectory()) return fail('not-directory', `${here} is a ${kindOf(st)}, not a directory`);
    let dir: FileHandle;
    try {
      dir = await fsp.open(entry, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
    } catch (err) {
      const code = errCode(err);
      // ELOOP/ENOTDIR here: the directory we checked became a symlink or a file in between.
      if (code === 'ELOOP' || code === 'ENOTDIR') return fail('symlink-escape', `${here} changed into a ${code === 'ELOOP' ? 'symlink' : 'non-directory'} while resolving`);
      return fail(reasonForErrno(code), `${here}: ${code ?? errText(err)}`);
    }
    chain.handles.push(dir);
    chain.names.push(name);
    try {
      const held = await dir.stat({ bigint: true });
      if (!sameIdentity(held, st)) return fail('changed', `${here} was replaced while resolving`);
    } catch (err) {
      return fail('io-error', `${here}: fstat: ${errText(err)}`);
    }
  }
  // The path named a directory we already hold: `/`, or one ending in `..`.
  try {
    const st = await top(chain).stat({ bigint: true });
    return { ok: true, chain, finalName: null, finalStat: st, resolvedPath: joinContainer(chain.names) };
  } catch (err) {
    return fail('io-error', `fstat: ${errText(err)}`);
  }
}

/**
 * Opens a regular file inside the process's root. Never follows a symlink out of the root,
 * never opens FIFOs, sockets or devices. The caller must close `handle`.
 */
export async function openInRoot(procRoot: string, pid: number, pathInContainer: string, opts: OpenOptions = {}): Promise<OpenedFile | Refusal> {
  const r = await resolveInRoot(procRoot, pid, pathInContainer, true, opts);
  if (!r.ok) return r;
  try {
    if (r.finalName === null || !r.finalStat.isFile()) {
      return refuse(pathInContainer, 'not-regular', `${r.resolvedPath} is a ${r.finalName === null ? 'dir' : kindOf(r.finalStat)}`);
    }
    const size = Number(r.finalStat.size);
    if (opts.refuseLargerThan !== undefined && size > opts.refuseLargerThan) {
      return refuse(pathInContainer, 'too-large', `${r.resolvedPath} holds ${size} bytes, limit ${opts.refuseLargerThan}`);
    }
    if (opts.beforeOpen) await opts.beforeOpen();
    const selfFd = opts.selfFdDir ?? '/proc/self/fd';
    let handle: FileHandle;
    try {
      // O_NONBLOCK: should a FIFO be swapped in after the check, opening it must not hang us.
      handle = await fsp.open(`${selfFd}/${top(r.chain).fd}/${r.finalName}`, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    } catch (err) {
      const code = errCode(err);
      const detail = code === 'ELOOP' ? `${r.resolvedPath} became a symlink after it was checked` : `${r.resolvedPath}: ${code ?? errText(err)}`;
      return refuse(pathInContainer, reasonForErrno(code, 'open'), detail);
    }
    try {
      const st = await handle.stat({ bigint: true });
      if (!st.isFile()) {
        await closeQuietly(handle);
        return refuse(pathInContainer, 'not-regular', `${r.resolvedPath} opened as a ${kindOf(st)}`);
      }
      if (!sameIdentity(st, r.finalStat)) {
        await closeQuietly(handle);
        return refuse(pathInContainer, 'changed', `${r.resolvedPath} was replaced between check and open`);
      }
      return { ok: true, handle, stat: toEntryStat(st), resolvedPath: r.resolvedPath };
    } catch (err) {
      await closeQuietly(handle);
      return refuse(pathInContainer, 'io-error', `${r.resolvedPath}: fstat: ${errText(err)}`);
    }
  } finally {
    await closeChain(r.chain);
  }
}

/**
 * Reads from an open handle: keeps the first maxBytes, optionally hashes on to EOF.
 * Exported for the fd-recovery path, which opens through /proc/<pid>/fd instead of a path.
 */
export async function readBounded(
  handle: FileHandle,
  opts: { maxBytes?: number; hashAll?: boolean; maxHashBytes?: number },
): Promise<{ bytes: Buffer; truncated: boolean; sha256: string | null; bytesSeen: number }> {
  const maxBytes = Math.max(0, opts.maxBytes ?? DEFAULT_MAX_READ_BYTES);
  const maxHash = Math.max(maxBytes, opts.maxHashBytes ?? DEFAULT_MAX_HASH_BYTES);
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  let keptLen = 0;
  let seen = 0;
  let eof = false;
  const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  for (;;) {
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, seen);
    if (bytesRead === 0) {
      eof = true;
      break;
    }
    const piece = chunk.subarray(0, bytesRead);
    hash.update(piece);
    seen += bytesRead;
    if (keptLen < maxBytes) {
      const take = Math.min(bytesRead, maxBytes - keptLen);
      kept.push(Buffer.from(piece.subarray(0, take)));
      keptLen += take;
    }
    if (seen > maxBytes && !opts.hashAll) break;
    if (seen > maxHash) break;
  }
  return {
    bytes: Buffer.concat(kept, keptLen),
    truncated: seen > keptLen,
    sha256: eof ? hash.digest('hex') : null,
    bytesSeen: seen,
  };
}

/** Reads a regular file inside the process's root, bounded (default 256 KiB). */
export async function readFileInRoot(procRoot: string, pid: number, pathInContainer: string, opts: ReadOptions = {}): Promise<FileRead | Refusal> {
  const opened = await openInRoot(procRoot, pid, pathInContainer, opts);
  if (!opened.ok) return opened;
  try {
    const r = await readBounded(opened.handle, opts);
    return { ok: true, ...r, stat: opened.stat, resolvedPath: opened.resolvedPath };
  } catch (err) {
    return refuse(pathInContainer, reasonForErrno(errCode(err), 'open'), `${opened.resolvedPath}: read: ${errText(err)}`);
  } finally {
    await closeQuietly(opened.handle);
  }
}

/** Stats an entry inside the process's root (any kind). With followFinal false a final symlink is reported as such. */
export async function statInRoot(procRoot: string, pid: number, pathInContainer: string, opts: StatOptions = {}): Promise<StatResult | Refusal> {
  const r = await resolveInRoot(procRoot, pid, pathInContainer, opts.followFinal ?? true, opts);
  if (!r.ok) return r;
  await closeChain(r.chain);
  return { ok: true, stat: toEntryStat(r.finalStat), resolvedPath: r.resolvedPath };
}

/**
 * Lists a directory inside the process's root. Entries are lstat'ed in place (symlinks are
 * reported, not followed), so a walker can pick files by size without another lookup.
 */
export async function listDirInRoot(procRoot: string, pid: number, dirInContainer: string, opts: ListOptions = {}): Promise<DirListing | Refusal> {
  const maxEntries = opts.maxEntries ?? 10_000;
  const selfFd = opts.selfFdDir ?? '/proc/self/fd';
  const r = await resolveInRoot(procRoot, pid, dirInContainer, true, opts);
  if (!r.ok) return r;
  let dirHandle: FileHandle | undefined;
  try {
    let dirFd: number;
    if (r.finalName === null) {
      dirFd = top(r.chain).fd;
    } else {
      if (!r.finalStat.isDirectory()) return refuse(dirInContainer, 'not-directory', `${r.resolvedPath} is a ${kindOf(r.finalStat)}`);
      try {
        dirHandle = await fsp.open(`${selfFd}/${top(r.chain).fd}/${r.finalName}`, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
      } catch (err) {
        const code = errCode(err);
        if (code === 'ELOOP' || code === 'ENOTDIR') return refuse(dirInContainer, 'symlink-escape', `${r.resolvedPath} changed while resolving`);
        return refuse(dirInContainer, reasonForErrno(code), `${r.resolvedPath}: ${code ?? errText(err)}`);
      }
      const held = await dirHandle.stat({ bigint: true });
      if (!sameIdentity(held, r.finalStat)) return refuse(dirInContainer, 'changed', `${r.resolvedPath} was replaced while resolving`);
      dirFd = dirHandle.fd;
    }
    const names: string[] = [];
    let truncated = false;
    const dir = await fsp.opendir(`${selfFd}/${dirFd}`, { bufferSize: 128 });
    // Breaking out of for-await closes the Dir.
    for await (const d of dir) {
      if (names.length >= maxEntries) {
        truncated = true;
        break;
      }
      names.push(d.name);
    }
    names.sort();
    const entries: DirEntry[] = [];
    // lstat in small parallel batches: one at a time leaves libuv's thread pool idle.
    for (let i = 0; i < names.length; i += LSTAT_BATCH) {
      const batch = await Promise.all(
        names.slice(i, i + LSTAT_BATCH).map(async (name): Promise<DirEntry | null> => {
          try {
            const st = await fsp.lstat(`${selfFd}/${dirFd}/${name}`, { bigint: true });
            return { name, kind: kindOf(st), sizeBytes: Number(st.size), mtimeMs: Number(st.mtimeNs) / 1e6 };
          } catch {
            // Removed since readdir: a temp directory churns, the rest of the listing still holds.
            return null;
          }
        }),
      );
      for (const e of batch) if (e) entries.push(e);
    }
    return { ok: true, entries, truncated, resolvedPath: r.resolvedPath };
  } catch (err) {
    return refuse(dirInContainer, reasonForErrno(errCode(err)), `${r.resolvedPath}: ${errCode(err) ?? errText(err)}`);
  } finally {
    await closeQuietly(dirHandle);
    await closeChain(r.chain);
  }
}

/**
 * Reads a file through one of a process's magic links: `exe`, or `fd/<n>` (the way to the
 * bytes of a script deleted after it started). Following these links is safe: they name the
 * open file itself, no path is resolved. Only regular files are opened.
 */
export async function readProcFileLink(
  procRoot: string,
  pid: number,
  link: string,
  opts: { maxBytes?: number; hashAll?: boolean; maxHashBytes?: number } = {},
): Promise<(Omit<FileRead, 'resolvedPath'> & { linkPath: string }) | Refusal> {
  const linkPath = `${procRoot}/${pid}/${link}`;
  if (!/^(?:exe|fd\/\d+)$/.test(link)) return refuse(linkPath, 'invalid-path', `not a file link of a process: ${link}`);
  let checked: BigIntStats;
  try {
    // stat before open: opening a device or a FIFO can have effects, so only files get opened.
    checked = await fsp.stat(linkPath, { bigint: true });
  } catch (err) {
    return refuse(linkPath, reasonForErrno(errCode(err), 'open'), `${linkPath}: ${errCode(err) ?? errText(err)}`);
  }
  if (!checked.isFile()) return refuse(linkPath, 'not-regular', `${linkPath} is a ${kindOf(checked)}`);
  let handle: FileHandle;
  try {
    handle = await fsp.open(linkPath, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (err) {
    return refuse(linkPath, reasonForErrno(errCode(err), 'open'), `${linkPath}: ${errCode(err) ?? errText(err)}`);
  }
  try {
    const st = await handle.stat({ bigint: true });
    if (!st.isFile()) return refuse(linkPath, 'not-regular', `${linkPath} is a ${kindOf(st)}`);
    if (!sameIdentity(st, checked)) return refuse(linkPath, 'changed', `${linkPath} now names another file (the fd was reused)`);
    const r = await readBounded(handle, opts);
    return { ok: true, ...r, stat: toEntryStat(st), linkPath };
  } catch (err) {
    return refuse(linkPath, reasonForErrno(errCode(err), 'open'), `${linkPath}: ${errText(err)}`);
  } finally {
    await closeQuietly(handle);
  }
}
