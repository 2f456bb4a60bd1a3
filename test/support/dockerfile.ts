// Enough of the Dockerfile and .dockerignore formats to run a Dockerfile's steps without a
// container engine: stages, instructions (line continuations joined, comments dropped, JSON or
// shell form), ENV pairs, COPY --from sources, and the build context as .dockerignore filters it.
import { copyFileSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface Instruction {
  keyword: string;
  /** The raw argument text (continuations joined). */
  text: string;
  /** JSON-form arguments (`["a", "b"]`), else null. */
  json: string[] | null;
  line: number;
}

export interface Stage {
  from: string;
  name: string | null;
  instructions: Instruction[];
}

export function parseDockerfile(source: string): Stage[] {
  const stages: Stage[] = [];
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let text = lines[i]!;
    if (/^\s*(#|$)/.test(text)) continue;
    while (/\\\s*$/.test(text) && i + 1 < lines.length) {
      text = text.replace(/\\\s*$/, ' ');
      i++;
      // Comment lines inside a continuation are dropped, as Docker does.
      if (/^\s*#/.test(lines[i]!)) {
        text += '\\';
        continue;
      }
      text += lines[i]!;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(text);
    if (!m) throw new Error(`Dockerfile line ${start + 1}: cannot parse "${text.trim()}"`);
    const keyword = m[1]!.toUpperCase();
    const rest = m[2]!.replace(/\s+/g, ' ').trim();
    let json: string[] | null = null;
    if (rest.startsWith('[')) {
      try {
        json = JSON.parse(rest) as string[];
      } catch {
        json = null;
      }
    }
    if (keyword === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!f) throw new Error(`Dockerfile line ${start + 1}: bad FROM "${rest}"`);
      stages.push({ from: f[1]!, name: f[2] ?? null, instructions: [] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (!stage) throw new Error(`Dockerfile line ${start + 1}: ${keyword} before FROM`);
    stage.instructions.push({ keyword, text: rest, json, line: start + 1 });
  }
  return stages;
}

/** `ENV A=1 B=two` (and the legacy `ENV A 1`) → pairs. */
export function envPairs(instruction: Instruction): Record<string, string> {
  const out: Record<string, string> = {};
  const text = instruction.text;
  if (!text.includes('=')) {
    const [k, ...v] = text.split(' ');
    out[k!] = v.join(' ');
    return out;
  }
  for (const m of text.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|\S*)/g)) out[m[1]!] = m[3] ?? m[2]!;
  return out;
}

/** `COPY --from=build /src/dist ./dist` → {from, sources, dest}. */
export function copyArgs(instruction: Instruction): { from: string | null; sources: string[]; dest: string } {
  const parts = instruction.json ?? instruction.text.split(' ');
  const flags = parts.filter((p) => p.startsWith('--'));
  const paths = parts.filter((p) => !p.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length) ?? null;
  return { from, sources: paths.slice(0, -1), dest: paths[paths.length - 1]! };
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * A .dockerignore as a predicate on context-relative paths: patterns are matched from the
 * context root (so `node_modules` is the top-level one only), `!pattern` re-includes, and an
 * excluded directory excludes what is inside it.
 */
export function dockerignore(source: string): (relPath: string) => boolean {
  const rules = source
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      return { negate, re: globToRegExp(pattern) };
    });
  return (relPath) => {
    const segments = relPath.split('/');
    let excluded = false;
    for (const rule of rules) {
      for (let n = 1; n <= segments.length; n++) {
        if (rule.re.test(segments.slice(0, n).join('/'))) {
          excluded = !rule.negate;
          break;
        }
      }
    }
    return excluded;
  };
}

/** Copy the build context (files, directories, symlinks as links) minus what `ignored` says. */
export function copyContext(from: string, to: string, ignored: (relPath: string) => boolean, rel = ''): number {
  let files = 0;
  mkdirSync(join(to, rel), { recursive: true });
  for (const entry of readdirSync(join(from, rel), { withFileTypes: true })) {
    const relPath = rel ? `${rel}/${entry.name}` : entry.name;
    if (ignored(relPath)) continue;
    const src = join(from, relPath);
    const dst = join(to, relPath);
    if (entry.isDirectory()) files += copyContext(from, to, ignored, relPath);
    else if (entry.isSymbolicLink()) {
      mkdirSync(dirname(dst), { recursive: true });
      symlinkSync(readlinkSync(src), dst);
    } else if (lstatSync(src).isFile()) {
      copyFileSync(src, dst);
      files++;
    }
  }
  return files;
}
