// Live updates for the web page: what the collector has just stored (findings, series points),
// pushed as server-sent events on GET /api/v1/events. Only what is already durable is published,
// so the page never shows something a reload would lose. The stream is read with fetch() so the
// token travels in the Authorization header (EventSource cannot set headers, and a token in the
// URL would end up in logs). Script content is stripped as in the findings list: evidence is read
// through /findings/:id, which is audited.
import type { ServerResponse } from 'node:http';
import type { Finding } from '../protocol/findings.js';
import type { FindingChange, SeriesPoint, TargetInfo } from '../protocol/messages.js';
import type { Route } from './api.js';

export type LiveEvent =
  | { type: 'findings'; node: string; events: Array<{ change: FindingChange; finding: Finding }> }
  | { type: 'series'; node: string; targets: TargetInfo[]; points: SeriesPoint[] };

export interface EventHub {
  publish(event: LiveEvent): void;
  /** The SSE route (scope read). */
  route(): Route;
  subscribers(): number;
  /** Ends every stream (collector shutdown). */
  closeAll(): void;
}

export interface EventHubOptions {
  /** Streams open at once at most; one more is answered 503. Default 64. */
  maxSubscribers?: number;
  /** A comment line this often keeps proxies from closing an idle stream. Default 15 s. */
  keepAliveMs?: number;
  /** A subscriber whose socket buffer holds more than this is too slow and is dropped. Default 8 MiB. */
  maxBufferedBytes?: number;
}

function stripEvidence(f: Finding): Finding {
  if (f.kind !== 'suspicious-spawn' || !f.details.script || f.details.script.content === null) return f;
  return { ...f, details: { ...f.details, script: { ...f.details.script, content: null } } };
}

export function createEventHub(options: EventHubOptions = {}): EventHub {
  const maxSubscribers = options.maxSubscribers ?? 64;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const maxBufferedBytes = options.maxBufferedBytes ?? 8 * 1024 * 1024;
  const streams = new Set<ServerResponse>();
  let nextId = 1;

  const drop = (res: ServerResponse): void => {
    streams.delete(res);
    if (!res.writableEnded) res.end();
  };

  const write = (res: ServerResponse, text: string): void => {
    if (res.writableLength > maxBufferedBytes) {
      // A stalled reader must not make the collector hold an unbounded backlog.
      drop(res);
      return;
    }
    res.write(text);
  };

  return {
    publish(event) {
      if (streams.size === 0) return;
      const payload = event.type === 'findings' ? { ...event, events: event.events.map((e) => ({ change: e.change, finding: stripEvidence(e.finding) })) } : event;
      const text = `id: ${nextId++}\nevent: ${event.type}\ndata: ${JSON.stringify(payload)}\n\n`;
      for (const res of [...streams]) write(res, text);
    },
    subscribers: () => streams.size,
    closeAll() {
      for (const res of [...streams]) drop(res);
    },
    route(): Route {
      return {
        method: 'GET',
        path: '/api/v1/events',
        scope: 'read',
        handle: ({ req, res, query }) => {
          if ([...query.keys()].length > 0) return { status: 400, json: { error: 'bad-query', message: 'this endpoint takes no query parameters' } };
          if (streams.size >= maxSubscribers) return { status: 503, json: { error: 'too-many-streams', message: `at most ${maxSubscribers} live streams at once; try again later` } };
          res.writeHead(200, {
            'Content-Type': 'text/event-stream; charset=utf-8',
            'Cache-Control': 'no-store',
            // Tell buffering proxies (nginx) to pass events through as they come.
            'X-Accel-Buffering': 'no',
          });
          res.write(`retry: 3000\nevent: hello\ndata: {}\n\n`);
          streams.add(res);
          const timer = setInterval(() => write(res, `: keep-alive\n\n`), keepAliveMs);
          timer.unref();
          const done = () => {
            clearInterval(timer);
            streams.delete(res);
          };
          req.on('close', done);
          res.on('close', done);
          return undefined;
        },
      };
    },
  };
}
