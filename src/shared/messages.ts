/** IPC between the primary and its workers. */
import type { Registry } from 'prom-client';
import type { Claim, FillEvent } from '../cache/collapse.js';
import type { ClusterStats, WorkerStats } from '../stats/counters.js';
import type { TlsMaterial } from '../tls/certificates.js';

/** One registry's metrics as prom-client's getMetricsAsJSON() gives them, the input of its aggregation. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** What a worker sends for a scrape: its metrics, and its most hit URLs of the last minute. */
export interface WorkerMetricsReport {
  metrics: MetricsJson;
  top: Array<[string, number]>;
}

/** The primary's pages a worker serves on its behalf. */
export type PrimaryPage = 'metrics' | 'stats.json';

export type PrimaryMessage =
  | { type: 'shutdown'; deadlineMs: number }
  /** Certificates and ticket keys for the HTTPS listener: before it listens, and again on SIGHUP. */
  | { type: 'tls'; material: TlsMaterial }
  | { type: 'reopen-logs' }
  /** The cache manager wants every worker's counters. */
  | { type: 'stats-request'; id: number }
  /** The answer to a worker's mgr-request: the whole cluster's counters. */
  | { type: 'mgr-reply'; id: number; stats: ClusterStats }
  /** A scrape: the primary wants this worker's metrics. */
  | { type: 'metrics-request'; id: number }
  /** The answer to a worker's page-request. */
  | { type: 'page-reply'; id: number; status: number; contentType: string; body: string }
  /** Collapsed forwarding: the answer to a fill-claim. */
  | { type: 'fill-claim-reply'; id: number; claim: Claim }
  /** Collapsed forwarding: what the leader of a fill this worker waits for (or leads) published. */
  | { type: 'fill-event'; key: string; ev: FillEvent };
/** Where a worker listens, by listener. */
export interface Listeners {
  plain?: { address: string; port: number };
  https?: { address: string; port: number };
  h2c?: { address: string; port: number };
}

export type WorkerMessage =
  | { type: 'listen-error'; message: string }
  /** Every listener of the worker is up. */
  | { type: 'listening'; listeners: Listeners }
  /** The worker is ready for its certificates (a message sent before it listens for one would be lost). */
  | { type: 'tls-request' }
  | { type: 'stats'; id: number; stats: WorkerStats }
  | { type: 'mgr-request'; id: number }
  /** The answer to metrics-request; id 0 is the last report of a worker about to exit. */
  | { type: 'metrics'; id: number; report: WorkerMetricsReport }
  /** A client asked this worker for one of the primary's pages. */
  | { type: 'page-request'; id: number; page: PrimaryPage }
  /** The worker is dying of this error: the primary names it in its crash line. */
  | { type: 'fatal'; message: string }
  /** Collapsed forwarding: may this worker fetch `key`, or does another already? */
  | { type: 'fill-claim'; id: number; key: string; seen: number | null }
  /** Collapsed forwarding: the leader of `key`'s fill publishes its progress. */
  | { type: 'fill-event'; key: string; ev: FillEvent };
