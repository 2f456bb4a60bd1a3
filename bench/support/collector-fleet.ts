// The parent's side of the agent fleet (bench/support/collector-agents.ts, forked with IPC):
// commands out, replies and the per-second ticks in; a fleet that dies fails every waiter.
import type { ChildProcess } from 'node:child_process';
import type { FleetCommand, FleetMode, FleetTick } from './collector-agents.js';

/** The agent fleet's process, driven over IPC. */
export class Fleet {
  readonly ticks: FleetTick[] = [];
  private waiters: Array<{ type: string; resolve: (m: unknown) => void; reject: (e: Error) => void }> = [];
  fatal: Error | null = null;

  constructor(readonly child: ChildProcess) {
    child.on('message', (raw) => {
      const m = raw as { type: string; error?: string };
      if (m.type === 'tick') {
        this.ticks.push(m as FleetTick);
        return;
      }
      if (m.type === 'fatal') {
        this.fail(new Error(`agent fleet failed: ${m.error}`));
        return;
      }
      const i = this.waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
    });
    child.once('exit', (code, signal) => this.fail(new Error(`agent fleet exited (${code ?? signal})`)));
  }

  private fail(err: Error): void {
    this.fatal ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  send(cmd: FleetCommand): void {
    if (this.fatal) throw this.fatal;
    this.child.send(cmd);
  }

  request<T>(cmd: FleetCommand, reply: string, timeoutMs: number): Promise<T> {
    if (this.fatal) return Promise.reject(this.fatal);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent fleet: no ${reply} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        type: reply,
        resolve: (m: unknown) => (clearTimeout(timer), resolve(m as T)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.child.send(cmd);
    });
  }

  mode(phase: string, mode: FleetMode): void {
    this.send({ cmd: 'mode', phase, mode });
  }
}
