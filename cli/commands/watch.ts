// `leakwatch watch`: run the agent's detectors on this machine without a collector and print
// findings as they open, change and resolve.
import type { Command } from 'commander';
import { hostname } from 'node:os';
import { KmsgFollower } from '../../agent/host/kmsg.js';
import { NodeSampler } from '../../agent/host/node-sampler.js';
import { Watcher, type FindingEvent } from '../../agent/watch/watcher.js';
import type { Finding } from '../../protocol/findings.js';
import { formatBytes, printable } from '../format.js';
import { addNodeRootOptions, type NodeRootOptions } from '../node-options.js';
import { parsePositiveNumber } from '../parse.js';

interface WatchOptions extends Omit<NodeRootOptions, 'kmsg'> {
  /** false with --no-kmsg. */
  kmsg: string | false;
  interval: number;
  json?: boolean;
  nodeName: string;
  includeHost?: boolean;
  duration?: number;
}

export function registerWatch(program: Command): void {
  addNodeRootOptions(
    program
      .command('watch')
      .description('detect memory growth, fan-out, suspicious spawns and OOM kills on this machine and print findings as they happen')
      .option('-i, --interval <seconds>', 'sampling interval', parsePositiveNumber, 1)
      .option('--json', 'one JSON object per line: {event, ...finding}')
      .option('--node-name <name>', 'node name put on findings (env NODE_NAME)', process.env.NODE_NAME ?? hostname())
      .option('--include-host', 'also watch processes that are not in a pod')
      .option('--no-kmsg', 'do not follow the kernel log (OOM kills then come from memcg counters only)')
      .option('--duration <seconds>', 'stop after this long (default: until Ctrl-C)', parsePositiveNumber),
  ).action(async (options: WatchOptions) => {
    const warn = (m: string): void => {
      process.stderr.write(`${JSON.stringify({ level: 'warn', msg: m, at: Date.now() })}\n`);
    };
    const sampler = new NodeSampler({ procRoot: options.procRoot, cgroupRoot: options.cgroupRoot, podLogRoot: options.podLogRoot, warn });
    const kmsg = options.kmsg === false ? null : new KmsgFollower({ path: options.kmsg, procRoot: options.procRoot, warn });
    const watcher = new Watcher({ sampler, kmsg, nodeName: options.nodeName, includeHost: options.includeHost, warn });
    const print = (events: FindingEvent[]): void => {
      for (const e of events) process.stdout.write(`${options.json ? JSON.stringify({ event: e.change, ...e.finding }) : describe(e)}\n`);
    };
    if (!options.json) {
      process.stderr.write(`leakwatch watch: sampling every ${options.interval}s on ${options.nodeName} (Ctrl-C to stop)\n`);
    }
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    process.once('SIGTERM', () => stop.abort());
    const deadline = options.duration ? Date.now() + options.duration * 1000 : Infinity;
    let next = Date.now();
    while (!stop.signal.aborted && Date.now() < deadline) {
      print(await watcher.tick());
      next += options.interval * 1000;
      // A slow pass must not make the next ones pile up: skip to the next slot in the future.
      if (next < Date.now()) next = Date.now() + options.interval * 1000;
      await sleep(next - Date.now(), stop.signal);
    }
    print(await watcher.finishPendingSpawns(1_000));
    print(watcher.close());
    sampler.close();
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, ms));
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** One readable line per event; the evidence itself is in --json and the collector. */
function describe(e: FindingEvent): string {
  const f: Finding = e.finding;
  const time = new Date(e.change === 'open' ? f.at : f.updatedAt).toISOString().slice(11, 19);
  const tag = e.change === 'open' ? 'NEW   ' : e.change === 'update' ? 'UPDATE' : 'RESOLV';
  let line = `${time} ${tag} ${f.kind.padEnd(16)} ${printable(f.summary, 400)}`;
  if (e.change === 'open' && f.kind === 'suspicious-spawn' && f.details.script) {
    const s = f.details.script;
    line += `\n         script ${printable(s.path, 200)} sha256 ${s.sha256 ?? '?'} ${formatBytes(s.sizeBytes)}`;
  }
  return line;
}
