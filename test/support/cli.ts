// Runs the leakwatch CLI from source, as a user would run the built binary.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './net.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const entry = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A long-running command (watch, demo); the caller kills it. */
export function startCli(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** `leakwatch up` running on a free loopback port, and the environment the CLI needs to reach it. */
export interface RunningUp {
  process: ChildProcess;
  /** LEAKWATCH_URL and LEAKWATCH_TOKEN (the admin token `up` made). */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export async function startUp(dataDir: string, args: string[]): Promise<RunningUp> {
  const port = await freePort();
  const child = startCli(['up', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, ...args]);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const until = Date.now() + 30_000;
  while (!out.includes('Ctrl-C to stop')) {
    if (child.exitCode !== null || Date.now() > until) throw new Error(`leakwatch up did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const token = readFileSync(join(dataDir, 'local-token'), 'utf8').trim();
  return {
    process: child,
    env: { LEAKWATCH_URL: `http://127.0.0.1:${port}`, LEAKWATCH_TOKEN: token },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}
