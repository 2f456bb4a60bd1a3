// Which sampled processes are Node.js, and which one a command about a pod means. Decided from
// the executable and the command line only: nothing in the target is run or loaded to find out.
import { basename } from 'node:path';
import type { AttributedProcess } from '../host/node-sampler.js';

/** `node`, `nodejs`, and versioned builds some images ship (`node20`, `node-18`). */
const nodeBasename = /^(node|nodejs)(-?\d+(\.\d+)*)?$/;
/** A version in the executable's path: nvm (`/v20.11.1/bin/node`), official tarballs (`node-v20.11.1-linux-x64`). */
const versionInPath = /(?:^|[/-])v(\d+\.\d+\.\d+)(?:[/-]|$)/;

export function isNodeProcess(p: Pick<AttributedProcess, 'exe' | 'argv' | 'comm'>): boolean {
  // A deleted executable reads as "/usr/bin/node (deleted)": still Node.js, upgraded under it.
  const exe = p.exe?.replace(/ \(deleted\)$/, '') ?? null;
  if (exe !== null) return nodeBasename.test(basename(exe));
  // Without the exe link (another user's process, a permission), argv[0] is the only word we have.
  const argv0 = p.argv[0];
  return argv0 !== undefined && nodeBasename.test(basename(argv0));
}

/** `v20.11.1` when the executable's path says it; the inspector asks the process itself otherwise. */
export function nodeVersionFromPath(exe: string | null): string | null {
  if (!exe) return null;
  const m = versionInPath.exec(exe);
  return m ? `v${m[1]}` : null;
}

export function findNodeTargets(processes: readonly AttributedProcess[]): AttributedProcess[] {
  return processes.filter((p) => p.state !== 'Z' && isNodeProcess(p));
}

export interface PodSelector {
  namespace: string;
  pod: string;
  container?: string;
  pid?: number;
}

export type PodTargetChoice = { ok: true; process: AttributedProcess } | { ok: false; reasonCode: 'not-found' | 'not-node'; reason: string };

/**
 * The Node.js process a command about a pod means: the pid it names (which must be in that pod),
 * else the Node.js process of the pod (or container) with the most anonymous memory, the one that
 * is most likely leaking and the one an OOM kill would pick.
 */
export function choosePodTarget(processes: readonly AttributedProcess[], sel: PodSelector): PodTargetChoice {
  const where = `${sel.namespace}/${sel.pod}${sel.container ? ` container ${sel.container}` : ''}`;
  const inPod = processes.filter(
    (p) => p.namespace === sel.namespace && p.pod === sel.pod && (sel.container === undefined || p.container === sel.container),
  );
  if (sel.pid !== undefined) {
    const p = inPod.find((q) => q.pid === sel.pid);
    if (!p) return { ok: false, reasonCode: 'not-found', reason: `pid ${sel.pid} is not a process of ${where} on this node` };
    if (!isNodeProcess(p)) return { ok: false, reasonCode: 'not-node', reason: `pid ${sel.pid} (${p.comm}) is not a Node.js process` };
    return { ok: true, process: p };
  }
  if (inPod.length === 0) return { ok: false, reasonCode: 'not-found', reason: `no process of ${where} on this node` };
  const nodes = findNodeTargets(inPod);
  if (nodes.length === 0) {
    const seen = [...new Set(inPod.map((p) => p.comm))].slice(0, 5).join(', ');
    return { ok: false, reasonCode: 'not-node', reason: `no Node.js process in ${where} (found ${seen})` };
  }
  nodes.sort((a, b) => b.rssAnonBytes + b.swapBytes - (a.rssAnonBytes + a.swapBytes) || a.pid - b.pid);
  return { ok: true, process: nodes[0]! };
}
