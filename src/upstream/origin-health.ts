/**
 * Which origins this worker cannot reach: the first failed connection to an origin marks it failing and
 * logs one line an operator can act on; the first connection that succeeds again logs its recovery.
 * Requests are never refused on this account: the mark is for the operator, not a circuit breaker.
 */
import type { Logger } from '../shared/logger.js';

export class OriginHealth {
  private readonly failing = new Map<string, string>();

  constructor(private readonly log: Logger) {}

  connected(origin: string): void {
    if (this.failing.size === 0 || !this.failing.delete(origin)) return;
    this.log.info({ origin }, 'upstream recovered: connections succeed again');
  }

  connectFailed(origin: string, err: Error & { code?: string }): void {
    if (this.failing.has(origin)) return;
    const error = err.code ?? err.message;
    this.failing.set(origin, error);
    this.log.warn({ origin, error }, 'upstream marked failing: cannot connect');
  }
}
