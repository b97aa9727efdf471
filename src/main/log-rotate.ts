/**
 * Squid's `-k rotate` for the access log: with logfile_rotate N the file becomes .0 and older ones shift up
 * to .N-1; with 0 nothing is renamed (logrotate has moved the file) and the workers only reopen the path.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';

export function rotateFiles(path: string, keep: number): void {
  if (keep <= 0) return;
  rmSync(`${path}.${keep - 1}`, { force: true });
  for (let i = keep - 1; i > 0; i--)
    if (existsSync(`${path}.${i - 1}`)) renameSync(`${path}.${i - 1}`, `${path}.${i}`);
  if (existsSync(path)) renameSync(path, `${path}.0`);
}
