// Bearer tokens with scopes. The tokens file holds each token's sha256, never the token, so a
// copy of the file (backups, a debug bundle) grants nothing. Presented tokens are hashed and the
// digests compared in constant time against every entry, so neither the match nor its position
// leaks through timing. Tokens are read from the Authorization header only: a token in a URL
// ends up in proxy logs, shell history and Referer headers.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export const SCOPES = ['agent', 'read', 'snapshots', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** A tokens file entry as stored: the secret itself is never kept. */
export interface TokenEntry {
  name: string;
  /** Lowercase hex sha256 of the token's UTF-8 bytes. */
  sha256: string;
  scopes: Scope[];
}

export interface Identity {
  /** The token's name: what logs and the audit log call the actor. */
  name: string;
  scopes: Scope[];
}

export interface TokenAuth {
  /** The Authorization header's value (`Bearer <token>`) → who it is, or null. */
  authenticate(headerValue: string | undefined): Identity | null;
}

const TOKEN_PREFIX = 'lw_';
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Longer than any token we issue by far; refusing early keeps hashing attacker input cheap. */
const MAX_TOKEN_CHARS = 512;

/** 32 random bytes, base64url, prefixed so a leaked one is recognisable by secret scanners. */
export function generateToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function hasScope(identity: Identity, scope: Scope): boolean {
  return identity.scopes.includes('admin') || identity.scopes.includes(scope);
}

/** "agent,read" → ['agent','read']; an unknown scope is an error naming the valid ones. */
export function parseScopes(text: string): Scope[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new Error(`expected one or more scopes of ${SCOPES.join(', ')}`);
  for (const p of parts) {
    if (!(SCOPES as readonly string[]).includes(p)) throw new Error(`unknown scope "${p}" (expected ${SCOPES.join(', ')})`);
  }
  return [...new Set(parts as Scope[])];
}

/** The token of an `Authorization: Bearer <token>` header, or null when there is none. */
export function bearerToken(headerValue: string | undefined): string | null {
  if (!headerValue) return null;
  const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(headerValue);
  if (!m || m[1]!.length > MAX_TOKEN_CHARS) return null;
  return m[1]!;
}

export function createTokenAuth(entries: readonly TokenEntry[]): TokenAuth {
  const digests = entries.map((e) => ({ digest: Buffer.from(e.sha256, 'hex'), identity: { name: e.name, scopes: [...e.scopes] } }));
  return {
    authenticate(headerValue) {
      const token = bearerToken(headerValue);
      if (token === null) return null;
      const presented = createHash('sha256').update(token, 'utf8').digest();
      let found: Identity | null = null;
      // Compare against every entry without stopping at the first match.
      for (const d of digests) {
        if (timingSafeEqual(presented, d.digest) && found === null) found = d.identity;
      }
      return found ? { name: found.name, scopes: [...found.scopes] } : null;
    },
  };
}

/**
 * Read a tokens file: a JSON array of `{name, sha256, scopes}`. Entries with a plaintext
 * `token` instead of `sha256` are accepted (hashed on load) with a warning. Any other problem
 * is an error naming the file and the entry, because starting with fewer tokens than the
 * operator wrote would lock agents out silently.
 */
export function loadTokensFile(path: string, options: { warn?: (msg: string) => void } = {}): TokenEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `tokens file ${path} does not exist` : `cannot read tokens file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`tokens file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return parseTokenEntries(parsed, path, options.warn);
}

export function parseTokenEntries(parsed: unknown, source: string, warn?: (msg: string) => void): TokenEntry[] {
  if (!Array.isArray(parsed)) throw new Error(`tokens file ${source}: expected a JSON array of {name, sha256, scopes}`);
  const names = new Set<string>();
  return parsed.map((raw: unknown, i): TokenEntry => {
    const where = `tokens file ${source} entry ${i}`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where}: expected an object`);
    const e = raw as Record<string, unknown>;
    if (typeof e.name !== 'string' || !NAME_PATTERN.test(e.name)) {
      throw new Error(`${where}: name must be 1-64 characters of letters, digits, '.', '_' or '-'`);
    }
    if (names.has(e.name)) throw new Error(`${where}: duplicate name "${e.name}"`);
    names.add(e.name);
    if (!Array.isArray(e.scopes) || e.scopes.some((s) => typeof s !== 'string')) throw new Error(`${where} (${e.name}): scopes must be an array of strings`);
    let scopes: Scope[];
    try {
      scopes = parseScopes((e.scopes as string[]).join(','));
    } catch (err) {
      throw new Error(`${where} (${e.name}): ${(err as Error).message}`);
    }
    let sha256: string;
    if (typeof e.sha256 === 'string') {
      sha256 = e.sha256.toLowerCase();
      if (!SHA256_HEX.test(sha256)) throw new Error(`${where} (${e.name}): sha256 must be 64 hex digits`);
      if (e.token !== undefined) throw new Error(`${where} (${e.name}): has both sha256 and token; keep only sha256`);
    } else if (typeof e.token === 'string' && e.token.length > 0) {
      if (e.token.length > MAX_TOKEN_CHARS || /\s/.test(e.token)) throw new Error(`${where} (${e.name}): token must be 1-${MAX_TOKEN_CHARS} characters without spaces`);
      sha256 = hashToken(e.token);
      warn?.(`tokens file ${source}: entry "${e.name}" holds a plaintext token; store {"sha256": ...} instead (leakwatch tokens create does)`);
    } else {
      throw new Error(`${where} (${e.name}): needs sha256 (hex of the token's sha256)`);
    }
    return { name: e.name, sha256, scopes };
  });
}

/**
 * Create a token, append its entry to the tokens file (created 0600 when missing) and return the
 * token: the only time it exists outside the caller. The file is replaced atomically so a crash
 * never leaves half a file that would lock every agent out.
 */
export function createTokenInFile(path: string, name: string, scopes: Scope[], options: { warn?: (msg: string) => void } = {}): { token: string; entry: TokenEntry } {
  if (!NAME_PATTERN.test(name)) throw new Error(`token name must be 1-64 characters of letters, digits, '.', '_' or '-'`);
  if (scopes.length === 0) throw new Error('a token needs at least one scope');
  const existing = existsSync(path) ? loadTokensFile(path, options) : [];
  if (existing.some((e) => e.name === name)) throw new Error(`a token named "${name}" already exists in ${path}`);
  const token = generateToken();
  const entry: TokenEntry = { name, sha256: hashToken(token), scopes: [...scopes] };
  writeTokensFile(path, [...existing, entry]);
  return { token, entry };
}

export function writeTokensFile(path: string, entries: readonly TokenEntry[]): void {
  if (path.length === 0) throw new Error('no tokens file path given');
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const part = `${path}.${process.pid}.part`;
  try {
    const fd = openSync(part, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(entries, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(part, path);
  } catch (err) {
    rmSync(part, { force: true });
    throw new Error(`cannot write tokens file ${path}: ${(err as Error).message}`);
  }
}
