// `leakwatch ps` on the real kernel: a process in a pod-shaped memory cgroup is attributed to
// its pod and container, with the exact limit, and the output formats hold their promises.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFakePod, fakeNodeAvailability, type FakePod } from '../support/fake-node.js';
import { runCli } from '../support/cli.js';
import type { PsRow } from '../../cli/commands/ps.js';

const MiB = 1024 * 1024;
const availability = fakeNodeAvailability();

describe('leakwatch ps in a fake pod', { skip: availability.ok ? false : `SKIP: ${availability.ok ? '' : availability.reason}` }, () => {
  let pod: FakePod;
  let pid: number;

  before(async () => {
    pod = createFakePod({ namespace: 'shop', name: 'cart-7d9f', containers: [{ name: 'cart', limitBytes: 96 * MiB }, { name: 'sidecar', limitBytes: 32 * MiB }] });
    // Holds 24 MiB of touched memory so anon RSS is clearly non-zero.
    const child = pod.spawnIn('cart', process.execPath, ['-e', 'const b = Buffer.alloc(24 * 1024 * 1024, 1); setInterval(() => b[0]++, 1000);']);
    pid = child.pid!;
    pod.spawnIn('sidecar', 'sleep', ['60']);
    for (let i = 0; i < 50 && pod.pids('cart').length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
  });

  after(async () => {
    await pod?.destroy();
  });

  test('--json attributes the process to its pod and container with the exact limit', () => {
    const r = runCli(['ps', '--json', '--pods-only', '--pod-log-root', pod.podLogRoot]);
    assert.equal(r.status, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as PsRow[];
    const row = rows.find((x) => x.pid === pid);
    assert.ok(row, `pid ${pid} not in ps output: ${r.stdout.slice(0, 500)}`);
    assert.equal(row.podUid, pod.uid);
    assert.equal(row.namespace, 'shop');
    assert.equal(row.pod, 'cart-7d9f');
    assert.equal(row.container, 'cart');
    assert.equal(row.containerId, pod.containers[0]!.id);
    assert.equal(row.limitBytes, 96 * MiB);
    assert.ok(row.rssAnonBytes >= 24 * MiB && row.rssAnonBytes < 80 * MiB, `anon ${row.rssAnonBytes}`);
    assert.equal(row.oomKills, 0);
    for (const key of ['pid', 'ppid', 'comm', 'cmdline', 'namespace', 'pod', 'podUid', 'container', 'containerId', 'rssAnonBytes', 'rssFileBytes', 'swapBytes', 'limitBytes', 'oomKills']) {
      assert.ok(key in row, `missing ${key}`);
    }
    const sidecar = rows.find((x) => x.container === 'sidecar');
    assert.ok(sidecar, 'sidecar container process listed');
    assert.equal(sidecar.limitBytes, 32 * MiB);
    assert.ok(rows.every((x) => x.podUid !== null), '--pods-only lists pod processes only');
  });

  test('the table groups processes under pod/container with % of limit', () => {
    const r = runCli(['ps', '--pod-log-root', pod.podLogRoot]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const groupLine = lines.find((l) => l.startsWith('shop/cart-7d9f cart'));
    assert.ok(groupLine, r.stdout.slice(0, 2000));
    assert.match(groupLine, new RegExp(`\\b${pid}\\b`));
    assert.match(groupLine, /96\.0MiB/);
    assert.match(groupLine, /\d+\.\d%/);
    assert.ok(lines.some((l) => l.startsWith('(host)')), 'host processes listed after pods');
    assert.ok(lines.findIndex((l) => l.startsWith('shop/')) < lines.findIndex((l) => l.startsWith('(host)')));
  });
});

describe('leakwatch ps on bad roots', () => {
  test('a proc root that does not exist is a one-line error and a non-zero exit', () => {
    const r = runCli(['ps', '--proc-root', '/nonexistent-proc']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /nonexistent-proc/);
    assert.ok(r.stderr.trim().split('\n').length <= 2, r.stderr);
  });

  test('a cgroup root without a memory hierarchy still lists processes, with a warning', () => {
    const empty = mkdtempSync(join(tmpdir(), 'lw-cg-'));
    try {
      const r = runCli(['ps', '--json', '--cgroup-root', empty]);
      assert.equal(r.status, 0, r.stderr);
      const rows = JSON.parse(r.stdout) as PsRow[];
      assert.ok(rows.some((x) => x.pid === process.pid));
      assert.match(r.stderr, /no memory cgroup hierarchy/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('--help documents the root flags', () => {
    const r = runCli(['ps', '--help']);
    assert.equal(r.status, 0);
    for (const flag of ['--proc-root', '--cgroup-root', '--pod-log-root', '--json', '--pods-only']) assert.match(r.stdout, new RegExp(flag));
  });
});
