// Object id → node ordinal of the earlier snapshot, for matching objects between snapshots.
// V8 writes nodes in (almost exactly) ascending id order, and a later snapshot of the same heap
// meets the surviving objects in the same order: so the ids form one ascending run, searched
// with a cursor that gallops forward (mostly one step), plus a small Map for the few nodes out
// of order. Sequential memory access, 4 bytes per node; a hash table would cost 2–3x the memory
// and a cache miss per lookup.
export class IdIndex {
  private run: Uint32Array;
  private runLength = 0;
  private readonly outOfOrder = new Map<number, number>();
  private cursor = 0;

  /** Indexes the ordinals for which `include` holds. */
  constructor(
    private ids: Uint32Array,
    include: (ordinal: number) => boolean,
  ) {
    this.run = new Uint32Array(ids.length);
    let last = -1;
    for (let o = 0; o < ids.length; o++) {
      if (!include(o)) continue;
      const id = ids[o]!;
      if (id > last) {
        this.run[this.runLength++] = o;
        last = id;
      } else if (!this.outOfOrder.has(id)) {
        this.outOfOrder.set(id, o);
      }
    }
  }

  /** Start the next sequence of lookups from the beginning. */
  rewind(): void {
    this.cursor = 0;
  }

  /** Ordinal with this id, or -1. Fastest when called in ascending id order. */
  get(id: number): number {
    const run = this.run;
    const ids = this.ids;
    const n = this.runLength;
    let c = this.cursor;
    if (c < n && ids[run[c]!] === id) {
      this.cursor = c + 1;
      return run[c]!;
    }
    let lo: number;
    let hi: number;
    if (c === 0 || ids[run[c - 1]!]! < id) {
      // Forward: gallop from the cursor, then bisect.
      let step = 1;
      lo = c;
      hi = c;
      while (hi < n && ids[run[hi]!]! < id) {
        lo = hi + 1;
        hi = c + step;
        step *= 2;
      }
      if (hi > n) hi = n;
    } else {
      lo = 0;
      hi = c;
    }
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ids[run[mid]!]! < id) lo = mid + 1;
      else hi = mid;
    }
    this.cursor = lo;
    if (lo < n && ids[run[lo]!] === id) {
      this.cursor = lo + 1;
      return run[lo]!;
    }
    return this.outOfOrder.get(id) ?? -1;
  }

  /** Drops the tables while the owner is still in scope. */
  release(): void {
    this.run = new Uint32Array(0);
    this.runLength = 0;
    this.outOfOrder.clear();
    this.ids = new Uint32Array(0);
  }
}
