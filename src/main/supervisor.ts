/**
 * The primary's job: keep N workers serving on one listening socket (node:cluster round-robin), replace the
 * ones that die, roll them on reload, and stop them gracefully.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Config } from '../config/config.js';
import type { Logger } from '../shared/logger.js';
import type { PrimaryMessage, WorkerMessage } from '../shared/messages.js';
import type { ClusterStats, WorkerStats } from '../stats/counters.js';

interface Slot {
  index: number;
  worker: Worker;
  startedAt: number;
  /** Crashes in a row of workers that died young; drives the respawn backoff. */
  crashes: number;
}

/** A worker that lived this long before dying is not part of a crash loop. */
const STABLE_AFTER_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;

export function respawnDelay(crashes: number): number {
  return crashes <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 250 * 2 ** (crashes - 2));
}

export class Supervisor {
  private readonly slots = new Map<number, Slot>();
  private readonly pendingStats = new Map<number, WorkerStats[]>();
  private statsSeq = 0;
  private readonly startedAt = Date.now();
  /** Workers told to drain: their exit is expected. */
  private readonly retiring = new Set<Worker>();
  private stopping = false;
  private reloading: Promise<void> | null = null;
  address: { address: string; port: number } | null = null;

  constructor(
    private config: Config,
    private readonly log: Logger,
    private readonly onFatal: (message: string) => void,
  ) {}

  /** Forks every worker and resolves once all listen. */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.config.workers }, (_, i) => this.spawn(i, 0)));
  }

  private spawn(index: number, crashes: number): Promise<Worker> {
    const worker = cluster.fork({ CUTTLE_CONFIG: JSON.stringify(this.config) });
    const slot: Slot = { index, worker, startedAt: Date.now(), crashes };
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'listen-error') this.onFatal(m.message);
      else if (m.type === 'mgr-request') void this.collectStats(worker, m.id);
      else if (m.type === 'stats') this.pendingStats.get(m.id)?.push(m.stats);
    });
    worker.on('exit', (code, signal) => this.onExit(slot, code, signal));
    return new Promise((resolve, reject) => {
      worker.once('listening', (addr) => {
        this.address ??= { address: addr.address ?? this.config.host, port: addr.port };
        this.slots.set(index, slot);
        this.log.info({ worker: worker.id, workerPid: worker.process.pid, slot: index }, 'worker listening');
        resolve(worker);
      });
      worker.once('exit', () => reject(new Error(`worker ${worker.id} exited before listening`)));
    });
  }

  private onExit(slot: Slot, code: number | null, signal: string | null): void {
    const { worker } = slot;
    if (this.retiring.delete(worker) || this.stopping) return;
    if (this.slots.get(slot.index)?.worker !== worker) return;
    const young = Date.now() - slot.startedAt < STABLE_AFTER_MS;
    const crashes = young ? slot.crashes + 1 : 1;
    const delay = respawnDelay(crashes);
    this.log.error(
      { worker: worker.id, workerPid: worker.process.pid, code, signal, respawnInMs: delay },
      'worker died',
    );
    setTimeout(() => {
      if (this.stopping || this.slots.get(slot.index)?.worker !== worker) return;
      this.spawn(slot.index, crashes).catch((err) => this.log.error({ err: err.message }, 'respawn failed'));
    }, delay).unref();
  }

  /**
   * The cache manager's figures for the whole cluster: every live worker's counters, gathered for the worker
   * that serves the report. A worker that does not answer within a second is left out.
   */
  private async collectStats(asker: Worker, askerId: number): Promise<void> {
    const id = ++this.statsSeq;
    const replies: WorkerStats[] = [];
    this.pendingStats.set(id, replies);
    const live = [...this.slots.values()].filter((s) => !s.worker.isDead()).length;
    this.broadcast({ type: 'stats-request', id });
    const until = Date.now() + 1000;
    while (replies.length < live && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    this.pendingStats.delete(id);
    const stats: ClusterStats = { startedAt: this.startedAt, now: Date.now(), workers: replies };
    try {
      asker.send({ type: 'mgr-reply', id: askerId, stats } satisfies PrimaryMessage);
    } catch {
      // The asking worker is gone; so is its client.
    }
  }

  /** Sends a message to every live worker. */
  broadcast(m: PrimaryMessage): void {
    for (const slot of this.slots.values()) {
      try {
        if (!slot.worker.isDead()) slot.worker.send(m);
      } catch {
        // A worker exiting meanwhile is replaced and opens its files anew.
      }
    }
  }

  private retire(worker: Worker, deadlineMs: number): Promise<void> {
    this.retiring.add(worker);
    return new Promise((resolve) => {
      if (worker.isDead()) return resolve();
      worker.once('exit', () => resolve());
      const m: PrimaryMessage = { type: 'shutdown', deadlineMs };
      try {
        worker.send(m);
      } catch {
        worker.process.kill('SIGKILL');
      }
      // The worker enforces the deadline itself; this is the backstop for one that hangs.
      setTimeout(() => worker.process.kill('SIGKILL'), deadlineMs + 5_000).unref();
    });
  }

  /** Replaces the workers one at a time; each new one listens before its predecessor drains. */
  reload(config: Config): Promise<void> {
    if (this.reloading) return this.reloading;
    const prev = this.config;
    if (config.host !== prev.host || config.port !== prev.port) {
      this.log.warn('host and port changes take effect on restart; keeping the current listener');
      config = { ...config, host: prev.host, port: prev.port };
    }
    this.config = config;
    this.reloading = (async () => {
      const count = Math.max(config.workers, prev.workers);
      for (let i = 0; i < count; i++) {
        if (this.stopping) return;
        const old = this.slots.get(i);
        if (i < config.workers) {
          try {
            await this.spawn(i, 0);
          } catch (err) {
            this.log.error(
              { err: (err as Error).message, slot: i },
              'reload: new worker failed; keeping the old one',
            );
            if (old) this.slots.set(i, old);
            continue;
          }
        } else {
          this.slots.delete(i);
        }
        if (old) void this.retire(old.worker, prev.timeouts.shutdown);
      }
      this.log.info({ workers: config.workers }, 'reload complete');
    })().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  /** Graceful stop: every worker stops accepting and finishes in-flight work until the deadline. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    await Promise.all(workers.map((w) => this.retire(w, this.config.timeouts.shutdown)));
  }
}
