// Fixed-capacity ring buffers for the time series the dashboard plots.

export class Ring {
  private buf: Float64Array;
  private start = 0;
  private len = 0;

  constructor(readonly capacity: number) {
    if (!(capacity > 0)) throw new RangeError("capacity must be positive");
    this.buf = new Float64Array(capacity);
  }

  get length(): number {
    return this.len;
  }

  push(v: number): void {
    if (this.len < this.capacity) {
      this.buf[(this.start + this.len) % this.capacity] = v;
      this.len++;
    } else {
      this.buf[this.start] = v;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /** The i-th oldest value. */
  at(i: number): number {
    if (i < 0 || i >= this.len) return NaN;
    return this.buf[(this.start + i) % this.capacity] as number;
  }

  last(): number {
    return this.at(this.len - 1);
  }

  clear(): void {
    this.start = 0;
    this.len = 0;
  }

  /** The values, oldest first, in a new array. */
  toArray(): Float64Array {
    const out = new Float64Array(this.len);
    const first = Math.min(this.len, this.capacity - this.start);
    out.set(this.buf.subarray(this.start, this.start + first), 0);
    out.set(this.buf.subarray(0, this.len - first), first);
    return out;
  }
}

/**
 * Aligned series sharing one time axis: `push(t, values)` appends one row; a series absent
 * from a row gets NaN (a gap). New series may appear at any time, and a series absent for the
 * whole window (a version no longer served) is dropped.
 */
export class SeriesTable {
  readonly t: Ring;
  private cols = new Map<string, Ring>();
  /** Rows in a row each series has been absent from. */
  private absent = new Map<string, number>();

  constructor(readonly capacity: number) {
    this.t = new Ring(capacity);
  }

  names(): string[] {
    return [...this.cols.keys()];
  }

  push(t: number, values: Record<string, number>): void {
    for (const k of Object.keys(values)) {
      if (!this.cols.has(k)) {
        const r = new Ring(this.capacity);
        for (let i = 0; i < this.t.length; i++) r.push(NaN);
        this.cols.set(k, r);
      }
    }
    this.t.push(t);
    for (const [k, r] of this.cols) {
      const v = values[k];
      r.push(v ?? NaN);
      const gap = v === undefined ? (this.absent.get(k) ?? 0) + 1 : 0;
      if (gap >= this.t.length) {
        this.cols.delete(k);
        this.absent.delete(k);
      } else this.absent.set(k, gap);
    }
  }

  clear(): void {
    this.t.clear();
    for (const r of this.cols.values()) r.clear();
    this.absent.clear();
  }

  /** `{t, series}` copies, oldest first, of the rows with `from <= t <= to` (times rise). */
  snapshot(from = -Infinity, to = Infinity): { t: Float64Array; series: Record<string, Float64Array> } {
    const n = this.t.length;
    let a = 0;
    while (a < n && !(this.t.at(a) >= from)) a++;
    let b = n;
    while (b > a && !(this.t.at(b - 1) <= to)) b--;
    const all = a === 0 && b === n;
    const cut = (r: Ring): Float64Array => (all ? r.toArray() : r.toArray().subarray(a, b).slice());
    const series: Record<string, Float64Array> = {};
    for (const [k, r] of this.cols) series[k] = cut(r);
    return { t: cut(this.t), series };
  }
}
