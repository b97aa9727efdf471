/**
 * Collapsed forwarding (Varnish's busy objects, cache_hash.c): while one request fetches or revalidates an
 * object, the others for the same key wait, then look it up again once the result is stored (or at once,
 * when it turns out not to be storable). A key whose response was not storable is then fetched without
 * queueing for a while (Varnish's hit-for-miss), so each wave of requests for it does not wait behind one
 * fetch's response head. Within this worker; the interface is what a cross-worker registry will implement.
 */

/** Wakes the waiters; calling it again does nothing. */
export type Release = () => void;

const NOTHING: Release = () => {};

/** Marks kept at most; the oldest go first (they also expire first: the window is the same for all). */
const MAX_MARKS = 10_000;

export class Collapse {
  private readonly busy = new Map<string, Array<() => void>>();
  /** Keys whose last response could not be stored, and until when (ms) they are fetched without queueing. */
  private readonly uncacheable = new Map<string, number>();

  /** `hitForMissMs`: Varnish's hit-for-miss window; 0 turns it off. */
  constructor(private readonly hitForMissMs = 0) {}

  /** Queues `retry` behind a fetch of `key` under way; false when none is. */
  wait(key: string, retry: () => void): boolean {
    const waiting = this.busy.get(key);
    if (waiting === undefined) return false;
    waiting.push(retry);
    return true;
  }

  /**
   * Marks `key` busy for this fetch. When another fetch already holds it, this one leads nobody; nor does
   * it within the hit-for-miss window, so that requests for an object that will not be stored never queue.
   */
  lead(key: string): Release {
    if (this.busy.has(key) || this.passing(key)) return NOTHING;
    const waiting: Array<() => void> = [];
    this.busy.set(key, waiting);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.busy.delete(key);
      for (const w of waiting) w();
    };
  }

  /** The response for `key` will not be stored: its next requests go to the origin without waiting. */
  notStorable(key: string): void {
    if (this.hitForMissMs <= 0) return;
    this.uncacheable.delete(key);
    this.uncacheable.set(key, Date.now() + this.hitForMissMs);
    for (const [k, until] of this.uncacheable) {
      if (this.uncacheable.size <= MAX_MARKS && until > Date.now()) break;
      this.uncacheable.delete(k);
    }
  }

  /** The response for `key` is being stored: collapse its requests again. */
  storable(key: string): void {
    this.uncacheable.delete(key);
  }

  private passing(key: string): boolean {
    const until = this.uncacheable.get(key);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.uncacheable.delete(key);
    return false;
  }
}
