// One contestant of the analysis benchmark, in its own process so its peak RSS (VmHWM) is its
// own: `ours` (diffSnapshotFiles) or `peer` (Chrome DevTools' code via heap-snapshot-toolkit,
// in its lower-memory streaming mode: the first snapshot is dropped before the second is read).
// Prints one JSON line.
import { createReadStream, readFileSync } from 'node:fs';
import { diffFromStreams } from 'heap-snapshot-toolkit';
import { diffSnapshotFiles } from '../../server/analysis/index.js';

const [who, a, b] = process.argv.slice(2) as ['ours' | 'peer', string, string];

function vmHwmBytes(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

const started = performance.now();
const cpuStart = process.cpuUsage();
let top: Array<{ className: string; countDelta: number; sizeDelta: number }> = [];
if (who === 'ours') {
  const diff = await diffSnapshotFiles(a, b, { top: 5 });
  top = diff.growers.map((g) => ({ className: g.className, countDelta: g.countDelta, sizeDelta: g.sizeDeltaBytes }));
} else {
  let result: Record<string, { name: string; countDelta: number; sizeDelta: number }> = {};
  for await (const step of diffFromStreams(createReadStream(a), createReadStream(b))) {
    if (step.type === 'diff') result = step.result as unknown as typeof result;
  }
  top = Object.values(result)
    .sort((x, y) => y.sizeDelta - x.sizeDelta)
    .slice(0, 5)
    .map((d) => ({ className: d.name, countDelta: d.countDelta, sizeDelta: d.sizeDelta }));
}
const elapsedMs = Math.round(performance.now() - started);
const cpu = process.cpuUsage(cpuStart);
// CPU time (user + system, all threads) is less at the mercy of a busy machine than wall time.
const cpuMs = Math.round((cpu.user + cpu.system) / 1000);
process.stdout.write(`${JSON.stringify({ who, elapsedMs, cpuMs, peakRssBytes: vmHwmBytes(), top })}\n`);
process.exit(0);
