// The web page's built files (npm run build → dist/server/web), served by the collector at `/`.
// Files are read once at start into a map keyed by name: a request can only ever name an entry
// of that map, so no path from a request reaches the filesystem (no traversal, no symlinks).
// Assets carry a content hash in their name and are cached for a year; the page itself is
// revalidated every time so a new build is picked up. Its Content-Security-Policy allows only
// scripts and styles from the collector itself: no inline script, nothing from the internet.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Reply, Route } from './api.js';

export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

/** The built page next to this module (dist/server/web), or the one a source checkout built. */
export function defaultWebRoot(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'web'), join(here, '..', 'dist', 'server', 'web')];
  return candidates.find((dir) => existsSync(join(dir, 'index.html'))) ?? null;
}

function load(path: string): StaticFile {
  const body = readFileSync(path);
  return { body, type: TYPES[extname(path)] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"` };
}

/** Routes for `/` and `/assets/<name>`; without a built page `/` says how to build it. */
export function webRoutes(root: string | null): Route[] {
  const index = root && existsSync(join(root, 'index.html')) ? load(join(root, 'index.html')) : null;
  const assets = new Map<string, StaticFile>();
  const assetDir = root ? join(root, 'assets') : null;
  if (index && assetDir && existsSync(assetDir)) {
    for (const name of readdirSync(assetDir)) {
      const path = join(assetDir, name);
      // lstat: a symlink planted in the build output is not followed out of it.
      if (ASSET_NAME.test(name) && lstatSync(path).isFile()) assets.set(basename(name), load(path));
    }
  }
  const serve = (file: StaticFile, ifNoneMatch: string | undefined, cache: string): Reply => {
    const headers = { 'Cache-Control': cache, ETag: file.etag, 'Content-Security-Policy': PAGE_CSP };
    if (ifNoneMatch === file.etag) return { status: 304, text: '', contentType: file.type, headers };
    return { status: 200, text: file.body, contentType: file.type, headers };
  };
  return [
    {
      method: 'GET',
      path: '/',
      scope: null,
      handle: ({ req }) => {
        if (!index) {
          return { status: 503, text: 'The web page is not built: run `npm run build` and restart the collector.\n', contentType: 'text/plain; charset=utf-8' };
        }
        // no-cache: the browser may keep it but asks every time (the ETag makes that cheap).
        return serve(index, req.headers['if-none-match'], 'no-cache');
      },
    },
    {
      method: 'GET',
      path: '/assets/:name',
      scope: null,
      handle: ({ req, params }) => {
        const name = params.name ?? '';
        const file = ASSET_NAME.test(name) ? assets.get(name) : undefined;
        if (!file) return { status: 404, json: { error: 'not-found', message: 'no such asset' } };
        return serve(file, req.headers['if-none-match'], 'public, max-age=31536000, immutable');
      },
    },
  ];
}
