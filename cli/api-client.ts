// The engineers' commands talk to the collector's HTTP API: one small client with the flags they
// share (--url, --token, --ca) and errors that say what to do.
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';

export const DEFAULT_URL = 'http://127.0.0.1:7070';
/** Where `leakwatch up` leaves a token for the engineer's commands on the same machine. */
export const LOCAL_TOKEN_FILE = join('.leakwatch', 'local-token');

export interface ApiOptions {
  url: string;
  token?: string;
  ca?: string;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

export function addApiOptions(command: Command): Command {
  return command
    .option('--url <url>', 'collector URL (env LEAKWATCH_URL)', process.env.LEAKWATCH_URL ?? DEFAULT_URL)
    // No default value: commander would print it in --help, and a token must not be shown.
    .option('--token <token>', `API token (env LEAKWATCH_TOKEN; default: ${LOCAL_TOKEN_FILE} written by leakwatch up)`)
    .option('--ca <file>', 'CA certificate to trust for an https collector with a private certificate');
}

export function resolveToken(options: ApiOptions): string {
  const given = options.token ?? process.env.LEAKWATCH_TOKEN;
  if (given) return given;
  if (existsSync(LOCAL_TOKEN_FILE)) return readFileSync(LOCAL_TOKEN_FILE, 'utf8').trim();
  throw new ApiError('no token: pass --token or set LEAKWATCH_TOKEN (leakwatch up prints one at its first start)', null);
}

/** The API URL of path with the query's set values; an ApiError for a bad --url. */
export function urlOf(options: ApiOptions, path: string, query: Record<string, string | number | undefined>): URL {
  let url: URL;
  try {
    url = new URL(path, options.url);
  } catch {
    throw new ApiError(`bad --url "${options.url}": expected e.g. ${DEFAULT_URL}`, null);
  }
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
  return url;
}

/** A request that never got an answer, with a hint when nothing listens. */
export function unreachable(options: ApiOptions, err: NodeJS.ErrnoException): ApiError {
  const hint = err.code === 'ECONNREFUSED' ? ' (is the collector running? start one with `leakwatch up`)' : '';
  return new ApiError(`cannot reach the collector at ${options.url}: ${err.message}${hint}`, null);
}

/** GET a JSON document from the API; rejects with an ApiError whose message is one line to show. */
export function apiGet<T>(options: ApiOptions, path: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
  const token = resolveToken(options);
  let url: URL;
  try {
    url = urlOf(options, path, query);
  } catch (err) {
    return Promise.reject(err);
  }
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'GET',
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        timeout: 30_000,
        ...(options.ca ? { ca: readFileSync(options.ca) } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300 && body !== undefined) return resolve(body as T);
          const said = typeof body === 'object' && body !== null && 'error' in body ? String((body as { error: unknown }).error) : text.slice(0, 200);
          if (status === 401) return reject(new ApiError(`the collector rejected the token (401): check --token / LEAKWATCH_TOKEN`, status));
          if (status === 403) return reject(new ApiError(`the token lacks the scope for ${url.pathname} (403): ${said}`, status));
          reject(new ApiError(`${url.pathname}: HTTP ${status}: ${said}`, status));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out after 30 s')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(unreachable(options, err)));
    req.end();
  });
}

/** "10m", "2h", "7d" or an ISO date → epoch ms. */
export function parseSince(value: string, now = Date.now()): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(value);
  if (m) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
    return now - Number(m[1]) * unit;
  }
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new Error(`expected a duration like 30m, 2h, 7d or an ISO date, got "${value}"`);
  return t;
}
