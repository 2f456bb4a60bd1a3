import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hasSignal, parseSignalMasks, readSignalMasks, SignalMaskError, sigusr1Verdict, SIGUSR1 } from '../../../agent/capture/signals.js';
import { waitUntil } from '../../support/capture-targets.js';

const status = (cgt: string, blk = '0000000000000000', ign = '0000000000000000'): string =>
  `Name:\tnode\nState:\tS (sleeping)\nSigQ:\t0/96362\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t${blk}\nSigIgn:\t${ign}\nSigCgt:\t${cgt}\n`;

describe('signal masks', () => {
  it('reads SIGUSR1 (bit 9) from SigCgt as Node sets it', () => {
    // A real Node 20 process: SIGUSR1 (10), SIGINT... among the caught.
    const masks = parseSignalMasks(status('0000000008014602'));
    assert.ok(hasSignal(masks.caught, SIGUSR1));
    assert.deepEqual(sigusr1Verdict(masks), { safe: true });
  });

  it('refuses when SIGUSR1 is not caught, ignored, or blocked', () => {
    const notCaught = sigusr1Verdict(parseSignalMasks(status('0000000000004002')));
    assert.equal(notCaught.safe, false);
    assert.match(!notCaught.safe ? notCaught.reason : '', /default action would kill/);
    const ignored = sigusr1Verdict(parseSignalMasks(status('0000000000000000', '0000000000000000', '0000000000000200')));
    assert.equal(ignored.safe, false);
    assert.match(!ignored.safe ? ignored.reason : '', /ignored/);
    const blocked = sigusr1Verdict(parseSignalMasks(status('0000000000000200', '0000000000000200')));
    assert.equal(blocked.safe, false);
  });

  it('says what is wrong with a status without masks or with a bad mask', () => {
    assert.throws(() => parseSignalMasks('Name:\tx\n'), SignalMaskError);
    assert.throws(() => parseSignalMasks(status('zz')), /malformed signal mask/);
  });

  it('reads the real masks of a live Node.js process and of a shell sleeping', async () => {
    const node = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
    const sleeper = spawn('sleep', ['20'], { stdio: 'ignore' });
    try {
      // Node installs its SIGUSR1 handler during start-up.
      await waitUntil(() => hasSignal(readSignalMasks(node.pid!).caught, SIGUSR1), 5_000, 'node to catch SIGUSR1');
      assert.equal(sigusr1Verdict(readSignalMasks(sleeper.pid!)).safe, false);
    } finally {
      node.kill();
      sleeper.kill();
    }
  });
});
