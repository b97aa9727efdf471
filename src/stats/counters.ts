import type { FinishObserver } from '../workers/transaction.js';

/**
 * Traffic counters for Squid's cache manager reports, kept per worker and summed by the primary, so the
 * reports describe the whole cluster.
 */

export interface WorkerStats {
  pid: number;
  startedAt: number;
  requests: number;
  hits: number;
  /** Requests answered by cuttle itself with an error (denied, invalid, upstream failure). */
  errors: number;
  bytesOut: number;
  hitBytesOut: number;
  /** Requests that went to an origin. */
  serverRequests: number;
  /** Requests that waited for another's fetch (collapsed forwarding), and those answered without their own. */
  collapsed: number;
  collapsedSaved: number;
  /** Distinct client addresses seen (bounded). */
  clients: string[];
  /** Recent service times, ms: all requests, hits, misses (bounded samples). */
  timesAll: number[];
  timesHit: number[];
  timesMiss: number[];
  rssBytes: number;
  /** This worker's view of the cache peers (server_list), when it has any. */
  peers?: PeerStat[];
}

/** One cache peer as a worker sees it: what Squid's server_list shows. */
export interface PeerStat {
  name: string;
  host: string;
  port: number;
  type: string;
  flags: string;
  up: boolean;
  fetches: number;
  connectFailures: number;
}

export interface ClusterStats {
  startedAt: number;
  now: number;
  workers: WorkerStats[];
}

const SAMPLES = 2048;
const MAX_CLIENTS = 10_000;

/** One worker's running counters. */
export class StatsCounter {
  private readonly s: WorkerStats = {
    pid: process.pid,
    startedAt: Date.now(),
    requests: 0,
    hits: 0,
    errors: 0,
    bytesOut: 0,
    hitBytesOut: 0,
    serverRequests: 0,
    collapsed: 0,
    collapsedSaved: 0,
    clients: [],
    timesAll: [],
    timesHit: [],
    timesMiss: [],
    rssBytes: 0,
  };
  private readonly clients = new Set<string>();
  /** The routing stage's peers, read at each snapshot. */
  peers: (() => PeerStat[]) | null = null;

  /** One finished request; cheap, as it runs for every request. */
  record(
    hit: boolean,
    direct: boolean,
    error: boolean,
    bytes: number,
    elapsed: number,
    client: string | undefined,
  ): void {
    const s = this.s;
    s.requests++;
    s.bytesOut += bytes;
    if (hit) {
      s.hits++;
      s.hitBytesOut += bytes;
    }
    if (direct) s.serverRequests++;
    if (error) s.errors++;
    if (client !== undefined && this.clients.size < MAX_CLIENTS) this.clients.add(client);
    sample(s.timesAll, elapsed);
    sample(hit ? s.timesHit : s.timesMiss, elapsed);
  }

  /** The finish hook that feeds these counters from each transaction's record. */
  readonly observer: FinishObserver = (txn, end, bytes) => {
    const hit = txn.outcome === 'hit';
    const failed = txn.error !== null;
    if (txn.collapsed) {
      this.s.collapsed++;
      if (!txn.forwarded) this.s.collapsedSaved++;
    }
    this.record(
      hit,
      txn.forwarded && !hit && !failed,
      failed,
      bytes,
      end - txn.started,
      txn.socket.remoteAddress,
    );
  };

  snapshot(): WorkerStats {
    return {
      ...this.s,
      clients: [...this.clients],
      rssBytes: process.memoryUsage.rss(),
      ...(this.peers ? { peers: this.peers() } : {}),
    };
  }
}

/** A bounded reservoir: the newest samples replace random older ones once full. */
function sample(into: number[], v: number): void {
  if (into.length < SAMPLES) into.push(v);
  else into[Math.floor(Math.random() * SAMPLES)] = v;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The cluster's totals, as the reports print them. */
export function totals(c: ClusterStats) {
  const sum = (f: (w: WorkerStats) => number) => c.workers.reduce((a, w) => a + f(w), 0);
  const requests = sum((w) => w.requests);
  const hits = sum((w) => w.hits);
  const bytesOut = sum((w) => w.bytesOut);
  const hitBytesOut = sum((w) => w.hitBytesOut);
  return {
    uptimeSeconds: (c.now - c.startedAt) / 1000,
    clients: new Set(c.workers.flatMap((w) => w.clients)).size,
    requests,
    hits,
    errors: sum((w) => w.errors),
    serverRequests: sum((w) => w.serverRequests),
    collapsed: sum((w) => w.collapsed ?? 0),
    collapsedSaved: sum((w) => w.collapsedSaved ?? 0),
    bytesOut,
    hitBytesOut,
    hitRatio: requests ? hits / requests : 0,
    byteHitRatio: bytesOut ? hitBytesOut / bytesOut : 0,
    medianAll: median(c.workers.flatMap((w) => w.timesAll)),
    medianHit: median(c.workers.flatMap((w) => w.timesHit)),
    medianMiss: median(c.workers.flatMap((w) => w.timesMiss)),
    rssBytes: sum((w) => w.rssBytes),
  };
}
