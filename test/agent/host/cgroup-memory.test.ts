import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { detectMemoryHierarchy, readCgroupMemory, tightestLimit, type MemoryHierarchy } from '../../../agent/host/cgroup-memory.js';
import { memoryCgroupPath, parsePodCgroup } from '../../../agent/host/cgroup-path.js';

const fixtures = fileURLToPath(new URL('../../fixtures/cgroup/', import.meta.url));
const MiB = 1024 * 1024;

function hierarchyOf(layout: string): MemoryHierarchy {
  const h = detectMemoryHierarchy(join(fixtures, layout));
  assert.ok(h, `no hierarchy in ${layout}`);
  return h;
}

function pathOf(root: string, pid: number): string {
  const path = memoryCgroupPath(readFileSync(join(root, 'proc', String(pid), 'cgroup'), 'utf8'));
  assert.ok(path);
  return path;
}

/** A scratch copy of a fixture layout, to damage. */
function scratchCopy(layout: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-cgmem-'));
  cpSync(join(fixtures, layout), dir, { recursive: true });
  return dir;
}

function collectWarnings() {
  const warnings: string[] = [];
  return { warnings, warn: (msg: string) => warnings.push(msg) };
}

describe('detectMemoryHierarchy', () => {
  test('fixture layouts', () => {
    assert.deepEqual(detectMemoryHierarchy(join(fixtures, 'v1-cgroupfs-burstable')), { version: 1, memoryRoot: join(fixtures, 'v1-cgroupfs-burstable', 'memory') });
    assert.deepEqual(detectMemoryHierarchy(join(fixtures, 'v2-systemd-crio') + '/'), { version: 2, memoryRoot: join(fixtures, 'v2-systemd-crio') });
  });

  test('this machine: hybrid host with v1 memory and a unified mount without it is v1', (t) => {
    if (!existsSync('/sys/fs/cgroup/memory/memory.stat')) {
      console.log('SKIP: no cgroup v1 memory controller on this machine');
      t.skip('SKIP: no cgroup v1 memory controller on this machine');
      return;
    }
    assert.deepEqual(detectMemoryHierarchy('/sys/fs/cgroup'), { version: 1, memoryRoot: '/sys/fs/cgroup/memory' });
  });

  test('v2 without memory in cgroup.controllers, empty dir, missing dir: null', () => {
    const dir = mkdtempSync(join(tmpdir(), 'leakwatch-cgdetect-'));
    try {
      assert.equal(detectMemoryHierarchy(dir), null);
      writeFileSync(join(dir, 'cgroup.controllers'), 'cpuset cpu io hugetlb pids\n');
      assert.equal(detectMemoryHierarchy(dir), null);
      writeFileSync(join(dir, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
      assert.deepEqual(detectMemoryHierarchy(dir), { version: 2, memoryRoot: dir });
      assert.equal(detectMemoryHierarchy(join(dir, 'nope')), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('hybrid host that gave memory to the unified mount: v2 at unified/', () => {
    const dir = mkdtempSync(join(tmpdir(), 'leakwatch-cgdetect-'));
    try {
      mkdirSync(join(dir, 'unified'));
      writeFileSync(join(dir, 'unified', 'cgroup.controllers'), 'memory pids\n');
      assert.deepEqual(detectMemoryHierarchy(dir), { version: 2, memoryRoot: join(dir, 'unified') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('readCgroupMemory on fixture layouts', () => {
  const cases = [
    {
      layout: 'v1-cgroupfs-burstable',
      pid: 2230,
      memory: { usageBytes: 216006656, anonBytes: 189792256, inactiveFileBytes: 14299136, workingSetBytes: 216006656 - 14299136, limitBytes: 256 * MiB, oomKills: 0, oomGroupKills: 0 },
    },
    {
      layout: 'v1-cgroupfs-burstable',
      pid: 1872, // BestEffort: unlimited (9223372036854771712)
      memory: { usageBytes: 58720256, anonBytes: 24117248, inactiveFileBytes: 20152320, workingSetBytes: 58720256 - 20152320, limitBytes: null, oomKills: 0, oomGroupKills: 0 },
    },
    {
      layout: 'v1-cgroupfs-guaranteed',
      pid: 3120,
      memory: { usageBytes: 529530880, anonBytes: 510656512, inactiveFileBytes: 9101312, workingSetBytes: 529530880 - 9101312, limitBytes: 512 * MiB, oomKills: 2, oomGroupKills: 0 },
    },
    {
      layout: 'v2-systemd-containerd',
      pid: 5230,
      memory: { usageBytes: 464519168, anonBytes: 421527552, inactiveFileBytes: 21282816, workingSetBytes: 464519168 - 21282816, limitBytes: 512 * MiB, oomKills: 1, oomGroupKills: 0 },
    },
    {
      layout: 'v2-systemd-crio', // 5.15-era memory.events: no oom_group_kill line
      pid: 7033,
      memory: { usageBytes: 869269504, anonBytes: 768606208, inactiveFileBytes: 49258496, workingSetBytes: 869269504 - 49258496, limitBytes: 1024 * MiB, oomKills: 3, oomGroupKills: 0 },
    },
    {
      layout: 'v2-systemd-docker', // memory.max "max"
      pid: 8044,
      memory: { usageBytes: 326107136, anonBytes: 100663296, inactiveFileBytes: 127713280, workingSetBytes: 326107136 - 127713280, limitBytes: null, oomKills: 0, oomGroupKills: 0 },
    },
  ];
  for (const c of cases) {
    test(`${c.layout} pid ${c.pid}`, () => {
      const h = hierarchyOf(c.layout);
      const { warnings, warn } = collectWarnings();
      assert.deepEqual(readCgroupMemory(h, pathOf(join(fixtures, c.layout), c.pid), { warn }), c.memory);
      assert.deepEqual(warnings, []);
    });
  }

  test('v2 pod cgroup counts its containers’ OOM kills (propagated), v1 pod does not', () => {
    const v2 = hierarchyOf('v2-systemd-containerd');
    const v2Pod = parsePodCgroup(pathOf(join(fixtures, 'v2-systemd-containerd'), 5230));
    assert.ok(v2Pod && v2Pod !== 'skip');
    assert.equal(readCgroupMemory(v2, v2Pod.podCgroup)?.oomKills, 1);
    const v1 = hierarchyOf('v1-cgroupfs-guaranteed');
    assert.equal(readCgroupMemory(v1, '/kubepods/pod76e89285-1d33-4603-bcc9-3511dc81eb4c')?.oomKills, 0);
  });

  test('working set is floored at 0', () => {
    const root = scratchCopy('v2-systemd-docker');
    try {
      const h = detectMemoryHierarchy(root)!;
      const rel = pathOf(root, 8044);
      writeFileSync(join(root, rel, 'memory.current'), '4096\n'); // below inactive_file: stats lag usage
      assert.equal(readCgroupMemory(h, rel)?.workingSetBytes, 0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('unlimited', () => {
  test('v1: PAGE_COUNTER_MAX in bytes for 4 KiB and 64 KiB pages, and anything >= 2^62', () => {
    const root = scratchCopy('v1-cgroupfs-guaranteed');
    try {
      const h = detectMemoryHierarchy(root)!;
      const rel = pathOf(root, 3120);
      const limitFile = join(h.memoryRoot, rel, 'memory.limit_in_bytes');
      for (const raw of ['9223372036854771712', '9223372036854710272', String(2 ** 62)]) {
        writeFileSync(limitFile, `${raw}\n`);
        assert.equal(readCgroupMemory(h, rel)?.limitBytes, null, raw);
      }
      writeFileSync(limitFile, `${2 ** 62 - 4096}\n`);
      assert.equal(readCgroupMemory(h, rel)?.limitBytes, 2 ** 62 - 4096);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('v2: "max"', () => {
    const h = hierarchyOf('v2-systemd-crio');
    assert.equal(readCgroupMemory(h, pathOf(join(fixtures, 'v2-systemd-crio'), 7131))?.limitBytes, null);
  });
});

describe('tightestLimit', () => {
  test('container limit below the pod limit', () => {
    const h = hierarchyOf('v1-cgroupfs-burstable');
    const rel = pathOf(join(fixtures, 'v1-cgroupfs-burstable'), 2305);
    assert.deepEqual(tightestLimit(h, rel), { limitBytes: 128 * MiB, cgroup: rel });
  });

  test('unlimited container in a limited pod: the pod limit (sandbox container)', () => {
    const h = hierarchyOf('v1-cgroupfs-burstable');
    assert.deepEqual(tightestLimit(h, pathOf(join(fixtures, 'v1-cgroupfs-burstable'), 2101)), {
      limitBytes: 384 * MiB,
      cgroup: '/kubepods/burstable/podd04fe68c-27f4-4e2d-ac19-f5cbb35f1ff3',
    });
  });

  test('container limit equal to the pod limit: the innermost is named', () => {
    const h = hierarchyOf('v1-cgroupfs-guaranteed');
    const rel = pathOf(join(fixtures, 'v1-cgroupfs-guaranteed'), 3120);
    assert.deepEqual(tightestLimit(h, rel), { limitBytes: 512 * MiB, cgroup: rel });
  });

  test('BestEffort: node allocatable on kubepods binds (v1 and v2)', () => {
    assert.deepEqual(tightestLimit(hierarchyOf('v1-cgroupfs-burstable'), pathOf(join(fixtures, 'v1-cgroupfs-burstable'), 1872)), {
      limitBytes: 16642998272,
      cgroup: '/kubepods',
    });
    assert.deepEqual(tightestLimit(hierarchyOf('v2-systemd-docker'), pathOf(join(fixtures, 'v2-systemd-docker'), 8044)), {
      limitBytes: 3758096384,
      cgroup: '/kubepods.slice',
    });
    // Unlimited container in an unlimited Burstable pod (crio), v2 root has no memory.max.
    const { warnings, warn } = collectWarnings();
    assert.deepEqual(tightestLimit(hierarchyOf('v2-systemd-crio'), pathOf(join(fixtures, 'v2-systemd-crio'), 7131), { warn }), {
      limitBytes: 15703474176,
      cgroup: '/kubepods.slice',
    });
    assert.deepEqual(warnings, []);
  });

  test('agrees with the v1 kernel field hierarchical_memory_limit on every fixture container', () => {
    for (const [layout, pids] of [
      ['v1-cgroupfs-burstable', [2230, 2305, 2101, 1872, 1810]],
      ['v1-cgroupfs-guaranteed', [3120, 3001]],
    ] as const) {
      const h = hierarchyOf(layout);
      for (const pid of pids) {
        const rel = pathOf(join(fixtures, layout), pid);
        const stat = readFileSync(join(h.memoryRoot, rel, 'memory.stat'), 'utf8');
        const kernel = Number(/^hierarchical_memory_limit (\d+)$/m.exec(stat)?.[1]);
        assert.equal(tightestLimit(h, rel)?.limitBytes, kernel, `${layout} ${pid}`);
      }
    }
  });

  test('everything unlimited: limit null, cgroup null', () => {
    const root = scratchCopy('v2-systemd-docker');
    try {
      const h = detectMemoryHierarchy(root)!;
      writeFileSync(join(root, 'kubepods.slice', 'memory.max'), 'max\n');
      assert.deepEqual(tightestLimit(h, pathOf(root, 8044)), { limitBytes: null, cgroup: null });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('limitCache: ancestors read once per pass', () => {
    const root = scratchCopy('v2-systemd-containerd');
    try {
      const h = detectMemoryHierarchy(root)!;
      const limitCache = new Map<string, number | null>();
      const first = tightestLimit(h, pathOf(root, 5301), { limitCache });
      assert.deepEqual(first, { limitBytes: 256 * MiB, cgroup: pathOf(root, 5301) });
      const pod = '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod13f5c406_d825_48da_880c_baece02e915e.slice';
      assert.equal(limitCache.get(pod), 768 * MiB);
      assert.equal(limitCache.get('/kubepods.slice'), 34091302912);
      // Shrink the pod's limit on disk: a sibling read with the same cache still sees the pass's value ...
      writeFileSync(join(root, pod, 'memory.max'), `${64 * MiB}\n`);
      assert.deepEqual(tightestLimit(h, pathOf(root, 5101), { limitCache }), { limitBytes: 768 * MiB, cgroup: pod });
      // ... and the next pass (new cache) sees the new one.
      assert.deepEqual(tightestLimit(h, pathOf(root, 5101), { limitCache: new Map() }), { limitBytes: 64 * MiB, cgroup: pod });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('unreadable ancestor: warned once, passed over; vanished start: null', () => {
    const root = scratchCopy('v2-systemd-containerd');
    try {
      const h = detectMemoryHierarchy(root)!;
      const rel = pathOf(root, 6120);
      writeFileSync(join(root, 'kubepods.slice', 'memory.max'), 'lots\n');
      const { warnings, warn } = collectWarnings();
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(tightestLimit(h, rel, { warn }), { limitBytes: 1024 * MiB, cgroup: rel });
      }
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /memory\.max of cgroup \/kubepods\.slice .*"lots"/);
      rmSync(join(root, rel), { recursive: true });
      assert.equal(tightestLimit(h, rel, { warn }), null);
      assert.match(warnings[1]!, /is gone/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('bad files: null plus one diagnostic', () => {
  // Each damage is applied to a fresh copy; the read must give null, say why once over three
  // passes, and never throw.
  const damages: Array<{ name: string; layout: string; pid: number; damage: (dir: string) => void; expect: RegExp }> = [
    { name: 'v1 usage garbage', layout: 'v1-cgroupfs-guaranteed', pid: 3120, damage: (d) => writeFileSync(join(d, 'memory.usage_in_bytes'), 'lots\n'), expect: /memory\.usage_in_bytes .*"lots"/ },
    { name: 'v1 usage empty', layout: 'v1-cgroupfs-guaranteed', pid: 3120, damage: (d) => writeFileSync(join(d, 'memory.usage_in_bytes'), ''), expect: /memory\.usage_in_bytes .*byte count/ },
    { name: 'v1 usage negative', layout: 'v1-cgroupfs-guaranteed', pid: 3120, damage: (d) => writeFileSync(join(d, 'memory.usage_in_bytes'), '-4096\n'), expect: /"-4096"/ },
    {
      name: 'v1 memory.stat truncated before the rss lines',
      layout: 'v1-cgroupfs-guaranteed',
      pid: 3120,
      damage: (d) => writeFileSync(join(d, 'memory.stat'), readFileSync(join(d, 'memory.stat'), 'utf8').slice(0, 6)),
      expect: /memory\.stat .*neither total_rss/,
    },
    { name: 'v1 memory.stat with a bad value', layout: 'v1-cgroupfs-guaranteed', pid: 3120, damage: (d) => writeFileSync(join(d, 'memory.stat'), 'total_rss 12x\ntotal_inactive_file 0\n'), expect: /total_rss is "12x"/ },
    { name: 'v1 limit garbage', layout: 'v1-cgroupfs-guaranteed', pid: 3120, damage: (d) => writeFileSync(join(d, 'memory.limit_in_bytes'), 'max\n'), expect: /memory\.limit_in_bytes .*"max"/ },
    { name: 'v1 oom_control garbage', layout: 'v1-cgroupfs-guaranteed', pid: 3120, damage: (d) => writeFileSync(join(d, 'memory.oom_control'), '\u0000\u0000\n'), expect: /memory\.oom_control/ },
    { name: 'v1 oom_control missing', layout: 'v1-cgroupfs-guaranteed', pid: 3120, damage: (d) => rmSync(join(d, 'memory.oom_control')), expect: /memory\.oom_control is missing/ },
    { name: 'v2 memory.current missing', layout: 'v2-systemd-containerd', pid: 5230, damage: (d) => rmSync(join(d, 'memory.current')), expect: /memory\.current is missing .*controller not enabled/ },
    { name: 'v2 memory.max garbage', layout: 'v2-systemd-containerd', pid: 5230, damage: (d) => writeFileSync(join(d, 'memory.max'), 'maxx\n'), expect: /memory\.max .*"maxx"/ },
    { name: 'v2 memory.stat without anon', layout: 'v2-systemd-containerd', pid: 5230, damage: (d) => writeFileSync(join(d, 'memory.stat'), 'file 4096\ninactive_file 4096\n'), expect: /lacks anon/ },
    {
      name: 'v2 memory.events truncated before oom_kill',
      layout: 'v2-systemd-containerd',
      pid: 5230,
      damage: (d) => writeFileSync(join(d, 'memory.events'), 'low 0\nhigh 0\nmax 0\noo'),
      expect: /memory\.events .*lacks oom_kill/,
    },
    { name: 'v2 cgroup vanished', layout: 'v2-systemd-docker', pid: 8044, damage: (d) => rmSync(d, { recursive: true }), expect: /is gone/ },
    { name: 'v1 cgroup vanished', layout: 'v1-cgroupfs-burstable', pid: 2230, damage: (d) => rmSync(d, { recursive: true }), expect: /is gone/ },
  ];
  for (const d of damages) {
    test(d.name, () => {
      const root = scratchCopy(d.layout);
      try {
        const h = detectMemoryHierarchy(root)!;
        const rel = pathOf(root, d.pid);
        d.damage(join(h.memoryRoot, rel));
        const { warnings, warn } = collectWarnings();
        for (let pass = 0; pass < 3; pass++) assert.equal(readCgroupMemory(h, rel, { warn }), null);
        assert.equal(warnings.length, 1, warnings.join('\n'));
        assert.match(warnings[0]!, d.expect);
        assert.ok(warnings[0]!.includes(rel) || warnings[0]!.includes('cgroup'), warnings[0]);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }

  test('said again after the cgroup recovered and failed anew; a good limit read does not reset it', () => {
    const root = scratchCopy('v2-systemd-containerd');
    try {
      const h = detectMemoryHierarchy(root)!;
      const rel = pathOf(root, 5230);
      const current = join(root, rel, 'memory.current');
      const good = readFileSync(current, 'utf8');
      const { warnings, warn } = collectWarnings();
      writeFileSync(current, 'x\n');
      assert.equal(readCgroupMemory(h, rel, { warn }), null);
      assert.ok(tightestLimit(h, rel, { warn })); // the same cgroup's limit reads fine
      assert.equal(readCgroupMemory(h, rel, { warn }), null);
      assert.equal(warnings.length, 1);
      writeFileSync(current, good);
      assert.ok(readCgroupMemory(h, rel, { warn }));
      writeFileSync(current, 'x\n');
      assert.equal(readCgroupMemory(h, rel, { warn }), null);
      assert.equal(warnings.length, 2);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('v1 without total_* lines falls back to rss/inactive_file', () => {
    const root = scratchCopy('v1-cgroupfs-guaranteed');
    try {
      const h = detectMemoryHierarchy(root)!;
      const rel = pathOf(root, 3120);
      const stat = join(h.memoryRoot, rel, 'memory.stat');
      const flat = readFileSync(stat, 'utf8').split('\n').filter((l) => !l.startsWith('total_')).join('\n');
      writeFileSync(stat, flat.replace(/^rss \d+$/m, 'rss 1000000').replace(/^inactive_file \d+$/m, 'inactive_file 4096'));
      const m = readCgroupMemory(h, rel);
      assert.equal(m?.anonBytes, 1000000);
      assert.equal(m?.inactiveFileBytes, 4096);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('paths from another cgroup namespace or outside the root are refused, not resolved', () => {
    const h = hierarchyOf('v2-systemd-containerd');
    const { warnings, warn } = collectWarnings();
    for (const rel of ['/../../kubepods.slice', '/kubepods.slice/../kubepods.slice', 'kubepods.slice', '/./kubepods.slice']) {
      assert.equal(readCgroupMemory(h, rel, { warn }), null, rel);
      assert.equal(tightestLimit(h, rel, { warn }), null, rel);
    }
    assert.ok(warnings.length >= 4);
    assert.match(warnings[0]!, /not a plain path/);
  });

  test('a cgroup file bigger than the read buffer is still read whole', () => {
    const root = scratchCopy('v2-systemd-containerd');
    try {
      const h = detectMemoryHierarchy(root)!;
      const rel = pathOf(root, 5230);
      const stat = join(root, rel, 'memory.stat');
      // Pad with unknown keys so that anon/inactive_file sit past the first 16 KiB.
      const padding = Array.from({ length: 2000 }, (_, i) => `padding_key_${i} ${i}`).join('\n');
      writeFileSync(stat, `${padding}\nanon 12288\ninactive_file 4096\n`);
      const m = readCgroupMemory(h, rel);
      assert.equal(m?.anonBytes, 12288);
      assert.equal(m?.inactiveFileBytes, 4096);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The real kernel: a v1 memory cgroup on this machine, a bounded process inside it.

const V1_MEMORY = '/sys/fs/cgroup/memory';

function realCgroupUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  const h = detectMemoryHierarchy('/sys/fs/cgroup');
  if (h === null || h.version !== 1 || h.memoryRoot !== V1_MEMORY) return 'no cgroup v1 memory controller at /sys/fs/cgroup/memory';
  const probe = join(V1_MEMORY, `leakwatch-test-probe-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return null;
  } catch (err) {
    return `memory controller not writable (${(err as NodeJS.ErrnoException).code})`;
  }
}

// Every child we start, so that a failed assertion in one test cannot leave a process that
// keeps a test cgroup busy.
const children: ChildProcess[] = [];

/** Runs `script` in node after moving itself into `cgroupDir`; resolves once it printed "ready". */
async function startInCgroup(cgroupDir: string, script: string): Promise<ChildProcess> {
  const prelude = `require('fs').writeFileSync(${JSON.stringify(join(cgroupDir, 'cgroup.procs'))}, String(process.pid));`;
  // The child bounds itself too: it exits after 30 s whatever happens to the test.
  const child = spawn(process.execPath, ['-e', `${prelude}\nsetTimeout(() => process.exit(0), 30000);\n${script}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let out = '';
  child.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`child exited before ready (${code ?? signal})`)));
  });
  return child;
}

async function stopChildren(): Promise<void> {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }
}

async function removeCgroup(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  // A cgroup whose last task just exited can report EBUSY for a moment.
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || attempt > 100) throw err;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

describe('real kernel (cgroup v1 on this machine)', () => {
  const unavailable = realCgroupUnavailable();
  const name = `leakwatch-test-${randomBytes(6).toString('hex')}`;
  const outer = join(V1_MEMORY, name);
  const inner = join(outer, 'inner');

  before(() => {
    if (unavailable) {
      console.log(`SKIP: ${unavailable}`);
      return;
    }
    mkdirSync(outer);
    writeFileSync(join(outer, 'memory.limit_in_bytes'), String(64 * MiB));
    mkdirSync(inner);
    // Looser than its parent on purpose: the parent's 64 MiB is the one that binds.
    writeFileSync(join(inner, 'memory.limit_in_bytes'), String(128 * MiB));
  });

  after(async () => {
    await stopChildren();
    await removeCgroup(inner);
    await removeCgroup(outer);
  });

  test('usage, anon and limits of a process holding 20 MiB', async (t) => {
    if (unavailable) {
      t.skip(`SKIP: ${unavailable}`);
      return;
    }
    await startInCgroup(inner, `globalThis.held = Buffer.alloc(20 * 1024 * 1024, 1); console.log('ready');`);
    t.after(stopChildren);
    const h = detectMemoryHierarchy('/sys/fs/cgroup')!;
    const { warnings, warn } = collectWarnings();
    const m = readCgroupMemory(h, `/${name}/inner`, { warn });
    assert.ok(m, warnings.join('\n'));
    // The child's memory from before it moved stays charged to its old cgroup; what it touches
    // afterwards (the 20 MiB buffer plus a little heap) is charged here.
    assert.ok(m.anonBytes >= 20 * MiB && m.anonBytes < 48 * MiB, `anon ${m.anonBytes}`);
    assert.ok(m.usageBytes >= 19 * MiB && m.usageBytes <= 64 * MiB, `usage ${m.usageBytes}`);
    assert.equal(m.limitBytes, 128 * MiB);
    assert.equal(m.workingSetBytes, Math.max(0, m.usageBytes - m.inactiveFileBytes));
    assert.equal(m.oomKills, 0);
    // Hierarchical accounting: the parent sees the child's memory.
    const parent = readCgroupMemory(h, `/${name}`, { warn });
    assert.equal(parent?.limitBytes, 64 * MiB);
    assert.ok(parent!.anonBytes >= m.anonBytes - MiB, `parent anon ${parent!.anonBytes}`);
    // The tightest enclosing limit is the parent's, as the kernel itself says.
    assert.deepEqual(tightestLimit(h, `/${name}/inner`, { warn }), { limitBytes: 64 * MiB, cgroup: `/${name}` });
    const kernelSays = /^hierarchical_memory_limit (\d+)$/m.exec(readFileSync(join(inner, 'memory.stat'), 'utf8'))?.[1];
    assert.equal(Number(kernelSays), 64 * MiB);
    assert.deepEqual(warnings, []);
    console.log(`real v1 cgroup holding a 20 MiB buffer: usage ${m.usageBytes} anon ${m.anonBytes} inactive_file ${m.inactiveFileBytes}`);
  });

  test('an OOM kill is counted in the victim’s cgroup', async (t) => {
    if (unavailable) {
      t.skip(`SKIP: ${unavailable}`);
      return;
    }
    // Grows by 8 MiB steps far past the parent's 64 MiB: the kernel kills it at the limit.
    t.after(stopChildren);
    const child = await startInCgroup(inner, `const held = []; console.log('ready'); const grow = () => { held.push(Buffer.alloc(8 * 1024 * 1024, 1)); if (held.length < 32) setTimeout(grow, 10); }; grow();`);
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    assert.equal(signal, 'SIGKILL', `child ended with code ${code} signal ${signal}`);
    const h = detectMemoryHierarchy('/sys/fs/cgroup')!;
    const victim = readCgroupMemory(h, `/${name}/inner`);
    assert.ok(victim && victim.oomKills >= 1, `inner oom_kill ${victim?.oomKills}`);
    // v1 counts the kill where the victim lived, not where the limit was hit (the parent).
    const parent = readCgroupMemory(h, `/${name}`);
    console.log(`v1 OOM counters: victim cgroup oom_kill=${victim!.oomKills}, limited parent oom_kill=${parent?.oomKills}`);
    assert.equal(parent?.oomKills, 0);
  });
});
