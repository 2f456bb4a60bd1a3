// Heap diffs over the API. GET /api/v1/snapshots/:id/diff/:other answers the stored diff of the
// pair (id earlier, other later), or queues it on the same runner the automatic diffs use:
// 200 with the record when it is done or failed; 202 with the record (pending/running) and
// Retry-After while it is not — `?wait=<ms>` (at most 25 s) holds the answer until it finishes
// or the wait is over; `?retry=true` queues a failed diff again. Findings and snapshots carry
// their diffs (see findingHeapDiff, snapshotAnalysis). Class names and retainer paths inside are
// the target's heap: untrusted text, sent as JSON strings and never as markup.
import { HttpError, type ApiEnv, type Reply, type Route } from '../api.js';
import type { Finding } from '../../protocol/findings.js';
import type { HeapDiffRecord } from '../../protocol/heap-diff-record.js';
import { SNAPSHOT_ID_PATTERN } from '../../protocol/snapshots.js';
import type { Store } from '../store/types.js';
import type { DiffRunner } from './diff-runner.js';

export const MAX_DIFF_WAIT_MS = 25_000;

/** What a finding's JSON carries: its newest diff; in lists only the top grower (lists stay small). */
export function findingHeapDiff(store: Store, finding: Finding, view: 'one' | 'list'): { heapDiff?: HeapDiffRecord } {
  if (finding.kind !== 'growth') return {};
  const record = store.listHeapDiffs({ findingId: finding.id, limit: 1 })[0];
  if (!record) return {};
  if (view === 'list' && record.result) return { heapDiff: { ...record, result: { ...record.result, growers: record.result.growers.slice(0, 1) } } };
  return { heapDiff: record };
}

/** The diffs a snapshot takes part in, newest first. */
export function snapshotAnalysis(store: Store, snapshotId: string): HeapDiffRecord[] {
  return store.listHeapDiffs({ snapshotId, limit: 20 });
}

function idParam(value: string | undefined, name: string): string {
  const id = value ?? '';
  if (!SNAPSHOT_ID_PATTERN.test(id)) throw new HttpError(400, 'bad-id', `${name} must match ${SNAPSHOT_ID_PATTERN.source}`);
  return id;
}

export function heapDiffRoutes(api: ApiEnv, runner: DiffRunner): Route[] {
  const reply = (record: HeapDiffRecord): Reply =>
    record.status === 'done' || record.status === 'failed' ? { status: 200, json: { heapDiff: record } } : { status: 202, json: { heapDiff: record }, headers: { 'Retry-After': '2' } };
  return [
    {
      method: 'GET',
      path: '/api/v1/snapshots/:id/diff/:other',
      scope: 'read',
      handle: async (ctx) => {
        for (const key of ctx.query.keys()) {
          if (key !== 'wait' && key !== 'retry') throw new HttpError(400, 'bad-query', `unknown query parameter "${key.slice(0, 40)}" (allowed: wait, retry)`);
        }
        const a = idParam(ctx.params.id, 'snapshot id');
        const b = idParam(ctx.params.other, 'the other snapshot id');
        if (a === b) throw new HttpError(400, 'same-snapshot', 'a snapshot diffed with itself shows nothing: name two snapshots');
        const waitRaw = ctx.query.get('wait');
        const wait = waitRaw === null ? 0 : /^\d{1,6}$/.test(waitRaw) ? Number(waitRaw) : NaN;
        if (!Number.isSafeInteger(wait) || wait > MAX_DIFF_WAIT_MS) throw new HttpError(400, 'bad-query', `wait: expected milliseconds from 0 to ${MAX_DIFF_WAIT_MS}`);
        const retry = ctx.query.get('retry');
        if (retry !== null && retry !== 'true' && retry !== 'false') throw new HttpError(400, 'bad-query', 'retry: expected true or false');
        const rows = [a, b].map((id) => {
          const row = api.store.getSnapshot(id);
          if (!row) throw new HttpError(404, 'not-found', `no snapshot ${id}`);
          if (row.kind !== 'heapsnapshot') throw new HttpError(400, 'not-heapsnapshot', `snapshot ${id} is a ${row.kind}: only full heap snapshots can be diffed`);
          return row;
        });
        // Asked for by hand, a finding's own pair still belongs to that finding.
        const [rowA, rowB] = rows as [NonNullable<(typeof rows)[0]>, NonNullable<(typeof rows)[0]>];
        const samePair = rowA.pairId !== null && rowA.pairId === rowB.pairId && rowA.agentId === rowB.agentId;
        const findingId = samePair ? (rowB.findingId ?? rowA.findingId) : null;
        let record = api.store.getHeapDiff(a, b);
        if (record?.status === 'failed' && retry === 'true') record = runner.retry(a, b);
        if (!record) record = runner.queue(a, b, findingId);
        if (wait > 0 && (record.status === 'pending' || record.status === 'running')) record = (await runner.waitFor(a, b, wait)) ?? record;
        return reply(record);
      },
    },
  ];
}
