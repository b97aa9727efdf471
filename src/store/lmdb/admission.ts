/**
 * nginx's proxy_cache_min_uses over the shared store: an object is stored on its Nth request within the
 * window, counted across every worker in the `uses` database.
 */
import type { Admission } from '../store.js';
import type { CacheEnv } from './layout.js';
import type { WriteFailed } from './write-failed.js';

export class LmdbAdmission implements Admission {
  private readonly recentUses = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly env: CacheEnv,
    private readonly minUses: number,
    private readonly windowMs: number,
    private readonly writeFailed: WriteFailed,
  ) {}

  admit(key: string): boolean {
    if (this.minUses <= 1) return true;
    const now = Date.now();
    // This worker's own last count, while its write may not be visible in the read snapshot yet: without it
    // requests in quick succession all read the same stale count.
    const stored = this.env.uses.get(key);
    const mine = this.recentUses.get(key);
    const u = mine && (!stored || mine.since > stored.since || mine.count > stored.count) ? mine : stored;
    const since = u && now - u.since <= this.windowMs ? u.since : now;
    const count = (u && since === u.since ? u.count : 0) + 1;
    if (this.recentUses.size > 10_000) this.recentUses.clear();
    if (count >= this.minUses) {
      this.recentUses.delete(key);
      this.env.uses.remove(key).catch(this.writeFailed);
      return true;
    }
    this.recentUses.set(key, { count, since });
    this.env.uses.put(key, { count, since }).catch(this.writeFailed);
    return false;
  }
}
