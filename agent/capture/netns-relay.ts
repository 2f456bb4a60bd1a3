// Reaching 127.0.0.1:<port> inside a target's network namespace. A pod's loopback is its own: the
// agent (hostNetwork) cannot connect to it. A helper of ours runs under
// `nsenter --target <pid> --net` (only the network namespace changes: it is still our executable,
// our code and our filesystem) and relays each connection made to a unix socket in a private
// directory of ours to the port in the target's namespace. Path-bound unix sockets are reached
// by path, not through a network namespace, so the agent connects to it with a plain net.Socket,
// on which HTTP and the WebSocket run unchanged. Nothing from the target is executed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The relay, run with `node -e`: one unix listener, one TCP connection per accepted client. */
const relaySource = `
const net = require('net');
const [path, host, port] = process.argv.slice(1);
const server = net.createServer((client) => {
  const upstream = net.connect(Number(port), host);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.on('error', end); upstream.on('error', end); client.on('close', end); upstream.on('close', end);
  client.pipe(upstream); upstream.pipe(client);
});
server.on('error', (e) => { process.stderr.write(String(e && e.message) + '\\n'); process.exit(3); });
server.listen(path, () => process.stdout.write('ready\\n'));
// The agent holds our stdin: when it goes away, so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
`;

export interface Connector {
  /** A fresh stream to the target's inspector port. */
  connect(): Socket;
  /** Pid of the relay helper, null for a direct connection. */
  readonly relayPid: number | null;
  close(): void;
}

export function directConnector(host: string, port: number): Connector {
  return { connect: () => connect(port, host), relayPid: null, close: () => {} };
}

export class RelayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RelayError';
  }
}

export interface RelayOptions {
  nsenterPath?: string;
  startTimeoutMs?: number;
}

/** Starts the relay in pid's network namespace and resolves once it listens. */
export async function startNetnsRelay(pid: number, host: string, port: number, options: RelayOptions = {}): Promise<Connector> {
  // 0700 directory of ours: only root (the agent) can connect to the relay.
  const dir = mkdtempSync(join(tmpdir(), 'lw-relay-'));
  const path = join(dir, 's');
  const env = { ...process.env };
  // The agent's own Node options (a loader, --inspect) must not follow it into the helper.
  delete env.NODE_OPTIONS;
  let child: ChildProcess;
  try {
    child = spawn(options.nsenterPath ?? 'nsenter', ['--target', String(pid), '--net', '--', process.execPath, '-e', relaySource, path, host, String(port)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env,
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new RelayError(`could not start the netns relay: ${(err as Error).message}`);
  }
  const cleanup = (): void => {
    child.stdin?.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 2000) stderr += d.toString();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new RelayError(`the netns relay for pid ${pid} did not start within ${options.startTimeoutMs ?? 10_000} ms`)), options.startTimeoutMs ?? 10_000);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new RelayError(`could not run nsenter: ${err.message}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new RelayError(`the netns relay for pid ${pid} exited (${signal ?? code}): ${stderr.trim() || 'no message'}`));
      });
      child.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } catch (err) {
    cleanup();
    throw err;
  }
  child.removeAllListeners('exit');
  child.on('error', () => {});
  return { connect: () => connect(path), relayPid: child.pid ?? null, close: cleanup };
}
