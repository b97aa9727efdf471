/**
 * The sinks an upstream body or a stored body is written to (undici's handler composition, in small):
 * the client's ServerResponse, a tee into the store in front of another sink, or nothing.
 */
import type { ServerResponse } from 'node:http';
import type { BodySink, BodyWriter } from '../store/store.js';

/** The client. A body cut short cuts the connection: a short body is never passed off as whole. */
export class ClientSink implements BodySink {
  constructor(private readonly res: ServerResponse) {}

  write(chunk: Buffer, resume: () => void): boolean {
    // A client that left takes nothing more; a fetch that goes on for collapsed waiters must not stall on it.
    if (this.res.destroyed) return true;
    if (this.res.write(chunk)) return true;
    this.res.once('drain', resume);
    return false;
  }

  end(last?: Buffer): void {
    if (!this.res.destroyed) this.res.end(last);
  }

  abort(): void {
    this.res.destroy();
  }

  onGone(gone: () => void): void {
    this.res.once('close', gone);
  }
}

/** Discards the body: a background revalidation's, or one whose answer was made from the store. */
export const NULL_SINK: BodySink = {
  write: () => true,
  end: () => {},
  abort: () => {},
  onGone: () => {},
};

/**
 * How a copy into the store ended: committed, or abandoned (with the reason when the body did not arrive
 * whole, null when the store refused it). Collapsed waiters go on from there.
 */
export type Settled = (stored: boolean, cut: string | null) => void;

/**
 * Copies the body into the store's writer on its way to `next`; `commit` runs once it ended whole, and
 * `settled` once the copy is committed or abandoned.
 */
export class TeeSink implements BodySink {
  constructor(
    private readonly writer: BodyWriter,
    private readonly next: BodySink,
    private readonly commit: () => Promise<boolean>,
    private readonly settled: Settled,
  ) {}

  write(chunk: Buffer, resume: () => void): boolean {
    this.writer.write(chunk);
    return this.next.write(chunk, resume);
  }

  end(last?: Buffer): void {
    if (last) this.writer.write(last);
    this.next.end(last);
    this.commit().then(
      (stored) => this.settled(stored, null),
      () => this.settled(false, null),
    );
  }

  abort(reason: string): void {
    // An incomplete body is never stored.
    this.writer.fail(reason);
    this.next.abort(reason);
    this.settled(false, reason);
  }

  onGone(gone: () => void): void {
    this.next.onGone(gone);
  }
}
