// Group commit for agent writes. Every durable commit costs an fsync, and 200 agents each sending
// a small batch would pay 200 of them; instead, writes that arrive in the same event-loop turn are
// committed together (one transaction, one fsync) when the store can take several agents'
// batches at once, and each agent is acknowledged after that commit returned. Order is kept:
// items are written and answered in the order they arrived, so one agent's acks come in its
// sending order. A failed group is retried item by item, so one bad batch fails only itself.
import type { Finding } from '../protocol/findings.js';
import type { FindingChange, SeriesPoint, TargetInfo } from '../protocol/messages.js';
import type { CollectorMetrics } from './metrics.js';
import type { Store } from './store/types.js';

type Events = Array<{ change: FindingChange; finding: Finding }>;

/** A store that can commit several agents' finding batches in one transaction. */
interface BatchingStore extends Store {
  ingestFindingBatches(batches: Array<{ node: string; events: Events }>): unknown;
}

type Item =
  | { kind: 'findings'; node: string; events: Events; done: (err: Error | null) => void }
  | { kind: 'series'; node: string; targets: TargetInfo[]; points: SeriesPoint[]; done: (err: Error | null) => void };

/**
 * Events per transaction at most. The store's writes are synchronous, so a group blocks the
 * event loop while it commits (~50 µs a finding here): 500 keep that near 25 ms, while one fsync
 * per 500 findings costs next to nothing.
 */
const MAX_GROUP_EVENTS = 500;

export class IngestQueue {
  private queue: Item[] = [];
  private scheduled = false;
  private idleWaiters: Array<() => void> = [];
  private readonly batching: BatchingStore | null;

  constructor(
    private readonly store: Store,
    private readonly metrics?: CollectorMetrics,
  ) {
    const s = store as Partial<BatchingStore>;
    this.batching = typeof s.ingestFindingBatches === 'function' ? (store as BatchingStore) : null;
  }

  /** `done` is called after the write committed (null) or failed (the error); never before. */
  findings(node: string, events: Events, done: (err: Error | null) => void): void {
    this.push({ kind: 'findings', node, events, done });
  }

  series(node: string, targets: TargetInfo[], points: SeriesPoint[], done: (err: Error | null) => void): void {
    this.push({ kind: 'series', node, targets, points, done });
  }

  /** Resolves once everything queued so far has been written (or failed) and answered. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private push(item: Item): void {
    this.queue.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const item = this.queue[0];
    if (item?.kind === 'series') {
      this.queue.shift();
      this.run(item, () => this.time('series', () => this.store.ingestSeries(item.node, item.targets, item.points)));
    } else if (item) {
      // Consecutive findings items form one group, bounded so one commit never blocks the API for long.
      const group: Array<Extract<Item, { kind: 'findings' }>> = [];
      let events = 0;
      for (const next of this.queue) {
        if (next.kind !== 'findings' || (group.length > 0 && events + next.events.length > MAX_GROUP_EVENTS)) break;
        group.push(next);
        events += next.events.length;
      }
      this.queue.splice(0, group.length);
      this.writeFindings(group);
    }
    if (this.queue.length > 0) {
      // The rest waits one turn of the event loop: HTTP requests and pings get their share in between.
      this.scheduled = true;
      setImmediate(() => this.flush());
      return;
    }
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private writeFindings(group: Array<Extract<Item, { kind: 'findings' }>>): void {
    if (this.batching && group.length > 1) {
      try {
        const store = this.batching;
        this.time('findings', () => store.ingestFindingBatches(group.map((g) => ({ node: g.node, events: g.events }))));
      } catch {
        // Which batch broke the transaction is unknown: write them one by one so the others still land.
        for (const g of group) this.run(g, () => this.time('findings', () => this.store.ingestFindings(g.node, g.events)));
        return;
      }
      for (const g of group) this.answer(g, null);
      return;
    }
    for (const g of group) this.run(g, () => this.time('findings', () => this.store.ingestFindings(g.node, g.events)));
  }

  private run(item: Item, write: () => void): void {
    try {
      write();
    } catch (err) {
      this.answer(item, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.answer(item, null);
  }

  private answer(item: Item, err: Error | null): void {
    if (!err && item.kind === 'findings' && this.metrics) {
      const byKind = new Map<string, number>();
      for (const e of item.events) byKind.set(e.finding.kind, (byKind.get(e.finding.kind) ?? 0) + 1);
      for (const [kind, n] of byKind) this.metrics.findingsIngested(kind, n);
    }
    try {
      item.done(err);
    } catch {
      // An answer that cannot be sent (socket gone) must not stop the rest of the group.
    }
  }

  private time(op: 'findings' | 'series', write: () => unknown): void {
    if (this.metrics) this.metrics.timeStoreWrite(op, write);
    else write();
  }
}
