/**
 * The sweep task in this process, over a real LMDB environment in a temp dir: partial entries (stored 206
 * pieces, each its own body) count towards the size bound, their chunks are never taken for orphans, and
 * eviction removes them whole, with their tags.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { combinePiece } from '../../src/cache/partial-ranges.js';
import sweep from '../../src/main/sweep-task.js';
import { createLogger } from '../../src/shared/logger.js';
import { type LmdbStore, openLmdbStores } from '../../src/store/lmdb/lmdb-store.js';
import { type PartialEntry, pieceBody, type Stores } from '../../src/store/store.js';
import { entry, put } from '../store/contract.js';

const dir = mkdtempSync(join(tmpdir(), 'cuttle-sweep-'));
const stores: Stores = openLmdbStores(
  dir,
  64 * 1024 ** 2,
  { minUses: 1, windowMs: 1000 },
  createLogger('silent', {}),
);
const store = stores.store as LmdbStore;
after(() => stores.close());

describe('sweep task and partial entries', () => {
  it('keeps the chunks of stored pieces, counts them, and evicts the partial entry whole', async () => {
    const url = 'http://a.test/partial';
    const w = store.writer(300 * 1024);
    w.write(Buffer.alloc(300 * 1024, 1));
    const incoming: PartialEntry = {
      ...entry(url, { tags: ['swept'] }),
      kind: 'partial',
      status: 206,
      size: 1024 * 1024,
      pieces: [{ start: 1000, bodyId: '', size: 0, chunks: 0, body: null }],
    };
    const p = (await store.commitPiece(url, incoming, w, combinePiece)) as PartialEntry;
    assert.equal(p.pieces[0].chunks, 2);
    const job = {
      cacheDir: dir,
      cacheSize: 64 * 1024 ** 2,
      lowWater: 0.9,
      orphansBefore: Date.now() + 60_000,
    };
    const kept = await sweep(job);
    assert.equal(kept.orphanChunks, 0, 'a piece is referenced by its partial entry');
    assert.equal(kept.entries, 1);
    assert.ok(kept.bytes >= 300 * 1024, 'the bytes held count, not the representation length');
    store.env.root.resetReadTxn();
    assert.equal(store.bodyComplete(pieceBody(p, p.pieces[0])), true);
    const evicted = await sweep({ ...job, cacheSize: 1024 });
    assert.equal(evicted.evicted, 1);
    store.env.root.resetReadTxn();
    assert.deepEqual(store.lookup(url, []), { miss: 'uri-miss' });
    assert.equal(store.bodyComplete(pieceBody(p, p.pieces[0])), false, 'its chunks went with it');
    assert.deepEqual([...store.env.tags.getValues('swept')], []);
  });

  it('evicts tagged entries with their tags: a purge by tag afterwards finds nothing', async () => {
    for (let i = 0; i < 3; i++)
      await put(store, `http://a.test/evicted${i}`, Buffer.alloc(100_000, i), null, [], {
        tags: ['evicted-tag'],
      });
    assert.equal([...store.env.tags.getValues('evicted-tag')].length, 3);
    const evicted = await sweep({
      cacheDir: dir,
      cacheSize: 1024,
      lowWater: 0.9,
      orphansBefore: Date.now() + 60_000,
    });
    assert.ok(evicted.evicted >= 3);
    store.env.root.resetReadTxn();
    assert.deepEqual([...store.env.tags.getValues('evicted-tag')], []);
    assert.equal(await store.purge({ tags: ['evicted-tag'] }, false), 0);
  });
});
