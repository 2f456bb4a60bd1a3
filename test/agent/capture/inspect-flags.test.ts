import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { InspectFlagError, parseHostPort, parseInspectorFlags, readNodeOptions, splitNodeOptions } from '../../../agent/capture/inspect-flags.js';
import { waitUntil } from '../../support/capture-targets.js';

describe('inspector flags of a target', () => {
  it('defaults to 127.0.0.1:9229, not active', () => {
    assert.deepEqual(parseInspectorFlags(['node', 'server.js'], null), { active: false, host: '127.0.0.1', port: 9229 });
  });

  it('reads --inspect forms before the script', () => {
    assert.deepEqual(parseInspectorFlags(['node', '--inspect', 'app.js'], null), { active: true, host: '127.0.0.1', port: 9229 });
    assert.deepEqual(parseInspectorFlags(['node', '--inspect=9333', 'app.js'], null), { active: true, host: '127.0.0.1', port: 9333 });
    assert.deepEqual(parseInspectorFlags(['node', '--inspect=0.0.0.0:9400', 'app.js'], null), { active: true, host: '0.0.0.0', port: 9400 });
    assert.deepEqual(parseInspectorFlags(['node', '--inspect-brk=[::1]:9401', 'app.js'], null), { active: true, host: '::1', port: 9401 });
    assert.deepEqual(parseInspectorFlags(['node', '--inspect-port', '9500', 'app.js'], null), { active: false, host: '127.0.0.1', port: 9500 });
    assert.deepEqual(parseInspectorFlags(['node', '--inspect-port=0', 'app.js'], null), { active: false, host: '127.0.0.1', port: 0 });
  });

  it("ignores the program's own arguments after the script or -e code", () => {
    assert.equal(parseInspectorFlags(['node', 'app.js', '--inspect'], null).active, false);
    assert.equal(parseInspectorFlags(['node', '-e', 'x', '--inspect'], null).active, false);
    assert.equal(parseInspectorFlags(['node', '-r', 'dotenv/config', 'app.js', '--inspect=1'], null).port, 9229);
  });

  it('applies NODE_OPTIONS, with argv winning', () => {
    assert.deepEqual(parseInspectorFlags(['node', 'app.js'], '--max-old-space-size=512 --inspect=9600'), { active: true, host: '127.0.0.1', port: 9600 });
    assert.equal(parseInspectorFlags(['node', '--inspect-port=9700', 'app.js'], '--inspect=9600').port, 9700);
    assert.deepEqual(splitNodeOptions('--require "/opt/my dir/x.js" --inspect'), ['--require', '/opt/my dir/x.js', '--inspect']);
  });

  it('rejects ports that are not ports', () => {
    assert.throws(() => parseHostPort('70000'), InspectFlagError);
    assert.throws(() => parseInspectorFlags(['node', '--inspect=host:abc', 'a.js'], null), /not a port number/);
    assert.throws(() => parseInspectorFlags(['node', '--inspect-port'], null), /has no value/);
  });

  it("reads NODE_OPTIONS from a live process's environ", async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '--inspect-port=9911' } });
    try {
      await waitUntil(() => readNodeOptions(child.pid!) !== null, 5_000, 'environ');
      assert.equal(readNodeOptions(child.pid!), '--inspect-port=9911');
      assert.equal(readNodeOptions(999_999_999), null);
    } finally {
      child.kill();
    }
  });
});
