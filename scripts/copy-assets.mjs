#!/usr/bin/env node
// tsc compiles only TypeScript; the demo's workload programs ship beside the compiled demo so an
// installed leakwatch (which carries dist/ only) can still run `leakwatch demo`.
import { cpSync, rmSync } from 'node:fs';

rmSync('dist/demo/workloads', { recursive: true, force: true });
cpSync('demo/workloads', 'dist/demo/workloads', { recursive: true, preserveTimestamps: true });
