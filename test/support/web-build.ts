// Builds the web page once per test file into a temp directory (esbuild, ~1 s), so browser tests
// never serve a stale dist/.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function buildWebInto(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-web-'));
  const r = spawnSync(process.execPath, ['scripts/build-web.mjs', '--out', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`web build failed: ${r.stderr || r.stdout}`);
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
