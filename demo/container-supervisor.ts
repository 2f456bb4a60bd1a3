// What kubelet does for one container of a fake pod: start its main process inside the
// container's cgroup, keep its output as the CRI log file kubelet would write, tell an
// OOMKilled exit (the cgroup's oom_kill counter moved) from other exits, kill what the main
// process left behind (a container's processes die with it), and restart it with back-off.
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { FakeContainer, FakePod } from './fake-pod.js';

export type ExitReason = 'OOMKilled' | 'Error' | 'Completed' | 'Stopped';

/** What happens to a container, in the order it happens. Times are epoch milliseconds. */
export type ContainerEvent =
  | { kind: 'started'; atMs: number; container: string; pid: number; restartCount: number }
  | { kind: 'ready'; atMs: number; container: string; pid: number; line: string }
  | { kind: 'log'; atMs: number; container: string; stream: 'stdout' | 'stderr'; line: string }
  | {
      kind: 'exited';
      atMs: number;
      container: string;
      pid: number;
      /** As kubelet reports it: 128 + signal number for a signal. */
      exitCode: number;
      signal: string | null;
      reason: ExitReason;
      restartCount: number;
    }
  /** The cgroup's oom_kill counter moved while the main process lived: a child was killed. */
  | { kind: 'oom-kill'; atMs: number; container: string; oomKillsTotal: number; mainProcessAlive: boolean }
  | { kind: 'backoff'; atMs: number; container: string; delayMs: number; restartCount: number }
  | { kind: 'crash-loop'; atMs: number; container: string; restartCount: number };

export interface ContainerProcessSpec {
  container: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** A line of the workload's output that says it is ready. */
  readyPattern?: RegExp;
}

export interface RestartPolicy {
  /** Restarts after the first run; the container stays down (CrashLoopBackOff) after the last. */
  maxRestarts: number;
  /** Delay before restart number n (1-based). */
  backoffMs(restart: number): number;
}

/** kubelet starts at 10 s and doubles up to 5 min; the demo scales that down to seconds. */
export const scaledKubeletBackoff = (restart: number): number => Math.min(1000 * 2 ** (restart - 1), 16_000);

export interface SupervisedContainer {
  readonly container: string;
  /** Settles when the container stays down for good: restarts exhausted, or stopped. */
  readonly done: Promise<void>;
  restartCount(): number;
  /** Host pid of the current main process, null between runs. */
  mainPid(): number | null;
  /** Stop restarting and kill every process of the container. */
  stop(): Promise<void>;
}

export interface SuperviseOptions {
  emit(event: ContainerEvent): void;
  signal: AbortSignal;
  /** How often the oom_kill counter is read to notice children killed under a live main process. */
  oomPollMs?: number;
}

const OUTPUT_DRAIN_MS = 1000;
const LEFTOVER_KILL_MS = 5000;

export function superviseContainer(pod: FakePod, spec: ContainerProcessSpec, policy: RestartPolicy, options: SuperviseOptions): SupervisedContainer {
  const target = pod.containers.find((c) => c.name === spec.container);
  if (!target) throw new Error(`no container ${spec.container} in pod ${pod.namespace}/${pod.name}`);
  const container: FakeContainer = target;
  const stopping = new AbortController();
  const onOuterAbort = (): void => stopping.abort();
  options.signal.addEventListener('abort', onOuterAbort, { once: true });
  if (options.signal.aborted) stopping.abort();
  const signal = stopping.signal;
  const emit = options.emit;
  const logDir = join(pod.podLogRoot, `${pod.namespace}_${pod.name}_${pod.uid}`, spec.container);

  let restarts = 0;
  let current: ChildProcess | null = null;
  let lastOomKills = readOomKills(container.cgroupDir) ?? 0;

  const oomTimer = setInterval(() => {
    const total = readOomKills(container.cgroupDir);
    if (total === null || total <= lastOomKills) return;
    lastOomKills = total;
    const pid = current?.pid;
    emit({ kind: 'oom-kill', atMs: Date.now(), container: spec.container, oomKillsTotal: total, mainProcessAlive: pid !== undefined && isRunning(pid) });
  }, options.oomPollMs ?? 500);
  oomTimer.unref();

  async function runOnce(): Promise<{ code: number | null; signal: NodeJS.Signals | null; oomKilled: boolean; pid: number }> {
    const oomBefore = readOomKills(container.cgroupDir) ?? 0;
    const child = pod.spawnIn(spec.container, spec.command, spec.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: spec.cwd, env: spec.env });
    current = child;
    const pid = child.pid ?? -1;
    emit({ kind: 'started', atMs: Date.now(), container: spec.container, pid, restartCount: restarts });
    const logFile = join(logDir, `${restarts}.log`);
    let ready = false;
    const follow = (stream: NodeJS.ReadableStream | null, name: 'stdout' | 'stderr'): Promise<void> => {
      if (!stream) return Promise.resolve();
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      lines.on('line', (line) => {
        const atMs = Date.now();
        appendCriLine(logFile, atMs, name, line);
        emit({ kind: 'log', atMs, container: spec.container, stream: name, line });
        if (!ready && spec.readyPattern?.test(line)) {
          ready = true;
          emit({ kind: 'ready', atMs, container: spec.container, pid, line });
        }
      });
      return new Promise((resolve) => lines.once('close', resolve));
    };
    const outputDone = Promise.all([follow(child.stdout, 'stdout'), follow(child.stderr, 'stderr')]);
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('error', () => resolve({ code: 127, signal: null }));
      child.once('exit', (code, sig) => resolve({ code, signal: sig }));
    });
    current = null;
    // The container ends with its main process: children it left (which hold the output
    // pipes open) are killed, as the container's pid namespace would take them down.
    await killLeftovers(pod, spec.container);
    await Promise.race([outputDone, delay(OUTPUT_DRAIN_MS)]);
    const oomAfter = readOomKills(container.cgroupDir) ?? 0;
    const oomKilled = exit.signal === 'SIGKILL' && oomAfter > oomBefore;
    // The exit event tells this kill; the poller is for kills that leave the main process alive.
    if (oomKilled) lastOomKills = Math.max(lastOomKills, oomAfter);
    return { ...exit, oomKilled, pid };
  }

  const done = (async () => {
    try {
      for (;;) {
        if (signal.aborted) return;
        const result = await runOnce();
        const exitCode = result.signal ? 128 + (osConstants.signals[result.signal] ?? 0) : (result.code ?? 0);
        const reason: ExitReason = signal.aborted ? 'Stopped' : result.oomKilled ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error';
        emit({ kind: 'exited', atMs: Date.now(), container: spec.container, pid: result.pid, exitCode, signal: result.signal, reason, restartCount: restarts });
        if (signal.aborted) return;
        if (restarts >= policy.maxRestarts) {
          emit({ kind: 'crash-loop', atMs: Date.now(), container: spec.container, restartCount: restarts });
          return;
        }
        restarts++;
        const delayMs = policy.backoffMs(restarts);
        emit({ kind: 'backoff', atMs: Date.now(), container: spec.container, delayMs, restartCount: restarts });
        await delay(delayMs, signal);
      }
    } finally {
      clearInterval(oomTimer);
      options.signal.removeEventListener('abort', onOuterAbort);
    }
  })();

  return {
    container: spec.container,
    done,
    restartCount: () => restarts,
    mainPid: () => current?.pid ?? null,
    async stop() {
      stopping.abort();
      await killLeftovers(pod, spec.container);
      await done;
    },
  };
}

/** Cumulative OOM kills charged to a v1 memory cgroup; null when the file is missing or unreadable. */
export function readOomKills(cgroupDir: string): number | null {
  let text: string;
  try {
    text = readFileSync(join(cgroupDir, 'memory.oom_control'), 'utf8');
  } catch {
    return null;
  }
  const match = /^oom_kill (\d+)$/m.exec(text);
  return match?.[1] === undefined ? null : Number(match[1]);
}

/** Alive and not a zombie: a main process the OOM killer just took is a zombie until reaped. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function killLeftovers(pod: FakePod, container: string): Promise<void> {
  const deadline = Date.now() + LEFTOVER_KILL_MS;
  for (;;) {
    let pids: number[];
    try {
      pids = pod.pids(container);
    } catch {
      return;
    }
    if (pids.length === 0 || Date.now() > deadline) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await delay(50);
  }
}

/** One line in the CRI format kubelet writes: `<RFC3339Nano> <stream> F <line>`. */
function appendCriLine(file: string, atMs: number, stream: 'stdout' | 'stderr', line: string): void {
  try {
    appendFileSync(file, `${new Date(atMs).toISOString()} ${stream} F ${line}\n`);
  } catch {
    // The pod's log directory is gone once the pod is destroyed; late lines have nowhere to go.
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
