import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentMessage, CollectorMessage } from '../../protocol/messages.js';
import {
  MAX_ARRAY_ITEMS,
  MAX_SCRIPT_CONTENT_BYTES,
  MAX_STRING_BYTES,
  seqOf,
  validateAgentMessage,
  validateCollectorMessage,
  validateFinding,
} from '../../protocol/validate.js';
import { copy, fanoutFinding, growthFinding, oomFinding, spawnFinding } from '../support/sample-findings.js';

const allKinds = () => [growthFinding('growth-0001'), fanoutFinding('fanout-0002'), spawnFinding('suspicious-spawn-0003'), oomFinding('oom-kill-0004')];

function findingsMessage(): Record<string, unknown> {
  return copy({ type: 'findings', seq: 7, events: allKinds().map((finding) => ({ change: 'open', finding })) });
}

function expectBad(value: unknown, pattern: RegExp): void {
  const r = validateAgentMessage(value);
  assert.equal(r.ok, false, `expected rejection matching ${pattern}`);
  if (!r.ok) {
    assert.equal(r.code, 'bad-message');
    assert.match(r.error, pattern);
  }
}

describe('validateAgentMessage', () => {
  it('accepts every agent message type as the protocol defines it, unchanged', () => {
    const messages: AgentMessage[] = [
      { type: 'hello', protocolVersion: 1, agentId: 'node-a', node: 'node-a', version: '0.1.0', startedAtMs: 1_700_000_000_000 },
      findingsMessage() as unknown as AgentMessage,
      {
        type: 'series',
        seq: 0,
        targets: [{ targetKey: 'proc:1:2', kind: 'process', pid: 1, ppid: null, comm: 'x', cmdline: 'x', namespace: null, pod: null, podUid: null, container: null, containerId: null }],
        points: [{ targetKey: 'proc:1:2', atMs: 1, anonBytes: 2, workingSetBytes: null, limitBytes: 3 }],
      },
      { type: 'heartbeat', atMs: 5, droppedFindings: 0, queuedFindings: 3 },
      { type: 'command-result', commandId: 'c1', ok: true, result: { nested: [1, 'two'] } },
      { type: 'command-result', commandId: 'c2', ok: false, error: 'no such pid' },
    ];
    for (const m of messages) {
      const r = validateAgentMessage(copy(m));
      assert.ok(r.ok, r.ok ? '' : r.error);
      assert.deepEqual(r.message, m);
    }
  });

  it('keeps only the fields the protocol defines', () => {
    const m = findingsMessage();
    (m as { extra?: unknown }).extra = 'x';
    const events = m.events as Array<{ finding: Record<string, unknown> }>;
    events[0]!.finding.surprise = { big: true };
    const r = validateAgentMessage(m);
    assert.ok(r.ok);
    assert.equal('extra' in r.message, false);
    assert.equal('surprise' in (r.message as { events: Array<{ finding: object }> }).events[0]!.finding, false);
  });

  it('names the field path of a wrong type', () => {
    const m = findingsMessage();
    const events = m.events as Array<{ finding: { target: { pid: unknown } } }>;
    events[3]!.finding.target.pid = 'ten';
    expectBad(m, /^events\[3\]\.finding\.target\.pid: expected .*or null, got string$/);
  });

  it('rejects each kind of wrong field with its path', () => {
    const cases: Array<[(m: any) => void, RegExp]> = [
      [(m) => (m.seq = -1), /^seq: expected non-negative integer/],
      [(m) => (m.seq = 1.5), /^seq: expected non-negative integer/],
      [(m) => delete m.seq, /^seq: .*got undefined/],
      [(m) => (m.events = {}), /^events: expected array, got object/],
      [(m) => (m.events[0].change = 'opened'), /^events\[0\]\.change: expected one of "open", "update", "resolve"/],
      [(m) => (m.events[1].finding = null), /^events\[1\]\.finding: expected object, got null/],
      [(m) => (m.events[0].finding.kind = 'leak'), /^events\[0\]\.finding\.kind: expected one of/],
      [(m) => (m.events[0].finding.status = 'closed'), /^events\[0\]\.finding\.status/],
      [(m) => (m.events[0].finding.details.slopeBytesPerSec = '1'), /^events\[0\]\.finding\.details\.slopeBytesPerSec: expected number, got string/],
      [(m) => (m.events[1].finding.details.sampleChildren[0].pid = null), /^events\[1\]\.finding\.details\.sampleChildren\[0\]\.pid/],
      [(m) => (m.events[2].finding.details.script.truncated = 'no'), /^events\[2\]\.finding\.details\.script\.truncated: expected boolean/],
      [(m) => (m.events[2].finding.details.script.contentEncoding = 'hex'), /script\.contentEncoding: expected one of/],
      [(m) => (m.events[2].finding.details.argv[1] = 3), /^events\[2\]\.finding\.details\.argv\[1\]: expected string, got number/],
      [(m) => (m.events[2].finding.details.provenance.encoding = 'rot13'), /provenance\.encoding/],
      [(m) => (m.events[3].finding.details.sources = ['dmesg']), /^events\[3\]\.finding\.details\.sources\[0\]/],
      [(m) => (m.events[3].finding.details.victim = 'x'), /^events\[3\]\.finding\.details\.victim: expected object, got string/],
      [(m) => (m.events[3].finding.details.containerSurvived = 0), /containerSurvived: expected boolean or null/],
      // A growth finding's details under another kind is caught by the kind's own schema.
      [(m) => (m.events[1].finding.details = m.events[0].finding.details), /^events\[1\]\.finding\.details\.parent: expected object/],
    ];
    for (const [breakIt, pattern] of cases) {
      const m = findingsMessage();
      breakIt(m);
      expectBad(m, pattern);
    }
  });

  it('reads a missing ppid (0.1.0 agents) as unknown, and rejects a wrong one', () => {
    const target = { targetKey: 'proc:1:2', kind: 'process', pid: 1, comm: 'x', cmdline: 'x', namespace: null, pod: null, podUid: null, container: null, containerId: null };
    const series = (t: object) => ({ type: 'series', seq: 0, targets: [t], points: [] });
    const r = validateAgentMessage(series(target));
    assert.ok(r.ok && r.message.type === 'series');
    assert.equal(r.message.targets[0]!.ppid, null);
    expectBad(series({ ...target, ppid: 'one' }), /^targets\[0\]\.ppid: expected .*or null, got string$/);
    expectBad(series({ ...target, ppid: -4 }), /^targets\[0\]\.ppid: expected /);

    const m = findingsMessage();
    const victim = (m.events as Array<{ finding: { details: { victim: Record<string, unknown> } } }>)[3]!.finding.details.victim;
    delete victim.ppid;
    const old = validateAgentMessage(m);
    assert.ok(old.ok && old.message.type === 'findings');
    const kill = old.message.events[3]!.finding;
    assert.ok(kill.kind === 'oom-kill' && kill.details.victim.ppid === null);
    victim.ppid = 1.5;
    expectBad(m, /^events\[3\]\.finding\.details\.victim\.ppid: expected /);
  });

  it('rejects numbers JSON cannot carry when handed values directly', () => {
    const m = { type: 'heartbeat', atMs: Number.NaN, droppedFindings: 0, queuedFindings: 0 };
    expectBad(m, /^atMs: expected number, got NaN/);
    expectBad({ ...m, atMs: 1, queuedFindings: Infinity }, /^queuedFindings: .*got Infinity/);
  });

  it('tells an unknown type from a malformed message', () => {
    const unknown = validateAgentMessage({ type: 'snapshot-chunk', seq: 1 });
    assert.deepEqual(unknown.ok ? null : unknown.code, 'unknown-type');
    assert.match(unknown.ok ? '' : unknown.error, /snapshot-chunk/);
    // A collector-only type sent by an agent is unknown too.
    assert.equal((validateAgentMessage({ type: 'ack', seq: 1 }) as { code?: string }).code, 'unknown-type');
    expectBad({ seq: 1 }, /^type: expected string, got undefined/);
    expectBad({ type: 7 }, /^type: expected string, got number/);
    for (const v of [null, 42, 'hello', [], true, undefined]) expectBad(v, /^message: expected object/);
  });

  it('bounds strings, script content and arrays', () => {
    const long = 'x'.repeat(MAX_STRING_BYTES + 1);
    const m1 = findingsMessage();
    (m1 as any).events[0].finding.summary = long;
    expectBad(m1, /^events\[0\]\.finding\.summary: string longer than 65536 bytes/);

    // UTF-8 bytes count, not characters: 30,000 three-byte characters are 90,000 bytes.
    const m2 = findingsMessage();
    (m2 as any).events[0].finding.summary = '€'.repeat(30_000);
    expectBad(m2, /summary: string longer than/);

    const big = spawnFinding('suspicious-spawn-big', 'node-a', 1, 'y'.repeat(MAX_SCRIPT_CONTENT_BYTES));
    const ok = validateFinding(copy(big));
    assert.ok(ok.ok, ok.ok ? '' : ok.error);
    const tooBig = spawnFinding('suspicious-spawn-big', 'node-a', 1, 'y'.repeat(MAX_SCRIPT_CONTENT_BYTES + 1));
    const r = validateFinding(copy(tooBig));
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.error, /^details\.script\.content: string longer than 1048576 bytes/);
    // The larger bound is the script content's only.
    const m3 = findingsMessage();
    (m3 as any).events[2].finding.details.script.path = long;
    expectBad(m3, /script\.path: string longer/);

    const points = Array.from({ length: MAX_ARRAY_ITEMS + 1 }, (_, i) => ({ targetKey: 'k', atMs: i, anonBytes: 1, workingSetBytes: null, limitBytes: null }));
    expectBad({ type: 'series', seq: 1, targets: [], points }, /^points: more than 10000 items/);
    assert.ok(validateAgentMessage({ type: 'series', seq: 1, targets: [], points: points.slice(1) }).ok);
  });

  it('accepts only finding ids of lowercase letters, digits and dashes, 1 to 80', () => {
    for (const id of ['', 'A', 'growth_1', '../../etc/passwd', 'x'.repeat(81), 'growth 1', 'growth-1\n']) {
      const r = validateFinding({ ...growthFinding('growth-1'), id });
      assert.equal(r.ok, false, `id ${JSON.stringify(id)} accepted`);
      assert.match(r.ok ? '' : r.error, /^id: expected a finding id/);
    }
    assert.ok(validateFinding(growthFinding('x'.repeat(80))).ok);
    const oom = copy(oomFinding('oom-kill-1')) as any;
    oom.details.relatedFindings = ['ok-id', 'Bad/Id'];
    assert.match((validateFinding(oom) as { error: string }).error, /^details\.relatedFindings\[1\]: expected a finding id/);
  });

  it('checks hello identity fields', () => {
    const hello = { type: 'hello', protocolVersion: 1, agentId: 'node-a', node: 'node-a', version: '1', startedAtMs: 1 };
    expectBad({ ...hello, agentId: '' }, /^agentId: expected 1-253 printable characters/);
    expectBad({ ...hello, node: 'a\u0000b' }, /^node: expected 1-253 printable/);
    expectBad({ ...hello, agentId: 'n'.repeat(254) }, /^agentId:/);
    expectBad({ ...hello, protocolVersion: '1' }, /^protocolVersion:/);
  });
});

describe('validateCollectorMessage', () => {
  it('accepts every collector message type unchanged', () => {
    const messages: CollectorMessage[] = [
      { type: 'welcome', protocolVersion: 1, collectorVersion: '0.1.0', heartbeatIntervalMs: 15000 },
      { type: 'ack', seq: 3 },
      { type: 'error', code: 'bad-json', message: 'not JSON' },
      { type: 'error', code: 'store-failed', message: 'disk full', seq: 4 },
      { type: 'command', commandId: 'cmd-1', command: { action: 'snapshot', pid: 123 } },
    ];
    for (const m of messages) {
      const r = validateCollectorMessage(copy(m));
      assert.ok(r.ok, r.ok ? '' : r.error);
      assert.deepEqual(r.message, m);
    }
  });

  it('rejects malformed collector messages with the field path', () => {
    const check = (v: unknown, code: string, pattern: RegExp) => {
      const r = validateCollectorMessage(v);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.equal(r.code, code);
        assert.match(r.error, pattern);
      }
    };
    check({ type: 'ack' }, 'bad-message', /^seq: expected non-negative integer, got undefined/);
    check({ type: 'error', code: 'x', message: 'y', seq: 'z' }, 'bad-message', /^seq:/);
    check({ type: 'command', commandId: 'c', command: { pid: 1 } }, 'bad-message', /^command\.action: expected string/);
    check({ type: 'command', commandId: 'c', command: [] }, 'bad-message', /^command: expected object, got array/);
    check({ type: 'hello' }, 'unknown-type', /hello/);
  });
});

describe('seqOf', () => {
  it('reads a usable seq from a message that failed validation', () => {
    assert.equal(seqOf({ type: 'findings', seq: 12, events: 'nope' }), 12);
    assert.equal(seqOf({ seq: -1 }), undefined);
    assert.equal(seqOf({ seq: '3' }), undefined);
    assert.equal(seqOf(null), undefined);
  });
});
