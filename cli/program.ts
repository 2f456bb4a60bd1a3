// The command tree, separate from main.ts so tests (and the manifest checks) can parse
// arguments with the very parser users get, without running anything.
import { Command } from 'commander';
import { registerDemo } from './commands/demo.js';
import { registerPs } from './commands/ps.js';
import { registerTop } from './commands/top.js';
import { registerWatch } from './commands/watch.js';
import { packageVersion } from './package-info.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('leakwatch')
    .description('Memory-leak profiler for Kubernetes nodes: per-process memory by pod and container, growth with time-to-OOM, OOM kills.')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)');
  registerPs(program);
  registerTop(program);
  registerWatch(program);
  registerDemo(program);
  return program;
}
