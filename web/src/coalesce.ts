// Coalescing: many updates between two animation frames become one batch (the page pulls one
// batch per animation frame), and the reconnection backoff.

/** Latest-value-wins accumulation of named fields, taken all at once. */
export class Coalescer<T extends object> {
  private pending: Partial<T> = {};
  private dirty = false;
  /** Updates merged since the last take (for measurement). */
  merged = 0;

  set<K extends keyof T>(key: K, value: T[K]): void {
    if (this.dirty && key in this.pending) this.merged++;
    this.pending[key] = value;
    this.dirty = true;
  }

  has(key: keyof T): boolean {
    return key in this.pending;
  }

  /** Everything set since the last call, or null when nothing was. */
  take(): Partial<T> | null {
    if (!this.dirty) return null;
    const p = this.pending;
    this.pending = {};
    this.dirty = false;
    return p;
  }
}

/** Reconnection delay: exponential from `base` to `max`, times a jitter in [0.5, 1). */
export function backoffMs(attempt: number, base = 250, max = 10000, random: () => number = Math.random): number {
  const exp = Math.min(max, base * 2 ** Math.min(attempt, 20));
  return exp * (0.5 + random() * 0.5);
}
