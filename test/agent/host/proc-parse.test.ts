import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  parseBootTimeSec,
  parseCmdline,
  parseMemoryCgroupPath,
  parseStat,
  parseStatm,
  parseStatus,
  parseUint,
  ProcParseError,
  type ProcStat,
  type ProcStatus,
  type StatmValues,
} from '../../../agent/host/proc-parse.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/proc');
const basic = (pid: number | string, file: string): Buffer => readFileSync(join(fixtures, 'basic', String(pid), file));
const garbage = (pid: number | string, file: string): Buffer => readFileSync(join(fixtures, 'garbage', String(pid), file));

function ok<T>(value: T | ProcParseError): T {
  if (value instanceof ProcParseError) assert.fail(`unexpected parse error: ${value.message}`);
  return value;
}

function parseError(value: unknown, file: string, reason: RegExp): void {
  assert.ok(value instanceof ProcParseError, `expected a ProcParseError, got ${JSON.stringify(value)}`);
  assert.equal(value.file, file);
  assert.match(value.reason, reason);
}

test('parseStat: real sleep stat', () => {
  const s: ProcStat = ok(parseStat(basic(10836, 'stat')));
  assert.deepEqual(s, { pid: 10836, comm: 'sleep', state: 'S', ppid: 10832, kernelThread: false, startTimeTicks: 125377, rssPages: 409 });
});

test('parseStat: comm with spaces and ") (" splits at the last ")"', () => {
  const s = ok(parseStat(basic(10833, 'stat')));
  assert.equal(s.comm, 'a) (b c');
  assert.equal(s.state, 'S');
  assert.equal(s.ppid, 10828);
  assert.equal(s.startTimeTicks, 125376);
  const crafted = ok(parseStat('42 ()) (x) R) R 7 1 1 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 99 0 5 18446744073709551615\n'));
  assert.equal(crafted.comm, ')) (x) R');
  assert.equal(crafted.state, 'R');
  assert.equal(crafted.ppid, 7);
  assert.equal(crafted.startTimeTicks, 99);
  assert.equal(crafted.rssPages, 5);
});

test('parseStat: kernel thread flag and zombie', () => {
  const k = ok(parseStat(basic(2, 'stat')));
  assert.equal(k.comm, 'kthreadd');
  assert.equal(k.kernelThread, true);
  assert.equal(k.ppid, 0);
  const z = ok(parseStat(basic(10861, 'stat')));
  assert.equal(z.state, 'Z');
  assert.equal(z.kernelThread, false);
  assert.equal(z.rssPages, 0);
});

test('parseStat: truncated, garbage and missing fields are errors', () => {
  parseError(parseStat(garbage(101, 'stat')), 'stat', /truncated/);
  parseError(parseStat(garbage(106, 'stat')), 'stat', /starttime/);
  parseError(parseStat(''), 'stat', /empty/);
  parseError(parseStat('12 sleep S 1 1\n'), 'stat', /comm/);
  parseError(parseStat('x2 (sleep) S 1 1\n'), 'stat', /pid/);
  parseError(parseStat('12 (sleep) S -1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 5 0\n'), 'stat', /ppid/);
  parseError(parseStat('12 (sleep) SS 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 5 0\n'), 'stat', /state/);
  parseError(parseStat('12 (sleep) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99\n'), 'stat', /truncated/);
});

test('parseStat: every truncation of a real line is an error, never a throw or a wrong value', () => {
  const full = basic(10836, 'stat');
  for (let len = 0; len < full.length; len++) {
    const r = parseStat(full, len);
    assert.ok(r instanceof ProcParseError, `cut at ${len} parsed as ${JSON.stringify(r)}`);
  }
  assert.ok(!(parseStat(full, full.length) instanceof ProcParseError));
});

test('parseStatm: real and broken', () => {
  const v: StatmValues = ok(parseStatm(basic(10836, 'statm')));
  assert.deepEqual(v, { sizePages: 730, residentPages: 453, sharedPages: 425, textPages: 5 });
  assert.deepEqual(ok(parseStatm(basic(2, 'statm'))), { sizePages: 0, residentPages: 0, sharedPages: 0, textPages: 0 });
  parseError(parseStatm(garbage(102, 'statm')), 'statm', /field 2/);
  parseError(parseStatm(''), 'statm', /empty/);
  parseError(parseStatm('730 453 425\n'), 'statm', /3 of 4/);
  parseError(parseStatm('730 453 425 5 0 89'), 'statm', /truncated/);
  parseError(parseStatm('730  453 425 5 0 89 0\n'), 'statm', /field 2/);
  parseError(parseStatm('99999999999999999999 453 425 5 0 89 0\n'), 'statm', /field 1/);
});

test('parseStatus: real user process, container process and v2 copy', () => {
  const s: ProcStatus = ok(parseStatus(basic(10836, 'status')));
  assert.deepEqual(s, {
    name: 'sleep',
    state: 'S',
    ppid: 10832,
    uid: 0,
    nsPids: [10836],
    hasMemory: true,
    rssAnonBytes: 112 * 1024,
    rssFileBytes: 1700 * 1024,
    rssShmemBytes: 0,
    swapBytes: 0,
  });
  const c = ok(parseStatus(basic(10837, 'status')));
  assert.deepEqual(c.nsPids, [10837, 1]);
  assert.equal(c.ppid, 10834);
  assert.equal(c.rssAnonBytes, 108 * 1024);
  assert.deepEqual(ok(parseStatus(basic(20837, 'status'))).nsPids, [20837, 7]);
  assert.equal(ok(parseStatus(basic(10833, 'status'))).name, 'a) (b c');
});

test('parseStatus: kernel thread and zombie have no memory lines and read as zeros', () => {
  for (const pid of [2, 10861]) {
    const s = ok(parseStatus(basic(pid, 'status')));
    assert.equal(s.hasMemory, false);
    assert.equal(s.rssAnonBytes + s.rssFileBytes + s.rssShmemBytes + s.swapBytes, 0);
  }
  assert.equal(ok(parseStatus(basic(10861, 'status'))).state, 'Z');
});

test('parseStatus: non-root uid, swap and old kernels without NSpid', () => {
  const text = basic(10836, 'status')
    .toString()
    .replace(/^Uid:.*$/m, 'Uid:\t1000\t1000\t1000\t1000')
    .replace(/^VmSwap:.*$/m, 'VmSwap:\t    2048 kB')
    .replace(/^NSpid:.*\n/m, '');
  const s = ok(parseStatus(text));
  assert.equal(s.uid, 1000);
  assert.equal(s.swapBytes, 2048 * 1024);
  assert.equal(s.nsPids, null);
});

test('parseStatus: missing required lines and garbage numbers are errors', () => {
  parseError(parseStatus(garbage(105, 'status')), 'status', /PPid/);
  parseError(parseStatus(''), 'status', /empty/);
  const real = basic(10836, 'status').toString();
  parseError(parseStatus(real.replace(/^RssAnon:.*$/m, 'RssAnon:\t  1x2 kB')), 'status', /RssAnon/);
  parseError(parseStatus(real.replace(/^NSpid:.*$/m, 'NSpid:\t10836\tabc')), 'status', /NSpid/);
  parseError(parseStatus(real.replace(/^Uid:.*$/m, 'Uid:\t-1')), 'status', /Uid/);
  parseError(parseStatus(real.replace(/^RssFile:.*\n/m, '')), 'status', /memory lines/);
});

test('parseStatus: every truncation of a real file is an error, never a throw or zeros', () => {
  for (const pid of [10836, 2]) {
    const full = basic(pid, 'status');
    const end = full.indexOf('\nThreads:') + '\nThreads:'.length;
    for (let len = 0; len < end; len++) {
      const r = parseStatus(full, len);
      assert.ok(r instanceof ProcParseError, `pid ${pid} cut at ${len} parsed as ${JSON.stringify(r)}`);
    }
  }
});

test('parseCmdline: argv, bound, UTF-8 cut, padding, garbage bytes', () => {
  const bash = parseCmdline(basic(10832, 'cmdline'));
  assert.deepEqual(bash.argv, ['bash', '-c', 'sleep 3600 & echo $! > /tmp/lwcap/sleep.pid; wait']);
  assert.equal(bash.cmdline, 'bash -c sleep 3600 & echo $! > /tmp/lwcap/sleep.pid; wait');
  assert.equal(bash.truncated, false);
  assert.deepEqual(parseCmdline(basic(2, 'cmdline')), { argv: [], cmdline: '', truncated: false });

  const bounded = parseCmdline(basic(10832, 'cmdline'), undefined, 10);
  assert.deepEqual(bounded.argv, ['bash', '-c', 'sl']);
  assert.equal(bounded.truncated, true);

  // "é" is two bytes; a bound that cuts it drops the half sequence instead of printing U+FFFD.
  const accent = Buffer.from('caf\u00e9\0x\0');
  assert.deepEqual(parseCmdline(accent, undefined, 4).argv, ['caf']);
  assert.deepEqual(parseCmdline(accent, undefined, 5).argv, ['caf\u00e9']);

  // A retitled process pads with NULs; an empty argument in the middle stays.
  assert.deepEqual(parseCmdline(Buffer.from('nginx: worker process\0\0\0\0')).argv, ['nginx: worker process']);
  assert.deepEqual(parseCmdline(Buffer.from('prog\0\0x\0')).argv, ['prog', '', 'x']);

  const bad = parseCmdline(garbage(108, 'cmdline'));
  assert.equal(bad.argv.length, 2);
  assert.ok(bad.argv[0]!.includes('\ufffd'));
});

test('parseMemoryCgroupPath: v1 memory line, combined controllers, v2 only, garbage', () => {
  assert.equal(parseMemoryCgroupPath(basic(10836, 'cgroup')), '/process_api/a95b503ae0d2197bc9ad660b840d3c52');
  assert.equal(
    parseMemoryCgroupPath(basic(10837, 'cgroup')),
    '/kubepods/burstable/pod6f2c1b3e-1a2b-4c5d-9e8f-0123456789ab/3f1c9a2b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8',
  );
  assert.equal(
    parseMemoryCgroupPath(basic(20837, 'cgroup')),
    '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f2c1b3e_1a2b_4c5d_9e8f_0123456789ab.slice/cri-containerd-3f1c9a2b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8.scope',
  );
  assert.equal(parseMemoryCgroupPath('5:cpu,memory:/a/b\n0::/other\n'), '/a/b');
  assert.equal(parseMemoryCgroupPath('0::/v2/with:colon\n'), '/v2/with:colon');
  // A named v1 hierarchy that merely contains "memory" in its name is not the memory controller.
  assert.equal(parseMemoryCgroupPath('9:name=memory-ish:/x\n0::/y\n'), '/y');
  assert.equal(parseMemoryCgroupPath(garbage(108, 'cgroup')), null);
  assert.equal(parseMemoryCgroupPath(''), null);
});

test('parseBootTimeSec: real, missing, garbage, cut', () => {
  assert.equal(parseBootTimeSec(readFileSync(join(fixtures, 'basic', 'stat'))), 1795318814);
  parseError(parseBootTimeSec(readFileSync(join(fixtures, 'no-btime', 'stat'))), 'proc-stat', /no btime/);
  parseError(parseBootTimeSec('cpu 1 2\nbtime 17x5\n'), 'proc-stat', /no btime/);
  parseError(parseBootTimeSec('cpu 1 2\nbtime 0\n'), 'proc-stat', /positive/);
  parseError(parseBootTimeSec('cpu 1 2\nbtime 17953'), 'proc-stat', /truncated/);
});

test('parseUint: digits only, bounded to 2^53', () => {
  const b = Buffer.from('123 4a5 9007199254740993');
  assert.equal(parseUint(b, 0, 3), 123);
  assert.equal(parseUint(b, 4, 7), -1);
  assert.equal(parseUint(b, 3, 3), -1);
  assert.equal(parseUint(b, 8, b.length), -1);
});
