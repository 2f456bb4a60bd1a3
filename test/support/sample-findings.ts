// Findings of every kind shaped as the watcher emits them, for protocol and collector tests.
// Typed against protocol/findings.ts, so a field added there breaks these builders at compile time.
import type { Finding, FindingTarget } from '../../protocol/findings.js';

export function sampleTarget(overrides: Partial<FindingTarget> = {}): FindingTarget {
  return {
    pid: 4242,
    comm: 'node',
    cmdline: 'node server.js',
    namespace: 'payments',
    pod: 'payment-processor-7d9f',
    podUid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    container: 'app',
    containerId: 'a'.repeat(64),
    ...overrides,
  };
}

export function growthFinding(id: string, node = 'node-a', at = 1_700_000_000_000): Finding {
  return {
    id,
    kind: 'growth',
    status: 'open',
    at,
    updatedAt: at,
    node,
    target: sampleTarget(),
    summary: 'node (pid 4242) grows 1.0MiB/s',
    details: {
      scope: 'process',
      slopeBytesPerSec: 1048576,
      currentBytes: 200 * 1048576,
      workingSetBytes: null,
      limitBytes: 256 * 1048576,
      etaSec: 56,
      confidence: 0.99,
      windowStartMs: at - 60_000,
      windowEndMs: at,
    },
  };
}

export function fanoutFinding(id: string, node = 'node-a', at = 1_700_000_000_000): Finding {
  return {
    id,
    kind: 'fanout',
    status: 'open',
    at,
    updatedAt: at,
    node,
    target: sampleTarget({ comm: 'python3', cmdline: 'python3 worker.py' }),
    summary: 'python3 (pid 4242) keeps 12 children',
    details: {
      parent: { pid: 4242, comm: 'python3', cmdline: 'python3 worker.py' },
      childrenAlive: 12,
      childrenSeen: 40,
      spawnRatePerMin: 3.5,
      childrenAnonBytes: 120 * 1048576,
      childrenSlopeBytesPerSec: null,
      growingChildren: 0,
      limitBytes: null,
      sampleChildren: [{ pid: 5000, comm: 'python3', cmdline: 'python3 -c work' }],
    },
  };
}

export function spawnFinding(id: string, node = 'node-a', at = 1_700_000_000_000, content = 'import os\nprint(os.getpid())\n'): Finding {
  return {
    id,
    kind: 'suspicious-spawn',
    status: 'open',
    at,
    updatedAt: at,
    node,
    target: sampleTarget({ pid: 5151, comm: 'python3', cmdline: 'python3 /tmp/tmpk3j1.py' }),
    summary: 'suspicious spawn: python3 (pid 5151) running /tmp/tmpk3j1.py',
    details: {
      rules: [{ id: 'script-in-world-writable-dir', reason: 'the script lives in /tmp' }],
      argv: ['python3', '/tmp/tmpk3j1.py'],
      exe: '/usr/bin/python3.11',
      cwd: '/app',
      uid: 1000,
      startTimeMs: at - 5.5,
      parentChain: [{ pid: 4242, comm: 'node', cmdline: 'node server.js' }],
      script: {
        path: '/tmp/tmpk3j1.py',
        sha256: 'b'.repeat(64),
        sizeBytes: Buffer.byteLength(content),
        mtimeMs: at - 2000,
        ctimeMs: at - 2000,
        content,
        contentEncoding: 'utf8',
        truncated: false,
        refused: null,
      },
      provenance: {
        path: '/app/resources.dat',
        sha256: 'c'.repeat(64),
        encoding: 'base64',
        statement: '/tmp/tmpk3j1.py is the base64 decoding of /app/resources.dat',
      },
      notes: [],
      occurrences: 1,
      pids: [5151],
    },
  };
}

export function oomFinding(id: string, node = 'node-a', at = 1_700_000_000_000): Finding {
  return {
    id,
    kind: 'oom-kill',
    status: 'open',
    at,
    updatedAt: at,
    node,
    target: sampleTarget(),
    summary: 'OOM kill of node (pid 4242)',
    details: {
      victim: { pid: 4242, ppid: null, comm: 'node', cmdline: 'node server.js', lastRssAnonBytes: 250 * 1048576 },
      memcg: '/kubepods/burstable/pod0f1e/aaaa',
      containerSurvived: true,
      sources: ['kmsg', 'counter'],
      relatedFindings: ['growth-0123456789abcdef'],
    },
  };
}

/** A deep copy a test can break without touching the original. */
export function copy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
