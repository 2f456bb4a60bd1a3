// package.json sits at the repository root both when running from source (cli/) and from the
// build (dist/cli/), so it is found by walking up rather than by a fixed relative path.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: { version: string } | undefined;

function readPackage(): { version: string } {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'leakwatch' && pkg.version) return (cached = { version: pkg.version });
    }
    const parent = dirname(dir);
    if (parent === dir) return (cached = { version: '0.0.0-unknown' });
    dir = parent;
  }
}

export function packageVersion(): string {
  return readPackage().version;
}
