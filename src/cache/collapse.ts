/**
 * Collapsed forwarding (Varnish's busy objects, cache_hash.c): while one request fetches or revalidates an
 * object, the others for the same key wait, then look it up again once the result is stored (or at once,
 * when it turns out not to be storable). Within this worker; the interface is what a cross-worker
 * registry will implement.
 */

/** Wakes the waiters; calling it again does nothing. */
export type Release = () => void;

const NOTHING: Release = () => {};

export class Collapse {
  private readonly busy = new Map<string, Array<() => void>>();

  /** Queues `retry` behind a fetch of `key` under way; false when none is. */
  wait(key: string, retry: () => void): boolean {
    const waiting = this.busy.get(key);
    if (waiting === undefined) return false;
    waiting.push(retry);
    return true;
  }

  /** Marks `key` busy for this fetch. When another fetch already holds it, this one leads nobody. */
  lead(key: string): Release {
    if (this.busy.has(key)) return NOTHING;
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
}
