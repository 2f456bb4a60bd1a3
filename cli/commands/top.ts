// `leakwatch top`: a live per-process view of the node, refreshed every interval, with how
// fast each process's anonymous memory moved since the previous pass.
import type { Command } from 'commander';
import { NodeSampler } from '../../agent/host/node-sampler.js';
import { formatBytes, printable, renderTable } from '../format.js';
import { addNodeRootOptions, type NodeRootOptions } from '../node-options.js';
import { parsePositiveNumber } from '../parse.js';

interface TopOptions extends NodeRootOptions {
  interval: number;
  rows: number;
  once?: boolean;
}

export function registerTop(program: Command): void {
  addNodeRootOptions(
    program
      .command('top')
      .description('live view of the processes using the most anonymous memory, with their pods, limits and growth')
      .option('-i, --interval <seconds>', 'seconds between refreshes', parsePositiveNumber, 2)
      .option('-n, --rows <count>', 'processes to show', parsePositiveNumber, 25)
      .option('--once', 'print one frame and exit'),
  ).action(async (options: TopOptions) => {
    const sampler = new NodeSampler({ ...options, warn: (m) => process.stderr.write(`leakwatch: ${m}\n`) });
    const previous = new Map<string, { anon: number; at: number }>();
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    process.once('SIGTERM', () => stop.abort());
    while (!stop.signal.aborted) {
      const sample = sampler.sample();
      const rows = sample.processes
        .filter((p) => p.rssAnonBytes > 0)
        .sort((a, b) => b.rssAnonBytes + b.swapBytes - (a.rssAnonBytes + a.swapBytes))
        .slice(0, options.rows)
        .map((p) => {
          const key = `${p.pid}:${p.startTimeMs}`;
          const before = previous.get(key);
          const anon = p.rssAnonBytes + p.swapBytes;
          const rate = before ? ((anon - before.anon) * 1000) / (sample.atMs - before.at) : null;
          previous.set(key, { anon, at: sample.atMs });
          const where = p.podUid ? `${p.namespace ?? '?'}/${p.pod ?? p.podUid.slice(0, 8)}/${p.container ?? '?'}` : '(host)';
          return [
            String(p.pid),
            where,
            formatBytes(anon),
            rate === null ? '' : `${rate >= 0 ? '+' : ''}${formatBytes(rate)}/s`,
            p.limitBytes ? `${((100 * anon) / p.limitBytes).toFixed(1)}%` : '-',
            formatBytes(p.limitBytes),
            printable(p.cmdline || `[${p.comm}]`, 80),
          ];
        });
      const frame = renderTable(['PID', 'POD/CONTAINER', 'ANON+SWAP', 'RATE', '%LIMIT', 'LIMIT', 'COMMAND'], rows, new Set([0, 2, 3, 4, 5]));
      const heading = `leakwatch top — ${new Date(sample.atMs).toISOString()} — ${sample.processes.length} processes, ${sample.pods.length} pods, pass ${sample.durationMs.toFixed(1)} ms (Ctrl-C to quit)`;
      process.stdout.write(`${options.once || !process.stdout.isTTY ? '' : '\x1b[2J\x1b[H'}${heading}\n${frame}\n`);
      if (options.once) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.interval * 1000);
        stop.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    sampler.close();
  });
}
