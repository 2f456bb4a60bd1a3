// Where a test may put files that must not look like "a world-writable place", and whether an
// unprivileged user can run code from this checkout (CI may clone into a private /tmp dir).
import { spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const worldWritable = ['/tmp', '/var/tmp', '/dev/shm'];

/** A parent directory for an "app directory": inside the checkout, unless the checkout is under /tmp. */
export function privateArtifactsDir(): string {
  const underTmp = worldWritable.some((d) => repoRoot === d || repoRoot.startsWith(`${d}/`));
  return underTmp ? join(homedir(), '.leakwatch-test-artifacts') : join(repoRoot, 'test-artifacts');
}

/** Null when uid 65534 can read this checkout; else why not (a reason for a SKIP line). */
export function unreadableByNobody(): string | null {
  const r = spawnSync('/bin/sh', ['-c', 'test -r "$0/package.json" && test -x "$0/node_modules"', repoRoot], { uid: 65534, gid: 65534 });
  return r.status === 0 ? null : `uid 65534 cannot read this checkout (${repoRoot} or a parent is private)`;
}
