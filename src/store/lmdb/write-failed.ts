import type { Logger } from '../../shared/logger.js';
import { silenceCommitError } from './layout.js';

export type WriteFailed = (err: unknown) => void;

/** A failed write (disk full, map full) costs that entry only; it is logged at most once a minute. */
export function writeFailureReporter(log: Logger, counted?: () => void): WriteFailed {
  let last = 0;
  return (err) => {
    silenceCommitError(err);
    counted?.();
    const now = Date.now();
    if (now - last > 60_000) {
      last = now;
      log.error({ err: (err as Error).message }, 'cache write failed: the response is served but not stored');
    }
  };
}
