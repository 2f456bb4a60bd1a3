// Where did a script come from? Searches the directories a parent can see for a file whose
// base64 (or gzip+base64) decoding, or plain bytes, equal the script: the `resources.dat`
// case, where an app decodes a file into /tmp and runs it. Bounded in files, depth and
// size; nothing decoded is ever run, only hashed and compared.

import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { listDirInRoot, readFileInRoot, type Refusal, type RefusalReason } from '../host/container-fs.js';

export type ProvenanceEncoding = 'base64' | 'gzip+base64' | 'copy';

export interface Provenance {
  /** Container-view path of the source file. */
  path: string;
  /** sha256 (hex) of the source file's own bytes, as stored: what to look for in the image. */
  sha256: string;
  encoding: ProvenanceEncoding;
  /** sha256 of the decoded bytes: equals the script's sha256. */
  decodedSha256: string;
  sizeBytes: number;
}

export interface ProvenanceLimits {
  /** Regular files looked at (listed with their size), across all directories. Default 2000. */
  maxFiles?: number;
  /** Directory levels below each search directory. Default 4. */
  maxDepth?: number;
  /** Files larger than this are never read. Default 8 MiB. */
  maxFileBytes?: number;
  /** Names read from one directory. Default 4096. */
  maxEntriesPerDir?: number;
}

export interface ProvenanceWhere {
  procRoot: string;
  /** Whose root to search: the parent's, since it is the parent that decoded the file. */
  pid: number;
  /** The parent's cwd, container view. */
  cwd: string;
  /** More directories to search after cwd (e.g. the directory of the parent's own script). */
  extraDirs?: string[];
  /** Container paths never reported (the script itself, when it lies in the searched tree). */
  excludePaths?: string[];
}

/** The script as bytes, or as its hash and size when only those are at hand (large scripts). */
export type ProvenanceTarget = Buffer | { sha256: string; sizeBytes: number };

export interface ProvenanceSearch {
  match: Provenance | null;
  /** Regular files listed (counted against maxFiles). */
  filesSeen: number;
  /** Files whose bytes were read, whole or in part. */
  filesRead: number;
  dirsSeen: number;
  /** Which bound stopped the search before it covered every directory. */
  stoppedBy: 'max-files' | null;
  /** Directories or files that could not be read, with the reason. */
  refused: Array<{ path: string; reason: RefusalReason; detail: string }>;
}

const DEFAULTS = { maxFiles: 2000, maxDepth: 4, maxFileBytes: 8 * 1024 * 1024, maxEntriesPerDir: 4096 };
/** Pseudo filesystems at the container root: sysfs files look like small text files and reading some has effects. */
const SKIP_AT_ROOT = new Set(['proc', 'sys', 'dev']);
/** Enough of a file to tell base64 text from anything else, and to see a gzip header. */
const HEAD_BYTES = 256;
const MAX_REFUSALS_KEPT = 20;

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** True when buf is base64 text in either alphabet, wrapped or not, with padding only at the end. */
export function isBase64Text(buf: Buffer, partial = false): boolean {
  let sawPad = 0;
  let chars = 0;
  for (const b of buf) {
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
    if (b === 0x3d) {
      sawPad += 1;
      if (sawPad > 2) return false;
      continue;
    }
    if (sawPad > 0) return false;
    const ok = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2b || b === 0x2f || b === 0x2d || b === 0x5f;
    if (!ok) return false;
    chars += 1;
  }
  if (partial) return chars > 0;
  return chars > 0 && (chars + sawPad) % 4 !== 1;
}

/** Decodes base64 text (whitespace ignored, standard or URL-safe alphabet); null when it is not base64. */
export function decodeBase64Text(buf: Buffer): Buffer | null {
  if (!isBase64Text(buf)) return null;
  // Node's decoder skips whitespace and accepts both alphabets.
  return Buffer.from(buf.toString('latin1'), 'base64');
}

/** Base64 text lengths that can decode to n bytes: unpadded up to padded plus line breaks. */
function base64SizeRange(n: number): [number, number] {
  const unpadded = Math.ceil((4 * n) / 3);
  const padded = 4 * Math.ceil(n / 3);
  // CRLF every 48 characters is the densest wrapping seen in the wild (76 and 64 are usual).
  return [unpadded, padded + 2 * Math.ceil(padded / 48) + 8];
}

/** Base64 text lengths that can hold a gzip stream of n bytes. */
function gzipBase64SizeRange(n: number): [number, number] {
  // deflate shrinks at most ~1032:1; gzip adds an 18-byte frame; stored blocks grow by 5 bytes per 16 KiB.
  const minCompressed = Math.floor(n / 1032) + 18;
  const maxCompressed = n + 5 * Math.ceil(n / 16383 + 1) + 18;
  return [base64SizeRange(minCompressed)[0], base64SizeRange(maxCompressed)[1]];
}

function firstNonSpace(buf: Buffer, count: number): string {
  let out = '';
  for (const b of buf) {
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
    out += String.fromCharCode(b);
    if (out.length >= count) break;
  }
  return out;
}

function gunzipBounded(buf: Buffer, expectedBytes: number): Buffer | null {
  try {
    // One byte over the script size is enough to know it does not match; also stops gzip bombs.
    return gunzipSync(buf, { maxOutputLength: Math.max(1, expectedBytes + 1) });
  } catch {
    return null;
  }
}

/**
 * Searches `cwd` (then extraDirs) breadth first for the script's source. Returns the first
 * encoded match; a plain copy is returned only when no encoded source turns up, since a copy
 * (an earlier temp file, say) says less about where the code came from.
 */
export async function searchProvenance(script: ProvenanceTarget, where: ProvenanceWhere, limits: ProvenanceLimits = {}): Promise<ProvenanceSearch> {
  const lim = { ...DEFAULTS, ...limits };
  const target = Buffer.isBuffer(script) ? { sha256: sha256(script), sizeBytes: script.length } : script;
  const n = target.sizeBytes;
  const b64Range = base64SizeRange(n);
  const gzRange = gzipBase64SizeRange(n);
  const exclude = new Set((where.excludePaths ?? []).map((p) => posix.normalize(p)));
  const result: ProvenanceSearch = { match: null, filesSeen: 0, filesRead: 0, dirsSeen: 0, stoppedBy: null, refused: [] };
  let copy: Provenance | null = null;

  const noteRefusal = (r: Refusal): void => {
    if (result.refused.length < MAX_REFUSALS_KEPT) result.refused.push({ path: r.path, reason: r.reason, detail: r.detail });
  };

  const readWhole = async (path: string, size: number): Promise<Buffer | null> => {
    result.filesRead += 1;
    const r = await readFileInRoot(where.procRoot, where.pid, path, { maxBytes: size + 1, refuseLargerThan: lim.maxFileBytes });
    if (!r.ok) {
      noteRefusal(r);
      return null;
    }
    return r.truncated ? null : r.bytes;
  };

  const examine = async (path: string, size: number): Promise<Provenance | null> => {
    if (n === 0 || size > lim.maxFileBytes || exclude.has(path)) return null;
    const copyCandidate = size === n && copy === null;
    const b64Candidate = size >= b64Range[0] && size <= b64Range[1];
    const gzCandidate = size >= gzRange[0] && size <= gzRange[1];
    if (!copyCandidate && !b64Candidate && !gzCandidate) return null;

    let bytes: Buffer | null = null;
    if (!copyCandidate && !b64Candidate) {
      // Only a gzip+base64 candidate, and the size range is wide: look at the head first.
      result.filesRead += 1;
      const head = await readFileInRoot(where.procRoot, where.pid, path, { maxBytes: HEAD_BYTES });
      if (!head.ok) {
        noteRefusal(head);
        return null;
      }
      // H4sI is base64 of the gzip magic 1f 8b 08.
      if (!isBase64Text(head.bytes, head.truncated) || firstNonSpace(head.bytes, 4) !== 'H4sI') return null;
      if (!head.truncated) bytes = head.bytes;
    }
    bytes ??= await readWhole(path, size);
    if (!bytes) return null;

    if (copyCandidate && bytes.length === n) {
      const h = sha256(bytes);
      if (h === target.sha256) copy = { path, sha256: h, encoding: 'copy', decodedSha256: h, sizeBytes: bytes.length };
    }
    const decoded = decodeBase64Text(bytes);
    if (!decoded) return null;
    if (decoded.length === n && sha256(decoded) === target.sha256) {
      return { path, sha256: sha256(bytes), encoding: 'base64', decodedSha256: target.sha256, sizeBytes: bytes.length };
    }
    if (decoded.length >= 18 && decoded[0] === 0x1f && decoded[1] === 0x8b) {
      const inflated = gunzipBounded(decoded, n);
      if (inflated && inflated.length === n && sha256(inflated) === target.sha256) {
        return { path, sha256: sha256(bytes), encoding: 'gzip+base64', decodedSha256: target.sha256, sizeBytes: bytes.length };
      }
    }
    return null;
  };

  const seenDirs = new Set<string>();
  const starts = [where.cwd, ...(where.extraDirs ?? [])].map((d) => posix.normalize(d));
  outer: for (const start of starts) {
    let level: string[] = [start];
    for (let depth = 0; depth <= lim.maxDepth && level.length > 0; depth++) {
      const next: string[] = [];
      for (const dir of level) {
        if (seenDirs.has(dir)) continue;
        seenDirs.add(dir);
        const listing = await listDirInRoot(where.procRoot, where.pid, dir, { maxEntries: lim.maxEntriesPerDir });
        if (!listing.ok) {
          noteRefusal(listing);
          continue;
        }
        result.dirsSeen += 1;
        for (const e of listing.entries) {
          const path = posix.join(listing.resolvedPath, e.name);
          if (e.kind === 'dir') {
            if (!(listing.resolvedPath === '/' && SKIP_AT_ROOT.has(e.name))) next.push(path);
            continue;
          }
          // Symlinks are not followed: a link's target is either in the tree already or elsewhere.
          if (e.kind !== 'file') continue;
          if (result.filesSeen >= lim.maxFiles) {
            result.stoppedBy = 'max-files';
            break outer;
          }
          result.filesSeen += 1;
          const m = await examine(path, e.sizeBytes);
          if (m) {
            result.match = m;
            return result;
          }
        }
      }
      level = next;
    }
  }
  result.match = copy;
  return result;
}

/** The source of the script, or null. See searchProvenance for the counts behind a null. */
export async function findProvenance(script: ProvenanceTarget, where: ProvenanceWhere, limits: ProvenanceLimits = {}): Promise<Provenance | null> {
  return (await searchProvenance(script, where, limits)).match;
}
