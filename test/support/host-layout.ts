// The mount layout of the agent's DaemonSet pod, made on this machine: a temp directory whose
// host/proc, host/sys/fs/cgroup, host/var/log/pods and host/var/log/containers are read-only bind mounts of the real trees
// (the cgroup one recursive, like the kubelet's hostPath, so the v1 controllers come along).
// Needs root and mount(8). cleanup() unmounts everything and removes the directory only once
// nothing is mounted under it, so a failed unmount can never delete through a bind mount.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface HostLayout {
  /** The directory that stands for the pod's `/`: `${root}/host/proc` is the node's /proc. */
  root: string;
  cleanup(): void;
}

/** Null when the layout can be made here; else the reason (for a SKIP line). */
export function hostLayoutUnavailable(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (bind mounts need root)';
  if (spawnSync('mount', ['--version']).status !== 0) return 'no mount(8)';
  return null;
}

function run(args: string[]): void {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
}

/** Mount points at or under dir, deepest first (from /proc/self/mountinfo; octal escapes decoded). */
export function mountsUnder(dir: string): string[] {
  const decode = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map(decode)
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

function bindReadOnly(source: string, target: string, recursive: boolean): void {
  mkdirSync(target, { recursive: true });
  run(['mount', recursive ? '--rbind' : '--bind', source, target]);
  // The read-only flag is per mount point: remount each one of the tree, the original stays writable.
  for (const m of mountsUnder(target).reverse()) run(['mount', '-o', 'remount,bind,ro', m]);
}

export function createHostLayout(options: { podLogRoot: string; containerLogRoot: string }): HostLayout {
  const root = mkdtempSync(join(tmpdir(), 'leakwatch-host-layout-'));
  const layout: HostLayout = {
    root,
    cleanup() {
      for (const m of mountsUnder(root)) {
        const r = spawnSync('umount', [m]);
        if (r.status !== 0) spawnSync('umount', ['-l', m]);
      }
      const left = mountsUnder(root);
      if (left.length > 0) throw new Error(`still mounted under ${root}: ${left.join(', ')}; not removing it`);
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    bindReadOnly('/proc', join(root, 'host/proc'), false);
    bindReadOnly('/sys/fs/cgroup', join(root, 'host/sys/fs/cgroup'), true);
    bindReadOnly(options.podLogRoot, join(root, 'host/var/log/pods'), false);
    bindReadOnly(options.containerLogRoot, join(root, 'host/var/log/containers'), false);
  } catch (err) {
    layout.cleanup();
    throw err;
  }
  return layout;
}
