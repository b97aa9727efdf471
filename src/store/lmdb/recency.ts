/** Recency for the sweeper's LRU: approximate, written in batches, so a hit never waits on a write. */
import type { Recency } from '../store.js';
import type { CacheEnv } from './layout.js';
import type { WriteFailed } from './write-failed.js';

const FLUSH_MS = 2000;

export class LmdbRecency implements Recency {
  private touched = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly env: CacheEnv,
    private readonly writeFailed: WriteFailed,
  ) {
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  touch(key: string): void {
    this.touched.set(key, Math.floor(Date.now() / 1000));
  }

  flush(): void {
    if (this.touched.size === 0) return;
    const batch = this.touched;
    this.touched = new Map();
    for (const [k, t] of batch) this.env.atime.put(k, t).catch(this.writeFailed);
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
