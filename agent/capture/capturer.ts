// One capture attempt from request to report: pick the way in (the opt-in probe when the target
// runs it, else its inspector), pass the gates, take the file(s), hand them to the spool, and
// report what became of it, whatever that was. Also the two entry points: growth findings
// (automatic pairs) and the collector's `snapshot` command.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { MemoryHierarchy } from '../host/cgroup-memory.js';
import type { AttributedProcess } from '../host/node-sampler.js';
import type { FindingEvent } from '../watch/watcher.js';
import { silentLogger, type Logger } from '../../common/log.js';
import type { CaptureReport, CaptureTrigger, CaptureVia, SnapshotCommand, SnapshotKind, SnapshotMeta } from '../../protocol/snapshots.js';
import { CaptureError } from './capture-error.js';
import { watchRssPeak, SnapshotCostBook, type SnapshotCost } from './snapshot-cost.js';
import { CaptureGates, readHeadroom, type GateOptions } from './gates.js';
import { captureHeapSnapshot, captureSamplingProfile, type CaptureResult } from './heap-capture.js';
import { openInspector, type InspectorHandle } from './inspector-endpoint.js';
import { choosePodTarget, isNodeProcess, nodeVersionFromPath } from './node-targets.js';
import { autoCaptureCandidates, targetKeyOf } from './policy.js';
import { SpoolFullError, type CaptureReportSink, type ProbeConnection, type ProbeRegistry, type SnapshotSink } from './types.js';
import { findingTargetOf } from '../watch/finding-target.js';

export interface CaptureTuning {
  gates?: GateOptions;
  /** Budget per snapshot (and for reaching the inspector). Default 120 s. */
  timeoutMs?: number;
  /** Between the two snapshots of an automatic pair. Default 30 s. */
  pairSpacingMs?: number;
  /** How long a sampling heap profile samples. Default 10 s. */
  sampleMs?: number;
  /** Capture automatically on growth findings. Default true. */
  auto?: boolean;
  /** Wait for the inspector to listen after SIGUSR1. Default 10 s. */
  listenTimeoutMs?: number;
  nsenterPath?: string;
}

export interface CapturerOptions extends CaptureTuning {
  node: string;
  sink: SnapshotSink;
  reports: CaptureReportSink;
  probes?: ProbeRegistry;
  /** For the headroom gate (the sampler's memory hierarchy). */
  hierarchy: MemoryHierarchy | null;
  /** The latest sampled processes (on-demand commands look the pod up here). */
  processes: () => readonly AttributedProcess[];
  procRoot?: string;
  log?: Logger;
  /** Tests: called just before SIGUSR1 is sent to pid. */
  onSignal?: (pid: number) => void;
}

export interface CaptureRequest {
  process: AttributedProcess;
  kind: SnapshotKind;
  trigger: CaptureTrigger;
  findingId?: string | null;
  commandId?: string | null;
  /** Two full snapshots on one session, pairSpacingMs apart (object ids comparable). */
  pair?: boolean;
}

const profileEstimateBytes = 16 * 1024 * 1024;
const kinds: readonly SnapshotKind[] = ['heapsnapshot', 'heapprofile'];

function newId(): string {
  return randomBytes(16).toString('hex');
}

/** A way into the target: the inspector session or the probe's connection. */
interface Access {
  via: CaptureVia;
  nodeVersion: string | null;
  heapUsedBytes(signal: AbortSignal): Promise<number>;
  take(kind: SnapshotKind, path: string, signal: AbortSignal): Promise<CaptureResult>;
  close(): Promise<void>;
}

export class Capturer {
  readonly gates: CaptureGates;
  /** What each target's last full snapshot cost it, for the headroom gate of the next. */
  readonly costs = new SnapshotCostBook();
  private readonly timeoutMs: number;
  private readonly pairSpacingMs: number;
  private readonly sampleMs: number;
  private readonly auto: boolean;
  private readonly log: Logger;
  private readonly inFlight = new Map<Promise<CaptureReport>, AbortController>();
  private closed = false;

  constructor(private readonly options: CapturerOptions) {
    this.gates = new CaptureGates(options.gates);
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.pairSpacingMs = options.pairSpacingMs ?? 30_000;
    this.sampleMs = options.sampleMs ?? 10_000;
    this.auto = options.auto ?? true;
    this.log = options.log ?? silentLogger;
  }

  /** Runs one capture; always resolves with its report (also given to the report sink). */
  capture(request: CaptureRequest): Promise<CaptureReport> {
    const controller = new AbortController();
    const run = this.run(request, controller);
    this.inFlight.set(run, controller);
    void run.finally(() => this.inFlight.delete(run));
    return run;
  }

  /** Growth findings of a pass: starts automatic pairs (not awaited: the pass goes on). */
  observe(events: readonly FindingEvent[], processes: readonly AttributedProcess[], nowMs = Date.now()): Promise<CaptureReport>[] {
    if (!this.auto || this.closed) return [];
    const started: Promise<CaptureReport>[] = [];
    for (const c of autoCaptureCandidates(events, processes)) {
      if (!c.opening && (!this.gates.rateVerdict(targetKeyOf(c.process), nowMs).ok || !this.gates.busyVerdict().ok)) continue;
      started.push(this.capture({ process: c.process, kind: 'heapsnapshot', trigger: 'growth', findingId: c.findingId, pair: true }));
    }
    return started;
  }

  /** The collector's `snapshot` command: the report is the command's result. Bad input throws. */
  async handleCommand(command: { action: string; [key: string]: unknown }, context: { commandId: string }): Promise<CaptureReport> {
    const cmd = parseSnapshotCommand(command);
    const choice = choosePodTarget(this.options.processes(), cmd);
    const kind = cmd.kind ?? 'heapsnapshot';
    if (!choice.ok) {
      const report = this.baseReport(null, { kind, trigger: 'on-demand', commandId: context.commandId });
      report.namespace = cmd.namespace;
      report.pod = cmd.pod;
      report.container = cmd.container ?? null;
      report.pid = cmd.pid ?? null;
      return this.finish(report, 'refused', choice.reasonCode, choice.reason);
    }
    return this.capture({ process: choice.process, kind, trigger: 'on-demand', commandId: context.commandId });
  }

  /** Aborts running captures and waits for their reports. */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.inFlight.values()) c.abort();
    await Promise.allSettled([...this.inFlight.keys()]);
  }

  private baseReport(p: AttributedProcess | null, r: { kind: SnapshotKind; trigger: CaptureTrigger; findingId?: string | null; commandId?: string | null }): CaptureReport {
    return {
      captureId: newId(),
      atMs: Date.now(),
      node: this.options.node,
      targetKey: p ? targetKeyOf(p) : null,
      pid: p?.pid ?? null,
      namespace: p?.namespace ?? null,
      pod: p?.pod ?? null,
      container: p?.container ?? null,
      trigger: r.trigger,
      findingId: r.findingId ?? null,
      commandId: r.commandId ?? null,
      requested: r.kind,
      outcome: 'captured',
      reason: null,
      reasonCode: null,
      snapshotIds: [],
    };
  }

  private finish(report: CaptureReport, outcome: CaptureReport['outcome'], reasonCode: string | null, reason: string | null): CaptureReport {
    report.outcome = outcome;
    report.reasonCode = reasonCode;
    report.reason = reason;
    const fields = { captureId: report.captureId, pid: report.pid, pod: report.pod, outcome, reasonCode, snapshots: report.snapshotIds.length };
    if (outcome === 'captured') this.log.info('capture stored', fields);
    else this.log.warn(`capture ${outcome}: ${reason ?? ''}`, fields);
    try {
      this.options.reports(report);
    } catch (err) {
      this.log.error('the capture report could not be queued', { captureId: report.captureId, error: (err as Error).message });
    }
    return report;
  }

  private async run(request: CaptureRequest, controller: AbortController): Promise<CaptureReport> {
    const p = request.process;
    const report = this.baseReport(p, request);
    if (this.closed) return this.finish(report, 'refused', 'shutting-down', 'the agent is shutting down');
    if (!kinds.includes(request.kind)) return this.finish(report, 'refused', 'bad-request', `unknown capture kind "${String(request.kind)}"`);
    if (!isNodeProcess(p)) return this.finish(report, 'refused', 'not-node', `pid ${p.pid} (${p.comm}) is not a Node.js process`);
    const key = targetKeyOf(p);
    if (request.trigger === 'growth') {
      const rate = this.gates.rateVerdict(key, Date.now());
      if (!rate.ok) return this.finish(report, 'refused', rate.reasonCode, rate.reason);
    }
    const release = this.gates.acquireNode(`pid ${p.pid}${p.pod ? ` in ${p.namespace}/${p.pod}` : ''}`);
    if (!release) {
      const busy = this.gates.busyVerdict();
      return this.finish(report, 'refused', busy.ok ? 'busy' : busy.reasonCode, busy.ok ? 'another capture is running' : busy.reason);
    }
    // Counted at the attempt, not the success: a target that fails must not be retried every pass.
    if (request.trigger === 'growth') this.gates.recordAuto(key, Date.now());
    const count = request.pair && request.kind === 'heapsnapshot' ? 2 : 1;
    const budgetMs = this.timeoutMs * (count + 1) + (count > 1 ? this.pairSpacingMs : 0);
    const timer = setTimeout(() => controller.abort(new CaptureError('timeout', `the capture did not finish within ${Math.round(budgetMs / 1000)} s`)), budgetMs);
    try {
      const outcome = await this.takeAll(request, report, count, controller.signal);
      return this.finish(report, outcome.outcome, outcome.reasonCode, outcome.reason);
    } catch (err) {
      let e: CaptureError;
      if (controller.signal.aborted) {
        const why = controller.signal.reason;
        e = why instanceof CaptureError ? why : new CaptureError('aborted', 'the capture was stopped: the agent is shutting down');
      } else if (err instanceof CaptureError) e = err;
      else e = new CaptureError('error', (err as Error).message ?? String(err));
      // Snapshots already stored (the first of a pair) stay listed in the report.
      return this.finish(report, report.snapshotIds.length > 0 && e.outcome === 'failed' ? 'failed' : e.outcome, e.reasonCode, e.message);
    } finally {
      clearTimeout(timer);
      release();
    }
  }

  private async open(p: AttributedProcess, signal: AbortSignal): Promise<Access> {
    const probe = this.options.probes?.find(p.pid) ?? null;
    if (probe) return this.probeAccess(probe);
    const handle = await openInspector(p, {
      signal,
      ...(this.options.procRoot ? { procRoot: this.options.procRoot } : {}),
      ...(this.options.listenTimeoutMs !== undefined ? { listenTimeoutMs: this.options.listenTimeoutMs } : {}),
      ...(this.options.nsenterPath ? { nsenterPath: this.options.nsenterPath } : {}),
      ...(this.options.onSignal ? { onSignal: this.options.onSignal } : {}),
    });
    return this.inspectorAccess(handle, p);
  }

  private inspectorAccess(h: InspectorHandle, p: AttributedProcess): Access {
    const sampleMs = this.sampleMs;
    return {
      via: 'inspector',
      nodeVersion: h.nodeVersion ?? nodeVersionFromPath(p.exe),
      heapUsedBytes: async (signal) => {
        const u = await h.session.send<{ usedSize?: number }>('Runtime.getHeapUsage', {}, { signal, timeoutMs: 10_000 });
        if (typeof u.usedSize !== 'number') throw new CaptureError('inspector-unreachable', 'Runtime.getHeapUsage returned no usedSize');
        return u.usedSize;
      },
      take: (kind, path, signal) => (kind === 'heapsnapshot' ? captureHeapSnapshot(h.session, path, { signal }) : captureSamplingProfile(h.session, path, { sampleMs, signal })),
      close: () => h.close(),
    };
  }

  private probeAccess(probe: ProbeConnection): Access {
    const sampleMs = this.sampleMs;
    return {
      via: probe.via,
      nodeVersion: probe.nodeVersion,
      heapUsedBytes: (signal) => probe.heapUsedBytes(signal),
      take: async (kind, path, signal) => {
        const started = performance.now();
        const r = await probe.capture(kind, path, { sampleMs, signal });
        return { ...r, durationMs: performance.now() - started };
      },
      close: async () => {},
    };
  }

  private async takeAll(request: CaptureRequest, report: CaptureReport, count: number, signal: AbortSignal): Promise<Pick<CaptureReport, 'outcome' | 'reasonCode' | 'reason'>> {
    const p = request.process;
    const headroomOf = (): ReturnType<typeof readHeadroom> => readHeadroom(this.options.hierarchy, p.cgroupPath);
    const lastCost = (): SnapshotCost | null => this.costs.of(targetKeyOf(p));
    const access = await this.open(p, signal);
    try {
      let kind = request.kind;
      let heapUsed = await access.heapUsedBytes(signal);
      let result: Pick<CaptureReport, 'outcome' | 'reasonCode' | 'reason'> = { outcome: 'captured', reasonCode: null, reason: null };
      if (kind === 'heapsnapshot') {
        const room = this.gates.headroomVerdict(heapUsed, headroomOf(), lastCost());
        if (!room.ok) {
          kind = 'heapprofile';
          count = 1;
          result = { outcome: 'downgraded', reasonCode: room.reasonCode, reason: `${room.reason}; a sampling heap profile was taken instead` };
        }
      }
      const estimate = kind === 'heapsnapshot' ? this.gates.estimateSnapshotBytes(heapUsed) * count : profileEstimateBytes;
      const spool = this.gates.spoolVerdict(this.options.sink.freeBytes(), estimate);
      if (!spool.ok) throw new CaptureError(spool.reasonCode, spool.reason, 'refused');
      const pairId = count > 1 ? newId() : null;
      for (let i = 0; i < count; i++) {
        if (i > 0) {
          await sleep(this.pairSpacingMs, signal);
          heapUsed = await access.heapUsedBytes(signal);
          // The heap grew meanwhile (it is leaking): the second snapshot passes the gates again.
          const room = this.gates.headroomVerdict(heapUsed, headroomOf(), lastCost());
          const spoolAgain = this.gates.spoolVerdict(this.options.sink.freeBytes(), this.gates.estimateSnapshotBytes(heapUsed));
          const refusal = !room.ok ? room : !spoolAgain.ok ? spoolAgain : null;
          if (refusal) return { outcome: 'captured', reasonCode: refusal.reasonCode, reason: `only the first snapshot of the pair was taken: ${refusal.reason}` };
        }
        await this.takeOne(request, report, access, kind, heapUsed, pairId, pairId ? i : null, signal);
      }
      return result;
    } finally {
      await access.close().catch((err: Error) => this.log.warn('closing the inspector failed', { pid: p.pid, error: err.message }));
    }
  }

  private async takeOne(request: CaptureRequest, report: CaptureReport, access: Access, kind: SnapshotKind, heapUsed: number, pairId: string | null, pairIndex: number | null, signal: AbortSignal): Promise<void> {
    const p = request.process;
    const snapshotId = newId();
    const path = join(this.options.sink.workDir, `${snapshotId}.${kind}`);
    const takenAtMs = Date.now();
    const rss = kind === 'heapsnapshot' ? await watchRssPeak(this.options.procRoot ?? '/proc', p.pid) : null;
    let r: CaptureResult;
    try {
      r = await access.take(kind, path, signal);
    } catch (err) {
      await rss?.stop();
      await rm(path, { force: true });
      throw err;
    }
    const peak = await rss?.stop();
    if (peak) {
      const cost = this.costs.record(targetKeyOf(p), peak, heapUsed, Date.now());
      if (cost) this.log.info('snapshot cost', { pid: p.pid, heapUsedBytes: heapUsed, extraRssBytes: cost.extraBytes, perHeapByte: Number(cost.ratio.toFixed(2)) });
    }
    const meta: SnapshotMeta = {
      snapshotId,
      kind,
      targetKey: targetKeyOf(p),
      ...findingTargetOf(p),
      pid: p.pid,
      nsPid: p.nsPids.at(-1) ?? p.nsPid,
      nodeVersion: access.nodeVersion,
      trigger: request.trigger,
      findingId: request.findingId ?? null,
      commandId: request.commandId ?? null,
      pairId,
      pairIndex,
      via: access.via,
      takenAtMs,
      durationMs: Math.round(r.durationMs),
      heapUsedBytes: heapUsed,
    };
    try {
      await this.options.sink.accept({ path, bytes: r.bytes, sha256: r.sha256, meta });
    } catch (err) {
      await rm(path, { force: true });
      if (err instanceof SpoolFullError) throw new CaptureError('spool-full', `the snapshot spool refused the file: ${err.message}`, 'failed');
      throw new CaptureError('spool', `the snapshot spool could not take the file: ${(err as Error).message}`, 'failed');
    }
    report.snapshotIds.push(snapshotId);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}

export class SnapshotCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotCommandError';
  }
}

/** Checks a command from the wire; throws with what is wrong (the command's result is then the error). */
export function parseSnapshotCommand(c: { action: string; [key: string]: unknown }): SnapshotCommand {
  const str = (name: string, optional: boolean): string | undefined => {
    const v = c[name];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'string' || v.length === 0 || v.length > 253) throw new SnapshotCommandError(`snapshot command: "${name}" must be a non-empty string`);
    return v;
  };
  if (c.action !== 'snapshot') throw new SnapshotCommandError(`not a snapshot command: action "${c.action}"`);
  const namespace = str('namespace', false)!;
  const pod = str('pod', false)!;
  const container = str('container', true);
  let pid: number | undefined;
  if (c.pid !== undefined) {
    if (typeof c.pid !== 'number' || !Number.isInteger(c.pid) || c.pid <= 0) throw new SnapshotCommandError('snapshot command: "pid" must be a positive integer');
    pid = c.pid;
  }
  let kind: SnapshotKind | undefined;
  if (c.kind !== undefined) {
    if (!kinds.includes(c.kind as SnapshotKind)) throw new SnapshotCommandError(`snapshot command: "kind" must be heapsnapshot or heapprofile, got ${JSON.stringify(c.kind)}`);
    kind = c.kind as SnapshotKind;
  }
  return { action: 'snapshot', namespace, pod, ...(container !== undefined ? { container } : {}), ...(pid !== undefined ? { pid } : {}), ...(kind !== undefined ? { kind } : {}) };
}
