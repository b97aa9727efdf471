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
    if (this.res.write(chunk)) return true;
    this.res.once('drain', resume);
    return false;
  }

  end(last?: Buffer): void {
    this.res.end(last);
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
 * Copies the body into the store's writer on its way to `next`; `commit` runs once it ended whole, and
 * `settled` once the copy is committed or abandoned (collapsed waiters go then).
 */
export class TeeSink implements BodySink {
  constructor(
    private readonly writer: BodyWriter,
    private readonly next: BodySink,
    private readonly commit: () => Promise<unknown>,
    private readonly settled: () => void,
  ) {}

  write(chunk: Buffer, resume: () => void): boolean {
    this.writer.write(chunk);
    return this.next.write(chunk, resume);
  }

  end(last?: Buffer): void {
    if (last) this.writer.write(last);
    this.next.end(last);
    void this.commit().finally(this.settled);
  }

  abort(reason: string): void {
    // An incomplete body is never stored.
    this.writer.fail(reason);
    this.next.abort(reason);
    this.settled();
  }

  onGone(gone: () => void): void {
    this.next.onGone(gone);
  }
}
