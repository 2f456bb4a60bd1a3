// The in-process probe end to end on this machine's Node: real target processes started with
// `--require <probe>`, the agent's real unix-socket server, real heap snapshots and profiles.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { createLogger, type Logger } from '../../../common/log.js';
import { ProbeError, prepareProbeToken, startProbeServer, type ProbeServer } from '../../../agent/capture/probe-server.js';
import { FrameDecoder, encodeJsonFrame } from '../../../probe/wire.cjs';
import { LEAK_CLASS, buildProbe, countNodesNamed, startTarget, tempDir, v8ProfilerNextLoads, waitFor, type Target } from '../../support/probe-harness.js';

interface Setup {
  dir: string;
  probePath: string;
  server: ProbeServer;
  socketPath: string;
  token: string;
  logLines: Array<Record<string, unknown>>;
  target(options?: { env?: Record<string, string>; leakCount?: number; exitAfterMs?: number; probe?: boolean }): Promise<Target>;
}

async function setup(t: TestContext): Promise<Setup> {
  const dir = tempDir(t, 'lw-probe-');
  const probePath = buildProbe(dir);
  const socketPath = join(dir, 'run', 'probe.sock');
  const { token } = prepareProbeToken(socketPath);
  const logLines: Array<Record<string, unknown>> = [];
  const log: Logger = createLogger({ write: (line: string) => logLines.push(JSON.parse(line) as Record<string, unknown>) });
  const server = await startProbeServer({ socketPath, token, log });
  const targets: Target[] = [];
  t.after(async () => {
    for (const target of targets) await target.stop();
    await server.close();
  });
  return {
    dir,
    probePath,
    server,
    socketPath,
    token,
    logLines,
    target: async (options = {}) => {
      const target = await startTarget({
        dir,
        nodeBin: process.execPath,
        probePath: options.probe === false ? null : probePath,
        env: { LEAKWATCH_PROBE_SOCKET: socketPath, ...options.env },
        leakCount: options.leakCount ?? 3000,
        ...(options.exitAfterMs !== undefined ? { exitAfterMs: options.exitAfterMs } : {}),
      });
      targets.push(target);
      return target;
    },
  };
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

test('the probe streams a heap snapshot and a sampling profile of its target into 0600 files', async (t) => {
  const s = await setup(t);
  const target = await s.target({ leakCount: 3000 });
  const probe = await waitFor('the probe to connect', () => s.server.find(target.pid));
  assert.equal(probe.pid, target.pid);
  assert.equal(probe.nodeVersion, process.version);
  // This checkout's v8-profiler-next is built for this Node: the probe must have used it.
  assert.ok(v8ProfilerNextLoads(process.execPath), 'v8-profiler-next should load on this Node (npm install builds it)');
  assert.equal(probe.via, 'probe-v8-profiler-next');

  const heapUsed = await probe.heapUsedBytes();
  assert.ok(heapUsed > 1024 * 1024 && heapUsed < 512 * 1024 * 1024, `heapUsed ${heapUsed}`);

  const snapshotPath = join(s.dir, 'a.heapsnapshot');
  const result = await probe.capture('heapsnapshot', snapshotPath, {});
  assert.equal(statSync(snapshotPath).size, result.bytes);
  assert.equal(statSync(snapshotPath).mode & 0o777, 0o600);
  assert.equal(sha256File(snapshotPath), result.sha256);
  const snapshot = JSON.parse(readFileSync(snapshotPath, 'utf8'));
  assert.ok(countNodesNamed(snapshot, LEAK_CLASS) >= 3000, `at least 3000 ${LEAK_CLASS} objects`);

  const profilePath = join(s.dir, 'a.heapprofile');
  const profile = await probe.capture('heapprofile', profilePath, { sampleMs: 300 });
  assert.equal(sha256File(profilePath), profile.sha256);
  assert.equal(statSync(profilePath).mode & 0o777, 0o600);
  const parsed = JSON.parse(readFileSync(profilePath, 'utf8')) as { head: { callFrame: unknown; children: unknown[]; id: number }; samples: unknown[] };
  assert.ok(parsed.head.callFrame && Array.isArray(parsed.head.children) && typeof parsed.head.id === 'number');
  assert.ok(Array.isArray(parsed.samples));
});

test('forced onto node:inspector, the probe says so and its snapshot holds the class', async (t) => {
  const s = await setup(t);
  const target = await s.target({ env: { LEAKWATCH_PROBE_VIA: 'node-inspector' }, leakCount: 2000 });
  const probe = await waitFor('the probe to connect', () => s.server.find(target.pid));
  assert.equal(probe.via, 'probe-node-inspector');
  const path = join(s.dir, 'b.heapsnapshot');
  const result = await probe.capture('heapsnapshot', path, {});
  assert.equal(sha256File(path), result.sha256);
  assert.ok(countNodesNamed(JSON.parse(readFileSync(path, 'utf8')), LEAK_CLASS) >= 2000);
  const connected = s.logLines.find((l) => l.msg === 'probe connected' && l.pid === target.pid);
  assert.equal(connected?.viaReason, 'LEAKWATCH_PROBE_VIA=node-inspector');
});

test('a wrong token is rejected with a logged reason and the server keeps serving', async (t) => {
  const s = await setup(t);
  const wrong = await s.target({ env: { LEAKWATCH_PROBE_TOKEN: 'not-the-token' } });
  await waitFor('the rejection to be logged', () => s.logLines.find((l) => l.msg === 'probe connection rejected' && l.code === 'bad-token'));
  assert.equal(s.server.find(wrong.pid), null);
  assert.ok(!JSON.stringify(s.logLines).includes('not-the-token'), 'the offered token is not logged');
  const right = await s.target();
  await waitFor('the good probe to connect', () => s.server.find(right.pid));
  assert.equal(s.server.find(wrong.pid), null);
});

/** A raw client: sends bytes, collects what comes back until the server closes. */
function rawExchange(socketPath: string, send: (socket: Socket) => void): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    const decoder = new FrameDecoder();
    const messages: Array<Record<string, unknown>> = [];
    socket.on('connect', () => send(socket));
    socket.on('data', (d: Buffer) => {
      for (const f of decoder.push(d)) if (f.kind === 'json') messages.push(f.message);
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(messages));
  });
}

test('malformed frames and false identities get an error frame and a close; the server lives on', async (t) => {
  const s = await setup(t);
  const cases: Array<{ name: string; bytes: (socket: Socket) => void; code: string }> = [
    { name: 'unknown frame kind', bytes: (so) => so.write(Buffer.from([0, 0, 0, 3, 9, 1, 2])), code: 'malformed-frame' },
    { name: 'oversized JSON frame', bytes: (so) => so.write(Buffer.from([0x10, 0, 0, 0, 1])), code: 'malformed-frame' },
    {
      name: 'JSON that does not parse',
      bytes: (so) => {
        const body = Buffer.from('{"type":');
        const head = Buffer.alloc(5);
        head.writeUInt32BE(body.length + 1);
        head[4] = 1;
        so.write(Buffer.concat([head, body]));
      },
      code: 'malformed-frame',
    },
    { name: 'bytes before hello', bytes: (so) => so.write(Buffer.from([0, 0, 0, 2, 2, 7])), code: 'protocol' },
    {
      name: 'a hello claiming a process that is not there',
      bytes: (so) => so.write(encodeJsonFrame({ type: 'hello', version: 1, token: s.token, nsPid: 999999, startTicks: 1, socketInode: 1, nodeVersion: 'v20', via: 'probe-node-inspector', viaReason: null })),
      code: 'unknown-peer',
    },
    {
      // This test process exists, but the connection's socket is not the inode it names.
      name: 'a hello naming a real process and a wrong socket',
      bytes: (so) => {
        const stat = readFileSync('/proc/self/stat', 'utf8');
        const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
        so.write(encodeJsonFrame({ type: 'hello', version: 1, token: s.token, nsPid: process.pid, startTicks, socketInode: 1, nodeVersion: process.version, via: 'probe-node-inspector', viaReason: null }));
      },
      code: 'unknown-peer',
    },
  ];
  for (const c of cases) {
    const replies = await rawExchange(s.socketPath, c.bytes);
    assert.equal(replies.at(-1)?.type, 'error', c.name);
    assert.equal(replies.at(-1)?.code, c.code, c.name);
    assert.ok(s.logLines.some((l) => l.msg === 'probe connection rejected' && l.code === c.code), `${c.name} is logged`);
  }
  assert.equal(s.server.connections().length, 0);
  const target = await s.target();
  await waitFor('a real probe to connect afterwards', () => s.server.find(target.pid));
});

test('a target killed mid-snapshot: a clean ProbeError and no partial file', async (t) => {
  const s = await setup(t);
  const target = await s.target({ leakCount: 20000 });
  const probe = await waitFor('the probe to connect', () => s.server.find(target.pid));
  const path = join(s.dir, 'partial.heapsnapshot');
  // Stop reading: the probe fills the socket buffer and waits, mid-snapshot, when it is killed.
  const socket = (probe as unknown as { socket: Socket }).socket;
  socket.pause();
  const capture = probe.capture('heapsnapshot', path, {});
  await waitFor('the capture file to be created', () => (existsSync(path) ? true : null));
  await new Promise((r) => setTimeout(r, 300));
  target.child.kill('SIGKILL');
  await target.exited;
  socket.resume();
  await assert.rejects(capture, (err: unknown) => err instanceof ProbeError && err.code === 'probe-closed');
  assert.equal(existsSync(path), false, 'the partial file is removed');
  assert.equal(s.server.find(target.pid), null);
});

test('an aborted capture removes its file and leaves the connection usable', async (t) => {
  const s = await setup(t);
  const target = await s.target();
  const probe = await waitFor('the probe to connect', () => s.server.find(target.pid));
  const path = join(s.dir, 'aborted.heapprofile');
  const controller = new AbortController();
  const capture = probe.capture('heapprofile', path, { sampleMs: 60_000, signal: controller.signal });
  await waitFor('the capture file to be created', () => (existsSync(path) ? true : null));
  controller.abort();
  await assert.rejects(capture, (err: unknown) => err instanceof ProbeError && err.code === 'aborted');
  await waitFor('the aborted file to be removed', () => (existsSync(path) ? null : true));
  // The probe stops sampling on cancel; the next capture on the same connection works.
  const next = await waitFor('the connection to take a new capture', () => s.server.find(target.pid));
  const result = await next.capture('heapprofile', join(s.dir, 'after.heapprofile'), { sampleMs: 100 });
  assert.ok(result.bytes > 0);
  // A capture into an existing file is refused without touching that file.
  writeFileSync(join(s.dir, 'taken'), 'someone else\n');
  await assert.rejects(next.capture('heapprofile', join(s.dir, 'taken'), { sampleMs: 50 }), ProbeError);
  assert.equal(readFileSync(join(s.dir, 'taken'), 'utf8'), 'someone else\n');
});

test('a probe never keeps its target alive, and a target whose probe cannot connect runs normally', async (t) => {
  const s = await setup(t);
  const connected = await s.target({ exitAfterMs: 1500 });
  await waitFor('the probe to connect', () => s.server.find(connected.pid));
  const exit = await connected.exited;
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.match(connected.stdout(), /done/);

  const lonely = await s.target({ exitAfterMs: 300, env: { LEAKWATCH_PROBE_SOCKET: join(s.dir, 'nowhere', 'probe.sock'), LEAKWATCH_PROBE_TOKEN: 'x' } });
  assert.deepEqual(await lonely.exited, { code: 0, signal: null });
  assert.match(lonely.stdout(), /done/);
  assert.equal(lonely.stderr(), '', 'silent without LEAKWATCH_PROBE_DEBUG');

  const debugged = await s.target({ exitAfterMs: 300, env: { LEAKWATCH_PROBE_SOCKET: join(s.dir, 'nowhere', 'probe.sock'), LEAKWATCH_PROBE_TOKEN: 'x', LEAKWATCH_PROBE_DEBUG: '1' } });
  assert.deepEqual(await debugged.exited, { code: 0, signal: null });
  assert.match(debugged.stderr(), /leakwatch-probe .*ENOENT/);
});

test('socket and token files are private; a stale socket is replaced, anything else is refused', async (t) => {
  const s = await setup(t);
  assert.equal(statSync(s.socketPath).mode & 0o777, 0o600);
  assert.equal(statSync(join(s.dir, 'run', 'probe.token')).mode & 0o777, 0o600);
  await s.server.close();
  // A socket file left by a crashed agent is replaced.
  const second = await startProbeServer({ socketPath: s.socketPath, token: s.token, log: createLogger({ write: () => true }) });
  await second.close();
  const notASocket = join(s.dir, 'plain', 'probe.sock');
  mkdirSync(join(s.dir, 'plain'));
  writeFileSync(notASocket, 'keep me');
  await assert.rejects(startProbeServer({ socketPath: notASocket, token: 'x', log: createLogger({ write: () => true }) }), /not a socket/);
  assert.equal(readFileSync(notASocket, 'utf8'), 'keep me');
});

test('after an agent restart with a new token the probe reconnects by itself', async (t) => {
  const s = await setup(t);
  const target = await s.target();
  await waitFor('the probe to connect', () => s.server.find(target.pid));
  await s.server.close();
  const { token } = prepareProbeToken(s.socketPath);
  assert.notEqual(token, s.token);
  const restarted = await startProbeServer({ socketPath: s.socketPath, token, log: createLogger({ write: () => true }) });
  t.after(() => restarted.close());
  // Back-off starts at about 1 s and doubles: a few seconds at most here.
  const probe = await waitFor('the probe to reconnect', () => restarted.find(target.pid), 20_000);
  assert.ok((await probe.heapUsedBytes()) > 0);
});
