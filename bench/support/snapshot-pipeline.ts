// The snapshot bench's leakwatch: `leakwatch collector` and `leakwatch agent` as two separate
// processes of the compiled CLI (as the package ships; tsx would add its own memory to the RSS
// measured), tokens in a tokens file as `leakwatch tokens create` writes it. The bench triggers
// through the API (POST /api/v1/snapshots, which answers once the snapshots are stored and
// verified at the collector) and reads the agent's JSON log for when the file reached its spool.
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateToken, hashToken } from '../../server/auth.js';
import { startCollectorProcess, killAndWait, type BenchBuild, type CollectorProcess } from './collector-process.js';

export interface AgentLogLine {
  /** performance.now() in the bench when the line was read. */
  atMs: number;
  line: Record<string, unknown>;
}

export interface SnapshotPipeline {
  collector: CollectorProcess;
  agent: ChildProcess;
  agentLog: AgentLogLine[];
  /** A token with the read and snapshots scopes (the engineer's). */
  userToken: string;
  api(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  waitForAgentLog(test: (line: Record<string, unknown>) => boolean, from: number, timeoutMs: number): Promise<AgentLogLine>;
  stop(): Promise<void>;
}

export interface PipelineOptions {
  build: BenchBuild;
  root: string;
  podLogRoot: string;
}

export async function startSnapshotPipeline(options: PipelineOptions): Promise<SnapshotPipeline> {
  const agentToken = generateToken();
  const userToken = generateToken();
  const tokensFile = join(options.root, 'tokens.json');
  writeFileSync(
    tokensFile,
    JSON.stringify([
      { name: 'bench-agent', sha256: hashToken(agentToken), scopes: ['agent'] },
      { name: 'bench-engineer', sha256: hashToken(userToken), scopes: ['read', 'snapshots'] },
    ]),
    { mode: 0o600 },
  );
  const collector = await startCollectorProcess(options.build, join(options.root, 'collector-data'), tokensFile);
  const agent = spawn(
    process.execPath,
    [
      ...options.build.nodeArgs, options.build.cliScript, 'agent',
      '--collector', collector.url, '--token', agentToken, '--node-name', 'bench-node',
      '--spool-dir', join(options.root, 'agent-spool'),
      // Room for an 800 MiB snapshot whatever the gate's estimate; the default is 2 GiB.
      '--snapshot-spool-max-bytes', '8GiB',
      '--pod-log-root', options.podLogRoot, '--no-kmsg', '--metrics-listen', 'off',
      // Only the bench's trigger captures; the default headroom factor (2) stays, the cgroup is sized to pass it.
      '--no-auto-capture',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '', LEAKWATCH_URL: '', LEAKWATCH_TOKEN: '' } },
  );
  const agentLog: AgentLogLine[] = [];
  let partial = '';
  // Always drained: an agent blocked on a full stderr pipe would measure the pipe.
  agent.stderr!.setEncoding('utf8');
  agent.stderr!.on('data', (chunk: string) => {
    const atMs = performance.now();
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const text of lines) {
      if (!text.trim()) continue;
      try {
        agentLog.push({ atMs, line: JSON.parse(text) as Record<string, unknown> });
      } catch {
        agentLog.push({ atMs, line: { level: 'error', msg: text } });
      }
      if (agentLog.length > 10_000) agentLog.splice(0, 5_000);
    }
  });

  const api: SnapshotPipeline['api'] = (method, path, body) =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      // node:http, not fetch: fetch gives up on headers after 300 s, a 400 MiB capture under load may need longer.
      const req = request(new URL(path, collector.url), {
        method,
        headers: { Authorization: `Bearer ${userToken}`, ...(payload ? { 'Content-Type': 'application/json' } : {}) },
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) });
          } catch {
            resolve({ status: res.statusCode ?? 0, json: text });
          }
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });

  const waitForAgentLog: SnapshotPipeline['waitForAgentLog'] = async (test, from, timeoutMs) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = agentLog.find((l) => l.atMs >= from && test(l.line));
      if (hit) return hit;
      if (agent.exitCode !== null || agent.signalCode !== null) throw new Error(`the agent exited (${agent.signalCode ?? agent.exitCode}): ${agentLog.slice(-5).map((l) => JSON.stringify(l.line)).join('\n')}`);
      if (Date.now() > until) throw new Error(`no such agent log line within ${timeoutMs} ms; last lines:\n${agentLog.slice(-5).map((l) => JSON.stringify(l.line)).join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  return {
    collector,
    agent,
    agentLog,
    userToken,
    api,
    waitForAgentLog,
    async stop() {
      if (agent.exitCode === null && agent.signalCode === null) {
        const exited = new Promise((r) => agent.once('exit', r));
        agent.kill('SIGTERM');
        const t = setTimeout(() => void killAndWait(agent), 10_000);
        await exited;
        clearTimeout(t);
      }
      await collector.stop();
    },
  };
}
