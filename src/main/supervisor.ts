/**
 * The primary's job: keep N workers serving on one listening socket (node:cluster round-robin), replace the
 * ones that die, roll them on reload, and stop them gracefully.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Config } from '../config/config.js';
import type { Logger } from '../shared/logger.js';
import type { Listeners, PrimaryMessage, PrimaryPage, WorkerMessage } from '../shared/messages.js';
import type { ClusterStats, WorkerStats } from '../stats/counters.js';
import type { TlsMaterial } from '../tls/certificates.js';
import { ClusterMetrics } from './cluster-metrics.js';
import { DashboardHistory, type WorkerState } from './dashboard-stats.js';
import { FillRegistry } from './fill-registry.js';

interface Slot {
  index: number;
  worker: Worker;
  startedAt: number;
  /** Crashes in a row of workers that died young; drives the respawn backoff. */
  crashes: number;
  /** The error the worker reported as it died, for the crash line. */
  lastError: string | null;
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
  /** The plain listener's address, and the HTTPS one's, once a worker listens (null when there is none). */
  address: { address: string; port: number } | null = null;
  httpsAddress: { address: string; port: number } | null = null;
  h2cAddress: { address: string; port: number } | null = null;
  /** The HTTPS listener's certificates and ticket keys, sent to each worker as it starts. */
  private tls: TlsMaterial | null = null;
  /** Workers that listen (serving or draining): the ones a scrape asks. */
  private readonly listening = new Set<Worker>();
  /** Per slot: workers that died unasked and were replaced. */
  private readonly restarts = new Map<number, number>();
  /** Prometheus metrics over every worker; null with `metrics: false`. */
  readonly metrics: ClusterMetrics | null;
  private readonly dashboard = new DashboardHistory(this.startedAt);
  /** Collapsed forwarding across workers: who fetches what right now. */
  private readonly fills: FillRegistry;

  constructor(
    private config: Config,
    private readonly log: Logger,
    private readonly onFatal: (message: string) => void,
  ) {
    this.fills = new FillRegistry(config.hitForMiss);
    this.metrics = config.metrics
      ? new ClusterMetrics(
          () => [...this.listening].filter((w) => w.isConnected()),
          () => this.config.cacheSize,
        )
      : null;
  }

  /** Forks every worker and resolves once all listen. */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.config.workers }, (_, i) => this.spawn(i, 0)));
  }

  /** New certificates: every live worker swaps them in place, and new workers start with them. */
  setTls(material: TlsMaterial): void {
    const first = this.tls === null;
    this.tls = material;
    if (!first) this.broadcast({ type: 'tls', material });
  }

  private spawn(index: number, crashes: number): Promise<Worker> {
    const worker = cluster.fork({ CUTTLE_CONFIG: JSON.stringify(this.config) });
    const slot: Slot = { index, worker, startedAt: Date.now(), crashes, lastError: null };
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'listen-error') this.onFatal(m.message);
      else if (m.type === 'listening') onListening(m.listeners);
      else if (m.type === 'tls-request' && this.tls) this.sendTo(worker, { type: 'tls', material: this.tls });
      else if (m.type === 'mgr-request') void this.collectStats(worker, m.id);
      else if (m.type === 'stats') this.pendingStats.get(m.id)?.push(m.stats);
      else if (m.type === 'metrics') this.metrics?.received(worker, m.id, m.report);
      else if (m.type === 'page-request') void this.answerPage(worker, m.id, m.page);
      else if (m.type === 'fatal') slot.lastError = m.message;
      else if (m.type === 'fill-claim') this.fills.claim(worker, m.id, m.key, m.seen);
      else if (m.type === 'fill-event') this.fills.event(worker, m.key, m.ev);
    });
    worker.on('exit', (code, signal) => this.onExit(slot, code, signal));
    // A send to a worker whose channel just closed fails asynchronously, as an 'error' event that would
    // otherwise take the primary down; the worker's exit is handled by onExit.
    worker.on('error', (err) => this.log.debug({ worker: worker.id, err: err.message }, 'worker IPC error'));
    let onListening: (l: Listeners) => void = () => {};
    return new Promise((resolve, reject) => {
      onListening = (l) => {
        // Every worker listens on the same ports (cluster shares each listening socket): the first says where.
        this.address ??= l.plain ?? null;
        this.httpsAddress ??= l.https ?? null;
        this.h2cAddress ??= l.h2c ?? null;
        this.slots.set(index, slot);
        this.listening.add(worker);
        this.log.info({ worker: worker.id, workerPid: worker.process.pid, slot: index }, 'worker listening');
        resolve(worker);
      };
      worker.once('exit', () => reject(new Error(`worker ${worker.id} exited before listening`)));
    });
  }

  private onExit(slot: Slot, code: number | null, signal: string | null): void {
    const { worker } = slot;
    this.listening.delete(worker);
    this.fills.exited(worker);
    this.metrics?.exited(worker);
    if (this.retiring.delete(worker) || this.stopping) return;
    if (this.slots.get(slot.index)?.worker !== worker) return;
    const young = Date.now() - slot.startedAt < STABLE_AFTER_MS;
    const crashes = young ? slot.crashes + 1 : 1;
    const delay = respawnDelay(crashes);
    this.restarts.set(slot.index, (this.restarts.get(slot.index) ?? 0) + 1);
    this.metrics?.workerRestarted();
    this.log.error(
      {
        worker: worker.id,
        workerPid: worker.process.pid,
        code,
        signal,
        lastError: slot.lastError,
        respawnInMs: delay,
      },
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

  /** What each slot's worker is doing, and the workers still draining after a reload. */
  workerStates(): WorkerState[] {
    const out: WorkerState[] = [];
    for (const { index, worker, startedAt } of [...this.slots.values()].sort((a, b) => a.index - b.index)) {
      out.push({
        slot: index,
        pid: worker.process.pid,
        state: worker.isDead() ? 'down' : 'serving',
        restarts: this.restarts.get(index) ?? 0,
        startedAt,
      });
    }
    for (const w of this.retiring)
      if (!w.isDead())
        out.push({ slot: -1, pid: w.process.pid, state: 'draining', restarts: 0, startedAt: this.startedAt });
    return out;
  }

  /** The primary's pages (/metrics, stats.json), answered to the worker a client asked. */
  async page(page: PrimaryPage): Promise<{ status: number; contentType: string; body: string }> {
    if (!this.metrics)
      return {
        status: 404,
        contentType: 'text/plain; charset=utf-8',
        body: 'metrics are off (--metrics off, or "metrics": false in the config)\n',
      };
    const snap = await this.metrics.collect();
    if (page === 'metrics')
      return { status: 200, contentType: snap.registry.contentType, body: await snap.registry.metrics() };
    const stats = this.dashboard.build(snap.metrics, {
      now: Date.now(),
      workers: this.workerStates(),
      cacheBound: this.config.cacheSize,
      top: snap.top,
    });
    return { status: 200, contentType: 'application/json', body: JSON.stringify(stats) };
  }

  private async answerPage(asker: Worker, id: number, page: PrimaryPage): Promise<void> {
    let reply: PrimaryMessage;
    try {
      reply = { type: 'page-reply', id, ...(await this.page(page)) };
    } catch (err) {
      reply = {
        type: 'page-reply',
        id,
        status: 500,
        contentType: 'text/plain',
        body: `${(err as Error).message}\n`,
      };
    }
    try {
      asker.send(reply);
    } catch {
      // The asking worker is gone; so is its client.
    }
  }

  private sendTo(worker: Worker, m: PrimaryMessage): void {
    try {
      worker.send(m);
    } catch {
      // The worker is gone; its replacement asks again.
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
    const { host, port, httpsPort, h2cPort } = prev;
    if (
      config.host !== host ||
      config.port !== port ||
      config.httpsPort !== httpsPort ||
      config.h2cPort !== h2cPort
    ) {
      this.log.warn('host and port changes take effect on restart; keeping the current listeners');
      config = { ...config, host, port, httpsPort, h2cPort };
    }
    this.config = config;
    this.metrics?.reloaded(Date.now());
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
