// The agent's sampling loop on its own, for measuring its steady memory from outside:
// samples the process table at 1 Hz and prints one JSON line per pass on stdout.
//   node --import tsx bench/support/sampler-loop.ts [--seconds 60] [--idle] [--proc-root /proc]
// --idle runs the same timer without a table, to measure the runtime's own baseline.
import { ProcessTable } from '../../agent/host/process-table.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seconds = Number(arg('--seconds') ?? 60);
const idle = process.argv.includes('--idle');
const procRoot = arg('--proc-root') ?? '/proc';
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error('--seconds must be a positive number');
  process.exit(2);
}

const warnings: string[] = [];
const table = idle ? null : new ProcessTable({ procRoot, warn: (m) => warnings.push(m) });
let pass = 0;
const started = Date.now();

const tick = () => {
  const t0 = performance.now();
  const samples = table ? table.sample() : [];
  const passMs = performance.now() - t0;
  const stats = table?.stats();
  pass++;
  process.stdout.write(
    `${JSON.stringify({
      pass,
      processes: samples.length,
      passMs,
      usPerProcess: samples.length > 0 ? (passMs * 1000) / samples.length : 0,
      fdsOpen: stats?.fdsOpen ?? 0,
      statusReads: stats?.statusReadsLastPass ?? 0,
      warnings: warnings.length,
    })}\n`,
  );
  if (Date.now() - started >= seconds * 1000) stop();
};

const timer = setInterval(tick, 1000);
tick();

function stop(): void {
  clearInterval(timer);
  table?.close();
  process.exit(0);
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
