// The two API calls that are not a plain GET of JSON: a POST with a JSON body (take a snapshot,
// which may wait minutes), and a streamed download with its sha256 computed on the way (never the
// whole snapshot in memory). Same flags and errors as api-client.ts.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Writable } from 'node:stream';
import { ApiError, resolveToken, unreachable, urlOf, type ApiOptions } from './api-client.js';

function failure(url: URL, status: number, text: string): ApiError {
  let said = text.slice(0, 200);
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    said = typeof body.message === 'string' ? body.message : String(body.error);
  } catch {
    // not JSON
  }
  if (status === 401) return new ApiError('the collector rejected the token (401): check --token / LEAKWATCH_TOKEN', status);
  if (status === 403) return new ApiError(`the token lacks the scope for ${url.pathname} (403): ${said}`, status);
  return new ApiError(`${url.pathname}: HTTP ${status}: ${said}`, status);
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

/**
 * POST a JSON body; resolves with the JSON answer when the status is 2xx or one of `accept`
 * (statuses whose body the command shows itself, e.g. 504 with a captureId).
 */
export function apiPost<T>(options: ApiOptions, path: string, body: unknown, opts: { query?: Record<string, string | number | undefined>; timeoutMs: number; accept?: number[] }): Promise<{ status: number; body: T }> {
  const token = resolveToken(options);
  const url = urlOf(options, path, opts.query ?? {});
  const payload = JSON.stringify(body);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: opts.timeoutMs,
        ...(options.ca ? { ca: readFileSync(options.ca) } : {}),
      },
      (res) => {
        readAll(res).then((text) => {
          const status = res.statusCode ?? 0;
          if ((status >= 200 && status < 300) || opts.accept?.includes(status)) {
            try {
              resolve({ status, body: JSON.parse(text) as T });
              return;
            } catch {
              // fall through: not JSON
            }
          }
          reject(failure(url, status, text));
        }, reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${Math.round(opts.timeoutMs / 1000)} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(unreachable(options, err)));
    req.end(payload);
  });
}

export interface DownloadResult {
  bytes: number;
  sha256: string;
  /** What the collector said the bytes hash to (X-Content-SHA256). */
  declaredSha256: string | null;
  declaredBytes: number | null;
  /** From the attachment's file name: heapsnapshot, heapprofile or null. */
  kind: 'heapsnapshot' | 'heapprofile' | null;
}

/** GET a file into `out`, hashing as it goes; `progress` sees (received, total). */
export function apiDownload(options: ApiOptions, path: string, out: Writable, progress?: (received: number, total: number | null) => void): Promise<DownloadResult> {
  const token = resolveToken(options);
  const url = urlOf(options, path, {});
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'GET',
        headers: { authorization: `Bearer ${token}`, accept: 'application/octet-stream' },
        // Idle time between bytes, not the whole download: a large snapshot takes as long as it takes.
        timeout: 60_000,
        ...(options.ca ? { ca: readFileSync(options.ca) } : {}),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          readAll(res).then((text) => reject(failure(url, status, text)), reject);
          return;
        }
        const declaredSha = res.headers['x-content-sha256'];
        const disposition = res.headers['content-disposition'] ?? '';
        const kind = /\.heapsnapshot"?$/.test(disposition) ? 'heapsnapshot' : /\.heapprofile"?$/.test(disposition) ? 'heapprofile' : null;
        const length = res.headers['content-length'];
        const total = length !== undefined && /^\d+$/.test(length) ? Number(length) : null;
        const hash = createHash('sha256');
        let received = 0;
        res.on('data', (c: Buffer) => {
          hash.update(c);
          received += c.length;
          progress?.(received, total);
        });
        res.on('aborted', () => reject(new ApiError(`the download of ${url.pathname} broke off after ${received} bytes`, null)));
        res.on('error', reject);
        out.on('error', (err) => {
          res.destroy();
          reject(err);
        });
        out.on('finish', () =>
          resolve({ bytes: received, sha256: hash.digest('hex'), declaredSha256: typeof declaredSha === 'string' ? declaredSha : null, declaredBytes: total, kind }),
        );
        res.pipe(out);
      },
    );
    req.on('timeout', () => req.destroy(new Error('the collector stopped sending for 60 s')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof ApiError ? err : unreachable(options, err)));
    req.end();
  });
}
