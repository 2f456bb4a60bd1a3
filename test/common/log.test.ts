import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger, REDACTED } from '../../common/log.js';

function capture() {
  const lines: string[] = [];
  return { log: createLogger({ write: (s: string) => lines.push(s) }), lines };
}

describe('createLogger', () => {
  it('writes one JSON object per line with level, msg, at and fields', () => {
    const { log, lines } = capture();
    const before = Date.now();
    log.info('agent connected', { agentId: 'node-a', count: 3 });
    log.warn('w');
    log.error('e', { err: new Error('boom') });
    assert.equal(lines.length, 3);
    assert.ok(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')));
    const first = JSON.parse(lines[0]!);
    assert.equal(first.level, 'info');
    assert.equal(first.msg, 'agent connected');
    assert.ok(first.at >= before && first.at <= Date.now());
    assert.equal(first.agentId, 'node-a');
    assert.equal(JSON.parse(lines[1]!).level, 'warn');
    assert.deepEqual(JSON.parse(lines[2]!).err, { name: 'Error', message: 'boom' });
  });

  it('never writes credentials, at any depth, and keeps its envelope', () => {
    const { log, lines } = capture();
    log.warn('x', { token: 'lw_secret1', headers: { Authorization: 'Bearer lw_secret2', host: 'h' }, list: [{ TOKEN: 'lw_secret3' }], level: 'fake', msg: 'fake' });
    const text = lines.join('');
    assert.ok(!text.includes('lw_secret'), text);
    const o = JSON.parse(lines[0]!);
    assert.equal(o.token, REDACTED);
    assert.equal(o.headers.Authorization, REDACTED);
    assert.equal(o.headers.host, 'h');
    assert.equal(o.list[0].TOKEN, REDACTED);
    assert.equal(o.level, 'warn');
    assert.equal(o.msg, 'x');
  });

  it('survives fields it cannot serialise and a stream that throws', () => {
    const { log, lines } = capture();
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    log.info('cyclic', { loop, big: 10n });
    assert.equal(JSON.parse(lines[0]!).msg, 'cyclic');
    const broken = createLogger({ write: () => { throw new Error('EPIPE'); } });
    assert.doesNotThrow(() => broken.error('still fine'));
  });
});
