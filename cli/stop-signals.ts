// SIGTERM and SIGINT for the long-running commands (up, agent, collector). The handlers go in
// before anything starts: a signal during start-up (a pod deleted while its agent starts, Ctrl-C
// while the collector opens its database) must not kill the process by the default action and
// leave a probe socket or a half-written file behind. It is held, and honoured as soon as start-up
// is done. A second signal means "now".

export interface StopSignals {
  /** The first SIGTERM or SIGINT, whenever it came (before or after start-up). */
  readonly first: Promise<NodeJS.Signals>;
  /** What a second signal does before the process exits with status 1 (log it, say). */
  onSecond(handler: () => void): void;
  /** Removes the handlers: the command ended without needing them (a start-up error). */
  dispose(): void;
}

export function watchStopSignals(): StopSignals {
  let received = 0;
  let second: () => void = () => {};
  let resolveFirst: (s: NodeJS.Signals) => void = () => {};
  const first = new Promise<NodeJS.Signals>((resolve) => {
    resolveFirst = resolve;
  });
  const handle = (signal: NodeJS.Signals): void => {
    received++;
    if (received === 1) {
      resolveFirst(signal);
      return;
    }
    second();
    process.exit(1);
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
  return {
    first,
    onSecond(handler) {
      second = handler;
    },
    dispose() {
      process.off('SIGTERM', handle);
      process.off('SIGINT', handle);
    },
  };
}
