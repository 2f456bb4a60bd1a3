// Object id → node ordinal, open addressing over two typed arrays: for a few million nodes a
// JS Map would cost several times the memory of the snapshot's own columns.
export class IdIndex {
  private readonly keys: Uint32Array;
  /** ordinal + 1; 0 marks an empty slot (ids themselves may be any u32). */
  private readonly values: Uint32Array;
  private readonly mask: number;

  constructor(capacityHint: number) {
    let cap = 1024;
    while (cap < capacityHint * 2) cap *= 2;
    this.keys = new Uint32Array(cap);
    this.values = new Uint32Array(cap);
    this.mask = cap - 1;
  }

  private slot(id: number): number {
    return (Math.imul(id, 0x9e3779b1) >>> 0) & this.mask;
  }

  /** Keeps the first ordinal seen for an id. */
  set(id: number, ordinal: number): void {
    let i = this.slot(id);
    while (this.values[i] !== 0) {
      if (this.keys[i] === id) return;
      i = (i + 1) & this.mask;
    }
    this.keys[i] = id;
    this.values[i] = ordinal + 1;
  }

  /** Ordinal for id, or -1. */
  get(id: number): number {
    let i = this.slot(id);
    while (this.values[i] !== 0) {
      if (this.keys[i] === id) return this.values[i]! - 1;
      i = (i + 1) & this.mask;
    }
    return -1;
  }
}
