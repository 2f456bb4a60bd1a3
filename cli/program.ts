// The command tree, separate from main.ts so tests (and the manifest checks) can parse
// arguments with the very parser users get, without running anything.
import { Command } from 'commander';
import { registerAgent } from './commands/agent.js';
import { registerCollector } from './commands/collector.js';
import { registerDemo } from './commands/demo.js';
import { registerFindings } from './commands/findings.js';
import { registerPs } from './commands/ps.js';
import { registerSnapshots } from './commands/snapshots.js';
import { addDiffCommand } from './commands/snapshots-diff.js';
import { registerSpawns } from './commands/spawns.js';
import { registerTokens } from './commands/tokens.js';
import { registerTop } from './commands/top.js';
import { registerUp } from './commands/up.js';
import { registerWatch } from './commands/watch.js';
import { packageVersion } from './package-info.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('leakwatch')
    .description('Memory-leak profiler for Kubernetes nodes: per-process memory by pod and container, growth with time-to-OOM, OOM kills.')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)');
  registerUp(program);
  registerPs(program);
  registerTop(program);
  registerWatch(program);
  registerDemo(program);
  registerAgent(program);
  registerCollector(program);
  registerTokens(program);
  registerFindings(program);
  registerSpawns(program);
  addDiffCommand(registerSnapshots(program));
  return program;
}
