import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import v8 from 'node:v8';
import { HeapSnapshotError, readHeapSnapshot } from '../../../server/analysis/snapshot-reader.js';

// A small hand-made snapshot: fields in an unusual order plus one V8 may add later, strings
// with escapes and multi-byte characters, sections the reader skips.
function synthetic(): string {
  const meta = {
    node_fields: ['name', 'type', 'id', 'self_size', 'edge_count', 'future_field', 'detachedness'],
    node_types: ['string', ['hidden', 'array', 'string', 'object', 'code', 'closure', 'regexp', 'number', 'native', 'synthetic'], 'number', 'number', 'number', 'number', 'number'],
    edge_fields: ['to_node', 'type', 'name_or_index'],
    edge_types: ['node', ['context', 'element', 'property', 'internal', 'hidden', 'shortcut', 'weak'], 'string_or_number'],
    location_fields: ['object_index', 'script_id', 'line', 'column'],
  };
  const F = 7;
  // nodes: root(synthetic) → obj "Ünïcode \"q\"" → array
  const nodes = [0, 9, 1, 0, 1, 42, 0, 1, 3, 3, 120, 2, 42, 2, 2, 1, 4294967295, 0, 0, 42, 0];
  const edges = [1 * F, 5, 3, 2 * F, 2, 4, 2 * F, 1, 7];
  return JSON.stringify({
    snapshot: { meta, node_count: 3, edge_count: 3, trace_function_count: 0 },
    nodes,
    edges,
    trace_function_infos: [],
    trace_tree: [[1, [2, [3]]]],
    samples: [],
    locations: [1 * F, 9, 10, 11],
    strings: ['', 'Ünïcode "q"', '(array)', 'kept', 'list', '😀 emoji'],
  });
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-reader-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('reads the layout from meta, whatever the field order, in any chunking', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 's.heapsnapshot');
  writeFileSync(file, synthetic());
  for (const chunkBytes of [1, 3, 7, 64, 1 << 20]) {
    const g = await readHeapSnapshot(file, { chunkBytes });
    assert.equal(g.nodeCount, 3);
    assert.equal(g.edgeCount, 3);
    assert.deepEqual([...g.nodeType], [9, 3, 1]);
    assert.deepEqual([...g.nodeId], [1, 3, 4294967295]);
    assert.deepEqual([...g.nodeSelfSize], [0, 120, 0]);
    assert.deepEqual([...g.nodeDetachedness!], [0, 2, 0]);
    assert.deepEqual([...g.firstEdge], [0, 1, 3, 3]);
    assert.deepEqual([...g.edgeTo!], [1, 2, 2]);
    assert.deepEqual([...g.edgeType], [5, 2, 1]);
    assert.deepEqual([...g.edgeName], [3, 4, 7]);
    assert.equal(g.strings[1], 'Ünïcode "q"', `chunkBytes ${chunkBytes}`);
    assert.equal(g.strings[5], '😀 emoji');
    assert.deepEqual(g.locationKeys, ['9,10,11']);
    assert.deepEqual([...g.nodeLocation!], [0, 1, 0]);
  }
  const lean = await readHeapSnapshot(file, { edges: 'lean' });
  assert.equal(lean.edgeTo, null);
  assert.equal(lean.edgeCount, 1, 'lean keeps only property edges of object nodes');
  assert.deepEqual([...lean.edgeName], [4]);
  assert.deepEqual([...lean.firstEdge], [0, 0, 1, 1]);
});

test('reads a real snapshot of this process', async (t) => {
  const dir = tempDir(t);
  const file = v8.writeHeapSnapshot(join(dir, 'self.heapsnapshot'));
  const g = await readHeapSnapshot(file, { chunkBytes: 4093 });
  assert.ok(g.nodeCount > 10_000);
  assert.equal(g.firstEdge[g.nodeCount], g.edgeCount);
  assert.ok(g.nodeFields.includes('self_size'));
  assert.ok(g.strings.includes('(GC roots)'));
  assert.equal(g.nodeTypeNames[g.nodeType[0]!], 'synthetic', 'node 0 is the root');
});

async function rejection(file: string): Promise<HeapSnapshotError> {
  try {
    await readHeapSnapshot(file);
  } catch (err) {
    assert.ok(err instanceof HeapSnapshotError, `expected HeapSnapshotError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the read to fail');
}

test('a truncated file is named as truncated, with the offset and section', async (t) => {
  const dir = tempDir(t);
  const text = synthetic();
  const cases: Array<[string, string]> = [
    ['"nodes":[', 'nodes'],
    ['"edges":[', 'edges'],
    ['"strings":[', 'strings'],
  ];
  for (const [marker, section] of cases) {
    const cut = text.indexOf(marker) + marker.length + 3;
    const file = join(dir, `cut-${section}.heapsnapshot`);
    writeFileSync(file, text.slice(0, cut));
    const err = await rejection(file);
    assert.match(err.message, /truncated heap snapshot/);
    assert.equal(err.section, section);
    assert.equal(err.offset, cut);
  }
  const empty = join(dir, 'empty.heapsnapshot');
  writeFileSync(empty, '');
  assert.match((await rejection(empty)).message, /input is empty/);
});

test('malformed files get a clear error, never a crash', async (t) => {
  const dir = tempDir(t);
  const text = synthetic();
  const variants: Array<[string, string, RegExp]> = [
    ['garbage in nodes', text.replace('"nodes":[0,9', '"nodes":[0,x9'), /malformed heap snapshot .*expected a value but found 'x' at byte \d+ in section "nodes"/],
    ['node_count too small', text.replace('"node_count":3', '"node_count":2'), /more than snapshot.node_count/],
    ['edge_count mismatch', text.replace('"edge_count":3', '"edge_count":4'), /add up to 3, snapshot.edge_count says 4/],
    ['to_node not a node', text.replace('"edges":[7,', '"edges":[8,'), /edge 0 points to 8/],
    ['no meta', text.replace('"meta":', '"mota":'), /snapshot.meta is missing/],
    ['missing strings', text.replace(/,"strings":\[.*\]\}$/, '}'), /section "strings" is missing/],
    ['top-level array', '[1,2,3]', /starts with an array/],
    ['string name out of range', text.replace('"nodes":[0,9,1', '"nodes":[99,9,1'), /names string 99/],
    ['type out of range', text.replace('"nodes":[0,9,1', '"nodes":[0,77,1'), /type 77, beyond meta.node_types/],
    ['trailing garbage', text + '}', /after the end of the document/],
  ];
  for (const [label, content, expected] of variants) {
    const file = join(dir, `${label.replace(/\W+/g, '-')}.heapsnapshot`);
    writeFileSync(file, content);
    const err = await rejection(file);
    assert.match(err.message, expected, label);
  }
  const missing = await rejection(join(dir, 'nope.heapsnapshot'));
  assert.match(missing.message, /cannot read .*nope.heapsnapshot/);
});
