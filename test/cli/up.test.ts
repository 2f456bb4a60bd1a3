// `leakwatch up` end to end: collector + local agent in one process; a suspicious process in a
// fake pod reaches `leakwatch findings` and `leakwatch spawns show` in a second "terminal".
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { freePort } from '../support/net.js';
import { join } from 'node:path';
import { createFakePod, fakeNodeAvailability, type FakePod } from '../support/fake-node.js';
import { runCli, startCli } from '../support/cli.js';
import type { Finding } from '../../protocol/findings.js';

const availability = fakeNodeAvailability();
const MiB = 1024 * 1024;


async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('leakwatch up', { skip: availability.ok ? false : `SKIP: ${availability.ok ? '' : availability.reason}`, timeout: 120_000 }, () => {
  let dir: string;
  let up: ChildProcess;
  let out = '';
  let url: string;
  let pod: FakePod;
  let token: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'leakwatch-up-'));
    pod = createFakePod({ namespace: 'shop', name: 'checkout-5d7f', containers: [{ name: 'web', limitBytes: 64 * MiB }] });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    up = startCli(['up', '--data-dir', join(dir, 'data'), '--listen', `127.0.0.1:${port}`, '--pod-log-root', pod.podLogRoot]);
    up.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor('the URL on stdout', () => (out.includes('Ctrl-C to stop') ? true : undefined), 30_000);
    token = readFileSync(join(dir, 'data', 'local-token'), 'utf8').trim();
  });

  after(async () => {
    if (up && up.exitCode === null) {
      up.kill('SIGTERM');
      await new Promise((r) => up.once('exit', r));
    }
    await pod?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('prints the URL and a token once, and keeps secrets 0600', () => {
    assert.match(out, new RegExp(`collector ${url}`));
    assert.ok(out.includes(token), 'the admin token is printed at the first start');
    assert.equal(statSync(join(dir, 'data', 'local-token')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'data', 'tokens.json')).mode & 0o777, 0o600);
    assert.ok(!readFileSync(join(dir, 'data', 'tokens.json'), 'utf8').includes(token), 'the tokens file holds hashes only');
  });

  test('serves the web page at the printed URL (or says how to build it)', async () => {
    assert.ok(out.includes(`web page: ${url}/`), out);
    const res = await fetch(`${url}/`);
    const body = await res.text();
    // `npm run build` (run by npm ci's prepare) puts the page in dist/server/web.
    if (existsSync(join('dist', 'server', 'web', 'index.html'))) {
      assert.equal(res.status, 200, body);
      assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
      assert.match(body, /<script type="module" src="\/assets\/main-[A-Z0-9]+\.js"><\/script>/);
    } else {
      assert.equal(res.status, 503);
      assert.match(body, /npm run build/);
    }
  });

  test('a suspicious process in a pod reaches leakwatch findings and spawns show', async () => {
    // A script written to /tmp and run at once, with markup in it: evidence must show it as text.
    const script = join('/tmp', `lw-up-${process.pid}.sh`);
    writeFileSync(script, "#!/bin/sh\n# <script>alert('x')</script>\nsleep 60\n");
    pod.spawnIn('web', '/bin/sh', [script]);
    try {
      const env = { LEAKWATCH_URL: url, LEAKWATCH_TOKEN: token };
      const finding = await waitFor(
        'the spawn finding at the collector',
        () => {
          const r = runCli(['findings', '--json', '--kind', 'suspicious-spawn'], { env });
          if (r.status !== 0) return undefined;
          return (JSON.parse(r.stdout) as Finding[]).find((f) => f.target.podUid === pod.uid);
        },
        30_000,
      );
      assert.equal(finding.target.pod, 'checkout-5d7f');
      const table = runCli(['findings'], { env });
      assert.equal(table.status, 0, table.stderr);
      assert.match(table.stdout, /suspicious-spawn/);
      assert.match(table.stdout, /shop\/checkout-5d7f/);

      const show = runCli(['spawns', 'show', finding.id], { env });
      assert.equal(show.status, 0, show.stderr);
      assert.match(show.stdout, /tmp-script/);
      assert.ok(show.stdout.includes("# <script>alert('x')</script>"), 'script content shown verbatim as text');
      assert.match(show.stdout, /parent chain/);

      const json = runCli(['spawns', 'show', finding.id, '--json'], { env });
      const full = JSON.parse(json.stdout) as Finding;
      assert.ok(full.kind === 'suspicious-spawn' && full.details.script?.content?.includes('<script>'));
    } finally {
      rmSync(script, { force: true });
    }
  });

  test('errors are one line with a non-zero exit', () => {
    const badToken = runCli(['findings'], { env: { LEAKWATCH_URL: url, LEAKWATCH_TOKEN: 'lw_wrong' } });
    assert.equal(badToken.status, 1);
    assert.match(badToken.stderr, /rejected the token/);
    assert.equal(badToken.stderr.trim().split('\n').length, 1);
    const down = runCli(['findings', '--url', 'http://127.0.0.1:1', '--token', 'x']);
    assert.equal(down.status, 1);
    assert.match(down.stderr, /cannot reach the collector/);
    const badId = runCli(['spawns', 'show', '../../etc/passwd', '--url', url, '--token', token]);
    assert.equal(badId.status, 1);
    assert.match(badId.stderr, /not a finding id/);
  });
});

describe('leakwatch --help', () => {
  test('documents every command', () => {
    const r = runCli(['--help']);
    assert.equal(r.status, 0);
    for (const c of ['up', 'ps', 'top', 'watch', 'demo', 'agent', 'collector', 'tokens', 'findings', 'targets', 'spawns']) {
      assert.match(r.stdout, new RegExp(`\\n  ${c}\\b`), `${c} in --help`);
    }
  });
});
