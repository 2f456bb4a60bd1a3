// Prometheus's own tools for checking what /metrics serves: `promtool check metrics` (parser and
// linter) and the `prometheus` server. Debian's `prometheus` package installs both.
import { spawnSync } from 'node:child_process';

function onPath(binary: string): boolean {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0;
}

/** Null when the binary is there, else why the test must skip. */
export function missingBinary(binary: 'promtool' | 'prometheus'): string | null {
  return onPath(binary) ? null : `${binary} not found on PATH (apt-get install -y prometheus)`;
}

export interface PromtoolResult {
  ok: boolean;
  status: number | null;
  /** promtool prints lint problems and parse errors on stdout and stderr; both, joined. */
  output: string;
}

/** Runs `promtool check metrics` on an exposition; ok only when it neither fails to parse nor lints. */
export function promtoolCheckMetrics(exposition: string): PromtoolResult {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 30_000 });
  return { ok: r.status === 0, status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/** A port free right now on 127.0.0.1, for a child process that cannot be told to use port 0. */
