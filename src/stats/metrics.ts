/**
 * One worker's Prometheus metrics (prom-client), fed from each transaction's record by a finish observer.
 * The primary asks every worker for `registry.getMetricsAsJSON()` and sums them with prom-client's
 * AggregatorRegistry (main/metrics-aggregator.ts); nothing here renders the exposition format.
 *
 * Cost on the hit path: one observer call per finished request. The labelled figures a request touches are
 * tallies (tallies.ts) whose cells the observer keeps, so it adds to numbers without hashing labels or
 * allocating; the unlabelled prom-client counters cost an addition too.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { FleetHooks } from '../fleet/forward.js';
import { transactionResult } from '../squid/access-log.js';
import type { FinishObserver, Outcome, Transaction } from '../workers/transaction.js';
import { type CounterCell, CounterTally, type HistogramCell, HistogramTally } from './tallies.js';
import { TopHits } from './top-hits.js';

/** From 100 µs (a memory hit) to 10 s (a slow origin): a cache's latencies span five decades. */
export const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Which duration histogram a request's outcome belongs to. */
export type Kind = 'hit' | 'miss' | 'revalidate' | 'tunnel' | 'other';
const KIND: Record<Outcome, Kind> = {
  hit: 'hit',
  miss: 'miss',
  swapfail: 'miss',
  'client-refresh': 'miss',
  'refresh-unmodified': 'revalidate',
  'refresh-modified': 'revalidate',
  'refresh-fail-old': 'revalidate',
  pass: 'other',
  tunnel: 'tunnel',
  none: 'other',
};

/**
 * Where the body a client got came from, for the byte hit ratio: the store (hits, 304-revalidated and
 * stale-if-error answers) or the origin (misses, modified revalidations, client reloads); anything else
 * (pass, tunnel, cuttle's own answers) is neither.
 */
export type Source = 'cache' | 'upstream' | 'other';
const SOURCE: Record<Outcome, Source> = {
  hit: 'cache',
  'refresh-unmodified': 'cache',
  'refresh-fail-old': 'cache',
  miss: 'upstream',
  swapfail: 'upstream',
  'client-refresh': 'upstream',
  'refresh-modified': 'upstream',
  pass: 'other',
  tunnel: 'other',
  none: 'other',
};

/** The Squid error names upstream.ts's failures map to (http/errors.ts upstreamError). */
const UPSTREAM_ERRORS = new Set([
  'ERR_CONNECT_FAIL',
  'ERR_DNS_FAIL',
  'ERR_READ_TIMEOUT',
  'ERR_ZERO_SIZE_OBJECT',
  'ERR_INVALID_RESP',
  'ERR_READ_ERROR',
]);

/** A client may send any token as a method: label values stay a bounded set. */
const METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'OPTIONS',
  'TRACE',
  'PATCH',
  'CONNECT',
  'PURGE',
]);
const STATUS_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

type Child = { inc(n?: number): void };

export interface WorkerGauges {
  /** Client connections open on this worker's server. */
  connections(): Promise<number>;
  tunnels(): number;
  /**
   * Plain HTTP/1.x requests the lean front end answered, connections it handed to node:http, and HTTP/2
   * hits answered on the core stream API.
   */
  lean(): { hits: number; handovers: number; h2Hits: number };
}

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly requests: CounterTally;
  /** result → method → status class → cell, each made on first use (so only seen label sets export). */
  private readonly requestCells = new Map<string, Map<string, Array<CounterCell | undefined>>>();
  private readonly hits: Counter;
  private readonly misses: Counter;
  private readonly bytes: Record<Source, CounterCell>;
  private readonly durations: Record<Kind, HistogramCell>;
  private readonly upstreamErrors: Counter<'error'>;
  private readonly collapsed: Counter;
  private readonly saved: Counter;
  private readonly stale: Record<'swr' | 'sie', Child>;
  private readonly connectTime: Histogram;
  private readonly headerTime: Histogram;
  private readonly writeFailures: Counter;
  private readonly peerRequests: Counter<'peer'>;
  private readonly peerFailures: Counter<'peer'>;
  private readonly peerUp: Gauge<'peer'>;
  readonly top = new TopHits();

  constructor(gauges: WorkerGauges) {
    const registers = [this.registry];
    this.requests = new CounterTally(
      this.registry,
      'cuttle_requests_total',
      "Requests finished, by Squid's result tag, method and status class",
    );
    this.hits = new Counter({
      name: 'cuttle_cache_hits_total',
      help: 'Requests answered with a body from the store (hits, 304-revalidated, stale-if-error)',
      registers,
    });
    this.misses = new Counter({
      name: 'cuttle_cache_misses_total',
      help: 'Cacheable requests answered with a body from the origin (misses, modified revalidations, reloads)',
      registers,
    });
    const sent = new CounterTally(
      this.registry,
      'cuttle_sent_bytes_total',
      'Bytes sent to clients (header sections included), by where the body came from: cache, upstream, other',
    );
    this.bytes = {
      cache: sent.cell({ source: 'cache' }),
      upstream: sent.cell({ source: 'upstream' }),
      other: sent.cell({ source: 'other' }),
    };
    const duration = new HistogramTally(
      this.registry,
      'cuttle_request_duration_seconds',
      'Time from request arrival to the last byte sent, by kind: hit, miss, revalidate, tunnel, other',
      DURATION_BUCKETS,
    );
    this.durations = {
      hit: duration.cell({ kind: 'hit' }),
      miss: duration.cell({ kind: 'miss' }),
      revalidate: duration.cell({ kind: 'revalidate' }),
      tunnel: duration.cell({ kind: 'tunnel' }),
      other: duration.cell({ kind: 'other' }),
    };
    this.upstreamErrors = new Counter({
      name: 'cuttle_upstream_errors_total',
      help: "Requests that failed upstream, by Squid's error name (ERR_CONNECT_FAIL, ERR_READ_TIMEOUT, ...)",
      labelNames: ['error'],
      registers,
    });
    this.collapsed = new Counter({
      name: 'cuttle_collapsed_requests_total',
      help: 'Requests that waited for another request fetching or revalidating the same object',
      registers,
    });
    this.saved = new Counter({
      name: 'cuttle_origin_fetches_saved_total',
      help: 'Collapsed requests answered without a fetch of their own',
      registers,
    });
    const stale = new Counter({
      name: 'cuttle_stale_served_total',
      help: 'Stale responses served: swr (stale-while-revalidate), sie (stale-if-error)',
      labelNames: ['reason'],
      registers,
    });
    this.stale = { swr: stale.labels('swr'), sie: stale.labels('sie') };
    this.connectTime = new Histogram({
      name: 'cuttle_upstream_connect_seconds',
      help: 'Time to open a connection to an origin (TCP, and TLS for https origins)',
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.headerTime = new Histogram({
      name: 'cuttle_upstream_response_header_seconds',
      help: "Time from dispatching a request upstream to the response's header section (connect included)",
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.peerRequests = new Counter({
      name: 'cuttle_peer_requests_total',
      help: 'Requests sent to a cache peer, by peer name',
      labelNames: ['peer'],
      registers,
    });
    this.peerFailures = new Counter({
      name: 'cuttle_peer_connect_failures_total',
      help: 'Connections to a cache peer that failed or timed out, by peer name',
      labelNames: ['peer'],
      registers,
    });
    // Per worker (each judges a peer by its own connects): the cluster's figure is the lowest, so 1 means
    // every worker uses the peer.
    this.peerUp = new Gauge({
      name: 'cuttle_peer_up',
      help: 'Whether a cache peer is up (1) or marked down after connect-fail-limit failures (0), by peer name',
      labelNames: ['peer'],
      aggregator: 'min',
      registers,
    });
    this.writeFailures = new Counter({
      name: 'cuttle_cache_write_failures_total',
      help: 'Cache writes that failed (disk or map full); the response was served but not stored',
      registers,
    });
    new Gauge({
      name: 'cuttle_open_connections',
      help: 'Client connections open',
      registers,
      async collect() {
        this.set(await gauges.connections());
      },
    });
    new Gauge({
      name: 'cuttle_open_tunnels',
      help: 'CONNECT tunnels open',
      registers,
      collect() {
        this.set(gauges.tunnels());
      },
    });
    new Counter({
      name: 'cuttle_lean_front_end_total',
      help: 'The lean front end: HTTP/1.x hits it answered itself, connections it handed over to node:http, HTTP/2 hits on the core stream API',
      labelNames: ['event'],
      registers,
      collect() {
        const n = gauges.lean();
        this.reset();
        this.inc({ event: 'hit' }, n.hits);
        this.inc({ event: 'handover' }, n.handovers);
        this.inc({ event: 'h2-hit' }, n.h2Hits);
      },
    });
    // Event-loop lag, heap, GC, CPU, file descriptors: summed (or averaged, as prom-client says) over workers.
    collectDefaultMetrics({ register: this.registry });
  }

  /** The finish hook: every figure comes from the transaction's record. */
  readonly observer: FinishObserver = (txn, end, bytes, complete) => {
    const outcome = txn.outcome;
    this.requestCell(txn, complete).value++;
    const source = SOURCE[outcome];
    if (source === 'cache') {
      this.hits.inc();
      this.top.add(txn.key, end);
    } else if (source === 'upstream') this.misses.inc();
    this.bytes[source].value += bytes;
    this.durations[KIND[outcome]].observe((performance.now() - txn.startedHr) / 1000);
    if (txn.collapsed) {
      this.collapsed.inc();
      if (!txn.forwarded) this.saved.inc();
    }
    if (outcome === 'refresh-fail-old') this.stale.sie.inc();
    else if (outcome === 'hit' && txn.cache?.detail === 'stale-while-revalidate') this.stale.swr.inc();
    const err = txn.error;
    if (err !== null) {
      const name = err.squidError.split(' ')[0];
      if (UPSTREAM_ERRORS.has(name)) this.upstreamErrors.inc({ error: name });
    }
  };

  /** The request counter's cell for this result, method and status class. */
  private requestCell(txn: Transaction, complete: boolean): CounterCell {
    const result = transactionResult(txn, complete);
    const method = METHODS.has(txn.method) ? txn.method : 'OTHER';
    const cls = txn.status >= 100 && txn.status < 600 ? Math.floor(txn.status / 100) : 0;
    let byMethod = this.requestCells.get(result);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.requestCells.set(result, byMethod);
    }
    let row = byMethod.get(method);
    if (row === undefined) {
      row = STATUS_CLASSES.map(() => undefined);
      byMethod.set(method, row);
    }
    let cell = row[cls];
    if (cell === undefined) {
      cell = this.requests.cell({ result, method, status_class: STATUS_CLASSES[cls] });
      row[cls] = cell;
    }
    return cell;
  }

  upstreamConnected(seconds: number): void {
    this.connectTime.observe(seconds);
  }

  upstreamHeaders(seconds: number): void {
    this.headerTime.observe(seconds);
  }

  /** The routing stage's peer events (src/fleet/forward.ts). */
  peerHooks(): FleetHooks {
    return {
      fetched: (peer) => this.peerRequests.labels(peer).inc(),
      failed: (peer) => this.peerFailures.labels(peer).inc(),
      state: (peer, up) => this.peerUp.labels(peer).set(up ? 1 : 0),
    };
  }

  writeFailed(): void {
    this.writeFailures.inc();
  }
}
