/** The worker's side of the cache manager's round trip: it asks the primary for every worker's counters. */
import type { WorkerMessage } from '../shared/messages.js';
import type { ClusterStats, StatsCounter } from '../stats/counters.js';

export class ClusterStatsClient {
  private seq = 0;
  private readonly waiters = new Map<number, (s: ClusterStats) => void>();

  constructor(private readonly local: StatsCounter) {}

  request(): Promise<ClusterStats> {
    return new Promise((resolve, reject) => {
      const id = ++this.seq;
      // Outside a cluster (in-process tests) only this process's counters exist.
      if (!process.send)
        return resolve({ startedAt: Date.now(), now: Date.now(), workers: [this.local.snapshot()] });
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error('the primary did not answer'));
      }, 3000);
      this.waiters.set(id, (s) => {
        clearTimeout(timer);
        this.waiters.delete(id);
        resolve(s);
      });
      process.send({ type: 'mgr-request', id } satisfies WorkerMessage);
    });
  }

  /** The primary's answer. */
  answered(id: number, stats: ClusterStats): void {
    this.waiters.get(id)?.(stats);
  }
}
