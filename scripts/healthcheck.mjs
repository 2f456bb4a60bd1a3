#!/usr/bin/env node
// The image's HEALTHCHECK: GET a health URL, exit 0 on 2xx, 1 otherwise (one line on stderr).
// Plain node, no dependencies, so it runs in the runtime image as it is.
const url = process.env.LEAKWATCH_HEALTHCHECK_URL || 'http://127.0.0.1:7070/healthz';
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
  if (!res.ok) {
    process.stderr.write(`healthcheck: ${url} answered ${res.status}\n`);
    process.exit(1);
  }
} catch (err) {
  process.stderr.write(`healthcheck: ${url}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
