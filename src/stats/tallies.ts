/**
 * Labelled counters and histograms for the per-request path, read by prom-client only when scraped.
 *
 * Why not prom-client's own Counter and Histogram here: each labelled `inc` or `observe` validates and
 * hashes its labels into a string (about 220 ns apiece on this machine), and a hit would pay that three
 * times. A tally's cell is a plain object the caller keeps per label set, so a request costs an addition;
 * `get()` renders the same JSON prom-client's metrics give (the shape AggregatorRegistry sums and the
 * registry prints), and the tallies register in the worker's prom-client Registry like any metric.
 */
import type { Registry } from 'prom-client';
import type { MetricsJson } from '../shared/messages.js';

type Labels = Record<string, string>;
type Value = MetricsJson[number]['values'][number] & { metricName?: string };

export interface CounterCell {
  value: number;
}

/** A counter with labels: one cell per label set, made on first use. */
export class CounterTally {
  private readonly cells: Array<{ labels: Labels; cell: CounterCell }> = [];

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
  ) {
    register(registry, name, help, 'counter', () =>
      this.cells.map(({ labels, cell }) => ({ labels, value: cell.value })),
    );
  }

  /** The cell for a label set; keep it, and add to its `value`. */
  cell(labels: Labels): CounterCell {
    const cell = { value: 0 };
    this.cells.push({ labels, cell });
    return cell;
  }
}

export class HistogramCell {
  /** Per bucket (not cumulative); the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

/** A histogram with labels: one cell per label set. */
export class HistogramTally {
  private readonly cells: Array<{ labels: Labels; cell: HistogramCell }> = [];

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    register(registry, name, help, 'histogram', () => {
      const out: Value[] = [];
      for (const { labels, cell } of this.cells) {
        let acc = 0;
        for (let i = 0; i < bounds.length; i++) {
          acc += cell.counts[i];
          out.push({ labels: { le: bounds[i], ...labels }, value: acc, metricName: `${name}_bucket` });
        }
        out.push({ labels: { le: '+Inf', ...labels }, value: cell.count, metricName: `${name}_bucket` });
        out.push({ labels, value: cell.sum, metricName: `${name}_sum` });
        out.push({ labels, value: cell.count, metricName: `${name}_count` });
      }
      return out;
    });
  }

  cell(labels: Labels): HistogramCell {
    const cell = new HistogramCell(this.bounds);
    this.cells.push({ labels, cell });
    return cell;
  }
}

/** Registers a metric whose values `values()` renders when the registry is read. */
function register(
  registry: Registry,
  name: string,
  help: string,
  type: 'counter' | 'histogram',
  values: () => Value[],
): void {
  const metric = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: () => ({ name, help, type, aggregator: 'sum', values: values() }),
  };
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}
