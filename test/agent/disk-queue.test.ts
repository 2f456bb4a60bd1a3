// The spool on a real filesystem: bounds, drop-oldest, restart, and the damage a crash or a full
// disk leaves behind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DiskQueue, type QueuedEvent } from '../../agent/disk-queue.js';
import { growthFinding } from '../support/sample-findings.js';

const root = mkdtempSync(join(tmpdir(), 'leakwatch-spool-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (): string => join(root, `spool-${++dirCount}`);

const event = (n: number, change: QueuedEvent['change'] = 'open'): QueuedEvent => ({ change, finding: growthFinding(`growth-${String(n).padStart(6, '0')}`) });
const ids = (events: QueuedEvent[]): string[] => events.map((e) => e.finding.id);
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
const idsOf = (ns: number[]): string[] => ns.map((n) => event(n).finding.id);
/** Bytes of one event's line in the spool (all test events have ids of equal length). */
const lineBytes = Buffer.byteLength(`${JSON.stringify({ seq: 1, ...event(0) })}\n`);
const segmentFiles = (dir: string): string[] => readdirSync(dir).filter((n) => n.endsWith('.jsonl')).sort();

function collect(): { warn: (m: string) => void; messages: string[] } {
  const messages: string[] = [];
  return { warn: (m) => messages.push(m), messages };
}

describe('DiskQueue: order, peek and ack', () => {
  it('hands events back oldest first, in batches bounded by count and bytes, and forgets acknowledged ones', () => {
    const q = new DiskQueue({ dir: freshDir() });
    q.append(range(0, 10).map((n) => event(n)));
    assert.equal(q.size, 10);
    const expectedBytes = range(0, 10).reduce((sum, n) => sum + Buffer.byteLength(`${JSON.stringify({ seq: n + 1, ...event(n) })}\n`), 0);
    assert.equal(q.bytes, expectedBytes);

    const first = q.peek(4, Infinity);
    assert.deepEqual(ids(first.events), idsOf(range(0, 4)));
    // Peeking again without an ack returns the same events: nothing is lost before the ack.
    assert.deepEqual(ids(q.peek(4, Infinity).events), idsOf(range(0, 4)));
    // Past what is in flight: the next batch.
    const second = q.peek(4, Infinity, first.seq);
    assert.deepEqual(ids(second.events), idsOf(range(4, 8)));
    // By bytes: two lines' worth gives two events.
    assert.equal(q.peek(100, 2 * lineBytes + 5, second.seq).events.length, 2);

    q.ack(first.seq);
    assert.equal(q.size, 6);
    assert.deepEqual(ids(q.peek(100, Infinity).events), idsOf(range(4, 10)));
    q.ack(q.lastAppendedSeq);
    assert.equal(q.size, 0);
    assert.equal(q.bytes, 0);
    assert.deepEqual(q.peek(10, Infinity).events, []);
    q.close();
  });

  it('returns one event even when it alone is larger than maxBytes, so a big event cannot stall the queue', () => {
    const q = new DiskQueue({ dir: freshDir() });
    q.append([event(1), event(2)]);
    const batch = q.peek(10, 10);
    assert.deepEqual(ids(batch.events), idsOf([1]));
    q.close();
  });

  it('keeps the change and the whole finding', () => {
    const q = new DiskQueue({ dir: freshDir() });
    const e: QueuedEvent = { change: 'resolve', finding: { ...growthFinding('growth-abc'), status: 'resolved', summary: 'ünïcode ✓ "quoted"\nline' } };
    q.append([e]);
    assert.deepEqual(q.peek(1, Infinity).events, [e]);
    q.close();
  });
});

describe('DiskQueue: bound and drop-oldest', () => {
  it('past the event bound drops the oldest, counts them, and warns', () => {
    const log = collect();
    const q = new DiskQueue({ dir: freshDir(), maxEvents: 10, warn: log.warn });
    q.append(range(0, 4).map((n) => event(n)));
    assert.equal(q.droppedTotal, 0);
    q.append(range(4, 25).map((n) => event(n)));
    assert.equal(q.size, 10);
    assert.equal(q.droppedTotal, 15);
    assert.deepEqual(ids(q.peek(100, Infinity).events), idsOf(range(15, 25)));
    assert.equal(log.messages.length, 1);
    assert.match(log.messages[0] ?? '', /dropped the 15 oldest finding event\(s\).*15 dropped in total/);
    // A queue that stays full drops on every append; the warning comes once a minute, the count always.
    q.append(range(25, 30).map((n) => event(n)));
    assert.equal(q.droppedTotal, 20);
    assert.equal(log.messages.length, 1);
    q.close();
  });

  it('past the byte bound drops the oldest, and the files on disk stay within the bound plus one segment', () => {
    const dir = freshDir();
    // Seqs 81..100 are the ones that stay: 20 lines of at most a 3-digit seq's length fit, 21 do not.
    const longest = Buffer.byteLength(`${JSON.stringify({ seq: 100, ...event(99) })}\n`);
    const maxBytes = 20 * longest + 10;
    const segmentMaxBytes = 4 * lineBytes;
    const q = new DiskQueue({ dir, maxBytes, segmentMaxBytes });
    for (let n = 0; n < 100; n++) q.append([event(n)]);
    assert.equal(q.size, 20);
    assert.equal(q.droppedTotal, 80);
    assert.ok(q.bytes <= maxBytes);
    assert.deepEqual(ids(q.peek(100, Infinity).events), idsOf(range(80, 100)));
    const onDisk = segmentFiles(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
    assert.ok(onDisk <= maxBytes + segmentMaxBytes, `${onDisk} bytes on disk for a bound of ${maxBytes} + ${segmentMaxBytes}`);
    assert.ok(segmentFiles(dir).length > 1, 'segments rotate');
    q.close();
  });

  it('events dropped while in flight are not acknowledged twice and do not break the order', () => {
    const q = new DiskQueue({ dir: freshDir(), maxEvents: 5 });
    q.append(range(0, 5).map((n) => event(n)));
    const inFlight = q.peek(3, Infinity);
    q.append(range(5, 8).map((n) => event(n)));
    // The ack of a batch the bound already dropped changes nothing.
    q.ack(inFlight.seq);
    assert.equal(q.size, 5);
    assert.deepEqual(ids(q.peek(10, Infinity).events), idsOf(range(3, 8)));
    q.close();
  });

  it('a tighter bound on reopening applies at once', () => {
    const dir = freshDir();
    const q = new DiskQueue({ dir });
    q.append(range(0, 30).map((n) => event(n)));
    q.close();
    const smaller = new DiskQueue({ dir, maxEvents: 12 });
    assert.equal(smaller.size, 12);
    assert.equal(smaller.droppedTotal, 18);
    assert.deepEqual(ids(smaller.peek(100, Infinity).events), idsOf(range(18, 30)));
    smaller.close();
  });
});

describe('DiskQueue: restart', () => {
  it('reopening the directory gives back the same pending events, sequence numbers keep growing, drops stay counted', () => {
    const dir = freshDir();
    const q = new DiskQueue({ dir, maxEvents: 8, segmentMaxBytes: 3 * lineBytes });
    q.append(range(0, 10).map((n) => event(n)));
    const firstTwo = q.peek(2, Infinity);
    q.ack(firstTwo.seq);
    const lastSeq = q.lastAppendedSeq;
    q.close();

    const again = new DiskQueue({ dir, maxEvents: 8, segmentMaxBytes: 3 * lineBytes });
    assert.equal(again.size, 6);
    assert.equal(again.droppedTotal, 2);
    assert.deepEqual(ids(again.peek(100, Infinity).events), idsOf(range(4, 10)));
    again.append([event(10)]);
    assert.equal(again.lastAppendedSeq, lastSeq + 1);
    assert.deepEqual(ids(again.peek(100, Infinity).events), idsOf(range(4, 11)));
    again.close();
  });

  it('an agent killed without closing the queue loses nothing it appended', () => {
    const dir = freshDir();
    const q = new DiskQueue({ dir });
    q.append(range(0, 5).map((n) => event(n)));
    q.ack(q.peek(1, Infinity).seq);
    // No close(): the process "died" here.
    const again = new DiskQueue({ dir });
    assert.deepEqual(ids(again.peek(100, Infinity).events), idsOf(range(1, 5)));
    again.close();
  });

  it('after everything is acknowledged the segments are gone and numbering continues', () => {
    const dir = freshDir();
    const q = new DiskQueue({ dir, segmentMaxBytes: 2 * lineBytes });
    q.append(range(0, 7).map((n) => event(n)));
    assert.ok(segmentFiles(dir).length >= 3);
    q.ack(q.lastAppendedSeq);
    assert.deepEqual(segmentFiles(dir), []);
    const seq = q.lastAppendedSeq;
    q.close();
    const again = new DiskQueue({ dir });
    assert.equal(again.size, 0);
    again.append([event(7)]);
    assert.equal(again.lastAppendedSeq, seq + 1);
    again.close();
  });
});

describe('DiskQueue: damage', () => {
  it('a truncated last line from a crash mid-write is skipped with a warning; appending goes on in a new segment', () => {
    const dir = freshDir();
    const q = new DiskQueue({ dir });
    q.append(range(0, 5).map((n) => event(n)));
    q.close();
    const [segment] = segmentFiles(dir);
    assert.ok(segment);
    const torn = `${JSON.stringify({ seq: 6, ...event(5) })}`.slice(0, 40);
    appendFileSync(join(dir, segment), torn);

    const log = collect();
    const again = new DiskQueue({ dir, warn: log.warn });
    assert.equal(again.size, 5);
    assert.ok(log.messages.some((m) => /truncated line \(40 bytes/.test(m)), log.messages.join('\n'));
    again.append([event(6)]);
    assert.deepEqual(ids(again.peek(100, Infinity).events), idsOf([0, 1, 2, 3, 4, 6]));
    again.close();
    // The torn segment was never appended to: a third opening reads the same.
    const third = new DiskQueue({ dir, warn: () => {} });
    assert.deepEqual(ids(third.peek(100, Infinity).events), idsOf([0, 1, 2, 3, 4, 6]));
    third.close();
  });

  it('a garbage line in a segment is skipped with a warning naming the file and line', () => {
    const dir = freshDir();
    const q = new DiskQueue({ dir });
    q.append([event(0), event(1)]);
    q.close();
    const [segment] = segmentFiles(dir);
    assert.ok(segment);
    const path = join(dir, segment);
    const [a, b] = readFileSync(path, 'utf8').split('\n');
    writeFileSync(path, `${a}\n{"seq": "not a number"}\n\u0000\u0001 binary junk\n${b}\n`);
    const log = collect();
    const again = new DiskQueue({ dir, warn: log.warn });
    assert.deepEqual(ids(again.peek(100, Infinity).events), idsOf([0, 1]));
    assert.ok(log.messages.some((m) => m.includes(`${segment} line 2 is not a finding event`)), log.messages.join('\n'));
    assert.ok(log.messages.some((m) => m.includes(`${segment} line 3 is not a finding event`)), log.messages.join('\n'));
    again.close();
  });

  it('an unreadable cursor means everything left is sent again (the collector ingests idempotently)', () => {
    const dir = freshDir();
    const q = new DiskQueue({ dir });
    q.append(range(0, 4).map((n) => event(n)));
    q.ack(q.peek(2, Infinity).seq);
    q.close();
    writeFileSync(join(dir, 'cursor.json'), '{"consumedSeq": ');
    const log = collect();
    const again = new DiskQueue({ dir, warn: log.warn });
    assert.deepEqual(ids(again.peek(100, Infinity).events), idsOf(range(0, 4)));
    assert.ok(log.messages.some((m) => /cursor\.json is unreadable/.test(m)));
    again.close();
  });

  it('a segment changed on disk after opening: its events are skipped with a warning, and passed by the next ack', () => {
    const dir = freshDir();
    const log = collect();
    const q = new DiskQueue({ dir, warn: log.warn });
    q.append(range(0, 3).map((n) => event(n)));
    const [segment] = segmentFiles(dir);
    assert.ok(segment);
    truncateSync(join(dir, segment), lineBytes + 10);
    const batch = q.peek(10, Infinity);
    assert.deepEqual(ids(batch.events), idsOf([0]));
    assert.equal(batch.seq, 3, 'the unreadable events are within the batch seq, so acking it passes them');
    assert.ok(log.messages.some((m) => /changed on disk/.test(m)));
    q.ack(batch.seq);
    assert.equal(q.size, 0);
    q.close();
  });

  it('refuses a spool path that is a symlink or a file, with the reason', () => {
    const target = freshDir();
    mkdirSync(target);
    const link = freshDir();
    symlinkSync(target, link);
    assert.throws(() => new DiskQueue({ dir: link }), /is not a directory \(a symlink is refused\)/);
    const file = freshDir();
    writeFileSync(file, 'x');
    assert.throws(() => new DiskQueue({ dir: file }), new RegExp(`spool directory ${file}`));
  });

  it('creates its directory private (0700) and its segments 0600: findings carry script contents', () => {
    const dir = freshDir();
    const q = new DiskQueue({ dir });
    q.append([event(0)]);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const name of segmentFiles(dir)) assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600);
    q.close();
  });

  it('a full disk drops the events it cannot write, counts and reports them, and keeps working', (t) => {
    const dir = freshDir();
    mkdirSync(dir);
    if (process.getuid?.() !== 0) {
      console.log('SKIP: mounting a tiny tmpfs needs root');
      t.skip('SKIP: mounting a tiny tmpfs needs root');
      return;
    }
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', dir], { encoding: 'utf8' });
    if (mount.status !== 0) {
      const reason = `cannot mount a tmpfs here: ${mount.stderr.trim()}`;
      console.log(`SKIP: ${reason}`);
      t.skip(`SKIP: ${reason}`);
      return;
    }
    try {
      const log = collect();
      const q = new DiskQueue({ dir, warn: log.warn, segmentMaxBytes: 1024 * 1024 });
      let appended = 0;
      for (let n = 0; n < 400; n++, appended++) q.append([event(n)]);
      assert.ok(q.droppedTotal > 0, 'a 64 KiB disk cannot hold 400 events');
      assert.equal(q.size + q.droppedTotal, appended);
      assert.ok(log.messages.some((m) => /could not write 1 finding event\(s\).*no space left/i.test(m)), log.messages.slice(0, 3).join('\n'));
      // What was written is intact and in order, and room made by acks is used again.
      const held = q.peek(1000, Infinity);
      assert.equal(held.events.length, q.size);
      assert.deepEqual(ids(held.events), idsOf(range(0, q.size)));
      q.ack(held.seq);
      const before = q.droppedTotal;
      q.append([event(1000)]);
      assert.equal(q.droppedTotal, before);
      assert.deepEqual(ids(q.peek(10, Infinity).events), idsOf([1000]));
      q.close();
    } finally {
      spawnSync('umount', [dir]);
    }
  });
});
