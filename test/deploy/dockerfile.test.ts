// The Dockerfile, tested where no container engine runs: its shape is checked, then the build
// stage's RUN steps (npm ci, npm run build, npm prune) run on a copy of the build context
// (filtered by .dockerignore) with the stage's ENV, the runtime stage's COPY --from=build files
// are laid out as the image would hold them, and the CLI and a real collector run from there.
// Where an engine does run, `docker build` is tried as well.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, describe, it } from 'node:test';
import { repoRoot } from '../support/cli.js';
import { copyArgs, copyContext, dockerignore, envPairs, parseDockerfile, type Stage } from '../support/dockerfile.js';
import { find, loadManifest, podSpec } from '../support/manifest.js';
import { freePort } from '../support/net.js';

const stages = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
const build = stages.find((s) => s.name === 'build');
const runtime = stages[stages.length - 1]!;
const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
const workdir = (stage: Stage) => of(stage, 'WORKDIR').at(-1)?.text ?? '/';
const isApt = (cmd: string) => /\bapt-get\b/.test(cmd);
/** The steps that make node_modules (install, then the install scripts): slow, so cached here. */
const isDependencyStep = (cmd: string) => /^npm (ci|rebuild)\b/.test(cmd);

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LEAKWATCH_') && !k.startsWith('npm_')) env[k] = v;
  return { ...env, ...extra };
}

function engineUnavailable(): string | null {
  const r = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 15_000 });
  if (r.error) return `no docker client (${r.error.message})`;
  if (r.status !== 0) return `no container engine: docker info says "${(r.stderr || r.stdout).trim().split('\n').pop()}"`;
  return null;
}

describe('Dockerfile shape', () => {
  it('two stages on the Node.js 24 Debian slim image; the build one compiles, the runtime one does not', () => {
    assert.ok(build, 'a stage named build');
    assert.equal(stages.length, 2);
    assert.equal(build.from, 'node:24-slim');
    assert.equal(runtime.from, 'node:24-slim');
    const buildRuns = of(build, 'RUN').map((i) => i.text).join('\n');
    for (const pkg of ['python3', 'make', 'g++']) assert.match(buildRuns, new RegExp(`apt-get install[^\\n]*\\s${pkg.replace('+', '\\+')}(\\s|$)`), `build installs ${pkg}`);
    for (const step of ['npm ci', 'npm rebuild', 'npm run build', 'npm prune --omit=dev']) assert.ok(buildRuns.includes(step), `build runs ${step}`);
    const env = Object.assign({}, ...of(build, 'ENV').map(envPairs)) as Record<string, string>;
    assert.equal(env.PUPPETEER_SKIP_DOWNLOAD, '1');
    assert.equal(env.npm_config_build_from_source, 'true');
    const runtimeRuns = of(runtime, 'RUN').map((i) => i.text).join('\n');
    assert.doesNotMatch(runtimeRuns, /\b(g\+\+|make|python3|npm (ci|install))\b/, 'no toolchain and no install in the runtime image');
    for (const pkg of ['tini', 'util-linux']) assert.match(runtimeRuns, new RegExp(`apt-get install[^\\n]*\\s${pkg}(\\s|$)`), `runtime installs ${pkg}`);
  });

  it('runs as a non-root user by default, under tini, with a HEALTHCHECK that ships in the image', () => {
    const user = of(runtime, 'USER').at(-1)?.text ?? '0';
    assert.match(user, /^[1-9]\d*(:\d+)?$/, 'a numeric non-root user (runAsNonRoot can verify it)');
    const collectorPod = podSpec(find(loadManifest(), 'Deployment', 'leakwatch-collector'));
    assert.equal(Number(user.split(':')[0]), collectorPod.securityContext?.runAsUser, "the image's user is the collector pod's");
    const entrypoint = of(runtime, 'ENTRYPOINT').at(-1)?.json;
    assert.deepEqual(entrypoint, ['/usr/bin/tini', '-s', '--', 'node', '/app/dist/cli/main.js']);
    const health = of(runtime, 'HEALTHCHECK').at(-1);
    assert.ok(health, 'HEALTHCHECK');
    const script = /CMD \["node", "([^"]+)"\]/.exec(health.text)?.[1];
    assert.ok(script, health.text);
    const copied = of(runtime, 'COPY').map(copyArgs).map((c) => posix.resolve(workdir(runtime), c.dest));
    assert.ok(copied.includes(script), `${script} is copied into the image`);
  });

  it("the agent DaemonSet's command uses what the image holds", () => {
    const agent = podSpec(find(loadManifest(), 'DaemonSet', 'leakwatch-agent')).containers[0]!;
    const entrypoint = of(runtime, 'ENTRYPOINT').at(-1)!.json!;
    // Same init and CLI as the image's entrypoint, with nsenter (util-linux) between them.
    assert.deepEqual(agent.command!.slice(0, 3), entrypoint.slice(0, 3));
    assert.deepEqual(agent.command!.slice(-2), entrypoint.slice(-2));
    assert.ok(agent.command!.includes('/usr/bin/nsenter'));
  });

  it('.dockerignore keeps the host node_modules and dist out of the context', () => {
    const ignored = dockerignore(readFileSync(join(repoRoot, '.dockerignore'), 'utf8'));
    for (const p of ['node_modules', 'node_modules/ws/index.js', 'dist/cli/main.js', '.git/HEAD']) assert.ok(ignored(p), p);
    for (const p of ['package.json', 'package-lock.json', 'cli/main.ts', 'scripts/healthcheck.mjs', 'demo/workloads', 'test/support/fake-node.ts']) assert.ok(!ignored(p), p);
    // Only the top-level node_modules, as Docker matches: a fixture named so elsewhere stays.
    assert.ok(!ignored('test/fixtures/node_modules'));
  });
});

describe('Dockerfile steps', () => {
  const engine = engineUnavailable();
  const work = mkdtempSync(join(tmpdir(), 'leakwatch-docker-steps-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  it('docker build', { skip: engine ? `SKIP: ${engine}; the build stage's steps run below instead` : false, timeout: 1_200_000 }, () => {
    const r = spawnSync('docker', ['build', '-t', 'leakwatch:test', '.'], { cwd: repoRoot, encoding: 'utf8', timeout: 1_200_000 });
    assert.equal(r.status, 0, r.stderr.slice(-3000));
  });

  it("the build stage's RUN steps on a copy of the context, then the CLI and a collector from the runtime stage's files", { timeout: 900_000 }, async (t) => {
    assert.ok(build);
    const tools = ['python3', 'make', 'g++'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
    if (tools.length > 0) {
      t.skip(`SKIP: no ${tools.join(', ')} here (the build stage installs them with apt-get)`);
      return;
    }
    // The build context as Docker sends it, and the stage's WORKDIR, filled by its COPY lines in order.
    const buildContext = join(work, 'context');
    const files = copyContext(repoRoot, buildContext, dockerignore(readFileSync(join(repoRoot, '.dockerignore'), 'utf8')));
    t.diagnostic(`context: ${files} files`);
    assert.ok(!existsSync(join(buildContext, 'node_modules')) && !existsSync(join(buildContext, 'dist')));
    const context = join(work, 'src');
    mkdirSync(context);

    const env = cleanEnv(Object.assign({}, ...of(build, 'ENV').map(envPairs)) as Record<string, string>);
    // `npm ci` + `npm rebuild` compile the native addons: 1.5 to 4 minutes on this 2-CPU machine.
    // Their result is kept (keyed by lockfile, Dockerfile build steps, Node version) under this
    // checkout's node_modules/.cache, so a developer's later runs skip it; CI starts from a
    // clean clone and always runs it. LEAKWATCH_DOCKER_STEPS_FULL=1 forces it.
    const key = createHash('sha256')
      .update(readFileSync(join(repoRoot, 'package-lock.json')))
      .update(JSON.stringify(build.instructions))
      .update(`${process.version} ${process.arch}`)
      .digest('hex')
      .slice(0, 16);
    const cached = join(repoRoot, 'node_modules/.cache/leakwatch-docker-steps', key, 'node_modules');
    const useCache = existsSync(cached) && process.env.LEAKWATCH_DOCKER_STEPS_FULL !== '1';
    const lastDependencyStep = of(build, 'RUN').filter((r) => isDependencyStep(r.text)).at(-1);
    for (const run of build.instructions.filter((i) => i.keyword === 'RUN' || i.keyword === 'COPY')) {
      if (run.keyword === 'COPY') {
        const copy = copyArgs(run);
        assert.equal(copy.from, null, `build stage line ${run.line} copies from the context`);
        const dest = join(context, posix.relative(workdir(build), posix.resolve(workdir(build), copy.dest)));
        for (const src of copy.sources) {
          if (src === '.') cpSync(buildContext, dest, { recursive: true, verbatimSymlinks: true });
          else cpSync(join(buildContext, src), copy.dest.endsWith('/') ? join(dest, posix.basename(src)) : dest, { recursive: true, verbatimSymlinks: true });
        }
        continue;
      }
      // apt-get is the image's package manager; here the same tools were checked above.
      if (isApt(run.text)) continue;
      if (isDependencyStep(run.text) && useCache) {
        if (!existsSync(join(context, 'node_modules'))) cpSync(cached, join(context, 'node_modules'), { recursive: true, verbatimSymlinks: true });
        t.diagnostic(`SKIP part: RUN ${run.text}: node_modules from an earlier run of the same lockfile, build steps and Node (${cached}); LEAKWATCH_DOCKER_STEPS_FULL=1 runs it`);
        continue;
      }
      const started = Date.now();
      const r = spawnSync('/bin/sh', ['-c', run.text], { cwd: context, env, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
      t.diagnostic(`RUN ${run.text}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      assert.equal(r.status, 0, `Dockerfile line ${run.line}: RUN ${run.text}\n${(r.stderr || '').slice(-3000)}`);
      if (run === lastDependencyStep) {
        // One entry only: an older lockfile's copy is of no further use.
        rmSync(join(cached, '..', '..'), { recursive: true, force: true });
        cpSync(join(context, 'node_modules'), cached, { recursive: true, verbatimSymlinks: true });
      }
    }
    // Pruned: no dev dependencies left, the native addon built.
    assert.ok(!existsSync(join(context, 'node_modules/typescript')), 'typescript pruned');
    assert.ok(!existsSync(join(context, 'node_modules/tsx')), 'tsx pruned');
    assert.ok(existsSync(join(context, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')), 'better-sqlite3 compiled');

    // The runtime stage's files, where the image has them (WORKDIR /app → a temp dir).
    const image = join(work, 'app');
    const runtimeDir = workdir(runtime);
    for (const copy of of(runtime, 'COPY').map(copyArgs)) {
      assert.equal(copy.from, build.name, `runtime COPY takes from the build stage: ${copy.sources.join(' ')}`);
      for (const src of copy.sources) {
        const from = join(context, posix.relative(workdir(build), posix.resolve(workdir(build), src)));
        const to = join(image, posix.relative(runtimeDir, posix.resolve(runtimeDir, copy.dest)));
        mkdirSync(join(to, '..'), { recursive: true });
        cpSync(from, to, { recursive: true, verbatimSymlinks: true });
      }
    }
    const main = join(image, posix.relative(runtimeDir, '/app/dist/cli/main.js'));
    const cli = (args: string[]) => spawnSync(process.execPath, [main, ...args], { cwd: '/', env: cleanEnv({ NODE_ENV: 'production' }), encoding: 'utf8', timeout: 30_000 });
    const version = cli(['--version']);
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version);
    const agentHelp = cli(['agent', '--help']);
    assert.equal(agentHelp.status, 0, agentHelp.stderr);
    for (const flag of ['--proc-root', '--cgroup-root', '--pod-log-root', '--kmsg', '--collector', '--token-file', '--spool-dir', '--metrics-listen']) assert.ok(agentHelp.stdout.includes(flag), `agent --help lists ${flag}`);
    const collectorHelp = cli(['collector', '--help']);
    assert.equal(collectorHelp.status, 0, collectorHelp.stderr);
    for (const flag of ['--listen', '--data-dir', '--tokens-file', '--retention-bytes']) assert.ok(collectorHelp.stdout.includes(flag), `collector --help lists ${flag}`);

    // A collector from the image's files, with its default command (SQLite addon loaded for real).
    const tokensFile = join(work, 'tokens.json');
    const token = cli(['tokens', 'create', '--name', 'probe', '--scopes', 'read', '--tokens-file', tokensFile]);
    assert.equal(token.status, 0, token.stderr);
    const cmd = of(runtime, 'CMD').at(-1)!.json!;
    assert.equal(cmd[0], 'collector');
    const port = await freePort();
    const args = cmd.map((a) => (a.startsWith('--listen=') ? `--listen=127.0.0.1:${port}` : a.startsWith('--data-dir=') ? `--data-dir=${join(work, 'data')}` : a));
    const collector = spawn(process.execPath, [main, ...args, '--tokens-file', tokensFile], { cwd: '/', env: cleanEnv({ NODE_ENV: 'production' }), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    collector.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => collector.on('exit', (code) => resolve(code)));
    try {
      const health = join(image, 'scripts/healthcheck.mjs');
      const deadline = Date.now() + 20_000;
      let check = spawnSync(process.execPath, [health], { env: cleanEnv({ LEAKWATCH_HEALTHCHECK_URL: `http://127.0.0.1:${port}/healthz` }), encoding: 'utf8' });
      while (check.status !== 0 && Date.now() < deadline && collector.exitCode === null) {
        await new Promise((r) => setTimeout(r, 300));
        check = spawnSync(process.execPath, [health], { env: cleanEnv({ LEAKWATCH_HEALTHCHECK_URL: `http://127.0.0.1:${port}/healthz` }), encoding: 'utf8' });
      }
      assert.equal(check.status, 0, `${check.stderr}\ncollector: ${stderr.slice(-2000)}`);
      collector.kill('SIGTERM');
      assert.equal(await exited, 0, stderr.slice(-2000));
    } finally {
      if (collector.exitCode === null) collector.kill('SIGKILL');
    }
  });
});
