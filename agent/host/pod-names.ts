// Namespace, pod and container names by pod UID, from the kubelet's log directories, so that
// the agent can name what it sees without access to the Kubernetes API.
//
//   <podLogRoot>/<namespace>_<pod>_<uid>/<container>/<restart>.log          (kubelet >= 1.14)
//   <containerLogDir>/<pod>_<namespace>_<container>-<64-hex id>.log -> <podLogRoot>/.../<n>.log
//
// Namespace, pod and container names are DNS-1123 names (no '_'), and a pod UID is a UUID or,
// for static pods, 32 hex digits: so '_' only ever delimits, and the UID follows the last one.

import { readdirSync, readlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { PodNames } from './types.js';

export interface PodNameIndexOptions {
  /** Default /var/log/pods. */
  podLogRoot?: string;
  /**
   * The kubelet's per-container symlinks, which carry the container id. Default
   * `<podLogRoot>/../containers` (/var/log/containers); null to not read it.
   */
  containerLogDir?: string | null;
  /** A lookup re-scans when the last scan is at least this old. Default 10 s. */
  rescanIntervalMs?: number;
  /** Clock, for tests. */
  now?: () => number;
  warn?: (msg: string) => void;
}

const CONTAINER_LOG = /^([^_]+)_([^_]+)_(.+)-([0-9a-f]{64})\.log$/;

export class PodNameIndex {
  readonly podLogRoot: string;
  readonly containerLogDir: string | null;
  private readonly rescanIntervalMs: number;
  private readonly now: () => number;
  private readonly warn: (msg: string) => void;
  private byUid = new Map<string, PodNames>();
  private lastScanMs = -Infinity;
  // Per top-level directory, the last problem said about it: said once until it changes.
  private readonly problemsSaid = new Map<string, string>();

  constructor(options: PodNameIndexOptions = {}) {
    this.podLogRoot = options.podLogRoot ?? '/var/log/pods';
    this.containerLogDir = options.containerLogDir === undefined ? join(dirname(this.podLogRoot), 'containers') : options.containerLogDir;
    this.rescanIntervalMs = options.rescanIntervalMs ?? 10_000;
    this.now = options.now ?? Date.now;
    this.warn = options.warn ?? (() => {});
  }

  /**
   * Names of a pod by UID; null when its log directory is not there (yet). A pod started since
   * the last scan is found once the rescan interval has passed: scans are rationed so that a
   * pass over hundreds of host processes never turns into hundreds of directory walks.
   */
  lookup(podUid: string): PodNames | null {
    if (this.now() - this.lastScanMs >= this.rescanIntervalMs) this.refresh();
    return this.byUid.get(podUid.toLowerCase()) ?? null;
  }

  /** Name of a container: by id where the container log symlinks tell it, else the pod's only container. */
  containerName(podUid: string, containerId: string): string | null {
    const names = this.lookup(podUid);
    if (names === null) return null;
    const byId = names.containerNamesById.get(containerId);
    if (byId !== undefined) return byId;
    return names.containers.length === 1 ? (names.containers[0] ?? null) : null;
  }

  /** Re-read both directories now. */
  refresh(): void {
    this.lastScanMs = this.now();
    const next = new Map<string, PodNames>();
    const entries = this.listDir(this.podLogRoot, 'pods will have no names');
    if (entries === null) {
      this.byUid = next;
      return;
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const pod = parsePodDirName(entry.name);
      if (pod === null) continue; // pre-1.14 <uid>-only directories and strangers carry no names
      next.set(pod.podUid, { ...pod, containers: this.containerDirs(join(this.podLogRoot, entry.name)), containerNamesById: new Map() });
    }
    if (this.containerLogDir !== null) this.addContainerIds(next, this.containerLogDir);
    this.byUid = next;
  }

  private containerDirs(podDir: string): string[] {
    const entries = this.listDir(podDir, null);
    if (entries === null) return [];
    return entries
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  }

  private addContainerIds(pods: Map<string, PodNames>, dir: string): void {
    const entries = this.listDir(dir, 'containers of pods with several will have no names');
    if (entries === null) return;
    for (const entry of entries) {
      const match = CONTAINER_LOG.exec(entry.name);
      if (match === null) continue;
      const [, podName, namespace, container, id] = match as unknown as [string, string, string, string, string];
      const pod = this.podOfContainerLog(pods, join(dir, entry.name), namespace, podName);
      pod?.containerNamesById.set(id, container);
    }
  }

  // The symlink's target names the pod directory, UID included: that tells apart two pods of
  // one name (a StatefulSet pod replaced while the old one's logs are still there). Without a
  // readable target, the name alone decides only when it is unambiguous.
  private podOfContainerLog(pods: Map<string, PodNames>, linkPath: string, namespace: string, podName: string): PodNames | null {
    let target: string | null = null;
    try {
      target = readlinkSync(linkPath);
    } catch {
      target = null; // a plain file, or gone since the readdir
    }
    if (target !== null) {
      for (const part of target.split('/')) {
        const parsed = parsePodDirName(part);
        if (parsed !== null && parsed.namespace === namespace && parsed.pod === podName) return pods.get(parsed.podUid) ?? null;
      }
    }
    let only: PodNames | null = null;
    for (const pod of pods.values()) {
      if (pod.namespace !== namespace || pod.pod !== podName) continue;
      if (only !== null) return null;
      only = pod;
    }
    return only;
  }

  /** `consequence` set: a top-level directory, whose failure is said (once until it changes). */
  private listDir(dir: string, consequence: string | null) {
    try {
      const entries = readdirSync(dir, { withFileTypes: true });
      if (consequence !== null) this.problemsSaid.delete(dir);
      return entries;
    } catch (err) {
      // A pod directory that vanished mid-scan is ordinary churn, not worth a word.
      if (consequence === null) return null;
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      const problem = `log directory ${dir} cannot be read (${code}): ${consequence}`;
      if (this.problemsSaid.get(dir) !== problem) this.warn(problem);
      this.problemsSaid.set(dir, problem);
      return null;
    }
  }
}

/** `<namespace>_<pod>_<uid>` -> its parts; null for anything else. */
export function parsePodDirName(name: string): { namespace: string; pod: string; podUid: string } | null {
  const first = name.indexOf('_');
  const last = name.lastIndexOf('_');
  if (first <= 0 || last <= first + 1 || last === name.length - 1) return null;
  const podUid = name.slice(last + 1).toLowerCase();
  if (!/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/.test(podUid)) return null;
  return { namespace: name.slice(0, first), pod: name.slice(first + 1, last), podUid };
}
