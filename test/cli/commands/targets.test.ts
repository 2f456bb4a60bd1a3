// `leakwatch targets` against a real collector on loopback: a page at a time, --offset for the
// next one, and a page larger than the API serves is a usage error before any request.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCli, type CliResult } from '../../support/cli.js';
import { startTestCollector, type TestCollector } from '../../support/collector-harness.js';

/** The CLI as a child process, without blocking this process's event loop (it serves the API). */
function runCliAsync(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const child = startCli(args, { env });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

describe('leakwatch targets', () => {
  let t: TestCollector;
  let env: NodeJS.ProcessEnv;
  const keys = [1, 2, 3].map((i) => `proc:${700 + i}:1700000000000`);

  before(async () => {
    t = await startTestCollector();
    env = { LEAKWATCH_URL: t.collector.url, LEAKWATCH_TOKEN: t.tokens.read };
    const now = Date.now();
    t.store.ingestSeries(
      'node-t',
      keys.map((targetKey, i) => ({ targetKey, kind: 'process', pid: 701 + i, ppid: null, comm: 'node', cmdline: `node worker-${i}.js`, namespace: 'payments', pod: 'pp-1', podUid: 'uid-1', container: 'app', containerId: 'c'.repeat(64) })),
      // The newest point last: keys[2] is the most recently seen.
      keys.map((targetKey, i) => ({ targetKey, atMs: now - 3000 + i * 1000, anonBytes: 1000, workingSetBytes: null, limitBytes: null })),
    );
  });
  after(() => t.stop());

  it('lists one page and says where the next starts', async () => {
    const page1 = await runCliAsync(['targets', '--limit', '2'], env);
    assert.equal(page1.status, 0, page1.stderr);
    assert.match(page1.stdout, /worker-2\.js/);
    assert.match(page1.stdout, /worker-1\.js/);
    assert.doesNotMatch(page1.stdout, /worker-0\.js/);
    assert.match(page1.stdout, /\(more targets: --offset 2\)/);

    const page2 = await runCliAsync(['targets', '--limit', '2', '--offset', '2', '--json'], env);
    assert.equal(page2.status, 0, page2.stderr);
    assert.deepEqual(
      JSON.parse(page2.stdout).map((r: { targetKey: string }) => r.targetKey),
      [keys[0]],
    );

    const all = await runCliAsync(['targets', '--json'], env);
    assert.deepEqual(
      JSON.parse(all.stdout).map((r: { targetKey: string }) => r.targetKey),
      [...keys].reverse(),
    );
  });

  it('refuses a page past 1000 and a negative offset with an error line naming the flag', async () => {
    for (const args of [
      ['targets', '--limit', '1001'],
      ['targets', '--offset', '-1'],
    ]) {
      const r = await runCliAsync(args, env);
      assert.notEqual(r.status, 0, args.join(' '));
      assert.equal(r.stdout, '');
      // The program's usage errors are the error line plus a pointer to --help; no stack trace.
      const [line] = r.stderr.split('\n');
      assert.match(line!, args[1] === '--limit' ? /--limit .*at most 1000/ : /--offset .*integer >= 0/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });
});
