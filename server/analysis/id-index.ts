// Object id → node ordinal, open addressing over one typed array of ordinals: the ids are
// already in the snapshot's id column, so the table stores only ordinal + 1 (0 = empty) and
// compares through the column. A JS Map would cost several times the snapshot's own columns.
export class IdIndex {
  private slots: Uint32Array;
  private mask: number;

  constructor(
    private ids: Uint32Array,
    capacityHint: number,
  ) {
    let cap = 1024;
    while (cap < capacityHint * 1.4) cap *= 2;
    this.slots = new Uint32Array(cap);
    this.mask = cap - 1;
  }

  /** Drops the table (it can be large) while the owner is still in scope. */
  release(): void {
    this.slots = new Uint32Array(1);
    this.mask = 0;
    this.ids = new Uint32Array(0);
  }

  private slot(id: number): number {
    return (Math.imul(id, 0x9e3779b1) >>> 0) & this.mask;
  }

  /** Adds ordinal under its id; keeps the first ordinal seen for an id. */
  add(ordinal: number): void {
    const id = this.ids[ordinal]!;
    let i = this.slot(id);
    for (let v = this.slots[i]!; v !== 0; v = this.slots[i]!) {
      if (this.ids[v - 1] === id) return;
      i = (i + 1) & this.mask;
    }
    this.slots[i] = ordinal + 1;
  }

  /** Ordinal for id, or -1. */
  get(id: number): number {
    let i = this.slot(id);
    for (let v = this.slots[i]!; v !== 0; v = this.slots[i]!) {
      if (this.ids[v - 1] === id) return v - 1;
      i = (i + 1) & this.mask;
    }
    return -1;
  }
}
