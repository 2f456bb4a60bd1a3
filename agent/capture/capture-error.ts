// A capture that could not go on, with the stable code and the plain words its report carries.
import type { CaptureOutcome } from '../../protocol/snapshots.js';

export class CaptureError extends Error {
  constructor(
    readonly reasonCode: string,
    message: string,
    readonly outcome: Extract<CaptureOutcome, 'refused' | 'failed'> = 'failed',
  ) {
    super(message);
    this.name = 'CaptureError';
  }
}
