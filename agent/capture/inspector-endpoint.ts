// Getting a CDP session on a target's own inspector without changing the target: honour an
// inspector it already runs (--inspect, NODE_OPTIONS), else start it with SIGUSR1 when that is
// safe; find the port by the listening socket the target holds; reach it directly or through the
// netns relay; and make sure the peer is the target before anything is asked of it.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AttributedProcess } from '../host/node-sampler.js';
import { CdpSession } from './cdp-session.js';
import { CaptureError } from './capture-error.js';
import { InspectFlagError, parseInspectorFlags, readNodeOptions, type InspectorFlags } from './inspect-flags.js';
import { directConnector, startNetnsRelay, type Connector } from './netns-relay.js';
import { connectHost, listenersOf, netNamespaceOf, readNamespaceListeners, socketHolder, socketInodes, type TcpListener } from './proc-sockets.js';
import { readSignalMasks, sigusr1Verdict } from './signals.js';

export interface InspectorHandle {
  session: CdpSession;
  /** Whether leakwatch started the inspector (and so closes it afterwards). */
  openedByUs: boolean;
  port: number;
  viaRelay: boolean;
  relayPid: number | null;
  /** `process.version` of the peer. */
  nodeVersion: string | null;
  /** Ends the session; closes the inspector when we opened it; stops the relay. */
  close(): Promise<void>;
}

export interface InspectorOptions {
  procRoot?: string;
  /** How long to wait for the inspector to listen after SIGUSR1. Default 10 s (a loaded node is slow to start the thread). */
  listenTimeoutMs?: number;
  signal?: AbortSignal;
  nsenterPath?: string;
  /** Called with the pid just before SIGUSR1 is sent (tests watch that no signal was sent). */
  onSignal?: (pid: number) => void;
}

type Target = Pick<AttributedProcess, 'pid' | 'argv' | 'nsPid' | 'nsPids' | 'comm'>;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new CaptureError('timeout', 'the capture timed out'));
    }, { once: true });
  });
}

function describeHolder(pid: number | null, procRoot: string): string {
  if (pid === null) return 'another process';
  let comm = '';
  try {
    comm = readFileSync(`${procRoot}/${pid}/comm`, 'utf8').trim();
  } catch {
    // gone meanwhile: the pid alone says enough
  }
  return `pid ${pid}${comm ? ` (${comm})` : ''}`;
}

/** The inspector's port among the target's own listeners. */
function pickListener(own: TcpListener[], flags: InspectorFlags, before: Set<number> | null): TcpListener | null {
  if (flags.port !== 0) return own.find((l) => l.port === flags.port) ?? null;
  // Port 0: the kernel chose; the new listener since the signal is the inspector.
  if (before) return own.find((l) => !before.has(l.inode)) ?? null;
  return null;
}

function portHeldByOther(target: number, flags: InspectorFlags, procRoot: string): { listener: TcpListener; holder: number | null } | null {
  if (flags.port === 0) return null;
  const onPort = readNamespaceListeners(target, procRoot).filter((l) => l.port === flags.port);
  if (onPort.length === 0) return null;
  // The target's sockets are read after the namespace's: a listener it opened between the two
  // reads (its inspector starting right now) must not pass for someone else's.
  const own = socketInodes(target, procRoot);
  const held = onPort.find((l) => !own.has(l.inode));
  if (!held) return null;
  const netns = netNamespaceOf(target, procRoot);
  const holder = netns ? socketHolder(held.inode, netns, procRoot) : null;
  if (holder === target) return null;
  return { listener: held, holder };
}

export async function openInspector(target: Target, options: InspectorOptions = {}): Promise<InspectorHandle> {
  const procRoot = options.procRoot ?? '/proc';
  const pid = target.pid;
  let flags: InspectorFlags;
  try {
    flags = parseInspectorFlags(target.argv, readNodeOptions(pid, procRoot));
  } catch (err) {
    if (err instanceof InspectFlagError) throw new CaptureError('inspect-flags', `the target's inspector options cannot be read: ${err.message}`, 'refused');
    throw err;
  }

  let own = listenersOf(pid, procRoot);
  let listener: TcpListener | null = null;
  let openedByUs = false;
  if (flags.active || own.some((l) => l.port === flags.port)) {
    // Running with --inspect (or left listening by someone): use it, and leave it as it was.
    listener = pickListener(own, flags, null);
    if (!listener && flags.port === 0) listener = await findInspectorAmong(own, target, options);
    if (!listener) {
      const other = portHeldByOther(pid, flags, procRoot);
      if (other) {
        throw new CaptureError('port-in-use', `the target runs with --inspect on port ${flags.port}, but that port in its network namespace is held by ${describeHolder(other.holder, procRoot)}: Node.js could not bind its inspector`, 'failed');
      }
      throw new CaptureError('inspector-not-listening', `the target runs with --inspect${flags.port ? ` (port ${flags.port})` : ''} but holds no such listening socket`, 'failed');
    }
  } else {
    const other = portHeldByOther(pid, flags, procRoot);
    if (other) {
      throw new CaptureError(
        'port-in-use',
        `port ${flags.port} in the target's network namespace is held by ${describeHolder(other.holder, procRoot)}: Node.js would fail to bind its inspector there, so SIGUSR1 was not sent (give the target --inspect-port=<free port>)`,
        'refused',
      );
    }
    let masks;
    try {
      masks = readSignalMasks(pid, procRoot);
    } catch (err) {
      throw new CaptureError('gone', `cannot read the signal masks of pid ${pid}: ${(err as Error).message}`, 'failed');
    }
    const verdict = sigusr1Verdict(masks);
    if (!verdict.safe) throw new CaptureError('sigusr1-not-caught', verdict.reason, 'refused');
    const before = new Set(own.map((l) => l.inode));
    options.onSignal?.(pid);
    try {
      process.kill(pid, 'SIGUSR1');
    } catch (err) {
      throw new CaptureError('gone', `could not signal pid ${pid}: ${(err as Error).message}`, 'failed');
    }
    openedByUs = true;
    const deadline = Date.now() + (options.listenTimeoutMs ?? 10_000);
    for (;;) {
      own = listenersOf(pid, procRoot);
      listener = pickListener(own, flags, before);
      if (listener) break;
      const other = portHeldByOther(pid, flags, procRoot);
      if (other) {
        throw new CaptureError('port-in-use', `port ${flags.port} was taken by ${describeHolder(other.holder, procRoot)} while the target's inspector started: Node.js could not bind it`, 'failed');
      }
      if (Date.now() > deadline) {
        throw new CaptureError('inspector-not-listening', `the target did not open its inspector within ${options.listenTimeoutMs ?? 10_000} ms of SIGUSR1`, 'failed');
      }
      await sleep(50, options.signal);
    }
  }

  const connector = await connectorFor(pid, listener, options);
  try {
    const session = await connectVerified(target, connector, listener.port, options);
    const nodeVersion = await session.evaluate('process.version', { timeoutMs: 10_000, signal: options.signal }).then(
      (v) => (typeof v === 'string' ? v : null),
      () => null,
    );
    return {
      session,
      openedByUs,
      port: listener.port,
      viaRelay: connector.relayPid !== null,
      relayPid: connector.relayPid,
      nodeVersion,
      close: async () => {
        try {
          if (openedByUs && !session.closed) {
            // process._debugEnd() is Node's own switch back off (what inspector.close() does);
            // it is our expression run in the target, the same kind as process.pid. The session
            // ends with it, so its answer may never come.
            await session.send('Runtime.evaluate', { expression: 'process._debugEnd()', silent: true }, { timeoutMs: 3_000 }).catch(() => {});
          }
          await session.close();
        } finally {
          connector.close();
        }
      },
    };
  } catch (err) {
    if (openedByUs) await closeOpenedInspector(connector, listener.port).catch(() => {});
    connector.close();
    throw err;
  }
}

async function connectorFor(pid: number, listener: TcpListener, options: InspectorOptions): Promise<Connector> {
  const procRoot = options.procRoot ?? '/proc';
  const theirs = netNamespaceOf(pid, procRoot);
  const ours = netNamespaceOf('self');
  const host = connectHost(listener);
  if (theirs !== null && theirs === ours) return directConnector(host, listener.port);
  try {
    return await startNetnsRelay(pid, host, listener.port, options.nsenterPath ? { nsenterPath: options.nsenterPath } : {});
  } catch (err) {
    throw new CaptureError('relay', `cannot reach the inspector in the target's network namespace: ${(err as Error).message}`, 'failed');
  }
}

/** GET /json/list over the connector: the WebSocket URL of the main thread's target. */
export function inspectorTargets(connector: Connector, port: number, timeoutMs = 5_000): Promise<Array<{ type?: string; webSocketDebuggerUrl?: string }>> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/json/list', createConnection: () => connector.connect(), timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (body.length > 1 << 20) req.destroy(new Error('/json/list answer over 1 MiB'));
      });
      res.on('end', () => {
        try {
          const parsed: unknown = JSON.parse(body);
          if (!Array.isArray(parsed)) throw new Error('not a list');
          resolve(parsed as Array<{ type?: string; webSocketDebuggerUrl?: string }>);
        } catch (err) {
          reject(new Error(`/json/list is not a JSON list: ${(err as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`/json/list got no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Opens the session and checks that the process answering is the target: its own pid (the pid in
 * its pid namespace, the last NSpid) must be the target's. Another process of the pod can hold the
 * port; a snapshot of it filed under the target would be worse than none.
 */
export async function connectVerified(target: Target, connector: Connector, port: number, options: { signal?: AbortSignal } = {}): Promise<CdpSession> {
  let url: string | undefined;
  try {
    const list = await inspectorTargets(connector, port);
    url = (list.find((t) => t.type === 'node') ?? list[0])?.webSocketDebuggerUrl;
  } catch (err) {
    throw new CaptureError('inspector-unreachable', `the inspector on port ${port} did not answer: ${(err as Error).message}`, 'failed');
  }
  if (!url) throw new CaptureError('inspector-unreachable', `the inspector on port ${port} lists no debuggable target (another client may hold it)`, 'failed');
  let session: CdpSession;
  try {
    session = await CdpSession.open(url, () => connector.connect());
  } catch (err) {
    throw new CaptureError('inspector-unreachable', (err as Error).message, 'failed');
  }
  const expected = target.nsPids.at(-1) ?? target.nsPid;
  let peerPid: unknown;
  try {
    peerPid = await session.evaluate('process.pid', { timeoutMs: 10_000, signal: options.signal });
  } catch (err) {
    session.terminate();
    throw new CaptureError('inspector-unreachable', `the inspector peer did not say its pid: ${(err as Error).message}`, 'failed');
  }
  if (peerPid !== expected) {
    await session.close();
    throw new CaptureError('peer-mismatch', `the inspector on port ${port} belongs to pid ${String(peerPid)} inside the namespace, not the target (${expected}); nothing was taken`, 'failed');
  }
  return session;
}

/** A session failed after we opened the inspector: switch it back off over a fresh session. */
async function closeOpenedInspector(connector: Connector, port: number): Promise<void> {
  const list = await inspectorTargets(connector, port, 2_000);
  const url = list[0]?.webSocketDebuggerUrl;
  if (!url) return;
  const s = await CdpSession.open(url, () => connector.connect(), 2_000);
  await s.send('Runtime.evaluate', { expression: 'process._debugEnd()', silent: true }, { timeoutMs: 2_000 }).catch(() => {});
  await s.close();
}

/** --inspect=0: which of the target's listeners answers /json/list. */
async function findInspectorAmong(own: TcpListener[], target: Target, options: InspectorOptions): Promise<TcpListener | null> {
  for (const l of own) {
    const connector = await connectorFor(target.pid, l, options);
    try {
      const list = await inspectorTargets(connector, l.port, 1_000);
      if (list.some((t) => typeof t.webSocketDebuggerUrl === 'string')) return l;
    } catch {
      // not the inspector
    } finally {
      connector.close();
    }
  }
  return null;
}
