/**
 * Peer health, per worker process. Each worker sees its own connect failures at once, so it needs no
 * message to stop using a dead peer; sharing the state through the primary would add an IPC round trip to
 * the failure path and a second source of truth, for the gain of marking a peer down a few requests
 * sooner in the other workers (each counts up to connect-fail-limit itself, Squid's per-process rule too).
 *
 * As Squid's neighbors.cc (peerConnectFailed / peerConnectSucceded): consecutive connect failures are
 * counted, the peer is down once they reach connect-fail-limit, and any successful connect resets the
 * count. A down peer is probed every monitorinterval (a TCP connect, or a HEAD of monitorurl) and is up
 * again after the first success.
 */
import { connect } from 'node:net';
import type { Logger } from '../shared/logger.js';
import type { PeerConfig } from './peers.js';

export interface PeerCounters {
  /** Requests sent to the peer (Squid's server_list FETCHES). */
  fetches: number;
  /** Connections that failed or timed out. */
  connectFailures: number;
  /** Consecutive failures since the last success. */
  failuresInRow: number;
  up: boolean;
  /** When the peer was last marked down or up, ms since the epoch. */
  changed: number;
}

export type PeerEvent = (index: number, up: boolean) => void;

export class PeerHealth {
  readonly counters: PeerCounters[];
  private readonly timers = new Map<number, NodeJS.Timeout>();

  constructor(
    private readonly peers: readonly PeerConfig[],
    private readonly log: Logger,
    private readonly onChange: PeerEvent = () => {},
    /** The probe: resolves true when the peer answers (tests may replace it). */
    private readonly probe: (p: PeerConfig, timeoutMs: number) => Promise<boolean> = probePeer,
    private readonly connectTimeout = 5000,
  ) {
    this.counters = peers.map(() => ({
      fetches: 0,
      connectFailures: 0,
      failuresInRow: 0,
      up: true,
      changed: Date.now(),
    }));
  }

  isUp(i: number): boolean {
    return this.counters[i].up;
  }

  fetched(i: number): void {
    this.counters[i].fetches++;
  }

  connected(i: number): void {
    const c = this.counters[i];
    c.failuresInRow = 0;
    if (!c.up) this.mark(i, true, 'peer answered: up');
  }

  connectFailed(i: number, why: string): void {
    const c = this.counters[i];
    c.connectFailures++;
    c.failuresInRow++;
    if (c.up && c.failuresInRow >= this.peers[i].connectFailLimit) {
      this.mark(i, false, `peer down after ${c.failuresInRow} connect failures (${why})`);
      this.schedule(i);
    }
  }

  private mark(i: number, up: boolean, msg: string): void {
    const c = this.counters[i];
    c.up = up;
    c.changed = Date.now();
    if (up) c.failuresInRow = 0;
    const p = this.peers[i];
    this.log.warn({ peer: p.name, host: p.host, port: p.port }, msg);
    this.onChange(i, up);
  }

  private schedule(i: number): void {
    if (this.timers.has(i)) return;
    const p = this.peers[i];
    const t = setTimeout(() => {
      this.timers.delete(i);
      if (this.counters[i].up) return;
      void this.probe(p, p.connectTimeout ?? this.connectTimeout).then((ok) => {
        if (this.counters[i].up) return;
        if (ok) this.mark(i, true, 'probe answered: peer up');
        else this.schedule(i);
      });
    }, p.monitorInterval);
    // Probes never keep a draining worker alive.
    t.unref();
    this.timers.set(i, t);
  }

  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

/** A TCP connect to the peer's port, or, with monitorurl, a HEAD answered with any status below 500. */
export async function probePeer(p: PeerConfig, timeoutMs: number): Promise<boolean> {
  if (p.monitorUrl !== null) {
    try {
      const res = await fetch(p.monitorUrl, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs) });
      return res.status < 500;
    } catch {
      return false;
    }
  }
  return new Promise((resolve) => {
    const s = connect({ host: p.host, port: p.port, timeout: timeoutMs });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('timeout', () => done(false));
    s.once('error', () => done(false));
  });
}
