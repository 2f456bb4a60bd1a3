// Capture reports waiting for the collector, one small JSON file each under
// `<spoolDir>/capture-reports/`, written atomically before the report is sent and deleted when the
// collector acknowledged it: a refusal recorded while the collector is away, or just before the
// agent restarts, still reaches it. Bounded by count (reports are small); past it the oldest go,
// logged and counted.
import { mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import type { CaptureReport } from '../protocol/snapshots.js';
import { validateCaptureReport } from '../protocol/validate.js';
import { writeFileDurably } from '../common/durable-file.js';

export interface QueuedReport {
  report: CaptureReport;
  /** Wire seq while sent on the current connection and not acknowledged. */
  wireSeq: number | null;
  sentAtMs: number;
}

export class CaptureReportQueue {
  readonly dir: string | null;
  private readonly maxReports: number;
  private readonly log: Logger;
  private readonly items: QueuedReport[] = [];
  droppedTotal = 0;

  /** Without a directory reports are held in memory only (tests, an agent without a spool). */
  constructor(options: { spoolDir?: string; maxReports?: number; log?: Logger } = {}) {
    this.dir = options.spoolDir ? join(resolve(options.spoolDir), 'capture-reports') : null;
    this.maxReports = options.maxReports ?? 10_000;
    this.log = options.log ?? silentLogger;
    if (this.dir) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.recover();
    }
  }

  get size(): number {
    return this.items.length;
  }

  add(report: CaptureReport): void {
    const checked = validateCaptureReport(report);
    if (!checked.ok) throw new Error(`capture report does not match the protocol: ${checked.error}`);
    if (this.items.some((i) => i.report.captureId === report.captureId)) return;
    if (this.dir) writeFileDurably(join(this.dir, `${report.captureId}.json`), JSON.stringify(checked.value));
    this.items.push({ report: checked.value, wireSeq: null, sentAtMs: 0 });
    while (this.items.length > this.maxReports) {
      const oldest = this.items.findIndex((i) => i.wireSeq === null);
      if (oldest < 0) break;
      const [gone] = this.items.splice(oldest, 1);
      this.removeFile(gone!.report.captureId);
      this.droppedTotal++;
      this.log.warn('capture report queue full; the oldest report is dropped', { captureId: gone!.report.captureId, maxReports: this.maxReports });
    }
  }

  nextUnsent(): QueuedReport | null {
    return this.items.find((i) => i.wireSeq === null) ?? null;
  }

  /** When the oldest unacknowledged report was sent, or Infinity. */
  oldestInFlightMs(): number {
    let oldest = Infinity;
    for (const i of this.items) if (i.wireSeq !== null) oldest = Math.min(oldest, i.sentAtMs);
    return oldest;
  }

  inFlight(): number {
    return this.items.filter((i) => i.wireSeq !== null).length;
  }

  findBySeq(seq: number): QueuedReport | null {
    return this.items.find((i) => i.wireSeq === seq) ?? null;
  }

  /** Stored by the collector (or refused for good): forgotten. */
  settle(item: QueuedReport): void {
    const index = this.items.indexOf(item);
    if (index < 0) return;
    this.items.splice(index, 1);
    this.removeFile(item.report.captureId);
  }

  /** The connection ended: whatever was in flight goes again. */
  resetInFlight(): void {
    for (const i of this.items) i.wireSeq = null;
  }

  private removeFile(captureId: string): void {
    if (!this.dir) return;
    try {
      unlinkSync(join(this.dir, `${captureId}.json`));
    } catch {
      // already gone
    }
  }

  private recover(): void {
    const dir = this.dir!;
    const found: CaptureReport[] = [];
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (!/^[0-9a-f]{32}\.json$/.test(name)) {
        try {
          unlinkSync(path);
        } catch {
          // gone
        }
        this.log.warn('capture report spool: dropped a leftover file', { path });
        continue;
      }
      try {
        const checked = validateCaptureReport(JSON.parse(readFileSync(path, 'utf8')));
        if (!checked.ok) throw new Error(checked.error);
        found.push(checked.value);
      } catch (err) {
        unlinkSync(path);
        this.log.warn('capture report spool: dropped an unreadable report', { path, error: err instanceof Error ? err.message : String(err) });
      }
    }
    found.sort((a, b) => a.atMs - b.atMs);
    for (const report of found) this.items.push({ report, wireSeq: null, sentAtMs: 0 });
    if (found.length > 0) this.log.info('capture reports recovered from the spool', { reports: found.length });
  }
}

