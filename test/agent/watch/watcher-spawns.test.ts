// Spawn evidence must not stall sampling: a provenance search over a large application tree takes
// seconds on a cold node, and the pass that first sees the process goes on without it; the
// finding comes with a later pass, provenance and all. Real processes, the real /proc.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NodeSampler } from '../../../agent/host/node-sampler.js';
import { Watcher, type FindingEvent } from '../../../agent/watch/watcher.js';
import { judgeSpawn, ProvenanceCache } from '../../../agent/watch/spawn-evidence.js';
import type { ProcessSample } from '../../../agent/host/types.js';
import { decodingCollectorScript } from '../../support/decoding-collector.js';
import { privateArtifactsDir } from '../../support/places.js';

const python = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
const skip = python.status === 0 ? false : 'SKIP: python3 not available';
if (skip) console.log(skip);

const COLLECTOR = decodingCollectorScript('zz/resources.dat');
const PAYLOAD = Buffer.from('import time\ntime.sleep(60)\n');
/** Files the search lists before it reaches zz/ (breadth first): a vendored tree, as apps have. */
const FILLER_FILES = 1500;

describe('suspicious spawns do not hold up the pass', { skip }, () => {
  let app = '';
  let work = '';
  const children: ChildProcess[] = [];
  const pids: number[] = [];
  const scripts: string[] = [];

  before(async () => {
    await fsp.mkdir(privateArtifactsDir(), { recursive: true });
    work = await fsp.mkdtemp(join(privateArtifactsDir(), 'watcher-spawns-'));
    app = join(work, 'app');
    await fsp.mkdir(join(app, 'zz'), { recursive: true });
    for (let i = 0; i < FILLER_FILES; i++) await fsp.writeFile(join(app, `vendor-${i}.js`), `module.exports = ${i};\n`);
    await fsp.writeFile(join(app, 'zz', 'resources.dat'), `${PAYLOAD.toString('base64')}\n`);
  });
  after(async () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const c of children) c.kill('SIGKILL');
    for (const s of scripts) await fsp.rm(s, { force: true });
    await fsp.rm(work, { recursive: true, force: true });
  });

  async function startCollector(): Promise<{ parentPid: number; childPid: number; script: string }> {
    const parent = spawn(python.stdout.trim(), ['-c', COLLECTOR], { cwd: app, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(parent);
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      parent.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\n')) resolve(buf.split('\n')[0]!);
      });
      parent.once('exit', (code) => reject(new Error(`collector exited (${code}) before printing`)));
    });
    const [pidText, script] = line.split(' ');
    const childPid = Number(pidText);
    pids.push(childPid);
    scripts.push(script!);
    return { parentPid: parent.pid!, childPid, script: script! };
  }

  it('reports the finding from a later pass, with its provenance, while passes go on', async () => {
    const sampler = new NodeSampler();
    // Host processes too: the collector is not in a pod. No waiting at all for evidence.
    const watcher = new Watcher({ sampler, kmsg: null, nodeName: 'node-spawns', includeHost: true, spawnWaitMs: 0 });
    try {
      await watcher.tick();
      const { parentPid, childPid, script } = await startCollector();
      let passes = 0;
      let firstSeenPass: number | null = null;
      let reportPassStartMs = 0;
      let reportedPass: number | null = null;
      let opened: FindingEvent | undefined;
      const deadline = Date.now() + 30_000;
      while (opened === undefined && Date.now() < deadline) {
        const passStartMs = Date.now();
        const events = await watcher.tick();
        passes++;
        if (firstSeenPass === null && watcher.latestSample?.processes.some((p) => p.pid === childPid)) {
          firstSeenPass = passes;
        }
        opened = events.find((e) => e.change === 'open' && e.finding.kind === 'suspicious-spawn' && e.finding.target.pid === childPid);
        if (opened) {
          reportedPass = passes;
          reportPassStartMs = passStartMs;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(opened, 'the spawn finding was reported');
      assert.ok(firstSeenPass !== null);
      // The search over 1 500 files was still running when the first pass that saw the child ended.
      assert.ok(reportedPass! > firstSeenPass, `reported by pass ${reportedPass}, first seen by pass ${firstSeenPass}`);
      const f = opened.finding;
      assert.ok(f.kind === 'suspicious-spawn');
      assert.equal(f.details.script?.path, script);
      assert.equal(f.details.parentChain[0]?.pid, parentPid);
      assert.equal(f.details.provenance?.path, join(app, 'zz', 'resources.dat'));
      assert.equal(f.details.provenance?.encoding, 'base64');
      // The evidence is from first sight, taken before the pass that reported it.
      assert.ok(f.at < reportPassStartMs, `evidence of ${f.at}, reported by a pass that began at ${reportPassStartMs}`);
    } finally {
      watcher.close();
      sampler.close();
    }
  });

  it('processes that are still being judged when the agent stops are reported by finishPendingSpawns', async () => {
    const sampler = new NodeSampler();
    const watcher = new Watcher({ sampler, kmsg: null, nodeName: 'node-spawns', includeHost: true, spawnWaitMs: 0 });
    try {
      await watcher.tick();
      const { childPid } = await startCollector();
      let events: FindingEvent[] = [];
      while (!watcher.latestSample?.processes.some((p) => p.pid === childPid)) events = await watcher.tick();
      assert.ok(!events.some((e) => e.finding.target.pid === childPid), 'the search was still running');
      const late = await watcher.finishPendingSpawns(30_000);
      const f = late.find((e) => e.finding.kind === 'suspicious-spawn' && e.finding.target.pid === childPid)?.finding;
      assert.ok(f?.kind === 'suspicious-spawn', 'reported on the way out');
      assert.equal(f.details.provenance?.path, join(app, 'zz', 'resources.dat'));
    } finally {
      watcher.close();
      sampler.close();
    }
  });

  it('past 256 processes being judged at once, a pass waits for all of them (a fork storm does not pile up work)', async (t) => {
    const sleepers: ChildProcess[] = [];
    t.after(() => {
      for (const c of sleepers) c.kill('SIGKILL');
    });
    const sampler = new NodeSampler();
    const watcher = new Watcher({ sampler, kmsg: null, nodeName: 'node-spawns', includeHost: true, spawnWaitMs: 0 });
    try {
      await watcher.tick();
      for (let i = 0; i < 300; i++) sleepers.push(spawn('sleep', ['60'], { stdio: 'ignore' }));
      await Promise.all(sleepers.map((c) => new Promise((r) => c.once('spawn', r))));
      await watcher.tick();
      assert.equal(watcher.pendingSpawnJudgements, 0, 'the pass that saw 300 new processes waited for their evidence');
      // A few new ones are judged beside the passes again.
      for (let i = 0; i < 3; i++) sleepers.push(spawn('sleep', ['60'], { stdio: 'ignore' }));
      await Promise.all(sleepers.slice(-3).map((c) => new Promise((r) => c.once('spawn', r))));
      await watcher.tick();
      await watcher.finishPendingSpawns(10_000);
      assert.equal(watcher.pendingSpawnJudgements, 0);
    } finally {
      watcher.close();
      sampler.close();
    }
  });

  it('a spawn seen again while its tree is being searched waits for that search instead of walking the tree again', async () => {
    const { childPid } = await startCollector();
    const sampler = new NodeSampler();
    try {
      sampler.sample();
      const sample = sampler.lastSeen(childPid) as ProcessSample | undefined;
      assert.ok(sample, 'child sampled');
      const cache = new ProvenanceCache();
      const opts = { lookup: (pid: number) => sampler.lastSeen(pid), provenanceCache: cache };
      const [a, b] = await Promise.all([judgeSpawn(sample, opts), judgeSpawn(sample, opts)]);
      for (const j of [a, b]) assert.equal(j?.evidence.provenance?.path, join(app, 'zz', 'resources.dat'));
      const shared = [a, b].filter((j) => j?.evidence.notes.some((n) => /already running/.test(n)));
      assert.equal(shared.length, 1, `notes: ${JSON.stringify([a?.evidence.notes, b?.evidence.notes])}`);
      assert.ok(a!.evidence.provenanceSearch!.filesSeen > FILLER_FILES);
      assert.deepEqual(a!.evidence.provenanceSearch, b!.evidence.provenanceSearch);
    } finally {
      sampler.close();
    }
  });
});
