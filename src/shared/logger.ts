import pino from 'pino';
import pretty from 'pino-pretty';

export type Logger = pino.Logger;

/**
 * Operational log (not the access log) on stderr, written synchronously so a crash keeps its last words:
 * JSON lines for collectors, or pino-pretty's coloured lines for a person at a terminal.
 */
export function createLogger(
  level: string,
  bindings: Record<string, unknown>,
  format: 'json' | 'pretty' | null = 'json',
): Logger {
  const opts = { level, base: { pid: process.pid, ...bindings } };
  if (format === 'pretty') return pino(opts, pretty({ destination: 2, sync: true, colorize: true }));
  return pino(opts, pino.destination({ fd: 2, sync: true }));
}

/** --log-format's default: pretty when a person reads stderr, JSON when a program does. */
export function defaultLogFormat(): 'json' | 'pretty' {
  return process.stderr.isTTY ? 'pretty' : 'json';
}
