/** IPC between the primary and its workers. */
import type { ClusterStats, WorkerStats } from '../stats/counters.js';

export type PrimaryMessage =
  | { type: 'shutdown'; deadlineMs: number }
  | { type: 'reopen-logs' }
  /** The cache manager wants every worker's counters. */
  | { type: 'stats-request'; id: number }
  /** The answer to a worker's mgr-request: the whole cluster's counters. */
  | { type: 'mgr-reply'; id: number; stats: ClusterStats };
export type WorkerMessage =
  | { type: 'listen-error'; message: string }
  | { type: 'stats'; id: number; stats: WorkerStats }
  | { type: 'mgr-request'; id: number };
