// The two captures over a CDP session: a full heap snapshot streamed chunk by chunk into a file,
// and a sampling heap profile. The snapshot is never whole in the agent's memory: chunks go to the
// file as they come, and while more than a couple wait for the disk the socket is not read.
import { CaptureFile } from './capture-file.js';
import { CdpError, type CdpSession } from './cdp-session.js';

export interface CaptureResult {
  bytes: number;
  sha256: string;
  /** How long the target was busy with it: the snapshot command's round trip, or the sampling time. */
  durationMs: number;
  /** Snapshot chunks received and the biggest (100 KiB on Node ≤ 20, 1 MiB on newer V8). */
  chunks?: number;
  maxChunkBytes?: number;
}

/** Chunks allowed to wait for the disk before the socket is paused. */
const maxBacklogChunks = 2;

export async function captureHeapSnapshot(session: CdpSession, outPath: string, options: { signal?: AbortSignal } = {}): Promise<CaptureResult> {
  const file = await CaptureFile.create(outPath);
  let paused = false;
  let chunks = 0;
  let maxChunkBytes = 0;
  session.onChunk((bytes) => {
    chunks++;
    if (bytes.length > maxChunkBytes) maxChunkBytes = bytes.length;
    file.push(bytes);
    if (!paused && file.backlog > maxBacklogChunks) {
      paused = true;
      session.pause();
      file.onLow(() => {
        paused = false;
        session.resume();
      });
    }
  });
  const started = performance.now();
  try {
    await session.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false, captureNumericValue: false }, { signal: options.signal });
    const durationMs = performance.now() - started;
    if (file.failed) throw file.failed;
    const { bytes, sha256 } = await file.finish();
    if (bytes === 0) throw new CdpError('the inspector finished the snapshot without sending any chunk');
    return { bytes, sha256, durationMs, chunks, maxChunkBytes };
  } catch (err) {
    await file.discard();
    throw err;
  } finally {
    session.onChunk(null);
    if (paused) session.resume();
  }
}

export interface SamplingOptions {
  sampleMs: number;
  /** Bytes between samples (V8's default is 32 KiB). */
  samplingIntervalBytes?: number;
  signal?: AbortSignal;
}

export async function captureSamplingProfile(session: CdpSession, outPath: string, options: SamplingOptions): Promise<CaptureResult> {
  const started = performance.now();
  await session.send('HeapProfiler.startSampling', { samplingInterval: options.samplingIntervalBytes ?? 32 * 1024 }, { signal: options.signal });
  let stopped = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, options.sampleMs);
      options.signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(new CdpError('sampling aborted', 'aborted'));
      }, { once: true });
    });
    const { profile } = await session.send<{ profile?: unknown }>('HeapProfiler.stopSampling', {}, { signal: options.signal });
    stopped = true;
    if (!profile || typeof profile !== 'object') throw new CdpError('stopSampling returned no profile');
    const durationMs = performance.now() - started;
    const file = await CaptureFile.create(outPath);
    try {
      // The profile is small (one node per allocation site): DevTools opens this JSON as .heapprofile.
      file.push(Buffer.from(JSON.stringify(profile)));
      return { ...(await file.finish()), durationMs };
    } catch (err) {
      await file.discard();
      throw err;
    }
  } finally {
    // A sampler left running would keep costing the target.
    if (!stopped && !session.closed) await session.send('HeapProfiler.stopSampling', {}, { timeoutMs: 5_000 }).catch(() => {});
  }
}
