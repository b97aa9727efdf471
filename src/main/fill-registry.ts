/**
 * Collapsed forwarding across workers (DESIGN.md: the primary's in-flight registry): who fetches which key
 * right now, which workers wait for it, and what the fetch has published so far, so that a worker joining
 * late starts from the first byte. The bytes themselves never pass through here: waiters read the chunks the
 * leader committed to the shared store. A worker that dies ends the fills it led ("leader gone"), and its
 * waiters claim the fetch again at once.
 */
import type { Worker } from 'node:cluster';
import type { Claim, FillEvent, FillHead } from '../cache/collapse.js';
import type { PrimaryMessage } from '../shared/messages.js';

interface Fill {
  leader: Worker;
  waiters: Set<Worker>;
  head: FillHead | null;
  chunks: number;
}

/** Hit-for-miss and recently-stored marks kept at most (oldest first out; they expire in that order). */
const MAX_MARKS = 10_000;
/**
 * How long a store is "recent": a worker's LMDB read snapshot is renewed at least every 100 ms, so a claim
 * within this window from a request that saw an older response comes from a snapshot before the commit.
 */
const RECENT_MS = 2_000;

export class FillRegistry {
  private readonly fills = new Map<string, Fill>();
  /** Keys whose response was not storable, and until when (ms) they are fetched without queueing. */
  private readonly passing = new Map<string, number>();
  /** Keys stored by a fill lately: when (ms), and the stored response's responseTime. */
  private readonly stored = new Map<string, { at: number; responseTime: number }>();

  constructor(private readonly hitForMissMs: number) {}

  /** A worker asks to fetch `key`. */
  claim(worker: Worker, id: number, key: string, seen: number | null): void {
    send(worker, { type: 'fill-claim-reply', id, claim: this.decide(worker, key, seen) });
  }

  private decide(worker: Worker, key: string, seen: number | null): Claim {
    const last = this.stored.get(key);
    if (last !== undefined && seen !== null && seen < last.responseTime && Date.now() - last.at < RECENT_MS)
      return { role: 'stored' };
    const until = this.passing.get(key);
    if (until !== undefined) {
      if (until > Date.now()) return { role: 'pass' };
      this.passing.delete(key);
    }
    const fill = this.fills.get(key);
    if (fill === undefined || fill.leader.isDead()) {
      this.fills.set(key, { leader: worker, waiters: new Set(), head: null, chunks: 0 });
      return { role: 'lead' };
    }
    // The leader's own later requests join it locally and never ask; this is another worker.
    if (fill.leader === worker) return { role: 'lead' };
    if (fill.waiters.size === 0) send(fill.leader, { type: 'fill-event', key, ev: { kind: 'followed' } });
    fill.waiters.add(worker);
    return { role: 'wait', head: fill.head, chunks: fill.chunks };
  }

  /** The leader of `key` published progress: kept for late joiners, relayed to the waiting workers. */
  event(worker: Worker, key: string, ev: FillEvent): void {
    const fill = this.fills.get(key);
    if (fill === undefined || fill.leader !== worker) return;
    if (ev.kind === 'head') fill.head = ev.head;
    else if (ev.kind === 'chunk') fill.chunks = Math.max(fill.chunks, ev.n + 1);
    else if (ev.kind === 'end') {
      this.fills.delete(key);
      if (ev.end.result === 'not-storable') this.markPassing(key);
      else if (ev.end.result === 'stored' && ev.end.responseTime !== undefined)
        this.mark(
          this.stored,
          key,
          { at: Date.now(), responseTime: ev.end.responseTime },
          (v) => v.at + RECENT_MS,
        );
    }
    for (const w of fill.waiters) send(w, { type: 'fill-event', key, ev });
  }

  /** A worker is gone: the fills it led end for their waiters, who claim again; it waits for nothing. */
  exited(worker: Worker): void {
    for (const [key, fill] of this.fills) {
      fill.waiters.delete(worker);
      if (fill.leader !== worker) continue;
      this.fills.delete(key);
      const ev: FillEvent = { kind: 'end', end: { result: 'failed', error: null, leaderGone: true } };
      for (const w of fill.waiters) send(w, { type: 'fill-event', key, ev });
    }
  }

  /** Fills under way, for tests and the manager. */
  get size(): number {
    return this.fills.size;
  }

  private markPassing(key: string): void {
    if (this.hitForMissMs <= 0) return;
    this.mark(this.passing, key, Date.now() + this.hitForMissMs, (until) => until);
  }

  /** Sets a mark (newest last) and drops the oldest ones once expired or too many. */
  private mark<V>(marks: Map<string, V>, key: string, value: V, expires: (v: V) => number): void {
    marks.delete(key);
    marks.set(key, value);
    const now = Date.now();
    for (const [k, v] of marks) {
      if (marks.size <= MAX_MARKS && expires(v) > now) break;
      marks.delete(k);
    }
  }
}

function send(worker: Worker, m: PrimaryMessage): void {
  try {
    if (!worker.isDead()) worker.send(m);
  } catch {
    // Its channel just closed: its exit ends what it led.
  }
}
