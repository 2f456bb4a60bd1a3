// The HTTP API: JSON under /api/v1, each route declaring the scope it needs. Ids and query values
// are validated before they reach the store, so a bad value is a 400 naming it, and nothing in a
// request is ever used as a file path. Reading a suspicious spawn's evidence (scripts may hold
// secrets) is written to the audit log before the evidence is sent.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../common/log.js';
import type { Finding, FindingKind, FindingStatus } from '../protocol/findings.js';
import { AGENT_WS_PATH } from '../protocol/messages.js';
import { FINDING_ID_PATTERN } from '../protocol/validate.js';
import { SCOPES, hasScope, type Identity, type Scope, type TokenAuth } from './auth.js';
import type { CollectorMetrics } from './metrics.js';
import { TARGET_PAGE_DEFAULT, TARGET_PAGE_MAX, type FindingFilter, type Store, type TargetFilter } from './store/types.js';

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Decoded path parameters (`:id`), not yet validated: the route does that. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** Null on routes that need no token. */
  identity: Identity | null;
  remote: string;
}

/** What a handler answers; `undefined` means it wrote the response itself (streams, downloads). */
export type Reply = { status: number; json: unknown; headers?: Record<string, string> } | { status: number; text: string | Buffer; contentType: string; headers?: Record<string, string> };

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Literal segments and `:name` parameters, e.g. `/api/v1/findings/:id`. */
  path: string;
  /** Scope a token needs; null: no token needed (probes, metrics). */
  scope: Scope | null;
  handle(ctx: RouteContext): Reply | undefined | Promise<Reply | undefined>;
}

export interface ApiEnv {
  store: Store;
  auth: TokenAuth;
  log: Logger;
  metrics?: CollectorMetrics;
  tls: boolean;
  /** Agent ids with an open WebSocket right now (the store's flag can be stale after a crash). */
  connectedAgents(): Set<string>;
  ready(): { ok: boolean; reason?: string };
  audit(ctx: RouteContext, action: string, subject: string): void;
  /** More fields for a finding's JSON (its heap diff); 'list' for /findings, 'one' for /findings/:id. */
  findingExtras?(finding: Finding, view: 'one' | 'list'): Record<string, unknown>;
}

/** Raised by handlers for a client mistake: becomes a 4xx JSON reply. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const MAX_LIST_LIMIT = 10_000;
const DEFAULT_LIST_LIMIT = 1000;
const MAX_QUERY_STRING_BYTES = 1024;
const FINDING_KINDS: readonly FindingKind[] = ['growth', 'fanout', 'suspicious-spawn', 'oom-kill'];
const FINDING_STATUSES: readonly FindingStatus[] = ['open', 'resolved'];

export function securityHeaders(tls: boolean): Record<string, string> {
  const h: Record<string, string> = {
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
    'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
  };
  if (tls) h['Strict-Transport-Security'] = 'max-age=31536000';
  return h;
}

// ---- query values (shared by every route module: one set of rules and messages for bad queries)

export function queryKeys(q: URLSearchParams, allowed: readonly string[]): void {
  const seen = new Set<string>();
  for (const key of q.keys()) {
    if (!allowed.includes(key)) {
      throw new HttpError(400, 'bad-query', `unknown query parameter "${key.slice(0, 40)}" (allowed: ${allowed.join(', ') || 'none'})`);
    }
    if (seen.has(key)) throw new HttpError(400, 'bad-query', `query parameter "${key}" given more than once`);
    seen.add(key);
  }
}

export function qString(q: URLSearchParams, key: string): string | undefined {
  const v = q.get(key);
  if (v === null) return undefined;
  if (v.length === 0 || v.length > 512) throw new HttpError(400, 'bad-query', `${key}: expected 1-512 characters`);
  return v;
}

export function qEnum<T extends string>(q: URLSearchParams, key: string, values: readonly T[]): T | undefined {
  const v = q.get(key);
  if (v === null) return undefined;
  if (!(values as readonly string[]).includes(v)) throw new HttpError(400, 'bad-query', `${key}: expected one of ${values.join(', ')}`);
  return v as T;
}

export function qInt(q: URLSearchParams, key: string, min: number, max: number): number | undefined {
  const v = q.get(key);
  if (v === null) return undefined;
  const n = /^\d{1,16}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new HttpError(400, 'bad-query', `${key}: expected an integer from ${min} to ${max}`);
  return n;
}

/** Epoch milliseconds, or an ISO-8601 date (what a person types). */
function qTime(q: URLSearchParams, key: string): number | undefined {
  const v = q.get(key);
  if (v === null) return undefined;
  if (/^\d{1,16}$/.test(v)) return Number(v);
  const ms = /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(ms)) throw new HttpError(400, 'bad-query', `${key}: expected epoch milliseconds or an ISO-8601 date`);
  return ms;
}

// ---- routes

/** The list omits script content: evidence is read through /findings/:id, which is audited. */
function withoutEvidence(f: Finding): Finding {
  if (f.kind !== 'suspicious-spawn' || !f.details.script || f.details.script.content === null) return f;
  return { ...f, details: { ...f.details, script: { ...f.details.script, content: null } } };
}

export function apiRoutes(env: ApiEnv): Route[] {
  const json = (value: unknown, status = 200): Reply => ({ status, json: value });
  return [
    {
      method: 'GET',
      path: '/healthz',
      scope: null,
      handle: () => json({ status: 'ok' }),
    },
    {
      method: 'GET',
      path: '/readyz',
      scope: null,
      handle: () => {
        const r = env.ready();
        return r.ok ? json({ status: 'ready' }) : json({ status: 'not-ready', reason: r.reason }, 503);
      },
    },
    {
      // Who the presented token is and what it may do, so the web page shows only what it can use.
      // Any valid token may ask (scope null here, checked below): the answer is about itself.
      method: 'GET',
      path: '/api/v1/whoami',
      scope: null,
      handle: ({ req, query }) => {
        queryKeys(query, []);
        const identity = env.auth.authenticate(req.headers.authorization);
        if (!identity) {
          return errorReply(401, 'unauthorized', req.headers.authorization ? 'the bearer token is not valid' : 'this endpoint needs an Authorization: Bearer <token> header', {
            'WWW-Authenticate': 'Bearer realm="leakwatch"',
          });
        }
        return json({ name: identity.name, scopes: identity.scopes, effectiveScopes: SCOPES.filter((s) => hasScope(identity, s)) });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/agents',
      scope: 'read',
      handle: ({ query }) => {
        queryKeys(query, []);
        const live = env.connectedAgents();
        return json({ agents: env.store.listAgents().map((a) => ({ ...a, connected: live.has(a.agentId) })) });
      },
    },
    {
      method: 'GET',
      path: AGENT_WS_PATH,
      scope: 'agent',
      handle: () => {
        throw new HttpError(426, 'upgrade-required', 'this endpoint is a WebSocket: connect with an Upgrade request');
      },
    },
    {
      method: 'GET',
      path: '/api/v1/targets',
      scope: 'read',
      handle: ({ query }) => {
        queryKeys(query, ['node', 'namespace', 'pod', 'limit', 'offset']);
        // A page at a time: each target's finding counts cost an index probe.
        const limit = qInt(query, 'limit', 1, TARGET_PAGE_MAX) ?? TARGET_PAGE_DEFAULT;
        const offset = qInt(query, 'offset', 0, Number.MAX_SAFE_INTEGER) ?? 0;
        const filter: TargetFilter = { limit, offset };
        const node = qString(query, 'node');
        const namespace = qString(query, 'namespace');
        const pod = qString(query, 'pod');
        if (node !== undefined) filter.node = node;
        if (namespace !== undefined) filter.namespace = namespace;
        if (pod !== undefined) filter.pod = pod;
        const targets = env.store.listTargets(filter);
        return json({ targets, nextOffset: targets.length === limit ? offset + limit : null });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/findings',
      scope: 'read',
      handle: ({ query }) => {
        queryKeys(query, ['kind', 'status', 'node', 'namespace', 'pod', 'since', 'limit', 'offset']);
        const limit = qInt(query, 'limit', 1, MAX_LIST_LIMIT) ?? DEFAULT_LIST_LIMIT;
        const offset = qInt(query, 'offset', 0, Number.MAX_SAFE_INTEGER) ?? 0;
        const filter: FindingFilter = { limit, offset };
        const kind = qEnum(query, 'kind', FINDING_KINDS);
        const status = qEnum(query, 'status', FINDING_STATUSES);
        const node = qString(query, 'node');
        const namespace = qString(query, 'namespace');
        const pod = qString(query, 'pod');
        const since = qTime(query, 'since');
        if (kind !== undefined) filter.kind = kind;
        if (status !== undefined) filter.status = status;
        if (node !== undefined) filter.node = node;
        if (namespace !== undefined) filter.namespace = namespace;
        if (pod !== undefined) filter.pod = pod;
        if (since !== undefined) filter.since = since;
        const findings = env.store.listFindings(filter).map(withoutEvidence).map((f) => (env.findingExtras ? { ...f, ...env.findingExtras(f, 'list') } : f));
        return json({ findings, nextOffset: findings.length === limit ? offset + limit : null });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/findings/:id',
      scope: 'read',
      handle: (ctx) => {
        queryKeys(ctx.query, []);
        const id = ctx.params.id ?? '';
        if (!FINDING_ID_PATTERN.test(id)) throw new HttpError(400, 'bad-id', `finding id must match ${FINDING_ID_PATTERN.source}`);
        const finding = env.store.getFinding(id);
        if (!finding) throw new HttpError(404, 'not-found', `no finding ${id}`);
        // Evidence (script bytes, command lines) may hold secrets: who read it is recorded first,
        // and if that record cannot be written the evidence is not served.
        if (finding.kind === 'suspicious-spawn') env.audit(ctx, 'finding.read', id);
        return json(env.findingExtras ? { ...finding, ...env.findingExtras(finding, 'one') } : finding);
      },
    },
    {
      method: 'GET',
      path: '/api/v1/series',
      scope: 'read',
      handle: ({ query }) => {
        queryKeys(query, ['node', 'targetKey', 'since', 'until', 'maxPoints']);
        const node = qString(query, 'node');
        const targetKey = qString(query, 'targetKey');
        if (node === undefined || targetKey === undefined) throw new HttpError(400, 'bad-query', 'node and targetKey are required');
        const range: { sinceMs?: number; untilMs?: number; maxPoints?: number } = {};
        const since = qTime(query, 'since');
        const until = qTime(query, 'until');
        const maxPoints = qInt(query, 'maxPoints', 1, MAX_LIST_LIMIT);
        if (since !== undefined) range.sinceMs = since;
        if (until !== undefined) range.untilMs = until;
        if (maxPoints !== undefined) range.maxPoints = maxPoints;
        if (since !== undefined && until !== undefined && until < since) throw new HttpError(400, 'bad-query', 'until is before since');
        return json({ node, targetKey, points: env.store.series(node, targetKey, range) });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/audit',
      scope: 'admin',
      handle: ({ query }) => {
        queryKeys(query, ['since', 'action', 'limit']);
        const filter: { since?: number; action?: string; limit?: number } = { limit: qInt(query, 'limit', 1, MAX_LIST_LIMIT) ?? DEFAULT_LIST_LIMIT };
        const since = qTime(query, 'since');
        const action = qString(query, 'action');
        if (since !== undefined) filter.since = since;
        if (action !== undefined) filter.action = action;
        return json({ entries: env.store.listAudit(filter) });
      },
    },
  ];
}

// ---- dispatch

interface CompiledRoute {
  route: Route;
  segments: string[];
}

export function compileRoutes(routes: Route[]): CompiledRoute[] {
  return routes.map((route) => ({ route, segments: route.path.split('/').slice(1) }));
}

/** Matches raw (still percent-encoded) segments; parameters are decoded, literals must match exactly. */
function match(compiled: CompiledRoute, raw: string[]): Record<string, string> | null {
  if (compiled.segments.length !== raw.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < raw.length; i++) {
    const want = compiled.segments[i]!;
    const got = raw[i]!;
    if (want.startsWith(':')) {
      if (got.length === 0) return null;
      let decoded: string;
      try {
        decoded = decodeURIComponent(got);
      } catch {
        throw new HttpError(400, 'bad-path', 'malformed percent-encoding in the path');
      }
      params[want.slice(1)] = decoded;
    } else if (want !== got) {
      return null;
    }
  }
  return params;
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.headersSent) return;
  for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
  if ('json' in reply) {
    const body = JSON.stringify(reply.json);
    res.writeHead(reply.status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  } else {
    res.writeHead(reply.status, { 'Content-Type': reply.contentType, 'Content-Length': Buffer.byteLength(reply.text) });
    res.end(reply.text);
  }
}

function errorReply(status: number, code: string, message: string, headers?: Record<string, string>): Reply {
  return { status, json: { error: code, message }, ...(headers ? { headers } : {}) };
}

export function remoteOf(req: IncomingMessage): string {
  const s = req.socket;
  return s.remoteAddress ? `${s.remoteAddress}:${s.remotePort ?? '?'}` : 'unknown';
}

/** Whether a query string carries something that looks like a credential. */
export function hasTokenInQuery(query: URLSearchParams): boolean {
  for (const key of query.keys()) if (/^(token|access_token|auth|authorization|bearer)$/i.test(key)) return true;
  return false;
}

/** Splits a request target into raw path segments and its query, or null when it is not origin-form. */
export function splitTarget(target: string | undefined): { segments: string[]; pathname: string; query: URLSearchParams; queryTooLong: boolean } | null {
  if (!target || !target.startsWith('/')) return null;
  const q = target.indexOf('?');
  const pathname = q < 0 ? target : target.slice(0, q);
  const rawQuery = q < 0 ? '' : target.slice(q + 1);
  const queryTooLong = rawQuery.length > MAX_QUERY_STRING_BYTES;
  return { segments: pathname.split('/').slice(1), pathname, query: new URLSearchParams(queryTooLong ? '' : rawQuery), queryTooLong };
}

export function createRequestHandler(env: ApiEnv, routes: CompiledRoute[]): (req: IncomingMessage, res: ServerResponse) => void {
  const baseHeaders = securityHeaders(env.tls);
  return (req, res) => {
    for (const [k, v] of Object.entries(baseHeaders)) res.setHeader(k, v);
    const remote = remoteOf(req);
    let routeLabel = 'unmatched';
    const finish = (reply: Reply | undefined): void => {
      if (reply) send(res, reply);
      env.metrics?.httpRequest(routeLabel, reply?.status ?? res.statusCode);
    };
    const fail = (err: unknown): void => {
      if (err instanceof HttpError) {
        finish(errorReply(err.status, err.code, err.message));
        return;
      }
      env.log.error('API handler failed', { method: req.method, route: routeLabel, remote, error: err instanceof Error ? err.message : String(err) });
      if (res.headersSent) res.destroy();
      else finish(errorReply(500, 'internal', 'the collector failed to answer this request; see its log'));
    };
    try {
      const target = splitTarget(req.url);
      if (!target) throw new HttpError(400, 'bad-path', 'expected a path starting with /');
      if (target.queryTooLong) throw new HttpError(414, 'query-too-long', `query string longer than ${MAX_QUERY_STRING_BYTES} bytes`);
      if (hasTokenInQuery(target.query)) {
        env.log.warn('request rejected: credential in the URL', { method: req.method, path: target.pathname.slice(0, 200), remote });
        throw new HttpError(400, 'token-in-url', 'send the token in the Authorization header (Bearer), never in the URL');
      }
      let found: { route: Route; params: Record<string, string> } | null = null;
      const allowed: string[] = [];
      for (const c of routes) {
        const params = match(c, target.segments);
        if (!params) continue;
        const method = req.method === 'HEAD' ? 'GET' : req.method;
        if (c.route.method === method) {
          found = { route: c.route, params };
          break;
        }
        allowed.push(c.route.method);
      }
      if (!found) {
        if (allowed.length > 0) {
          finish(errorReply(405, 'method-not-allowed', `use ${allowed.join(' or ')}`, { Allow: allowed.join(', ') }));
          return;
        }
        throw new HttpError(404, 'not-found', 'no such endpoint');
      }
      const { route, params } = found;
      routeLabel = route.path;
      let identity: Identity | null = null;
      if (route.scope !== null) {
        const header = req.headers.authorization;
        identity = env.auth.authenticate(header);
        if (!identity) {
          const reason = header ? 'invalid token' : 'missing token';
          env.log.warn('request rejected', { status: 401, reason, method: req.method, route: route.path, remote });
          finish(
            errorReply(401, 'unauthorized', header ? 'the bearer token is not valid' : 'this endpoint needs an Authorization: Bearer <token> header', {
              'WWW-Authenticate': header ? 'Bearer realm="leakwatch", error="invalid_token"' : 'Bearer realm="leakwatch"',
            }),
          );
          return;
        }
        if (!hasScope(identity, route.scope)) {
          env.log.warn('request rejected', { status: 403, reason: `token lacks scope ${route.scope}`, tokenName: identity.name, method: req.method, route: route.path, remote });
          finish(errorReply(403, 'forbidden', `this endpoint needs a token with the "${route.scope}" scope`, { 'WWW-Authenticate': `Bearer realm="leakwatch", error="insufficient_scope", scope="${route.scope}"` }));
          return;
        }
      }
      const ctx: RouteContext = { req, res, params, query: target.query, identity, remote };
      const out = route.handle(ctx);
      if (out instanceof Promise) out.then(finish, fail);
      else finish(out);
    } catch (err) {
      fail(err);
    }
  };
}
