// Benchmark target: holds `records` objects of a few shapes (a bounded, known heap), writes
// snapshot A, grows by a tenth (the "leak"), writes snapshot B. Run with a bounded old space.
const v8 = require('node:v8');
const [records, fileA, fileB] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
class Order { constructor(i) { this.id = i; this.lines = [i, i + 1, i + 2]; this.customer = { name: 'c' + (i % 1000), tier: i % 3 }; this.total = i * 1.5; } }
class AuditEntry { constructor(i) { this.at = i; this.what = 'update'; this.order = null; } }
const orders = [];
const audit = new Map();
function add(i) {
  const o = new Order(i);
  orders.push(o);
  if (i % 4 === 0) { const a = new AuditEntry(i); a.order = o; audit.set(i, a); }
}
for (let i = 0; i < records; i++) add(i);
v8.writeHeapSnapshot(fileA);
const leak = Math.floor(records / 10);
for (let i = records; i < records + leak; i++) add(i);
v8.writeHeapSnapshot(fileB);
