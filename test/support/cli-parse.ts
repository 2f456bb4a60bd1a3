// Parse an argv with leakwatch's own commander program, exactly as `leakwatch` would, without
// running the command: each command's action is replaced by one that records its options, and
// errors throw instead of exiting.
import { Command, CommanderError } from 'commander';
import { buildProgram } from '../../cli/program.js';

export interface ParsedCommand {
  /** `agent`, `collector`, `tokens create`, ... */
  command: string;
  options: Record<string, unknown>;
  args: string[];
}

export async function parseWithProgram(argv: string[]): Promise<ParsedCommand> {
  const program = buildProgram();
  let parsed: ParsedCommand | null = null;
  let errors = '';
  const prepare = (cmd: Command, path: string[]): void => {
    cmd.exitOverride();
    cmd.configureOutput({ writeOut: () => {}, writeErr: (s) => (errors += s) });
    if (path.length > 0) {
      cmd.action((...received: unknown[]) => {
        const self = received[received.length - 1] as Command;
        parsed = { command: path.join(' '), options: self.opts(), args: self.args };
      });
    }
    for (const sub of cmd.commands) prepare(sub, [...path, sub.name()]);
  };
  prepare(program, []);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) throw new Error(`leakwatch ${argv.join(' ')}: ${err.message}${errors ? ` (${errors.trim()})` : ''}`);
    throw err;
  }
  if (!parsed) throw new Error(`leakwatch ${argv.join(' ')}: no command ran`);
  return parsed;
}
