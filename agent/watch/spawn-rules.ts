// Rules that call a new process suspicious. Each rule is a pure function of a small facts
// object, so it is tested without processes; spawn-evidence.ts gathers the facts from /proc.
// A rule never decides alone that something is malicious: it names what looks wrong and why.

import { posix } from 'node:path';

export type InterpreterKind = 'python' | 'node' | 'shell' | 'perl' | 'ruby' | 'php';

export interface Invocation {
  interpreter: InterpreterKind | null;
  /** The basename the interpreter was recognised by (exe or argv[0]). */
  interpreterName: string | null;
  /**
   * How the program reaches the interpreter. 'unknown' when argv does not look like an
   * interpreter's (rewritten by setproctitle, or `exec -a`), so no script can be named.
   */
  program: 'script' | 'inline' | 'module' | 'stdin' | 'none' | 'unknown';
  /** The script operand exactly as written in argv. */
  scriptArg: string | null;
  /** `python -c`, `node -e/-p`, `sh -c`, `perl -e`, `ruby -e`, `php -r` code. */
  inlineCode: string | null;
  /** `python -m` module. */
  module: string | null;
}

export interface ScriptFacts {
  /** The operand as written in argv. */
  argPath: string;
  /** Absolute container-view path (argPath resolved against the cwd); null when the cwd is unknown. */
  path: string | null;
  /** After symlinks were resolved inside the container's root. */
  resolvedPath: string | null;
  /** 'deleted': gone while the process runs. 'refused': not read, see the evidence. */
  state: 'present' | 'deleted' | 'refused' | 'unknown';
  mtimeMs: number | null;
  ctimeMs: number | null;
  /** The fd number that still holds a deleted script open, when one does. */
  deletedOpenFd?: number | null;
}

export interface ParentFacts {
  pid: number;
  comm: string;
  argv: string[];
  exe: string | null;
  startTimeMs: number;
}

export interface SpawnFacts {
  argv: string[];
  exe: string | null;
  /** Epoch ms. */
  startTimeMs: number;
  /** Container-view cwd, null when unreadable. */
  cwd: string | null;
  /** Null when the program is not a script file. */
  script: ScriptFacts | null;
  /** The direct parent, null when unknown. */
  parent: ParentFacts | null;
  /** Precomputed parseInvocation(argv, exe); computed when absent. */
  invocation?: Invocation;
}

export interface SpawnRuleConfig {
  /** Directories any process can write to; code run from there is suspect. */
  worldWritableDirs: string[];
  /** `fresh-script`: the script was written at most this many seconds before the process started. */
  freshScriptSec: number;
  /**
   * Start times are estimated from btime (whole seconds) plus clock ticks, so a script written
   * just before the start can look written just after. Tolerate this much.
   */
  clockSlackMs: number;
  /** `server-spawns-interpreter`: the parent started at least this many seconds before the child. */
  serverMinUptimeSec: number;
  /** Parents whose job is to start programs (shells, inits, supervisors): not "servers". */
  launcherNames: string[];
  /** Command-line bytes inspected by decode-exec (argv can be huge). */
  maxCmdlineScanBytes: number;
}

export const DEFAULT_SPAWN_RULE_CONFIG: Readonly<SpawnRuleConfig> = Object.freeze({
  worldWritableDirs: ['/tmp', '/var/tmp', '/dev/shm'],
  freshScriptSec: 10,
  clockSlackMs: 2000,
  serverMinUptimeSec: 60,
  launcherNames: [
    'sh', 'bash', 'dash', 'ash', 'zsh', 'ksh', 'mksh', 'fish', 'busybox',
    'init', 'systemd', 'tini', 'dumb-init', 'catatonit', 'pause', 's6-svscan', 's6-supervise', 'runsv', 'runsvdir',
    'supervisord', 'containerd-shim', 'containerd-shim-runc-v2', 'conmon', 'runc', 'crun',
    'sudo', 'su', 'sshd', 'tmux', 'screen', 'cron', 'crond', 'make', 'env', 'timeout', 'nohup', 'xargs', 'watch',
    'nodemon', 'pm2', 'npm', 'npx', 'yarn', 'pnpm',
  ],
  maxCmdlineScanBytes: 64 * 1024,
});

export type SpawnRuleId =
  | 'tmp-script'
  | 'fresh-script'
  | 'deleted-script'
  | 'tmp-exe'
  | 'deleted-exe'
  | 'memfd-exe'
  | 'decode-exec'
  | 'server-spawns-interpreter';

export interface SpawnRule {
  id: SpawnRuleId;
  /**
   * Whether a match is reason enough for a finding. A server starting an interpreter is also
   * what every app running its own helper scripts does, so that rule only adds weight to others.
   */
  sufficient: boolean;
  /** What the rule means, in plain language, for legends and docs. */
  description: string;
  /** The reason for these facts in plain language, or null when the rule does not match. */
  match(facts: SpawnFacts, inv: Invocation, cfg: SpawnRuleConfig): string | null;
}

export interface SpawnRuleMatch {
  id: SpawnRuleId;
  reason: string;
}

// ---------------------------------------------------------------------------------------------
// Interpreters and their command lines

const INTERPRETER_NAMES: Array<[RegExp, InterpreterKind]> = [
  [/^(?:python|pypy)(?:\d+(?:\.\d+)*)?[a-z]?$/, 'python'],
  [/^(?:node|nodejs)(?:\d+)?$/, 'node'],
  [/^(?:sh|bash|dash|ash|zsh|ksh|mksh)$/, 'shell'],
  [/^perl(?:\d+(?:\.\d+)*)?$/, 'perl'],
  [/^ruby(?:\d+(?:\.\d+)*)?$/, 'ruby'],
  [/^php(?:\d+(?:\.\d+)*)?(?:-cli)?$/, 'php'],
];

/** Basename of an exe link or argv[0], without ` (deleted)` and a login shell's leading `-`. */
export function programName(pathOrArg: string | null | undefined): string {
  if (!pathOrArg) return '';
  const clean = pathOrArg.endsWith(' (deleted)') ? pathOrArg.slice(0, -' (deleted)'.length) : pathOrArg;
  const base = clean.slice(clean.lastIndexOf('/') + 1);
  return base.startsWith('-') ? base.slice(1) : base;
}

export function interpreterKind(name: string): InterpreterKind | null {
  for (const [re, kind] of INTERPRETER_NAMES) if (re.test(name)) return kind;
  return null;
}

function empty(interpreter: InterpreterKind | null, interpreterName: string | null, program: Invocation['program']): Invocation {
  return { interpreter, interpreterName, program, scriptArg: null, inlineCode: null, module: null };
}

function scriptOrStdin(inv: Invocation, arg: string | undefined): Invocation {
  if (arg === undefined) return { ...inv, program: 'stdin' };
  if (arg === '-') return { ...inv, program: 'stdin' };
  return { ...inv, program: 'script', scriptArg: arg };
}

function parsePython(argv: string[], inv: Invocation): Invocation {
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') return scriptOrStdin(inv, argv[i + 1]);
    if (a === '-') return { ...inv, program: 'stdin' };
    if (a.startsWith('--')) {
      if (a === '--check-hash-based-pycs') i++;
      continue;
    }
    if (a.startsWith('-')) {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j];
        if (ch === 'c') return { ...inv, program: 'inline', inlineCode: j + 1 < a.length ? a.slice(j + 1) : (argv[i + 1] ?? '') };
        if (ch === 'm') return { ...inv, program: 'module', module: j + 1 < a.length ? a.slice(j + 1) : (argv[i + 1] ?? null) };
        if (ch === 'W' || ch === 'X') {
          if (j + 1 === a.length) i++;
          break;
        }
      }
      continue;
    }
    return scriptOrStdin(inv, a);
  }
  return { ...inv, program: 'stdin' };
}

/** Node options that take their value as the next argument when written without `=`. */
const NODE_VALUE_OPTIONS = new Set([
  '-r', '--require', '--import', '--loader', '--experimental-loader', '-C', '--conditions', '--input-type',
  '--env-file', '--title', '--stack-size', '--max-old-space-size', '--max-semi-space-size', '--inspect-port', '--debug-port',
  '--openssl-config', '--icu-data-dir', '--redirect-warnings', '--diagnostic-dir', '--report-dir', '--report-directory',
  '--report-filename', '--report-signal', '--cpu-prof-dir', '--cpu-prof-name', '--heap-prof-dir', '--heap-prof-name',
  '--tls-cipher-list', '--secure-heap', '--secure-heap-min', '--unhandled-rejections', '--dns-result-order',
  '--disable-warning', '--watch-path', '--experimental-policy', '--policy-integrity', '--heapsnapshot-signal',
  '--heapsnapshot-near-heap-limit', '--trace-event-categories', '--trace-event-file-pattern', '--use-largepages',
  '--experimental-default-type', '--snapshot-blob', '--test-reporter', '--test-reporter-destination',
  '--test-name-pattern', '--test-skip-pattern', '--test-shard', '--test-concurrency', '--localstorage-file', '--es-module-specifier-resolution',
]);

function parseNode(argv: string[], inv: Invocation): Invocation {
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') return scriptOrStdin(inv, argv[i + 1]);
    if (a === '-') return { ...inv, program: 'stdin' };
    if (a === '-e' || a === '--eval' || a === '-p' || a === '--print' || a === '-pe' || a === '-ep') {
      return { ...inv, program: 'inline', inlineCode: argv[i + 1] ?? '' };
    }
    if (a.startsWith('--eval=') || a.startsWith('--print=')) return { ...inv, program: 'inline', inlineCode: a.slice(a.indexOf('=') + 1) };
    if (a.startsWith('-')) {
      if (!a.includes('=') && NODE_VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    return scriptOrStdin(inv, a);
  }
  return { ...inv, program: 'stdin' };
}

function parseShell(argv: string[], inv: Invocation): Invocation {
  let inline = false;
  let fromStdin = false;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--' || a === '-') {
      const next = argv[i + 1];
      if (inline) return { ...inv, program: 'inline', inlineCode: next ?? '' };
      return next === undefined || fromStdin ? { ...inv, program: 'stdin' } : { ...inv, program: 'script', scriptArg: next };
    }
    if ((a.startsWith('-') || a.startsWith('+')) && a.length > 1) {
      if (a.startsWith('--')) {
        if (a === '--rcfile' || a === '--init-file') i++;
        continue;
      }
      // `-c` makes the first operand the command string; `-o`/`-O` take the next argument.
      for (const ch of a.slice(1)) {
        if (ch === 'c') inline = true;
        else if (ch === 's') fromStdin = true;
        else if (ch === 'o' || ch === 'O') i++;
      }
      continue;
    }
    if (inline) return { ...inv, program: 'inline', inlineCode: a };
    if (fromStdin) return { ...inv, program: 'stdin' };
    return { ...inv, program: 'script', scriptArg: a };
  }
  if (inline) return { ...inv, program: 'inline', inlineCode: '' };
  return { ...inv, program: 'stdin' };
}

/**
 * Perl and Ruby share the shape: clustered one-letter switches, `-e code` repeatable, some
 * switches taking the rest of the cluster or the next argument, some only an attached value.
 */
function parsePerlLike(argv: string[], inv: Invocation, codeSwitches: string, separateArgSwitches: string, attachedArgSwitches: string, digitSwitches: string): Invocation {
  const code: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      if (code.length > 0) break;
      return scriptOrStdin(inv, argv[i + 1]);
    }
    if (a === '-') {
      if (code.length > 0) break;
      return { ...inv, program: 'stdin' };
    }
    if (a.startsWith('--')) {
      if (!a.includes('=') && /^--(?:enable|disable|encoding|external-encoding|internal-encoding|dump)$/.test(a)) i++;
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      let j = 1;
      while (j < a.length) {
        const ch = a[j] as string;
        if (codeSwitches.includes(ch)) {
          if (j + 1 < a.length) code.push(a.slice(j + 1));
          else code.push(argv[++i] ?? '');
          break;
        }
        if (separateArgSwitches.includes(ch)) {
          if (j + 1 === a.length) i++;
          break;
        }
        if (attachedArgSwitches.includes(ch)) break;
        j++;
        if (digitSwitches.includes(ch)) while (j < a.length && /[0-9a-fA-Fx]/.test(a[j] as string)) j++;
      }
      continue;
    }
    if (code.length > 0) break;
    return { ...inv, program: 'script', scriptArg: a };
  }
  if (code.length > 0) return { ...inv, program: 'inline', inlineCode: code.join('\n') };
  return { ...inv, program: 'stdin' };
}

function parsePhp(argv: string[], inv: Invocation): Invocation {
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') return scriptOrStdin(inv, argv[i + 1]);
    if (a.startsWith('--')) continue;
    if (a.startsWith('-') && a.length > 1) {
      const ch = a[1] as string;
      const value = a.length > 2 ? a.slice(2) : argv[++i];
      if ('rBRE'.includes(ch)) return { ...inv, program: 'inline', inlineCode: value ?? '' };
      if (ch === 'f' || ch === 'F') return scriptOrStdin(inv, value);
      if ('dcztS'.includes(ch)) {
        if (ch === 'S') return { ...inv, program: 'none' };
        continue;
      }
      // A flag without value: give back the argument we borrowed.
      if (a.length === 2) i--;
      continue;
    }
    return scriptOrStdin(inv, a);
  }
  return { ...inv, program: 'stdin' };
}

/**
 * Names the interpreter and how it got its program. The kind comes from the exe when it is an
 * interpreter, else from argv[0] (busybox `sh`, `exec -a`). argv is parsed only when argv[0]
 * is an interpreter name or a path: setproctitle rewrites argv into free text.
 */
export function parseInvocation(argv: readonly string[], exe: string | null): Invocation {
  const exeName = programName(exe);
  const argName = programName(argv[0]);
  const fromExe = interpreterKind(exeName);
  const fromArg = interpreterKind(argName);
  const kind = fromExe ?? fromArg;
  if (!kind) return empty(null, null, 'none');
  const inv = empty(kind, fromExe ? exeName : argName, 'none');
  const a0 = argv[0] ?? '';
  if (fromArg === null && (argv.length <= 1 ? /\s/.test(a0) || a0 === '' : !a0.includes('/'))) {
    return { ...inv, program: argv.length === 0 ? 'none' : 'unknown' };
  }
  const args = [...argv];
  switch (kind) {
    case 'python':
      return parsePython(args, inv);
    case 'node':
      return parseNode(args, inv);
    case 'shell':
      return parseShell(args, inv);
    case 'perl':
      return parsePerlLike(args, inv, 'eE', 'IMm', 'ixdDFV', 'l0C');
    case 'ruby':
      return parsePerlLike(args, inv, 'e', 'IrCE', 'xiWFKT', '0');
    case 'php':
      return parsePhp(args, inv);
  }
}

// ---------------------------------------------------------------------------------------------
// Decode-and-exec patterns

interface Pattern {
  label: string;
  re: RegExp;
}

/** Decoding of base64 (and hex) data, in shells and in the interpreters' own languages. */
export const DECODE_PATTERNS: readonly Pattern[] = [
  { label: 'base64 -d', re: /\bbase64\b[^|;&\n]*?\s(?:--decode\b|-[a-zA-Z0-9]*[dD])/ },
  { label: 'openssl base64 -d', re: /\bopenssl\b[^|;&\n]*\b(?:base64|-a|-base64)\b[^|;&\n]*\s-d\b|\bopenssl\b[^|;&\n]*\s-d\b[^|;&\n]*\b(?:base64|-a|-base64)\b/ },
  { label: 'b64decode', re: /\b(?:urlsafe_|standard_)?b64decode\s*\(/ },
  { label: 'base64.decodebytes', re: /\bbase64\s*\.\s*decode(?:bytes|string)\s*\(|\ba2b_base64\s*\(/ },
  { label: "codecs.decode(..., 'base64')", re: /\bdecode\s*\([^)]*['"]base64['"]/ },
  { label: "Buffer.from(..., 'base64')", re: /\bBuffer\s*\.\s*from\s*\([^)]*['"`]base64(?:url)?['"`]|\bnew\s+Buffer\s*\([^)]*['"`]base64(?:url)?['"`]/ },
  { label: 'atob(', re: /\batob\s*\(/ },
  { label: 'decode_base64', re: /\bdecode_base64\s*\(|\bMIME::Base64\b/ },
  { label: 'Base64.decode64', re: /\bBase64\s*\.\s*(?:strict_|urlsafe_)?decode64\b|\.unpack1?\s*\(?\s*['"]m0?['"]/ },
  { label: 'base64_decode', re: /\bbase64_decode\s*\(/ },
  { label: 'xxd -r', re: /\bxxd\b[^|;&\n]*\s-r\b/ },
];

/** Running text as code: eval/exec families, and pipes into an interpreter. */
export const EXEC_PATTERNS: readonly Pattern[] = [
  { label: 'exec(', re: /\bexec\s*\(/ },
  { label: 'eval', re: /\beval\b/ },
  { label: 'compile(', re: /\bcompile\s*\(/ },
  { label: 'new Function(', re: /\bnew\s+Function\s*\(/ },
  { label: 'vm.runIn', re: /\bvm\s*\.\s*runIn\w*\s*\(|\brunInThisContext\s*\(/ },
  { label: 'gzinflate/zlib', re: /\bgzinflate\s*\(|\bzlib\s*\.\s*decompress\s*\(|\bmarshal\s*\.\s*loads\s*\(/ },
  { label: '| interpreter', re: /\|\s*(?:sudo\s+)?(?:[\w./-]*\/)?(?:sh|bash|dash|ash|zsh|ksh|python[\d.]*|perl|ruby|php|node)\b/ },
  { label: 'source <(...)', re: /(?:^|[\s;&|])(?:source|\.|sh|bash)\s+<\(/ },
];

function scanText(text: string, patterns: readonly Pattern[]): string[] {
  return patterns.filter((p) => p.re.test(text)).map((p) => p.label);
}

function cmdlineText(argv: readonly string[], maxBytes: number): string {
  const text = argv.join(' ');
  return text.length > maxBytes ? text.slice(0, maxBytes) : text;
}

/** Labels of decode and exec patterns found in a command line. */
export function scanDecodeExec(argv: readonly string[], maxBytes = DEFAULT_SPAWN_RULE_CONFIG.maxCmdlineScanBytes): { decodes: string[]; execs: string[] } {
  const text = cmdlineText(argv, maxBytes);
  return { decodes: scanText(text, DECODE_PATTERNS), execs: scanText(text, EXEC_PATTERNS) };
}

// ---------------------------------------------------------------------------------------------
// The rules

function inDir(path: string, dirs: readonly string[]): string | null {
  const p = posix.normalize(path);
  for (const d of dirs) {
    const dir = d.endsWith('/') && d.length > 1 ? d.slice(0, -1) : d;
    if (p.startsWith(dir + '/')) return dir;
  }
  return null;
}

function seconds(ms: number): string {
  const s = ms / 1000;
  return Math.abs(s) < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

function duration(ms: number): string {
  if (ms < 120_000) return seconds(ms);
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

function scriptPaths(s: ScriptFacts): string[] {
  const out: string[] = [];
  if (s.path) out.push(s.path);
  if (s.resolvedPath && s.resolvedPath !== s.path) out.push(s.resolvedPath);
  return out;
}

function stripDeleted(exe: string): { path: string; deleted: boolean } {
  return exe.endsWith(' (deleted)') ? { path: exe.slice(0, -' (deleted)'.length), deleted: true } : { path: exe, deleted: false };
}

const MULTIPROCESSING_HELPER = /^\s*from multiprocessing\.(?:spawn|resource_tracker|forkserver|semaphore_tracker) import /;

function isForkLike(facts: SpawnFacts, parent: ParentFacts): boolean {
  // A pre-fork server's workers (gunicorn, uwsgi, node cluster) carry the parent's exe and argv.
  return parent.exe === facts.exe && parent.argv.length === facts.argv.length && parent.argv.every((a, i) => a === facts.argv[i]);
}

export const SPAWN_RULES: readonly SpawnRule[] = [
  {
    id: 'tmp-script',
    sufficient: true,
    description: 'An interpreter runs a script from a world-writable directory (/tmp, /var/tmp, /dev/shm), where any process can drop code.',
    match(f, inv, cfg) {
      if (!inv.interpreter || inv.program !== 'script' || !f.script) return null;
      for (const p of scriptPaths(f.script)) {
        const dir = inDir(p, cfg.worldWritableDirs);
        if (dir) {
          const via = p === f.script.path ? '' : ` (through a symlink from ${f.script.path})`;
          return `${inv.interpreterName} runs the script ${p}${via} from ${dir}, a world-writable directory where any process can drop code`;
        }
      }
      return null;
    },
  },
  {
    id: 'fresh-script',
    sufficient: true,
    description: 'The script was written seconds before the process started: code generated on the fly.',
    match(f, inv, cfg) {
      if (!inv.interpreter || !f.script || f.script.mtimeMs === null) return null;
      const ageMs = f.startTimeMs - f.script.mtimeMs;
      if (ageMs > cfg.freshScriptSec * 1000 || ageMs < -cfg.clockSlackMs) return null;
      const when = ageMs >= 0 ? `${seconds(ageMs)} before the process started` : 'at the moment the process started';
      return `the script ${f.script.path ?? f.script.argPath} was last written ${when} (threshold ${cfg.freshScriptSec} s)`;
    },
  },
  {
    id: 'deleted-script',
    sufficient: true,
    description: 'The script was deleted after the process started: the code hides its tracks.',
    match(f, inv) {
      if (!inv.interpreter || !f.script || f.script.state !== 'deleted') return null;
      const fd = f.script.deletedOpenFd;
      const kept = fd !== undefined && fd !== null ? `; the process still holds it open as fd ${fd}` : '';
      return `the script ${f.script.path ?? f.script.argPath} no longer exists while ${inv.interpreterName} runs it${kept}`;
    },
  },
  {
    id: 'tmp-exe',
    sufficient: true,
    description: 'The executable itself lives in a world-writable directory.',
    match(f, _inv, cfg) {
      if (!f.exe || f.exe.startsWith('/memfd:')) return null;
      const { path } = stripDeleted(f.exe);
      const dir = inDir(path, cfg.worldWritableDirs);
      return dir ? `the executable ${path} runs from ${dir}, a world-writable directory` : null;
    },
  },
  {
    id: 'deleted-exe',
    sufficient: true,
    description: 'The executable was deleted after it started: nothing on disk shows what runs.',
    match(f) {
      if (!f.exe || f.exe.startsWith('/memfd:')) return null;
      const { path, deleted } = stripDeleted(f.exe);
      return deleted ? `the executable ${path} was deleted after the process started` : null;
    },
  },
  {
    id: 'memfd-exe',
    sufficient: true,
    description: 'The executable is an anonymous in-memory file (memfd): fileless execution.',
    match(f) {
      if (!f.exe || !f.exe.startsWith('/memfd:')) return null;
      return `the executable is the in-memory file ${stripDeleted(f.exe).path}, which never existed on disk`;
    },
  },
  {
    id: 'decode-exec',
    sufficient: true,
    description: 'The command line decodes base64 (or hex) data, often to run it: hidden code.',
    match(f, inv, cfg) {
      const { decodes, execs } = scanDecodeExec(f.argv, cfg.maxCmdlineScanBytes);
      if (decodes.length > 0) {
        const runs = execs.length > 0 ? ` and runs code (${execs.join(', ')})` : '';
        return `the command line decodes encoded data (${decodes.join(', ')})${runs}`;
      }
      // `base64 -d x | python3`: the interpreter's own argv is clean, its parent's is not.
      if (inv.interpreter && inv.program === 'stdin' && f.parent) {
        const p = scanDecodeExec(f.parent.argv, cfg.maxCmdlineScanBytes);
        if (p.decodes.length > 0 && p.execs.includes('| interpreter')) {
          return `${inv.interpreterName} reads its program from stdin and its parent (pid ${f.parent.pid}) pipes decoded data into an interpreter (${p.decodes.join(', ')})`;
        }
      }
      return null;
    },
  },
  {
    id: 'server-spawns-interpreter',
    sufficient: false,
    description: 'A long-running process (a server) starts an interpreter, possibly once per request.',
    match(f, inv, cfg) {
      const parent = f.parent;
      if (!inv.interpreter || !parent) return null;
      const upMs = f.startTimeMs - parent.startTimeMs;
      if (upMs < cfg.serverMinUptimeSec * 1000) return null;
      const names = [programName(parent.exe), parent.comm, programName(parent.argv[0])].filter((n) => n !== '');
      if (names.some((n) => cfg.launcherNames.includes(n))) return null;
      if (isForkLike(f, parent)) return null;
      if (inv.program === 'inline' && inv.inlineCode !== null && MULTIPROCESSING_HELPER.test(inv.inlineCode)) return null;
      if (f.argv.includes('--multiprocessing-fork')) return null;
      const label = parent.argv.length > 0 ? parent.argv.join(' ') : parent.comm;
      const shown = label.length > 120 ? `${label.slice(0, 117)}...` : label;
      return `${shown} (pid ${parent.pid}), running for ${duration(upMs)}, started the interpreter ${inv.interpreterName}`;
    },
  },
];

/** Whether these matches are enough for a finding: at least one rule that stands on its own. */
export function isSuspicious(matches: readonly SpawnRuleMatch[]): boolean {
  return matches.some((m) => SPAWN_RULES.find((r) => r.id === m.id)?.sufficient === true);
}

/** Runs every rule; returns the matches in table order. */
export function evaluateSpawnRules(facts: SpawnFacts, config: Partial<SpawnRuleConfig> = {}): SpawnRuleMatch[] {
  const cfg: SpawnRuleConfig = { ...DEFAULT_SPAWN_RULE_CONFIG, ...config };
  const inv = facts.invocation ?? parseInvocation(facts.argv, facts.exe);
  const out: SpawnRuleMatch[] = [];
  for (const rule of SPAWN_RULES) {
    const reason = rule.match(facts, inv, cfg);
    if (reason !== null) out.push({ id: rule.id, reason });
  }
  return out;
}
