/**
 * Debian's chromium for the browser tests (playwright-core drives it; no browser is ever downloaded).
 * CHROMIUM=/path picks another binary; without one the tests skip, saying why.
 */
import { existsSync } from 'node:fs';

export const CHROMIUM = [
  process.env.CHROMIUM,
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
]
  .filter((p): p is string => Boolean(p))
  .find((p) => existsSync(p));

/** node:test's `skip` option: false when Chromium is there, else the reason. */
export const SKIP_WITHOUT_CHROMIUM: string | false = CHROMIUM
  ? false
  : 'no Chromium found: apt-get install chromium (or set CHROMIUM=/path)';
