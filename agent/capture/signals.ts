// Which signals a process catches, blocks or ignores, from the masks in /proc/<pid>/status.
// SIGUSR1's default action is to terminate: Node installs a handler for it (the inspector's
// "start listening" switch) unless run with --disable-sigusr1 or a program replaced it. Sending
// it to a process that does not catch it kills that process, so the capture asks first.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const SIGUSR1 = 10;

export interface SignalMasks {
  caught: bigint;
  blocked: bigint;
  ignored: bigint;
}

export class SignalMaskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SignalMaskError';
  }
}

const maskLine = /^(SigCgt|SigBlk|SigIgn):\s*([0-9a-fA-F]{1,16})\s*$/;

/** Parses SigCgt, SigBlk and SigIgn (hex bitmasks, bit n−1 for signal n). Throws when one is missing or malformed. */
export function parseSignalMasks(statusText: string): SignalMasks {
  const found = new Map<string, bigint>();
  for (const line of statusText.split('\n')) {
    const m = maskLine.exec(line);
    if (m) found.set(m[1]!, BigInt(`0x${m[2]}`));
    else if (/^Sig(Cgt|Blk|Ign):/.test(line)) throw new SignalMaskError(`malformed signal mask line "${line.slice(0, 80)}"`);
  }
  const get = (name: string): bigint => {
    const v = found.get(name);
    if (v === undefined) throw new SignalMaskError(`status has no ${name} line`);
    return v;
  };
  return { caught: get('SigCgt'), blocked: get('SigBlk'), ignored: get('SigIgn') };
}

export function hasSignal(mask: bigint, signal: number): boolean {
  return ((mask >> BigInt(signal - 1)) & 1n) === 1n;
}

export function readSignalMasks(pid: number, procRoot = '/proc'): SignalMasks {
  return parseSignalMasks(readFileSync(join(procRoot, String(pid), 'status'), 'utf8'));
}

export type Sigusr1Verdict = { safe: true } | { safe: false; reason: string };

/**
 * Whether SIGUSR1 may be sent: only when a handler is installed. Ignored would be harmless but
 * also useless (the inspector would not start); blocked stays pending and would not start it either.
 */
export function sigusr1Verdict(masks: SignalMasks): Sigusr1Verdict {
  if (hasSignal(masks.caught, SIGUSR1)) {
    if (hasSignal(masks.blocked, SIGUSR1)) return { safe: false, reason: 'SIGUSR1 is caught but blocked: the inspector would not start' };
    return { safe: true };
  }
  if (hasSignal(masks.ignored, SIGUSR1)) return { safe: false, reason: 'SIGUSR1 is ignored (not caught): the inspector cannot be started by signal' };
  return {
    safe: false,
    reason: 'SIGUSR1 is not caught (started with --disable-sigusr1, or not Node.js): its default action would kill the process, so it was not sent',
  };
}
