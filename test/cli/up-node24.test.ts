// `leakwatch up` on Node 24, the runtime the image ships (the rest of the suite runs the code on
// the Node that installed it): the collector with its SQLite store (the addon compiled for Node
// 24), the local agent, the web page and /metrics; a suspicious spawn on this machine reaches the
// API with its script as evidence; SIGTERM stops it with exit 0.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/net.js';
import { node24Stack, type Node24Stack } from '../support/node24-stack.js';
import { privateArtifactsDir } from '../support/places.js';
import { repoRoot } from '../support/cli.js';

const python = spawnSync('python3', ['--version']).status === 0;
const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

async function getJson(base: string, path: string, token: string): Promise<{ status: number; body: any }> {
  const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await r.text();
  return { status: r.status, body: r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

async function until<T>(what: string, check: () => Promise<T | null>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('leakwatch up on Node 24', { skip: python ? false : 'SKIP: python3 not available' }, () => {
  let stack: Node24Stack;
  const work = mkdtempSync(join(tmpdir(), 'lw-up24-'));
  const children: ChildProcess[] = [];

  before(() => {
    // Builds the SQLite addon for Node 24 on first use (about a minute), then it is cached.
    stack = node24Stack(join(privateArtifactsDir(), 'node24-stack'));
    if (!stack.ok) console.log(`SKIP: ${stack.reason}`);
  });
  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  it('runs collector, agent, web page and metrics; a spawn from /tmp reaches the API with its script; SIGTERM exits 0', async (t) => {
    if (!stack.ok) return t.skip(stack.reason);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const dataDir = join(work, 'data');
    const up = spawn(stack.node, [stack.main, 'up', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--no-kmsg', '--include-host', '--interval', '0.5', '--no-capture'], {
      cwd: stack.stage,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(up);
    let stdout = '';
    let stderr = '';
    up.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => up.once('exit', (code) => resolve(code)));
    await until('leakwatch up to start', async () => (stdout.includes('Ctrl-C to stop') ? true : up.exitCode !== null ? Promise.reject(new Error(`exited: ${stderr}`)) : null));
    const token = readFileSync(join(dataDir, 'local-token'), 'utf8').trim();
    assert.equal(realpathSync(`/proc/${up.pid}/exe`), realpathSync(stack.node), 'it is Node 24 that runs leakwatch');
    assert.match(spawnSync(stack.node, ['--version'], { encoding: 'utf8' }).stdout, /^v24\./);

    const agents = await until('the local agent to connect', async () => {
      const r = await getJson(base, '/api/v1/agents', token);
      const a = (r.body.agents as Array<{ connected: boolean; version: string }>).find((x) => x.connected);
      return a ?? null;
    });
    assert.equal(agents.version, version);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^leakwatch_/m);

    // A script written to /tmp and run at once: tmp-script and fresh-script.
    const script = join(tmpdir(), `lw-up24-${process.pid}.py`);
    writeFileSync(script, 'import time\ntime.sleep(60)\n');
    t.after(() => rmSync(script, { force: true }));
    const child = spawn('python3', [script], { stdio: 'ignore' });
    children.push(child);
    const finding = await until('the spawn finding', async () => {
      const r = await getJson(base, '/api/v1/findings?kind=suspicious-spawn', token);
      return (r.body.findings as Array<{ id: string; target: { pid: number } }>).find((f) => f.target.pid === child.pid) ?? null;
    });
    const one = await getJson(base, `/api/v1/findings/${finding.id}`, token);
    assert.equal(one.status, 200);
    assert.equal(one.body.details.script.path, script);
    assert.equal(one.body.details.script.content, 'import time\ntime.sleep(60)\n');
    assert.ok(one.body.details.rules.some((r: { id: string }) => r.id === 'tmp-script'));

    up.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /"msg":"stopping"/);
  });
});
