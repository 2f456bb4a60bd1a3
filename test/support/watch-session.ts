// Runs `leakwatch watch --json` as a user would, next to scenarios in fake pods, and collects
// the findings it prints, so integration tests assert on the real output format.
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Finding } from '../../protocol/findings.js';
import { startCli } from './cli.js';

export type WatchLine = Finding & { event: 'open' | 'update' | 'resolve' };

export interface WatchSession {
  readonly lines: WatchLine[];
  readonly stderr: string[];
  /** Findings (latest version of each id) about one pod. */
  findingsFor(podUid: string): WatchLine[];
  /** Every line about one pod, in order. */
  linesFor(podUid: string): WatchLine[];
  waitFor(match: (line: WatchLine) => boolean, timeoutMs: number): Promise<WatchLine>;
  stop(): Promise<void>;
}

export function startWatch(args: string[]): WatchSession {
  const child: ChildProcess = startCli(['watch', '--json', ...args]);
  const lines: WatchLine[] = [];
  const stderr: string[] = [];
  const waiters: Array<{ match: (l: WatchLine) => boolean; resolve: (l: WatchLine) => void }> = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: WatchLine;
    try {
      line = JSON.parse(text) as WatchLine;
    } catch {
      stderr.push(`non-JSON stdout line: ${text}`);
      return;
    }
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.match(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  createInterface({ input: child.stderr! }).on('line', (text) => stderr.push(text));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  return {
    lines,
    stderr,
    linesFor(podUid) {
      return lines.filter((l) => l.target.podUid === podUid);
    },
    findingsFor(podUid) {
      const latest = new Map<string, WatchLine>();
      for (const l of lines) if (l.target.podUid === podUid) latest.set(l.id, l);
      return [...latest.values()];
    },
    waitFor(match, timeoutMs) {
      const found = lines.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = { match, resolve: (l: WatchLine) => (clearTimeout(timer), resolve(l)) };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no matching finding within ${timeoutMs} ms; saw ${lines.length} lines: ${lines.map((l) => `${l.event} ${l.kind} ${l.summary}`).join(' | ').slice(0, 2000)}`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
