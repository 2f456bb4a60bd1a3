// Backpressure for agent writes. Each findings or series frame is held in memory (parsed) from
// the moment it is read until the store has committed it and the agent is answered; 200 agents
// with 4 batches in flight each can hand the collector far more than it can write. The budget
// counts the bytes of the frames held, across agents: past `limitBytes` every agent socket is
// paused (nothing more is read; TCP and the agents' in-flight window hold them back) until the
// store has worked the held bytes down to 7/8 of the limit. The band is narrow on purpose: what
// the sockets deliver on resume is parsed in one go, and a wide band (say, down to half of
// 16 MiB) would stall the event loop, and every API request, for tens of milliseconds each time.
// The limit is soft: a frame is never refused, and each socket may deliver what it had already
// read (one read, ≤ 64 KiB) after pausing.

/** What the budget pauses: a ws WebSocket's pause()/resume() stop and restart reading its socket. */
export interface Pausable {
  pause(): void;
  resume(): void;
}

export interface IngestBudgetStats {
  limitBytes: number;
  heldBytes: number;
  /** Largest heldBytes seen since start. */
  peakHeldBytes: number;
  /** Frames held right now. */
  heldFrames: number;
  paused: boolean;
  /** How many times reading was paused since start. */
  pauses: number;
}

export class IngestBudget {
  private held = 0;
  private peak = 0;
  private frames = 0;
  private over = false;
  private pauseCount = 0;
  private readonly sockets = new Set<Pausable>();
  private readonly resumeBelowBytes: number;

  constructor(
    readonly limitBytes: number,
    /** Called when reading stops (true) or restarts (false): metrics, logs. */
    private readonly onChange: (paused: boolean, stats: IngestBudgetStats) => void = () => {},
  ) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0) throw new RangeError(`the ingest budget must be a positive number of bytes, got ${limitBytes}`);
    this.resumeBelowBytes = Math.floor((limitBytes * 7) / 8);
  }

  /** A socket whose reading the budget controls from now on (paused at once if over). */
  add(socket: Pausable): void {
    this.sockets.add(socket);
    if (this.over) socket.pause();
  }

  delete(socket: Pausable): void {
    this.sockets.delete(socket);
  }

  /** Count a frame as held; the returned function releases it (once; later calls do nothing). */
  hold(bytes: number): () => void {
    const size = Number.isFinite(bytes) && bytes > 0 ? Math.ceil(bytes) : 0;
    this.held += size;
    this.frames++;
    if (this.held > this.peak) this.peak = this.held;
    if (!this.over && this.held > this.limitBytes) {
      this.over = true;
      this.pauseCount++;
      for (const s of this.sockets) s.pause();
      this.onChange(true, this.stats());
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held -= size;
      this.frames--;
      if (this.over && this.held <= this.resumeBelowBytes) {
        this.over = false;
        for (const s of this.sockets) s.resume();
        this.onChange(false, this.stats());
      }
    };
  }

  get paused(): boolean {
    return this.over;
  }

  stats(): IngestBudgetStats {
    return { limitBytes: this.limitBytes, heldBytes: this.held, peakHeldBytes: this.peak, heldFrames: this.frames, paused: this.over, pauses: this.pauseCount };
  }
}
