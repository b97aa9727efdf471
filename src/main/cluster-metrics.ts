/**
 * The primary's side of /metrics: it asks every live worker for its registry (prom-client's
 * getMetricsAsJSON, over cluster IPC), adds its own registry (workers, restarts, reloads, the cache's size
 * from the sweeper) and sums them with prom-client's AggregatorRegistry.aggregate.
 *
 * Why not AggregatorRegistry.clusterMetrics(): it fails the whole scrape when one worker does not answer
 * (a worker dying mid-scrape), and it keeps no per-worker figures, which counters need to survive a
 * restart: a dead worker's last counters and histograms are kept here ("retired") and added to every later
 * sum, so a counter's total never goes down when a worker is replaced.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { MetricsJson, PrimaryMessage, WorkerMetricsReport } from '../shared/messages.js';
import { mergeTop } from '../stats/top-hits.js';

/** How long a scrape waits for the workers; one that does not answer counts with its last report. */
const SCRAPE_WAIT_MS = 1000;
const TOP_URLS = 10;

export interface ClusterSnapshot {
  /** The cluster's metrics, summed. */
  registry: Registry;
  /** As JSON, for the dashboard's figures. */
  metrics: MetricsJson;
  top: Array<[string, number]>;
}

export class ClusterMetrics {
  /** The primary's own metrics. */
  readonly registry = new Registry();
  private readonly last = new Map<number, WorkerMetricsReport>();
  private retired: MetricsJson = [];
  private seq = 0;
  private readonly waiting = new Map<number, { missing: Set<number>; done: () => void }>();
  private readonly restarts: Counter;
  private readonly lastReload: Gauge;
  private readonly cacheBytes: Gauge;
  private readonly cacheEntries: Gauge;
  private readonly evictions: Counter;

  constructor(
    /** The workers a scrape asks. */
    private readonly live: () => Worker[],
    cacheBound: () => number,
  ) {
    const registers = [this.registry];
    new Gauge({
      name: 'cuttle_workers_alive',
      help: 'Worker processes running',
      registers,
      collect() {
        this.set(live().length);
      },
    });
    this.restarts = new Counter({
      name: 'cuttle_worker_restarts_total',
      help: 'Workers that died unasked and were replaced',
      registers,
    });
    this.lastReload = new Gauge({
      name: 'cuttle_last_reload_timestamp_seconds',
      help: 'When the configuration was last reloaded (SIGHUP), seconds since the epoch; 0 before any',
      registers,
    });
    this.cacheBytes = new Gauge({
      name: 'cuttle_cache_stored_bytes',
      help: 'Bytes the cache holds (bodies and their metadata), as of the last sweep',
      registers,
    });
    this.cacheEntries = new Gauge({
      name: 'cuttle_cache_entries',
      help: 'Responses the cache holds, as of the last sweep',
      registers,
    });
    this.evictions = new Counter({
      name: 'cuttle_cache_evictions_total',
      help: 'Entries evicted to keep the cache under its size bound',
      registers,
    });
    new Gauge({
      name: 'cuttle_cache_bound_bytes',
      help: "The cache's size bound (--cache-size)",
      registers,
      collect() {
        this.set(cacheBound());
      },
    });
  }

  workerRestarted(): void {
    this.restarts.inc();
  }

  reloaded(at: number): void {
    this.lastReload.set(at / 1000);
  }

  swept(r: { bytes: number; entries: number; evicted: number }): void {
    this.cacheBytes.set(r.bytes);
    this.cacheEntries.set(r.entries);
    this.evictions.inc(r.evicted);
  }

  /** A worker's report: the answer to a scrape, or its last words before a graceful exit (id 0). */
  received(worker: Worker, id: number, report: WorkerMetricsReport): void {
    this.last.set(worker.id, report);
    const w = this.waiting.get(id);
    if (w?.missing.delete(worker.id) && w.missing.size === 0) w.done();
  }

  /** A worker is gone: its counters and histograms stay in the totals. */
  exited(worker: Worker): void {
    const report = this.last.get(worker.id);
    this.last.delete(worker.id);
    if (!report) return;
    // At run time `type` is prom-client's string ('counter'), whatever its typings say.
    const kept = report.metrics.filter((m) => {
      const type = m.type as unknown as string;
      return (type === 'counter' || type === 'histogram') && (m.aggregator ?? 'sum') === 'sum';
    });
    this.retired = aggregateNow([this.retired, kept]);
  }

  /** Asks every live worker, then sums their reports, the retired ones' and the primary's. */
  async collect(): Promise<ClusterSnapshot> {
    const id = ++this.seq;
    const workers = this.live();
    const missing = new Set(workers.map((w) => w.id));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, SCRAPE_WAIT_MS);
      this.waiting.set(id, {
        missing,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      for (const w of workers) {
        try {
          w.send({ type: 'metrics-request', id } satisfies PrimaryMessage);
        } catch {
          missing.delete(w.id);
        }
      }
      if (missing.size === 0) resolve();
    });
    this.waiting.delete(id);
    const own = await this.registry.getMetricsAsJSON();
    // From here on synchronous: a worker's report is either in `last` or in `retired`, never both.
    const reports = [...this.last.values()];
    const metrics = aggregateNow([...reports.map((r) => r.metrics), this.retired, own]);
    return {
      registry: AggregatorRegistry.aggregate([metrics]),
      metrics,
      top: mergeTop(
        reports.map((r) => r.top),
        TOP_URLS,
      ),
    };
  }
}

/** prom-client's aggregation, read back at once (its aggregated metrics are plain values behind get()). */
function aggregateNow(arrays: MetricsJson[]): MetricsJson {
  return AggregatorRegistry.aggregate(arrays)
    .getMetricsAsArray()
    .map((m) => (m as unknown as { get(): MetricsJson[number] }).get());
}
