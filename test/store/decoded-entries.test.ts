/** The worker's decoded-entry memo over real LMDB files: never an old version, whatever it holds. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DecodedEntries } from '../../src/store/lmdb/decoded-entries.js';
import { openCacheEnv } from '../../src/store/lmdb/layout.js';
import type { StoredEntry, VaryIndex } from '../../src/store/store.js';

const vary = (variants: string[]): VaryIndex => ({ kind: 'vary', names: ['accept'], variants });

describe('decoded entries (lmdb)', () => {
  const env = openCacheEnv(mkdtempSync(join(tmpdir(), 'cuttle-decoded-')), 0);
  const fresh = () => env.root.resetReadTxn();

  it('returns the stored record, and the new one as soon as it is replaced or removed', async () => {
    const memo = new DecodedEntries(env.entries);
    await env.entries.put('k', vary(['a']));
    fresh();
    assert.deepEqual(memo.get('k'), vary(['a']));
    assert.equal(memo.get('k'), memo.get('k'), 'the same decoded object while the bytes are unchanged');
    // Same length, other bytes: what a 304 update written by another worker looks like.
    await env.entries.put('k', vary(['b']));
    fresh();
    assert.deepEqual(memo.get('k'), vary(['b']));
    await env.entries.remove('k');
    fresh();
    assert.equal(memo.get('k'), undefined);
  });

  it('stays right past its bounds, and reads records too large to keep', async () => {
    const memo = new DecodedEntries(env.entries, 2, 64 * 1024);
    for (const k of ['x', 'y', 'z']) await env.entries.put(k, vary([k]));
    const big = { kind: 'entry', url: 'big', body: Buffer.alloc(8 * 1024, 7) } as unknown as StoredEntry;
    await env.entries.put('big', big);
    fresh();
    for (let round = 0; round < 3; round++)
      for (const k of ['x', 'y', 'z']) assert.deepEqual(memo.get(k), vary([k]));
    assert.deepEqual((memo.get('big') as StoredEntry).body, big.body);
  });
});
