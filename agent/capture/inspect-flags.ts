// What a target's own command line and NODE_OPTIONS say about its inspector: already listening
// (--inspect, --inspect-brk, --inspect-wait), and on which host and port it listens or would
// listen after SIGUSR1 (--inspect-port, --debug-port). Read from /proc as data, never run.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_INSPECTOR_PORT = 9229;
export const DEFAULT_INSPECTOR_HOST = '127.0.0.1';

export interface InspectorFlags {
  /** The inspector was started at launch; no signal is needed. */
  active: boolean;
  host: string;
  /** 0 means the kernel picked one: the listener has to be found by its socket. */
  port: number;
}

export class InspectFlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InspectFlagError';
  }
}

const activating = new Set(['--inspect', '--inspect-brk', '--inspect-wait']);
const portOnly = new Set(['--inspect-port', '--debug-port']);
const codeFlags = new Set(['-e', '--eval', '-p', '--print']);
/** Options whose value is the next word (so that word is not taken for the script). */
const valueFlags = new Set(['-r', '--require', '--import', '--loader', '--experimental-loader', '--title', '--conditions', '-C', '--env-file', '--max-old-space-size']);

/** `9230`, `0.0.0.0:9230`, `[::1]:9230`, `localhost` → host and port (either may be absent). */
export function parseHostPort(value: string): { host?: string; port?: number } {
  const v = value.trim();
  const port = (s: string): number => {
    if (!/^\d{1,5}$/.test(s) || Number(s) > 65535) throw new InspectFlagError(`inspector port "${s}" is not a port number`);
    return Number(s);
  };
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(v);
  if (bracketed) return { host: bracketed[1]!, ...(bracketed[2] !== undefined ? { port: port(bracketed[2]) } : {}) };
  if (/^\d+$/.test(v)) return { port: port(v) };
  const colon = v.lastIndexOf(':');
  if (colon === -1) return { host: v };
  return { host: v.slice(0, colon), port: port(v.slice(colon + 1)) };
}

/**
 * Node's own options from argv (those before the script, which is where Node reads them) and then
 * NODE_OPTIONS: argv wins over NODE_OPTIONS as in Node, so NODE_OPTIONS is applied first.
 */
export function parseInspectorFlags(argv: readonly string[], nodeOptions: string | null): InspectorFlags {
  const flags: InspectorFlags = { active: false, host: DEFAULT_INSPECTOR_HOST, port: DEFAULT_INSPECTOR_PORT };
  const apply = (args: readonly string[]): void => {
    for (let i = 0; i < args.length; i++) {
      const arg = args[i]!;
      if (arg === '--') return;
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg : arg.slice(0, eq);
      const value = eq === -1 ? null : arg.slice(eq + 1);
      if (activating.has(name)) {
        flags.active = true;
        if (value !== null) Object.assign(flags, parseHostPort(value));
      } else if (portOnly.has(name)) {
        const v = value ?? args[++i];
        if (v === undefined) throw new InspectFlagError(`${name} has no value`);
        Object.assign(flags, parseHostPort(v));
      } else if (!arg.startsWith('-')) {
        // The script (or `-e` code) ends Node's own options; what follows is the program's.
        return;
      } else if (codeFlags.has(arg)) {
        // `-e <code>`: the code is the program; the arguments after it are its own.
        return;
      } else if (valueFlags.has(arg)) {
        i++;
      }
    }
  };
  if (nodeOptions) apply(splitNodeOptions(nodeOptions));
  apply(argv.slice(1));
  return flags;
}

/** NODE_OPTIONS is space separated with double quotes for values holding spaces. */
export function splitNodeOptions(value: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(value))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

/** NODE_OPTIONS from /proc/<pid>/environ (root can read it), null when unset or unreadable. */
export function readNodeOptions(pid: number, procRoot = '/proc'): string | null {
  let environ: Buffer;
  try {
    environ = readFileSync(join(procRoot, String(pid), 'environ'));
  } catch {
    return null;
  }
  for (const entry of environ.toString('utf8').split('\0')) {
    if (entry.startsWith('NODE_OPTIONS=')) return entry.slice('NODE_OPTIONS='.length);
  }
  return null;
}
