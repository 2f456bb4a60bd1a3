// The benchmark's target program: fills about `heapMiB` of JS heap with a bounded, realistic mix
// (many small objects with strings, arrays and nested objects, as application heaps are), then answers commands on
// stdin: `write <path>` takes its own v8.writeHeapSnapshot() (the floor), `lag-reset` /
// `lag-report` measure the longest event-loop stall (the pause a capture causes).
export const SNAPSHOT_TARGET_SOURCE = `
const v8 = require('v8');
const readline = require('readline');
const heapMiB = Number(process.argv[2]);
class Item { constructor(i) { this.id = i; this.name = 'item-' + i; this.tags = ['tag-' + (i % 97), 'owner-' + i]; this.detail = { price: i * 1.5, sku: 'sku-' + (i * 7919) }; } }
const kept = (globalThis.kept = []);
while (process.memoryUsage().heapUsed < heapMiB * 1048576) for (let n = 0; n < 1000; n++) kept.push(new Item(kept.length));
let last = performance.now();
let maxGapMs = 0;
setInterval(() => { const now = performance.now(); maxGapMs = Math.max(maxGapMs, now - last); last = now; }, 5);
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, arg] = line.split(' ');
  if (cmd === 'write') {
    const t0 = performance.now();
    v8.writeHeapSnapshot(arg);
    const ms = performance.now() - t0;
    last = performance.now();
    process.stdout.write('wrote ' + ms.toFixed(1) + '\\n');
  } else if (cmd === 'lag-reset') {
    maxGapMs = 0; last = performance.now();
    process.stdout.write('lag-reset\\n');
  } else if (cmd === 'lag-report') {
    process.stdout.write('lag ' + maxGapMs.toFixed(1) + '\\n');
  }
});
process.stdout.write('ready ' + kept.length + ' ' + process.memoryUsage().heapUsed + '\\n');
`;
