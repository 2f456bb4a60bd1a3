// The page's only way to the collector: same-origin fetch with the token in the Authorization
// header. The token lives in sessionStorage (gone with the tab), never in a URL, a cookie or a log.
const TOKEN_KEY = 'leakwatch.token';

export interface Whoami {
  name: string;
  scopes: string[];
  effectiveScopes: string[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

function headers(token: string | null, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { Accept: 'application/json', ...extra };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

async function failure(res: Response): Promise<ApiError> {
  let code = 'http-' + res.status;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: string; message?: string };
    if (body.error) code = body.error;
    if (body.message) message = body.message;
  } catch {
    // not JSON
  }
  return new ApiError(res.status, code, message);
}

/** Called when the stored token stops working (revoked, collector re-keyed): the page signs out. */
let onTokenRejected: (() => void) | null = null;
export function whenTokenRejected(fn: () => void): void {
  onTokenRejected = fn;
}

export async function apiGet<T>(path: string, token = storedToken()): Promise<T> {
  const res = await fetch(path, { headers: headers(token), cache: 'no-store', credentials: 'omit' });
  if (res.status === 401 && token !== null && token === storedToken()) onTokenRejected?.();
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

export async function apiPost<T>(path: string, body: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(path, { method: 'POST', headers: headers(storedToken(), { 'Content-Type': 'application/json' }), body: JSON.stringify(body), credentials: 'omit' });
  if (!res.ok && res.status !== 504) throw await failure(res);
  return { status: res.status, body: (await res.json()) as T };
}

/** Fetches bytes with the token and hands them to the browser as a download through a blob URL. */
export async function download(path: string, fallbackName: string): Promise<{ bytes: number; sha256: string | null }> {
  const res = await fetch(path, { headers: headers(storedToken(), { Accept: 'application/octet-stream' }), credentials: 'omit' });
  if (!res.ok) throw await failure(res);
  const blob = await res.blob();
  const disposition = res.headers.get('Content-Disposition') ?? '';
  const name = /filename="([^"/\\]+)"/.exec(disposition)?.[1] ?? fallbackName;
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return { bytes: blob.size, sha256: res.headers.get('X-Content-SHA256') };
}

export interface StreamHandlers {
  onEvent(type: string, data: unknown): void;
  onState(state: 'live' | 'reconnecting' | 'stopped', detail?: string): void;
}

/**
 * Reads GET /api/v1/events (text/event-stream) through fetch, so the token goes in a header
 * (EventSource cannot send one). Reconnects after a pause when the stream ends; stops on 401/403.
 */
export function streamEvents(handlers: StreamHandlers): () => void {
  const abort = new AbortController();
  let stopped = false;
  const run = async (): Promise<void> => {
    while (!stopped) {
      try {
        const res = await fetch('/api/v1/events', { headers: headers(storedToken(), { Accept: 'text/event-stream' }), signal: abort.signal, cache: 'no-store', credentials: 'omit' });
        if (res.status === 401 || res.status === 403) {
          handlers.onState('stopped', (await failure(res)).message);
          if (res.status === 401) onTokenRejected?.();
          return;
        }
        if (!res.ok || !res.body) throw await failure(res);
        handlers.onState('live');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let type = 'message';
            const data: string[] = [];
            for (const line of block.split('\n')) {
              if (line.startsWith('event:')) type = line.slice(6).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
            }
            if (data.length === 0) continue;
            try {
              handlers.onEvent(type, JSON.parse(data.join('\n')));
            } catch (err) {
              console.warn('bad live event', type, err);
            }
          }
        }
      } catch (err) {
        if (stopped) return;
        handlers.onState('reconnecting', err instanceof Error ? err.message : String(err));
      }
      if (!stopped) {
        handlers.onState('reconnecting');
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
  };
  void run();
  return () => {
    stopped = true;
    abort.abort();
    handlers.onState('stopped');
  };
}
