// The resident-memory watch behind the learned snapshot cost, on real processes: it sees a peak
// that is gone again by the time it stops, it answers null for a process that is not there, and
// the book keeps the last cost per target within its bound.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { SnapshotCostBook, watchRssPeak } from '../../../agent/capture/snapshot-cost.js';

const MiB = 1024 * 1024;

describe('snapshot cost', () => {
  it('sees the peak of a process that takes 48 MiB for a moment and gives it back', async () => {
    // Bounded on purpose: 48 MiB, touched page by page, held 600 ms, then freed; the child waits on stdin.
    const child = spawn(process.execPath, ['--expose-gc', '-e', `
      process.stdin.once('data', () => {
        let b = Buffer.alloc(48 * 1024 * 1024, 1);
        setTimeout(() => { b = null; global.gc(); console.log('freed'); }, 600);
      });
      console.log('ready');
    `], { stdio: ['pipe', 'pipe', 'inherit'] });
    child.stdout.setEncoding('utf8');
    let out = '';
    child.stdout.on('data', (d: string) => (out += d));
    try {
      while (!out.includes('ready')) await once(child.stdout, 'data');
      const watch = await watchRssPeak('/proc', child.pid!, 20);
      child.stdin.write('go\n');
      while (!out.includes('freed')) await once(child.stdout, 'data');
      const peak = await watch.stop();
      assert.ok(peak, 'the process was there');
      assert.ok(peak.samples >= 5, `${peak.samples} samples`);
      assert.ok(peak.peakBytes - peak.baseBytes >= 40 * MiB, `peak ${peak.peakBytes} over base ${peak.baseBytes}`);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('answers null for a process that is not there, and keeps working when one vanishes mid-watch', async () => {
    const missing = await watchRssPeak('/proc', 2 ** 22 + 17, 10);
    assert.equal(await missing.stop(), null);

    const child = spawn('sleep', ['30']);
    await once(child, 'spawn');
    const watch = await watchRssPeak('/proc', child.pid!, 10);
    child.kill('SIGKILL');
    await once(child, 'exit');
    await new Promise((r) => setTimeout(r, 50));
    const peak = await watch.stop();
    assert.ok(peak && peak.baseBytes > 0 && peak.peakBytes >= peak.baseBytes);
  });

  it('keeps the last cost per target, bounded, oldest out first', () => {
    const book = new SnapshotCostBook(2);
    assert.equal(book.record('a', { baseBytes: 100 * MiB, peakBytes: 180 * MiB, samples: 9 }, 40 * MiB, 1), book.of('a'));
    assert.equal(book.of('a')?.ratio, 2);
    assert.equal(book.of('a')?.extraBytes, 80 * MiB);
    book.record('a', { baseBytes: 100 * MiB, peakBytes: 90 * MiB, samples: 3 }, 40 * MiB, 2);
    assert.equal(book.of('a')?.ratio, 0, 'a peak below the start (a GC) is no cost, never a negative one');
    assert.equal(book.record('z', { baseBytes: 1, peakBytes: 2, samples: 2 }, 0, 3), null, 'no heap, no ratio');
    book.record('b', { baseBytes: 0, peakBytes: MiB, samples: 2 }, MiB, 4);
    book.record('c', { baseBytes: 0, peakBytes: MiB, samples: 2 }, MiB, 5);
    assert.equal(book.of('a'), null);
    assert.ok(book.of('b') && book.of('c'));
  });
});
