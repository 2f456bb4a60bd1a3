// `leakwatch agent` as the DaemonSet runs it: a child process with the real parser, real signals,
// a collector peer on loopback, and one-line errors for a configuration that cannot work.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, describe, it } from 'node:test';
import { PEER_TOKEN, ProtocolPeer, waitFor } from '../../support/protocol-peer.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
// program.ts is the lead's; this builds the same kind of program around registerAgent alone.
const harness = `
import { Command } from 'commander';
const { registerAgent } = await import('./cli/commands/agent.ts');
const program = new Command('leakwatch');
registerAgent(program);
await program.parseAsync(process.argv.slice(1), { from: 'user' });
`;
const nodeArgs = ['--import', 'tsx', '--input-type=module', '-e', harness, '--', 'agent'];

const root = mkdtempSync(join(tmpdir(), 'leakwatch-agent-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const fresh = (name: string): string => join(root, `${name}-${++count}`);

/** The environment without any LEAKWATCH_* a developer may have set. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LEAKWATCH_')) env[k] = v;
  return { ...env, ...extra };
}

function runAgent(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [...nodeArgs, ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000, env: cleanEnv(env) });
}

const peers: ProtocolPeer[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.stop()));
});

describe('leakwatch agent: configuration errors', () => {
  const cases: Array<[string, string[], Record<string, string>, RegExp]> = [
    ['no collector', ['--token', 'x'], {}, /^leakwatch agent: no collector: pass --collector <url> or set LEAKWATCH_URL\n$/],
    ['no token', ['--collector', 'http://127.0.0.1:9'], {}, /^leakwatch agent: no token: pass --token-file <path> or --token <token>, or set LEAKWATCH_TOKEN\n$/],
    ['a token file that is not there', ['--collector', 'http://127.0.0.1:9', '--token-file', '/nonexistent/token'], {}, /^leakwatch agent: cannot read the token file \/nonexistent\/token: ENOENT\n$/],
    ['both --token and --token-file', ['--collector', 'http://127.0.0.1:9', '--token', 'a', '--token-file', '/x'], {}, /^leakwatch agent: give --token or --token-file, not both\n$/],
    ['a URL with credentials', ['--collector', 'https://a:b@c', '--token', 'x'], {}, /^leakwatch agent: collector URL carries credentials: pass the token with --token or --token-file instead\n$/],
    ['a bad scheme', ['--collector', 'ftp://c', '--token', 'x'], {}, /^leakwatch agent: collector URL "ftp:\/\/c" must start with http:\/\/, https:\/\/, ws:\/\/ or wss:\/\/\n$/],
    ['a --ca that is not a certificate', ['--collector', 'https://c', '--token', 'x', '--ca', '/etc/hostname'], {}, /^leakwatch agent: --ca \/etc\/hostname: no PEM certificate in it\n$/],
  ];
  for (const [name, args, env, expected] of cases) {
    it(`${name}: one line, exit 2`, () => {
      const r = runAgent(args, env);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, expected);
    });
  }

  it('an empty token file and a spool directory that cannot be one: one line each, exit 2', () => {
    const empty = fresh('token');
    writeFileSync(empty, '\n');
    const r = runAgent(['--collector', 'http://127.0.0.1:9', '--token-file', empty]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, `leakwatch agent: the token file ${empty} is empty\n`);

    const file = fresh('file');
    writeFileSync(file, '');
    const s = runAgent(['--collector', 'http://127.0.0.1:9', '--token', 'x', '--no-kmsg', '--spool-dir', join(file, 'spool')]);
    assert.equal(s.status, 2);
    assert.match(s.stderr, new RegExp(`^leakwatch agent: spool directory ${file}/spool: .*\\n$`));
  });

  it('a bad --spool-max-bytes is refused by the parser', () => {
    const r = runAgent(['--collector', 'http://127.0.0.1:9', '--token', 'x', '--spool-max-bytes', 'lots']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--spool-max-bytes.*expected a size like/);
  });
});

describe('leakwatch agent: running', () => {
  it('connects with the token from --token-file, names its node, and on SIGTERM stops within 2 s with exit 0', async () => {
    const peer = await ProtocolPeer.start();
    peers.push(peer);
    const tokenFile = fresh('token');
    writeFileSync(tokenFile, `${PEER_TOKEN}\n`, { mode: 0o600 });
    const child = spawn(
      process.execPath,
      [...nodeArgs, '--collector', peer.url, '--token-file', tokenFile, '--node-name', 'node-cli', '--interval', '0.2', '--no-kmsg', '--spool-dir', fresh('spool'), '--pod-log-root', fresh('pods')],
      { cwd: repoRoot, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor('hello from the agent', () => peer.ofType('hello').length > 0, 20_000);
      const hello = peer.ofType('hello')[0];
      assert.equal(hello?.node, 'node-cli');
      assert.equal(hello?.agentId, 'node-cli');
      assert.equal(peer.upgrades[0]?.headers.authorization, `Bearer ${PEER_TOKEN}`);
      await waitFor('a heartbeat', () => peer.ofType('heartbeat').length > 0, 5_000);

      const started = Date.now();
      child.kill('SIGTERM');
      const code = await exited;
      const took = Date.now() - started;
      assert.equal(code, 0, stderr);
      assert.ok(took < 3_000, `stopped in ${took} ms`);
      const lines = stderr.trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string });
      assert.ok(lines.some((l) => l.msg === 'agent started'));
      assert.ok(lines.some((l) => l.msg === 'agent stopped'));
      assert.ok(!stderr.includes(PEER_TOKEN), 'the token is never logged');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('takes the collector and token from LEAKWATCH_URL and LEAKWATCH_TOKEN', async () => {
    const peer = await ProtocolPeer.start();
    peers.push(peer);
    const child = spawn(process.execPath, [...nodeArgs, '--no-kmsg', '--spool-dir', fresh('spool'), '--pod-log-root', fresh('pods')], {
      cwd: repoRoot,
      env: cleanEnv({ LEAKWATCH_URL: peer.url, LEAKWATCH_TOKEN: PEER_TOKEN, NODE_NAME: 'node-env' }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor('hello', () => peer.ofType('hello').length > 0, 20_000);
      assert.equal(peer.ofType('hello')[0]?.node, 'node-env');
      child.kill('SIGINT');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
