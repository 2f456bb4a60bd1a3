// Loopback helpers for tests that start servers.
import { createServer } from 'node:net';

/** A port that was free a moment ago on 127.0.0.1 (for servers that must be told their port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => (port ? resolve(port) : reject(new Error('no port from the probe listener'))));
    });
  });
}
