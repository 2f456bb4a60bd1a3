// The two ways the probe takes a capture inside the target: v8-profiler-next (a native addon,
// built from source for the target's Node ABI) or, where that addon cannot load (no build for this
// ABI; it does not build on Node 22.18+), Node's own in-process inspector session. Both serialize
// a heap snapshot synchronously on the target's thread, handing out chunks as they are produced:
// the sink decides what becomes of each chunk, so nothing here holds the whole snapshot.
import * as inspector from 'node:inspector';
import type { ProbeVia } from './wire.cjs';

/** Called with each snapshot chunk as it is produced; return false to abort the serialization. */
export type ChunkSink = (chunk: string) => boolean;

export interface CaptureEngine {
  readonly via: ProbeVia;
  /** Takes and serializes a heap snapshot; settles when the last chunk went to the sink. */
  heapSnapshot(sink: ChunkSink): Promise<void>;
  startSampling(): Promise<void>;
  /** Stops sampling and returns the profile in the DevTools .heapprofile shape. */
  stopSampling(): Promise<object>;
}

interface V8ProfilerNext {
  takeSnapshot(name?: string): { serialize(onChunk: (chunk: string, len: number) => boolean, onDone: () => void): void; delete(): void };
  startSamplingHeapProfiling(interval?: number, depth?: number): void;
  stopSamplingHeapProfiling(): { head: SamplingNode };
}

interface SamplingNode {
  callFrame: unknown;
  selfSize: number;
  id?: number;
  children: SamplingNode[];
}

/** Bytes between samples: V8's default (512 KiB) misses small leaks; 32 KiB is DevTools' default. */
const SAMPLING_INTERVAL_BYTES = 32 * 1024;
const SAMPLING_STACK_DEPTH = 64;

export function selectEngine(env: NodeJS.ProcessEnv): { engine: CaptureEngine; reason: string | null } {
  if (env.LEAKWATCH_PROBE_VIA === 'node-inspector') return { engine: inspectorEngine(), reason: 'LEAKWATCH_PROBE_VIA=node-inspector' };
  try {
    // Loaded only when an agent is there to use it: a target without an agent never pays for the addon.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const profiler = require('v8-profiler-next') as V8ProfilerNext;
    return { engine: v8ProfilerNextEngine(profiler), reason: null };
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    return { engine: inspectorEngine(), reason: `v8-profiler-next cannot load on Node ${process.version}: ${message}` };
  }
}

function v8ProfilerNextEngine(profiler: V8ProfilerNext): CaptureEngine {
  return {
    via: 'probe-v8-profiler-next',
    async heapSnapshot(sink) {
      const snapshot = profiler.takeSnapshot('leakwatch');
      try {
        // serialize() runs to completion before it returns, calling onChunk for every 50 KiB.
        snapshot.serialize((chunk) => sink(chunk), () => {});
      } finally {
        snapshot.delete();
      }
    },
    async startSampling() {
      profiler.startSamplingHeapProfiling(SAMPLING_INTERVAL_BYTES, SAMPLING_STACK_DEPTH);
    },
    async stopSampling() {
      return toHeapProfile(profiler.stopSamplingHeapProfiling().head);
    },
  };
}

function inspectorEngine(): CaptureEngine {
  let sampling: inspector.Session | null = null;
  return {
    via: 'probe-node-inspector',
    heapSnapshot(sink) {
      return new Promise<void>((resolve, reject) => {
        const session = new inspector.Session();
        session.connect();
        let aborted = false;
        session.on('HeapProfiler.addHeapSnapshotChunk', (message: { params: { chunk: string } }) => {
          // The inspector cannot be told to stop mid-snapshot: after a failed sink the rest is dropped.
          if (!aborted && !sink(message.params.chunk)) aborted = true;
        });
        // Up to Node 20 an in-process session dispatches synchronously: every chunk reaches the
        // sink as V8 produces it. Newer Node queues the messages and delivers them from the event
        // loop, so the snapshot sits in this process until they are handed out (see README).
        // Either way the reply comes after the last chunk.
        session.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false }, (err) => {
          session.disconnect();
          if (err) reject(err);
          else resolve();
        });
      });
    },
    async startSampling() {
      sampling = new inspector.Session();
      sampling.connect();
      await post(sampling, 'HeapProfiler.enable');
      await post(sampling, 'HeapProfiler.startSampling', { samplingInterval: SAMPLING_INTERVAL_BYTES });
    },
    async stopSampling() {
      const session = sampling;
      if (!session) throw new Error('sampling was not started');
      sampling = null;
      try {
        const result = (await post(session, 'HeapProfiler.stopSampling')) as { profile?: object };
        if (!result.profile) throw new Error('HeapProfiler.stopSampling gave no profile');
        return result.profile;
      } finally {
        session.disconnect();
      }
    },
  };
}

/** session.post as a promise: replies are synchronous on some Node versions and queued on others. */
function post(session: inspector.Session, method: string, params?: object): Promise<unknown> {
  return new Promise((resolve, reject) => {
    session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

/** v8-profiler-next returns {head} without node ids or samples; DevTools wants both to open the file. */
function toHeapProfile(head: SamplingNode): object {
  let nextId = 1;
  const stack: SamplingNode[] = [head];
  while (stack.length > 0) {
    const node = stack.pop()!;
    node.id = nextId++;
    for (const child of node.children) stack.push(child);
  }
  return { head, samples: [] };
}
