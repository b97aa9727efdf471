/**
 * Schedules the sweep task on a piscina thread: once at start (integrity: chunks orphaned by a crash), then
 * every interval. Sweeps never overlap, and no worker ever waits on one.
 */
import { Piscina } from 'piscina';
import type { Config } from '../config/config.js';
import type { Logger } from '../shared/logger.js';
import type { SweepJob, SweepResult } from './sweep-task.js';

/** An unreferenced chunk younger than this may belong to a write still under way. */
const ORPHAN_GRACE_MS = 10 * 60_000;
const LOW_WATER = 0.9;

export class Sweeper {
  private readonly pool: Piscina<SweepJob, SweepResult>;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly startedAt = Date.now();
  private first = true;
  /** The last sweep had to evict: the cache is at its bound (logged once on the way up). */
  private atBound = false;

  constructor(
    private config: Config,
    private readonly log: Logger,
    /** Every sweep's result (the metrics' cache size, entries and evictions). */
    private readonly onSwept: (r: SweepResult) => void = () => {},
  ) {
    this.pool = new Piscina({
      filename: new URL('./sweep-task.js', import.meta.url).href,
      minThreads: 1,
      maxThreads: 1,
    });
  }

  start(): void {
    void this.run();
    this.timer = setInterval(() => void this.run(), this.config.sweepInterval);
    this.timer.unref();
  }

  setConfig(config: Config): void {
    this.config = config;
  }

  run(): Promise<void> {
    if (this.running) return this.running;
    const job: SweepJob = {
      cacheDir: this.config.cacheDir,
      cacheSize: this.config.cacheSize,
      lowWater: LOW_WATER,
      // At start nothing can be mid-write, so every unreferenced chunk from before it is debris.
      orphansBefore: this.first ? this.startedAt : Date.now() - ORPHAN_GRACE_MS,
    };
    this.first = false;
    this.running = this.pool
      .run(job)
      .then((r) => {
        this.onSwept(r);
        if (r.evicted > 0 || r.orphanChunks > 0) this.log.debug(r, 'cache sweep');
        if (r.evicted > 0 && !this.atBound)
          this.log.warn(
            { bound: this.config.cacheSize, bytes: r.bytes, entries: r.entries, evicted: r.evicted },
            'cache reached its size bound: evicting the least recently used entries',
          );
        // Back below 80 % (purges, expiry) before a new line: a cache that stays full logs once.
        this.atBound = r.evicted > 0 || (this.atBound && r.bytes >= 0.8 * this.config.cacheSize);
      })
      .catch((err: Error) => this.log.error({ err: err.message }, 'cache sweep failed'))
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
    await this.pool.destroy();
  }
}
