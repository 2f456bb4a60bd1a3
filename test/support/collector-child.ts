// `leakwatch collector` and `leakwatch tokens` as a child process, through the real commander
// registration, for tests that kill it (SIGKILL, SIGTERM) or check its exit codes.
import { Command, CommanderError } from 'commander';
import { registerCollector } from '../../cli/commands/collector.js';
import { registerTokens } from '../../cli/commands/tokens.js';

const program = new Command().name('leakwatch').exitOverride();
registerCollector(program);
registerTokens(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`leakwatch: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
