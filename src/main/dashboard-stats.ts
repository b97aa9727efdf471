/**
 * stats.json, the dashboard's data: figures read from the same summed metrics /metrics shows, so the page
 * and a Prometheus scrape agree. Rates and last-minute percentiles come from the previous answers, kept
 * for a minute (the page asks every second).
 */
import type { MetricsJson } from '../shared/messages.js';

export interface WorkerState {
  slot: number;
  pid: number | undefined;
  state: 'starting' | 'serving' | 'draining' | 'down';
  /** Times this slot's worker died unasked and was replaced. */
  restarts: number;
  startedAt: number;
}

export interface Percentiles {
  p50: number | null;
  p99: number | null;
  count: number;
  /** Over the last minute when it saw requests of this kind, otherwise since start. */
  window: 'minute' | 'start';
}

export interface DashboardStats {
  now: number;
  startedAt: number;
  totals: {
    requests: number;
    hits: number;
    misses: number;
    cacheBytes: number;
    upstreamBytes: number;
    sentBytes: number;
    upstreamErrors: number;
    /** hits / (hits + misses), since start. */
    hitRatio: number | null;
    /** bytes from the cache / (from the cache + from upstream), since start. */
    byteHitRatio: number | null;
  };
  /** Per second, over the last second or so. */
  rates: { requests: number; upstreamErrors: number };
  /** Seconds. */
  latency: { hit: Percentiles; miss: Percentiles };
  cache: { bytes: number; entries: number; bound: number; evictions: number; writeFailures: number };
  upstreamErrors: Record<string, number>;
  workers: WorkerState[];
  workersAlive: number;
  workerRestarts: number;
  lastReload: number | null;
  topUrls: Array<{ url: string; hits: number }>;
}

interface Sample {
  t: number;
  requests: number;
  upstreamErrors: number;
  hit: number[];
  miss: number[];
}

const KEEP_MS = 60_000;

/** Reads one metric's values (summed over label sets that match `where`). */
export function metricSum(
  metrics: MetricsJson,
  name: string,
  where: (labels: Record<string, string | number>) => boolean = () => true,
): number {
  const m = metrics.find((x) => x.name === name);
  if (!m) return 0;
  let total = 0;
  for (const v of m.values) {
    const mn = (v as { metricName?: string }).metricName;
    if (mn !== undefined && mn !== name) continue;
    if (where(v.labels as Record<string, string | number>)) total += v.value;
  }
  return total;
}

/** A histogram's cumulative bucket counts (by its `le` bounds, ascending, +Inf last) for one label set. */
export function histogramBuckets(
  metrics: MetricsJson,
  name: string,
  labels: Record<string, string>,
): { bounds: number[]; counts: number[] } {
  const m = metrics.find((x) => x.name === name);
  const rows: Array<[number, number]> = [];
  for (const v of m?.values ?? []) {
    if ((v as { metricName?: string }).metricName !== `${name}_bucket`) continue;
    const l = v.labels as Record<string, string | number>;
    if (!Object.entries(labels).every(([k, x]) => l[k] === x)) continue;
    rows.push([l.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(l.le), v.value]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  return { bounds: rows.map((r) => r[0]), counts: rows.map((r) => r[1]) };
}

/**
 * The q-quantile of cumulative bucket counts, interpolated linearly inside its bucket as Prometheus'
 * histogram_quantile() does; the +Inf bucket answers its lower bound. Null without observations.
 */
export function quantile(q: number, bounds: number[], counts: number[]): number | null {
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] >= rank) {
      const lo = i === 0 ? 0 : bounds[i - 1];
      const hi = bounds[i];
      if (!Number.isFinite(hi)) return lo;
      const below = i === 0 ? 0 : counts[i - 1];
      const inBucket = counts[i] - below;
      // Clamped: at the bucket's top, rounding could land just above its upper bound (0.0025000000000000005
      // for 3 of 3 in (0.001, 0.0025]), a value outside the bucket that /metrics put it in.
      return inBucket > 0 ? Math.min(hi, lo + ((hi - lo) * (rank - below)) / inBucket) : lo;
    }
  }
  return bounds[bounds.length - 2] ?? null;
}

/** Over the last minute (`since`: the counts a minute ago) when it has observations, else since start. */
function percentiles(bounds: number[], counts: number[], since: number[] | undefined): Percentiles {
  const minute = since && since.length === counts.length ? counts.map((c, i) => c - since[i]) : null;
  const useMinute = minute !== null && (minute.at(-1) ?? 0) > 0;
  const c = useMinute ? minute : counts;
  return {
    p50: quantile(0.5, bounds, c),
    p99: quantile(0.99, bounds, c),
    count: c.at(-1) ?? 0,
    window: useMinute ? 'minute' : 'start',
  };
}

export class DashboardHistory {
  private samples: Sample[] = [];

  constructor(private readonly startedAt: number) {}

  build(
    metrics: MetricsJson,
    extra: {
      now: number;
      workers: WorkerState[];
      cacheBound: number;
      top: Array<[string, number]>;
    },
  ): DashboardStats {
    const sum = (name: string, where?: (l: Record<string, string | number>) => boolean) =>
      metricSum(metrics, name, where);
    const { now } = extra;
    const requests = sum('cuttle_requests_total');
    const hits = sum('cuttle_cache_hits_total');
    const misses = sum('cuttle_cache_misses_total');
    const cacheBytes = sum('cuttle_sent_bytes_total', (l) => l.source === 'cache');
    const upstreamBytes = sum('cuttle_sent_bytes_total', (l) => l.source === 'upstream');
    const upstreamErrors = sum('cuttle_upstream_errors_total');
    const hit = histogramBuckets(metrics, 'cuttle_request_duration_seconds', { kind: 'hit' });
    const miss = histogramBuckets(metrics, 'cuttle_request_duration_seconds', { kind: 'miss' });
    const sample: Sample = { t: now, requests, upstreamErrors, hit: hit.counts, miss: miss.counts };

    this.samples = this.samples.filter((s) => now - s.t <= KEEP_MS);
    // The newest answer at least a second old gives the rate; the oldest kept, the last minute.
    const recent = [...this.samples].reverse().find((s) => now - s.t >= 1000) ?? this.samples[0];
    const oldest = this.samples[0];
    this.samples.push(sample);
    const dt = recent ? (now - recent.t) / 1000 : 0;
    const rate = (a: number, b: number | undefined) => (dt > 0 && b !== undefined ? (a - b) / dt : 0);

    const errorsByName: Record<string, number> = {};
    for (const v of metrics.find((m) => m.name === 'cuttle_upstream_errors_total')?.values ?? [])
      errorsByName[String(v.labels.error)] = v.value;
    const reload = sum('cuttle_last_reload_timestamp_seconds');
    return {
      now,
      startedAt: this.startedAt,
      totals: {
        requests,
        hits,
        misses,
        cacheBytes,
        upstreamBytes,
        sentBytes: sum('cuttle_sent_bytes_total'),
        upstreamErrors,
        hitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
        byteHitRatio: cacheBytes + upstreamBytes > 0 ? cacheBytes / (cacheBytes + upstreamBytes) : null,
      },
      rates: {
        requests: rate(requests, recent?.requests),
        upstreamErrors: rate(upstreamErrors, recent?.upstreamErrors),
      },
      latency: {
        hit: percentiles(hit.bounds, hit.counts, oldest?.hit),
        miss: percentiles(miss.bounds, miss.counts, oldest?.miss),
      },
      cache: {
        bytes: sum('cuttle_cache_stored_bytes'),
        entries: sum('cuttle_cache_entries'),
        bound: extra.cacheBound,
        evictions: sum('cuttle_cache_evictions_total'),
        writeFailures: sum('cuttle_cache_write_failures_total'),
      },
      upstreamErrors: errorsByName,
      workers: extra.workers,
      workersAlive: sum('cuttle_workers_alive'),
      workerRestarts: sum('cuttle_worker_restarts_total'),
      lastReload: reload > 0 ? reload * 1000 : null,
      topUrls: extra.top.map(([url, hits]) => ({ url, hits })),
    };
  }
}
