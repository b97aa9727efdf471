/**
 * A transaction's end: once the response is done (or the tunnel closed), every finish observer renders it:
 * the counters always, the access log when one is kept.
 */
import type { ServerResponse } from 'node:http';
import type { FinishObserver, Transaction } from './transaction.js';

export class Finish {
  constructor(private readonly observers: FinishObserver[]) {}

  /** Finishes `txn` when its response closes. */
  track(txn: Transaction, res: ServerResponse): void {
    res.once('close', () => this.done(txn, res.writableFinished));
  }

  /** `complete`: the whole response went out (otherwise Squid's `_ABORTED`). */
  done(txn: Transaction, complete: boolean): void {
    const end = Date.now();
    const bytes = txn.socket.bytesWritten - txn.bytesBefore;
    for (const o of this.observers) o(txn, end, bytes, complete);
  }
}
