// Heap snapshot capture for `leakwatch agent` and `leakwatch up`: on by default (automatic pairs
// on growth findings of Node.js targets, and the collector's `snapshots take`), behind the gates
// of agent/capture/gates.ts. The runtime and the probe server start after the options are read,
// so the capture reaches them through late-bound references.
import { InvalidArgumentError, type Command } from 'commander';
import type { AgentRuntimeOptions, AgentRuntime } from '../agent/runtime.js';
import type { ProbeRegistry, SnapshotSink } from '../agent/capture/types.js';
import { parseDurationMs } from './commands/collector.js';

export interface CaptureCliOptions {
  /** False with --no-capture. */
  capture: boolean;
  autoCapture: boolean;
  captureHeadroomFactor: number;
  captureInterval: number;
  capturePairSpacing: number;
}

function parseFactor(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 1) throw new InvalidArgumentError(`expected a number >= 1, got "${value}"`);
  return n;
}

export function addCaptureOptions(command: Command): Command {
  return command
    .option('--no-capture', 'never take heap snapshots or sampling heap profiles of Node.js targets')
    .option('--no-auto-capture', 'take snapshots only when asked (leakwatch snapshots take), not on growth findings')
    .option('--capture-headroom-factor <n>', 'a full snapshot needs cgroup headroom >= n x the heap in use, else a sampling profile is taken', parseFactor, 2)
    .option('--capture-interval <duration>', 'at most one automatic capture per target this often (e.g. 10m)', parseDurationMs, parseDurationMs('10m'))
    .option('--capture-pair-spacing <duration>', 'time between the two snapshots of an automatic pair (what grew in between is what the diff shows)', parseDurationMs, parseDurationMs('30s'));
}

export interface LateBound {
  runtime: AgentRuntime | null;
  probes: ProbeRegistry | null;
}

/** The runtime's `capture` option, or undefined with --no-capture. */
export function captureOption(options: CaptureCliOptions, sink: SnapshotSink, late: LateBound): AgentRuntimeOptions['capture'] {
  if (!options.capture) return undefined;
  return {
    sink,
    // Reports made before the uplink exists cannot happen: the capturer starts with the runtime.
    reports: (report) => late.runtime?.uplink?.reportCapture(report),
    probes: { find: (pid) => late.probes?.find(pid) ?? null },
    auto: options.autoCapture,
    pairSpacingMs: options.capturePairSpacing,
    gates: { headroomFactor: options.captureHeadroomFactor, autoIntervalMs: options.captureInterval },
  };
}
