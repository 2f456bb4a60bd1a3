import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { connectHost, listenersOf, netNamespaceOf, parseTcpListeners, readNamespaceListeners, socketHolder } from '../../../agent/capture/proc-sockets.js';

// Lines as the kernel writes them (one LISTEN on 127.0.0.1:9229, one established, one on 0.0.0.0:8080).
const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:240D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:240D 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 123457 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 99 1 0000000000000000 100 0 0 10 0
   3: garbage
`;
const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:2406 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:2407 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 100 0 0 10 0
`;

describe('listening sockets from /proc', () => {
  it('parses LISTEN lines of tcp and tcp6, skipping others and garbage', () => {
    assert.deepEqual(parseTcpListeners(tcp, 4), [
      { address: '127.0.0.1', port: 9229, inode: 123456, family: 4 },
      { address: '0.0.0.0', port: 8080, inode: 99, family: 4 },
    ]);
    assert.deepEqual(parseTcpListeners(tcp6, 6), [
      { address: '::1', port: 9222, inode: 777, family: 6 },
      { address: '::', port: 9223, inode: 778, family: 6 },
    ]);
    assert.equal(connectHost({ address: '0.0.0.0', port: 1, inode: 1, family: 4 }), '127.0.0.1');
    assert.equal(connectHost({ address: '::', port: 1, inode: 1, family: 6 }), '::1');
  });

  it("finds this process's own listener, and who holds it", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const mine = listenersOf(process.pid).find((l) => l.port === port);
      assert.ok(mine, 'our listener is among our sockets');
      assert.equal(mine.address, '127.0.0.1');
      assert.ok(readNamespaceListeners(process.pid).some((l) => l.inode === mine.inode));
      assert.equal(socketHolder(mine.inode, netNamespaceOf('self')!), process.pid);
    } finally {
      server.close();
    }
    assert.ok(!listenersOf(process.pid).some((l) => l.port === port));
  });
});
