// Listening TCP sockets of a network namespace (/proc/<pid>/net/tcp and tcp6 show the namespace
// of <pid>) and which of them a process holds (its fds link to `socket:[<inode>]`). That is how
// the capture finds the port a target's inspector listens on, and who else holds 9229.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

export interface TcpListener {
  /** Dotted IPv4 or a compact IPv6 address the socket is bound to. */
  address: string;
  port: number;
  inode: number;
  family: 4 | 6;
}

const TCP_LISTEN = '0A';

/** Parses /proc/net/tcp or tcp6 text; keeps LISTEN sockets only. Malformed lines are skipped. */
export function parseTcpListeners(text: string, family: 4 | 6): TcpListener[] {
  const out: TcpListener[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
    const [addrHex, portHex] = f[1]!.split(':');
    if (!addrHex || !portHex) continue;
    const inode = Number(f[9]);
    const address = family === 4 ? ipv4FromProcHex(addrHex) : ipv6FromProcHex(addrHex);
    if (address === null || !Number.isInteger(inode)) continue;
    out.push({ address, port: parseInt(portHex, 16), inode, family });
  }
  return out;
}

/** The kernel prints the address as a host-order (little-endian here) 32-bit word. */
function ipv4FromProcHex(hex: string): string | null {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) return null;
  const n = parseInt(hex, 16);
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255].join('.');
}

/** Four host-order 32-bit words. */
function ipv6FromProcHex(hex: string): string | null {
  if (!/^[0-9A-Fa-f]{32}$/.test(hex)) return null;
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  const full = groups.join(':');
  if (full === '0:0:0:0:0:0:0:0') return '::';
  if (full === '0:0:0:0:0:0:0:1') return '::1';
  return full;
}

/** LISTEN sockets in the network namespace of pid. */
export function readNamespaceListeners(pid: number, procRoot = '/proc'): TcpListener[] {
  const out: TcpListener[] = [];
  for (const [file, family] of [['tcp', 4], ['tcp6', 6]] as const) {
    try {
      out.push(...parseTcpListeners(readFileSync(join(procRoot, String(pid), 'net', file), 'utf8'), family));
    } catch {
      // tcp6 is absent without IPv6.
    }
  }
  return out;
}

/** Inodes of the sockets a process has open. */
export function socketInodes(pid: number, procRoot = '/proc'): Set<number> {
  const inodes = new Set<number>();
  const dir = join(procRoot, String(pid), 'fd');
  let fds: string[];
  try {
    fds = readdirSync(dir);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(join(dir, fd)));
      if (m) inodes.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** Listeners of pid's namespace that pid itself holds. */
export function listenersOf(pid: number, procRoot = '/proc'): TcpListener[] {
  const mine = socketInodes(pid, procRoot);
  return readNamespaceListeners(pid, procRoot).filter((l) => mine.has(l.inode));
}

/** `net:[4026531992]` → the namespace inode; null when unreadable. */
export function netNamespaceOf(pid: number | 'self', procRoot = '/proc'): string | null {
  try {
    return readlinkSync(join(procRoot, String(pid), 'ns', 'net'));
  } catch {
    return null;
  }
}

/**
 * The process holding a listening socket: looked for among processes of the same network
 * namespace. Null when it cannot be found (exited, or unreadable).
 */
export function socketHolder(inode: number, netns: string, procRoot = '/proc'): number | null {
  let entries: string[];
  try {
    entries = readdirSync(procRoot);
  } catch {
    return null;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (netNamespaceOf(pid, procRoot) !== netns) continue;
    if (socketInodes(pid, procRoot).has(inode)) return pid;
  }
  return null;
}

/** Where to connect for a listener: the wildcard addresses are reached on loopback. */
export function connectHost(l: TcpListener): string {
  if (l.address === '0.0.0.0') return '127.0.0.1';
  if (l.address === '::') return '::1';
  return l.address;
}
