/**
 * A worker's side of the primary's fill registry (main/fill-registry.ts): claims over cluster IPC, the
 * leader's progress out, the relayed progress of other workers' fills in. Only requests that need the
 * origin come here; a hit never does.
 */
import type { Claim, FillEvent, FillRegistry } from '../cache/collapse.js';
import type { PrimaryMessage, WorkerMessage } from '../shared/messages.js';

/** A claim the primary has not answered by then is given up: the request fetches on its own. */
const CLAIM_TIMEOUT_MS = 2_000;

export class ClusterFillClient implements FillRegistry {
  private seq = 0;
  private readonly pending = new Map<number, { done: (c: Claim) => void; timer: NodeJS.Timeout }>();
  private handler: (key: string, ev: FillEvent) => void = () => {};

  constructor() {
    process.on('message', (m: PrimaryMessage) => {
      if (m.type === 'fill-claim-reply') {
        const p = this.pending.get(m.id);
        if (p === undefined) return;
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        // Synchronously: the primary's next message may be an event of this very fill.
        p.done(m.claim);
      } else if (m.type === 'fill-event') this.handler(m.key, m.ev);
    });
  }

  /** No answer from the primary: fetch rather than wait (collapsing saves fetches, it must never stall). */
  claim(key: string, seen: number | null, done: (c: Claim) => void): void {
    const id = ++this.seq;
    const timer = setTimeout(() => {
      this.pending.delete(id);
      done({ role: 'pass' });
    }, CLAIM_TIMEOUT_MS);
    timer.unref();
    this.pending.set(id, { done, timer });
    if (!this.send({ type: 'fill-claim', id, key, seen })) {
      this.pending.delete(id);
      clearTimeout(timer);
      done({ role: 'pass' });
    }
  }

  publish(key: string, ev: FillEvent): void {
    this.send({ type: 'fill-event', key, ev });
  }

  listen(handler: (key: string, ev: FillEvent) => void): void {
    this.handler = handler;
  }

  private send(m: WorkerMessage): boolean {
    if (!process.connected || process.send === undefined) return false;
    try {
      process.send(m);
      return true;
    } catch {
      return false;
    }
  }
}
