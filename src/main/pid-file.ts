/**
 * The pid file and `cuttle -k`, as `squid -k` finds the running instance: through pid_filename.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

export const K_SIGNALS = {
  reconfigure: 'SIGHUP',
  rotate: 'SIGUSR1',
  shutdown: 'SIGTERM',
  interrupt: 'SIGINT',
  check: 0,
} as const;
export type KCommand = keyof typeof K_SIGNALS;

export function writePidFile(path: string): void {
  writeFileSync(path, `${process.pid}\n`);
}

/** Removes the pid file if it is still ours (a newer instance may have replaced it). */
export function removePidFile(path: string): void {
  try {
    if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path);
  } catch {
    // Already gone.
  }
}

/** Sends the command's signal to the instance named by the pid file; returns what to print and the exit code. */
export function signalInstance(path: string, command: KCommand): { message: string; code: number } {
  let pid: number;
  try {
    pid = Number(readFileSync(path, 'utf8').trim());
  } catch (err) {
    return {
      message: `no running cuttle: cannot read pid file ${path} (${(err as NodeJS.ErrnoException).code})`,
      code: 1,
    };
  }
  if (!Number.isInteger(pid) || pid <= 0) return { message: `pid file ${path} holds no process id`, code: 1 };
  try {
    process.kill(pid, K_SIGNALS[command]);
  } catch {
    return { message: `no running cuttle: process ${pid} from ${path} is gone`, code: 1 };
  }
  const signal = K_SIGNALS[command];
  return { message: signal ? `sent ${signal} to cuttle ${pid}` : `cuttle ${pid} is running`, code: 0 };
}
