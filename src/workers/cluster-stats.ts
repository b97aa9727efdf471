/**
 * The worker's side of the round trips to the primary, which alone sees every worker: the cache manager's
 * counters, and the pages the primary renders (/metrics, stats.json).
 */
import type { PrimaryPage, WorkerMessage } from '../shared/messages.js';
import type { ClusterStats, StatsCounter } from '../stats/counters.js';

export interface PageReply {
  status: number;
  contentType: string;
  body: string;
}

export class ClusterStatsClient {
  private seq = 0;
  private readonly waiters = new Map<number, (answer: unknown) => void>();

  constructor(private readonly local: StatsCounter) {}

  request(): Promise<ClusterStats> {
    // Outside a cluster (in-process tests) only this process's counters exist.
    if (!process.send)
      return Promise.resolve({ startedAt: Date.now(), now: Date.now(), workers: [this.local.snapshot()] });
    return this.ask((id) => ({ type: 'mgr-request', id }));
  }

  page(page: PrimaryPage): Promise<PageReply> {
    if (!process.send) return Promise.reject(new Error('no primary: not running in a cluster'));
    return this.ask((id) => ({ type: 'page-request', id, page }));
  }

  private ask<T>(message: (id: number) => WorkerMessage): Promise<T> {
    return new Promise((resolve, reject) => {
      const id = ++this.seq;
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error('the primary did not answer'));
      }, 5000);
      this.waiters.set(id, (answer) => {
        clearTimeout(timer);
        this.waiters.delete(id);
        resolve(answer as T);
      });
      process.send?.(message(id));
    });
  }

  /** The primary's answer to a request of ours. */
  answered(id: number, answer: ClusterStats | PageReply): void {
    this.waiters.get(id)?.(answer);
  }
}
