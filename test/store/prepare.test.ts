/**
 * Regressions: two workers creating LMDB's named databases at once in a fresh cache dir died with
 * `MDB_PROBLEM: mdb_page_touch no parent` (a CI run), and one of six processes opening a prepared
 * environment at once, with nobody holding it open, exited with EINVAL (another CI run, Node 22). The
 * primary now creates the databases first and keeps the environment open; then any number of processes
 * open it at the same moment.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { prepareCacheEnv } from '../../src/store/lmdb/layout.js';
import { runModule, startCuttle } from '../helpers/cuttle.js';

const LAYOUT = new URL('../../src/store/lmdb/layout.js', import.meta.url).href;

/** The child's exit code, or its code and stderr when it failed. */
async function openIn(dir: string): Promise<number | null | string> {
  const r = await runModule(`const { openCacheEnv } = await import(${JSON.stringify(LAYOUT)});
const env = openCacheEnv(${JSON.stringify(dir)}, 0);
env.entries.get('x');
await env.root.close();`);
  return r.code === 0 ? 0 : `exit ${r.code}: ${r.stderr.trim()}`;
}

describe('a fresh cache dir', () => {
  it('opens in many processes at once once the primary has prepared it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-prepare-'));
    const held = prepareCacheEnv(dir, 0);
    try {
      // Several rounds: with the environment not held, about one round in ten had an opener fail.
      for (let round = 0; round < 10; round++) {
        const codes = await Promise.all(Array.from({ length: 6 }, () => openIn(dir)));
        assert.deepEqual(codes, [0, 0, 0, 0, 0, 0], `round ${round}`);
      }
    } finally {
      await held.root.close();
    }
  });

  it('starts a four-worker cluster on a fresh cache dir, every worker listening', async () => {
    const c = await startCuttle({ workers: 4 });
    try {
      const listening = c.logs().filter((l) => l.msg === 'worker listening').length;
      assert.ok(listening >= 1);
      assert.ok(!c.stderr.some((l) => l.includes('MDB_PROBLEM')), c.stderr.join('\n'));
    } finally {
      await c.stop();
    }
  });
});
