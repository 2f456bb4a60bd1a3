// `leakwatch spawns show <id>`: the evidence a security reviewer reads. The script is shown as
// text with control characters made visible: it is data from a target, never run or rendered.
import type { Command } from 'commander';
import type { Finding } from '../../protocol/findings.js';
import { addApiOptions, apiGet, type ApiOptions } from '../api-client.js';
import { formatBytes, printable } from '../format.js';
import { runApiCommand } from './findings.js';

export function registerSpawns(program: Command): void {
  const spawns = program.command('spawns').description('suspicious spawned processes and their evidence');
  addApiOptions(
    spawns
      .command('show <id>')
      .description('show one suspicious-spawn finding: rules, parent chain, script with provenance')
      .option('--json', 'print the finding with its evidence as JSON'),
  ).action((id: string, options: ApiOptions & { json?: boolean }) =>
    runApiCommand(async () => {
      if (!/^[a-z0-9-]{1,80}$/.test(id)) throw new Error(`"${printable(id, 80)}" is not a finding id (see leakwatch findings --kind suspicious-spawn)`);
      const finding = await apiGet<Finding>(options, `/api/v1/findings/${id}`);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(finding, null, 2)}\n`);
        return;
      }
      if (finding.kind !== 'suspicious-spawn') throw new Error(`${id} is a ${finding.kind} finding, not a suspicious spawn`);
      process.stdout.write(`${renderSpawn(finding)}\n`);
    }),
  );
}

export function renderSpawn(f: Finding & { kind: 'suspicious-spawn' }): string {
  const d = f.details;
  const t = f.target;
  const out: string[] = [];
  out.push(`${f.id}  ${f.status}  node ${f.node}  first seen ${new Date(f.at).toISOString()}`);
  out.push(`pod        ${t.pod ? `${t.namespace}/${t.pod}` : '-'}  container ${t.container ?? '-'} (${(t.containerId ?? '-').slice(0, 12)})`);
  out.push(`process    pid ${t.pid} uid ${d.uid} started ${new Date(d.startTimeMs).toISOString()}${d.occurrences > 1 ? `; the same script ran ${d.occurrences} times (latest pids ${d.pids.join(', ')})` : ''}`);
  out.push(`command    ${printable(d.argv.join(' '), 2000)}`);
  out.push(`exe        ${printable(d.exe ?? '-', 500)}   cwd ${printable(d.cwd ?? '-', 500)}`);
  out.push('rules');
  for (const r of d.rules) out.push(`  ${r.id.padEnd(26)} ${printable(r.reason, 500)}`);
  out.push('parent chain (parent first)');
  for (const p of d.parentChain) out.push(`  ${String(p.pid).padStart(7)}  ${printable(p.comm, 20).padEnd(16)} ${printable(p.cmdline, 300)}`);
  if (d.provenance) out.push(`provenance ${printable(d.provenance.statement, 500)}`, `           source sha256 ${d.provenance.sha256} (${d.provenance.encoding})`);
  if (d.script) {
    const s = d.script;
    out.push(`script     ${printable(s.path, 500)}  sha256 ${s.sha256 ?? '?'}  ${formatBytes(s.sizeBytes)}  mtime ${s.mtimeMs ? new Date(s.mtimeMs).toISOString() : '?'}`);
    if (s.refused) out.push(`           not read: ${printable(s.refused, 500)}`);
    if (s.content !== null) {
      out.push(`----- script content (${s.contentEncoding}${s.truncated ? ', truncated' : ''}; shown as text, never executed) -----`);
      out.push(visible(s.content));
      out.push('----- end of script -----');
    }
  }
  for (const n of d.notes) out.push(`note       ${printable(n, 500)}`);
  return out.join('\n');
}

/** Keeps newlines and tabs, shows every other control character as \xNN. */
function visible(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
