// A deliberately slow agent for the probe's backpressure test: it speaks the probe wire format,
// asks for one heap snapshot and, once the first bytes arrive (V8 has built the snapshot and is
// serializing it), calls onFirstBytes and reads nothing for `stallMs` (long enough for V8 to
// finish: whatever the probe cannot write then, it would have to hold), and afterwards at most one
// socket read per `pauseMs`. It only counts and hashes what arrives.
import { createHash } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { FrameDecoder, encodeJsonFrame } from '../../probe/wire.cjs';

export interface SlowCaptureResult {
  bytes: number;
  announcedBytes: number;
  sha256: string;
  via: string;
}

export async function startSlowAgent(socketPath: string, token: string, pauseMs: number, stallMs = 0, onFirstBytes: () => void = () => {}) {
  let onHello: ((socket: Socket, hello: Record<string, unknown>) => void) | null = null;
  const hellos: Array<{ socket: Socket; hello: Record<string, unknown> }> = [];
  const server = createServer((socket) => {
    const decoder = new FrameDecoder();
    let capture: { resolve(r: SlowCaptureResult): void; reject(e: Error): void; bytes: number; hash: ReturnType<typeof createHash>; via: string } | null = null;
    socket.on('error', () => {});
    socket.on('close', () => capture?.reject(new Error('closed')));
    socket.on('data', (data: Buffer) => {
      if (pauseMs > 0) {
        socket.pause();
        setTimeout(() => socket.resume(), pauseMs);
      }
      for (const frame of decoder.push(data)) {
        if (frame.kind === 'bytes') {
          if (capture!.bytes === 0) {
            onFirstBytes();
            if (stallMs > 0) {
              socket.pause();
              setTimeout(() => socket.resume(), stallMs);
            }
          }
          capture!.bytes += frame.payload.length;
          capture!.hash.update(frame.payload);
          continue;
        }
        const m = frame.message;
        if (m.type === 'hello') {
          if (m.token !== token) {
            socket.destroy();
            return;
          }
          socket.write(encodeJsonFrame({ type: 'welcome', pid: m.nsPid }));
          hellos.push({ socket, hello: m });
          onHello?.(socket, m);
        } else if (m.type === 'capture-begin') {
          capture!.via = String(m.via);
        } else if (m.type === 'capture-end') {
          const c = capture!;
          capture = null;
          c.resolve({ bytes: c.bytes, announcedBytes: Number(m.bytes), sha256: c.hash.digest('hex'), via: c.via });
        } else if (m.type === 'capture-error') {
          capture?.reject(new Error(String(m.message)));
        }
      }
    });
    (socket as Socket & { snapshot?: () => Promise<SlowCaptureResult> }).snapshot = () =>
      new Promise<SlowCaptureResult>((resolve, reject) => {
        capture = { resolve, reject, bytes: 0, hash: createHash('sha256'), via: '' };
        socket.write(encodeJsonFrame({ type: 'capture', id: 1, kind: 'heapsnapshot' }));
      });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    /** Resolves with the first probe that said hello. */
    probe: (): Promise<{ snapshot(): Promise<SlowCaptureResult>; hello: Record<string, unknown> }> =>
      new Promise((resolve) => {
        const give = (socket: Socket, hello: Record<string, unknown>): void =>
          resolve({ snapshot: (socket as Socket & { snapshot: () => Promise<SlowCaptureResult> }).snapshot, hello });
        if (hellos[0]) give(hellos[0].socket, hellos[0].hello);
        else onHello = give;
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const h of hellos) h.socket.destroy();
      }),
  };
}
