import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseByteSize, parseDurationMs, parseListen } from '../../../cli/commands/collector.js';
import { hashToken } from '../../../server/auth.js';
import { httpGet } from '../../support/collector-harness.js';
import { missingBinary, promtoolCheckMetrics } from '../../support/promtool.js';

const child = fileURLToPath(new URL('../../support/collector-child.ts', import.meta.url));

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', child, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'leakwatch-cli-collector-'));
}

describe('leakwatch tokens create', () => {
  it('prints the token once on stdout and stores only its sha256', () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'tokens.json');
      const r = run(['tokens', 'create', '--name', 'ci-agent', '--scopes', 'agent,read', '--tokens-file', file]);
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.split('\n').filter(Boolean);
      assert.equal(lines.length, 1);
      const token = lines[0]!;
      assert.match(token, /^lw_[A-Za-z0-9_-]{43}$/);
      assert.ok(!r.stderr.includes(token));
      const text = readFileSync(file, 'utf8');
      assert.ok(!text.includes(token));
      assert.deepEqual(JSON.parse(text), [{ name: 'ci-agent', sha256: hashToken(token), scopes: ['agent', 'read'] }]);
      // The data dir's default file, through the environment.
      const viaEnv = run(['tokens', 'create', '--name', 'alice', '--scopes', 'read'], { LEAKWATCH_DATA_DIR: dir, LEAKWATCH_TOKENS_FILE: '' });
      assert.equal(viaEnv.status, 0, viaEnv.stderr);
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).length, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses unknown scopes and duplicate names with one line and a non-zero exit', () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'tokens.json');
      const bad = run(['tokens', 'create', '--name', 'x', '--scopes', 'agent,root', '--tokens-file', file]);
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /unknown scope "root"/);
      assert.equal(bad.stdout, '');
      assert.equal(run(['tokens', 'create', '--name', 'x', '--scopes', 'read', '--tokens-file', file]).status, 0);
      const dup = run(['tokens', 'create', '--name', 'x', '--scopes', 'read', '--tokens-file', file]);
      assert.equal(dup.status, 1);
      assert.equal(dup.stderr.trim().split('\n').length, 1);
      assert.match(dup.stderr, /already exists/);
      assert.equal(dup.stdout, '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('leakwatch collector', () => {
  it('without a tokens file says in one line how to make one and exits 2', () => {
    const dir = tempDir();
    try {
      const r = run(['collector', '--data-dir', dir, '--listen', '127.0.0.1:0'], { LEAKWATCH_TOKENS_FILE: '' });
      assert.equal(r.status, 2);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /no tokens file at .*tokens\.json; create one with: leakwatch tokens create --name/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad flags with one line', () => {
    const dir = tempDir();
    try {
      const cases: Array<[string[], NodeJS.ProcessEnv, RegExp, number]> = [
        [['--listen', 'localhost'], {}, /expected host:port/, 1],
        [['--listen', '127.0.0.1:70000'], {}, /expected host:port/, 1],
        [['--max-payload', '12 parsecs'], {}, /expected a size/, 1],
        [['--ingest-budget', '0'], {}, /--ingest-budget .*expected a size/, 1],
        [['--retention-age', 'forever'], {}, /expected a duration/, 1],
        [['--tls-cert', join(dir, 'c.pem')], {}, /--tls-cert and --tls-key go together/, 2],
        [[], { LEAKWATCH_LISTEN: 'nonsense' }, /LEAKWATCH_LISTEN: expected host:port/, 2],
      ];
      for (const [args, env, pattern, status] of cases) {
        const r = run(['collector', '--data-dir', dir, ...args], env);
        assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, pattern);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts from the environment, applies retention at start, refuses a second collector on the same data dir', async (t) => {
    const dir = tempDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const env = { LEAKWATCH_DATA_DIR: join(dir, 'data'), LEAKWATCH_TOKENS_FILE: join(dir, 'tokens.json'), LEAKWATCH_LISTEN: '127.0.0.1:0' };
    assert.equal(run(['tokens', 'create', '--name', 'r', '--scopes', 'read'], env).status, 0);
    const { url, stderr } = await startCollectorChild(t, env);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await httpGet(url, '/readyz', null)).status, 200);
    const lines = stderr().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l.msg === 'retention applied' && l.maxAgeMs === 7 * 86_400_000));
    assert.ok(lines.every((l) => typeof l.level === 'string' && typeof l.at === 'number'));

    const second = run(['collector'], env);
    assert.equal(second.status, 1);
    assert.equal(second.stderr.trim().split('\n').length, 1, second.stderr);
    assert.match(second.stderr, /in use by another collector/);
  });

  it('serves /metrics without a token, and promtool accepts it', async (t) => {
    const missing = missingBinary('promtool');
    if (missing) {
      t.skip(missing);
      return;
    }
    const dir = tempDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const env = { LEAKWATCH_DATA_DIR: join(dir, 'data'), LEAKWATCH_TOKENS_FILE: join(dir, 'tokens.json'), LEAKWATCH_LISTEN: '127.0.0.1:0' };
    assert.equal(run(['tokens', 'create', '--name', 'r', '--scopes', 'read'], env).status, 0);
    const { url } = await startCollectorChild(t, env, ['--ingest-budget', '1MiB']);
    assert.equal((await httpGet(url, '/api/v1/agents', null)).status, 401);
    const r = await httpGet(url, '/metrics', null);
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    // The collector's own series, with what just happened counted.
    assert.match(r.body, /^leakwatch_collector_agents_connected 0$/m);
    assert.match(r.body, /^leakwatch_collector_http_requests_total\{route="\/api\/v1\/agents",code="401"\} 1$/m);
    assert.match(r.body, /^leakwatch_collector_process_resident_memory_bytes \d+/m);
    assert.match(r.body, /^leakwatch_collector_ingest_budget_bytes 1048576$/m);
    const check = promtoolCheckMetrics(r.body);
    assert.ok(check.ok, check.output);
  });
});

/** `leakwatch collector` as a child process; resolves with its URL once it logged that it listens. Stopped with SIGTERM after the test. */
async function startCollectorChild(t: TestContext, env: NodeJS.ProcessEnv, args: string[] = []): Promise<{ url: string; stderr: () => string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, 'collector', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    proc.kill('SIGTERM');
    await exited;
  });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the collector did not start: ${stderr}`)), 20_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the collector exited (${code}): ${stderr}`));
    });
    proc.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      const m = /"msg":"collector listening".*?"url":"([^"]+)"/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  return { url, stderr: () => stderr };
}

describe('collector flag parsers', () => {
  it('parse addresses, durations and sizes', () => {
    assert.deepEqual(parseListen('127.0.0.1:7070'), { host: '127.0.0.1', port: 7070 });
    assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseListen('0.0.0.0:443'), { host: '0.0.0.0', port: 443 });
    assert.throws(() => parseListen(':7070'));
    assert.equal(parseDurationMs('7d'), 7 * 86_400_000);
    assert.equal(parseDurationMs('90m'), 5_400_000);
    assert.equal(parseDurationMs('1.5h'), 5_400_000);
    assert.throws(() => parseDurationMs('0s'));
    assert.throws(() => parseDurationMs('7'));
    assert.equal(parseByteSize('10GiB'), 10 * 1024 ** 3);
    assert.equal(parseByteSize('500MB'), 500_000_000);
    assert.equal(parseByteSize('16777216'), 16 * 1024 * 1024);
    assert.throws(() => parseByteSize('-1'));
    assert.throws(() => parseByteSize('5 bananas'));
  });
});
