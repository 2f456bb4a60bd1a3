#!/usr/bin/env node
// Entry point of the `leakwatch` binary.
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`leakwatch: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
