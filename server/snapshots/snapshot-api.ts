// The snapshot routes of the HTTP API (contract: /work/briefs/snapshot-api.md). Listing is read
// scope; the bytes need the `snapshots` scope, are audited before the first byte goes out, and
// are streamed from the file (a snapshot is hundreds of MiB: never read into memory). Taking one
// routes a `snapshot` command to the agent of the pod's node and waits for its report and for
// the resulting uploads to be stored.
import { closeSync, createReadStream, fstatSync, openSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { CommandResult } from '../agent-session.js';
import { HttpError, qEnum, qInt, qString, queryKeys, type ApiEnv, type Reply, type Route, type RouteContext } from '../api.js';
import { SNAPSHOT_ID_PATTERN, type CaptureOutcome, type CaptureReport, type SnapshotCommand, type SnapshotKind } from '../../protocol/snapshots.js';
import { validateCaptureReport } from '../../protocol/validate.js';
import { snapshotFilePath } from '../store/snapshot-files.js';
import type { CaptureFilter, SnapshotFilter, SnapshotRow } from '../store/types.js';
import type { SnapshotReceiver } from './snapshot-receiver.js';

export interface SnapshotApiEnv {
  api: ApiEnv;
  receiver: SnapshotReceiver;
  /** Agent ids connected right now for a node (newest connection first). */
  agentsOnNode(node: string): string[];
  /** Every agent connected right now. */
  connectedAgents(): string[];
  sendCommand(agentId: string, command: SnapshotCommand | LocatePodCommand, timeoutMs: number): Promise<CommandResult>;
  /** The heap diffs a snapshot takes part in, served as `analysis` with it. */
  analysisOf?(snapshotId: string): unknown[];
}

/** Asked of every connected agent when the collector knows nothing of a pod yet. */
export interface LocatePodCommand {
  action: 'locate-pod';
  namespace: string;
  pod: string;
}

const LOCATE_TIMEOUT_MS = 5_000;
const MAX_LIST_LIMIT = 10_000;
const DEFAULT_LIST_LIMIT = 100;
const DEFAULT_TAKE_TIMEOUT_MS = 120_000;
const MAX_TAKE_TIMEOUT_MS = 30 * 60_000;
const MAX_BODY_BYTES = 16 * 1024;
const KINDS: readonly SnapshotKind[] = ['heapsnapshot', 'heapprofile'];
const OUTCOMES: readonly CaptureOutcome[] = ['captured', 'downgraded', 'refused', 'failed'];
/** Kubernetes names: DNS labels and subdomains. */
const K8S_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function snapshotIdParam(ctx: RouteContext): string {
  const id = ctx.params.id ?? '';
  if (!SNAPSHOT_ID_PATTERN.test(id)) throw new HttpError(400, 'bad-id', `snapshot id must match ${SNAPSHOT_ID_PATTERN.source}`);
  return id;
}

/** `<pod>-<pid>-<id>.<kind>`, with anything outside [A-Za-z0-9._-] replaced (the header must stay one safe token). */
export function downloadFileName(row: SnapshotRow): string {
  const pod = (row.pod ?? row.comm ?? 'process').replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120);
  return `${pod}-${row.pid}-${row.snapshotId}.${row.kind}`;
}

function readJsonBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\b/i.test(type)) {
      reject(new HttpError(415, 'unsupported-media-type', 'send the body as application/json'));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, 'body-too-large', `the body is larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(new HttpError(400, 'bad-json', `the body is not valid JSON: ${(err as Error).message}`));
      }
    });
    req.on('error', reject);
  });
}

/** The POST body: SnapshotCommand without `action`; anything else is a 400 naming the field. */
export function parseTakeBody(body: unknown): Omit<SnapshotCommand, 'action'> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'bad-body', 'expected a JSON object { namespace, pod, container?, pid?, kind? }');
  const o = body as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!['namespace', 'pod', 'container', 'pid', 'kind'].includes(key)) throw new HttpError(400, 'bad-body', `unknown field "${key.slice(0, 40)}"`);
  }
  const name = (key: string, required: boolean): string | undefined => {
    const v = o[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || !K8S_NAME.test(v)) throw new HttpError(400, 'bad-body', `${key}: expected a Kubernetes name (lowercase letters, digits, '-', '.')`);
    return v;
  };
  const out: Omit<SnapshotCommand, 'action'> = { namespace: name('namespace', true)!, pod: name('pod', true)! };
  const container = name('container', false);
  if (container !== undefined) out.container = container;
  if (o.pid !== undefined) {
    if (typeof o.pid !== 'number' || !Number.isSafeInteger(o.pid) || o.pid <= 0) throw new HttpError(400, 'bad-body', 'pid: expected a positive integer');
    out.pid = o.pid;
  }
  if (o.kind !== undefined) {
    if (typeof o.kind !== 'string' || !(KINDS as readonly string[]).includes(o.kind)) throw new HttpError(400, 'bad-body', `kind: expected one of ${KINDS.join(', ')}`);
    out.kind = o.kind as SnapshotKind;
  }
  return out;
}

export function snapshotRoutes(env: SnapshotApiEnv): Route[] {
  const { api, receiver } = env;
  const json = (value: unknown, status = 200): Reply => ({ status, json: value });

  /** The node running the pod, from the targets and findings the collector knows (most recent first). */
  const nodeOfPod = (namespace: string, pod: string): string | null => {
    const targets = api.store.listTargets({ namespace, pod, limit: 1000 }).sort((a, b) => b.lastSeenMs - a.lastSeenMs);
    if (targets[0]) return targets[0].node;
    const findings = api.store.listFindings({ namespace, pod, limit: 1 });
    return findings[0]?.node ?? null;
  };

  /** The agent that says it runs the pod; agents that fail or do not answer in time count as no. */
  const locatePod = async (namespace: string, pod: string): Promise<string | null> => {
    const agents = env.connectedAgents();
    const answers = await Promise.all(
      agents.map(async (agentId) => {
        try {
          const r = await env.sendCommand(agentId, { action: 'locate-pod', namespace, pod }, LOCATE_TIMEOUT_MS);
          return r.ok && (r.result as { found?: unknown } | undefined)?.found === true ? agentId : null;
        } catch {
          return null;
        }
      }),
    );
    return answers.find((a): a is string => a !== null) ?? null;
  };

  return [
    {
      method: 'GET',
      path: '/api/v1/snapshots',
      scope: 'read',
      handle: ({ query }) => {
        queryKeys(query, ['namespace', 'pod', 'container', 'targetKey', 'node', 'findingId', 'limit', 'offset']);
        const filter: SnapshotFilter = {
          limit: qInt(query, 'limit', 1, MAX_LIST_LIMIT) ?? DEFAULT_LIST_LIMIT,
          offset: qInt(query, 'offset', 0, Number.MAX_SAFE_INTEGER) ?? 0,
        };
        for (const key of ['namespace', 'pod', 'container', 'targetKey', 'node', 'findingId'] as const) {
          const v = qString(query, key);
          if (v !== undefined) filter[key] = v;
        }
        return json({ snapshots: api.store.listSnapshots(filter) });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/snapshots/:id',
      scope: 'read',
      handle: (ctx) => {
        queryKeys(ctx.query, []);
        const id = snapshotIdParam(ctx);
        const row = api.store.getSnapshot(id);
        if (!row) throw new HttpError(404, 'not-found', `no snapshot ${id}`);
        return json(env.analysisOf ? { ...row, analysis: env.analysisOf(id) } : row);
      },
    },
    {
      method: 'GET',
      path: '/api/v1/snapshots/:id/download',
      scope: 'snapshots',
      handle: (ctx) => {
        queryKeys(ctx.query, []);
        const id = snapshotIdParam(ctx);
        const row = api.store.getSnapshot(id);
        if (!row) throw new HttpError(404, 'not-found', `no snapshot ${id}`);
        let fd: number;
        try {
          fd = openSync(snapshotFilePath(receiver.dir, id, row.kind), 'r');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new HttpError(404, 'not-found', `snapshot ${id} was deleted (retention)`);
          throw err;
        }
        let streaming = false;
        try {
          const size = fstatSync(fd).size;
          if (size !== row.bytes) throw new Error(`snapshot file ${id} holds ${size} bytes, its row says ${row.bytes}`);
          // Heap snapshots hold secrets: who took one is on record before a byte leaves.
          api.audit(ctx, 'snapshot.download', id);
          const { res, req } = ctx;
          res.writeHead(200, {
            'Content-Type': 'application/octet-stream',
            'Content-Length': String(row.bytes),
            'Content-Disposition': `attachment; filename="${downloadFileName(row)}"`,
            'X-Content-SHA256': row.sha256,
          });
          if (req.method === 'HEAD') {
            res.end();
            return undefined;
          }
          streaming = true;
          const stream = createReadStream('', { fd, autoClose: true, highWaterMark: 256 * 1024 });
          stream.on('error', (err) => {
            api.log.error('snapshot download failed mid-stream', { snapshotId: id, error: err.message });
            res.destroy(err);
          });
          res.on('close', () => stream.destroy());
          stream.pipe(res);
          return undefined;
        } finally {
          if (!streaming) closeSync(fd);
        }
      },
    },
    {
      method: 'POST',
      path: '/api/v1/snapshots',
      scope: 'snapshots',
      handle: async (ctx) => {
        queryKeys(ctx.query, ['timeoutMs']);
        const timeoutMs = qInt(ctx.query, 'timeoutMs', 1, MAX_TAKE_TIMEOUT_MS) ?? DEFAULT_TAKE_TIMEOUT_MS;
        const target = parseTakeBody(await readJsonBody(ctx.req));
        const deadline = Date.now() + timeoutMs;
        const node = nodeOfPod(target.namespace, target.pod);
        let agentId: string | undefined;
        if (node) {
          agentId = env.agentsOnNode(node)[0];
          if (!agentId) throw new HttpError(503, 'agent-offline', `the agent of node ${node}, which runs ${target.namespace}/${target.pod}, is not connected`);
        } else {
          // A pod with no finding yet is unknown here: the agent whose node runs it knows it.
          agentId = (await locatePod(target.namespace, target.pod)) ?? undefined;
          if (!agentId) throw new HttpError(404, 'unknown-pod', `no connected agent runs a pod ${target.namespace}/${target.pod}`);
        }
        api.audit(ctx, 'snapshot.take', `${target.namespace}/${target.pod}${target.pid ? ` pid ${target.pid}` : ''} on ${node ?? `the node of agent ${agentId}`}`);
        let result: CommandResult;
        try {
          result = await env.sendCommand(agentId, { action: 'snapshot', ...target }, timeoutMs);
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          if (/did not answer/.test(message)) return json({ error: 'timeout', message: `${message}; the capture may still land later`, captureId: null }, 504);
          throw new HttpError(503, 'agent-offline', message);
        }
        if (!result.ok) return json({ error: 'agent-error', message: `the agent could not take the snapshot: ${result.error ?? 'no reason given'}` }, 502);
        const checked = validateCaptureReport(result.result);
        if (!checked.ok) return json({ error: 'agent-error', message: `the agent answered with something that is not a capture report: ${checked.error}` }, 502);
        const capture: CaptureReport = checked.value;
        try {
          api.store.recordCapture(capture);
        } catch (err) {
          api.log.error('could not record a capture report', { captureId: capture.captureId, error: err instanceof Error ? err.message : String(err) });
        }
        if (capture.snapshotIds.length === 0) return json({ capture, snapshots: [] });
        const { missing } = await receiver.waitStored(capture.snapshotIds, Math.max(0, deadline - Date.now()));
        if (missing.length > 0) {
          return json(
            {
              error: 'timeout',
              message: `the capture was taken but ${missing.length} of its snapshots were not stored within ${timeoutMs} ms; they may still land: look for capture ${capture.captureId}`,
              captureId: capture.captureId,
              capture,
            },
            504,
          );
        }
        const snapshots = capture.snapshotIds.map((id) => api.store.getSnapshot(id)).filter((r): r is SnapshotRow => r !== null);
        return json({ capture, snapshots });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/captures',
      scope: 'read',
      handle: ({ query }) => {
        queryKeys(query, ['namespace', 'pod', 'targetKey', 'findingId', 'outcome', 'limit']);
        const filter: CaptureFilter = { limit: qInt(query, 'limit', 1, MAX_LIST_LIMIT) ?? DEFAULT_LIST_LIMIT };
        for (const key of ['namespace', 'pod', 'targetKey', 'findingId'] as const) {
          const v = qString(query, key);
          if (v !== undefined) filter[key] = v;
        }
        const outcome = qEnum(query, 'outcome', OUTCOMES);
        if (outcome !== undefined) filter.outcome = outcome;
        return json({ captures: api.store.listCaptures(filter) });
      },
    },
  ];
}
