import pino from 'pino';

export type Logger = pino.Logger;

/** Operational log (not the access log): JSON lines on stderr, written synchronously so a crash keeps its last words. */
export function createLogger(level: string, bindings: Record<string, unknown>): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings } }, pino.destination({ fd: 2, sync: true }));
}
