/**
 * The URLs served from the cache most often over the last minute, for the dashboard. Two generations of
 * counts, each covering half a minute: the older one is dropped when the newer one is half a minute old,
 * so the sum of both covers between 30 and 60 seconds. A hit costs one Map lookup; keys are bounded.
 */

const GENERATION_MS = 30_000;
const MAX_KEYS = 10_000;

export class TopHits {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private since = Date.now();

  /** One hit on `key` at `now` (the finish time the observer already has). */
  add(key: string, now: number): void {
    if (now - this.since >= GENERATION_MS) this.rotate(now);
    const n = this.current.get(key);
    if (n !== undefined) this.current.set(key, n + 1);
    else if (this.current.size < MAX_KEYS) this.current.set(key, 1);
  }

  /** The `limit` most hit keys of the last minute, most hit first. */
  top(limit: number, now = Date.now()): Array<[string, number]> {
    if (now - this.since >= GENERATION_MS) this.rotate(now);
    const sum = new Map(this.previous);
    for (const [k, n] of this.current) sum.set(k, (sum.get(k) ?? 0) + n);
    return [...sum].sort((a, b) => b[1] - a[1]).slice(0, limit);
  }

  private rotate(now: number): void {
    // More than a whole minute without a read: both generations are stale.
    this.previous = now - this.since < 2 * GENERATION_MS ? this.current : new Map();
    this.current = new Map();
    this.since = now;
  }
}

/** Sums several workers' top lists into the cluster's. */
export function mergeTop(lists: Array<Array<[string, number]>>, limit: number): Array<[string, number]> {
  const sum = new Map<string, number>();
  for (const l of lists) for (const [k, n] of l) sum.set(k, (sum.get(k) ?? 0) + n);
  return [...sum].sort((a, b) => b[1] - a[1]).slice(0, limit);
}
