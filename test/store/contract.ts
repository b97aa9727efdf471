/**
 * The contract every CacheStore keeps (src/store/store.ts), as one suite run against each implementation,
 * as undici runs one suite over its cache stores.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { combinePiece } from '../../src/cache/partial-ranges.js';
import {
  type CacheStore,
  CHUNK_SIZE,
  type PartialEntry,
  pieceBody,
  type StoredEntry,
} from '../../src/store/store.js';

export function entry(url: string, over: Partial<StoredEntry> = {}): StoredEntry {
  return {
    kind: 'entry',
    url,
    status: 200,
    headers: ['Content-Type', 'text/plain'],
    requestTime: 1,
    responseTime: 2,
    initialAge: 0,
    policy: { lifetime: 60, mustRevalidate: false, noCache: false, staleWhileRevalidate: 0, staleIfError: 0 },
    noCacheFields: [],
    etag: '"v1"',
    lastModified: null,
    bodyId: '',
    size: 0,
    chunks: 0,
    body: null,
    ...over,
  };
}

/** Reads a stored body through the store's sink interface, honouring back-pressure now and then. */
export function readAll(store: CacheStore, e: StoredEntry, start = 0, end = e.size - 1): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    store.readBody(e, start, end, {
      write: (chunk, resume) => {
        parts.push(Buffer.from(chunk));
        // Every other chunk, ask for a pause, as a slow client would.
        if (n++ % 2 === 0) return true;
        setImmediate(resume);
        return false;
      },
      end: (last) => {
        if (last) parts.push(Buffer.from(last));
        resolve(Buffer.concat(parts));
      },
      abort: (reason) => reject(new Error(reason)),
      onGone: () => {},
    });
  });
}

export async function put(
  store: CacheStore,
  url: string,
  body: Buffer,
  vary: string[] | null = null,
  req: string[] = [],
  over: Partial<StoredEntry> = {},
) {
  const w = store.writer(64 * 1024 * 1024);
  for (let off = 0; off < body.length; off += 100_000) w.write(body.subarray(off, off + 100_000));
  return store.commit(url, vary, req, entry(url, over), w);
}

/** A 206's piece, bytes `start`.. of a `size`-byte representation, committed through the store. */
async function putPiece(
  store: CacheStore,
  url: string,
  size: number,
  start: number,
  bytes: Buffer,
  over: Partial<StoredEntry> = {},
) {
  const w = store.writer(bytes.length);
  w.write(bytes);
  const incoming: PartialEntry = {
    ...entry(url, over),
    kind: 'partial',
    status: 206,
    size,
    pieces: [{ start, bodyId: '', size: 0, chunks: 0, body: null }],
  };
  return store.commitPiece(url, incoming, w, combinePiece);
}

const body = (n: number, seed = 1) => Buffer.from(Array.from({ length: n }, (_, i) => (i * seed) % 251));

export function storeContract(name: string, open: () => Promise<CacheStore>): void {
  describe(`CacheStore contract: ${name}`, () => {
    const stores: CacheStore[] = [];
    const fresh = async () => {
      const s = await open();
      stores.push(s);
      return s;
    };
    after(async () => {
      for (const s of stores) await s.close();
    });

    it('misses a URL never stored, and nothing is visible before commit', async () => {
      const s = await fresh();
      assert.deepEqual(s.lookup('http://a.test/x', []), { miss: 'uri-miss' });
      const w = s.writer(1024);
      w.write(Buffer.from('partial'));
      assert.deepEqual(s.lookup('http://a.test/x', []), { miss: 'uri-miss' });
    });

    for (const size of [0, 1000, CHUNK_SIZE * 2 + 17]) {
      it(`stores and reads back a ${size}-byte body whole, and any range of it`, async () => {
        const s = await fresh();
        const b = body(size, 7);
        assert.equal(await put(s, 'http://a.test/b', b), true);
        const found = s.lookup('http://a.test/b', []);
        assert.ok('entry' in found);
        const e = found.entry;
        assert.equal(e.size, size);
        assert.equal(s.bodyComplete(e), true);
        assert.deepEqual(await readAll(s, e), b);
        if (size > 10) {
          const start = Math.floor(size / 3);
          const end = Math.min(size - 1, start + CHUNK_SIZE + 5);
          assert.deepEqual(await readAll(s, e, start, end), b.subarray(start, end + 1));
        }
      });
    }

    it('refuses a body its writer failed, and one over the size limit', async () => {
      const s = await fresh();
      const w = s.writer(10);
      w.write(Buffer.alloc(11));
      assert.equal(await s.commit('http://a.test/big', null, [], entry('http://a.test/big'), w), false);
      const w2 = s.writer(100);
      w2.write(Buffer.alloc(5));
      w2.fail('upstream reset');
      assert.equal(await s.commit('http://a.test/cut', null, [], entry('http://a.test/cut'), w2), false);
      assert.deepEqual(s.lookup('http://a.test/big', []), { miss: 'uri-miss' });
      assert.deepEqual(s.lookup('http://a.test/cut', []), { miss: 'uri-miss' });
    });

    it('keeps Vary variants apart (RFC 9111 §4.1) and invalidates them all', async () => {
      const s = await fresh();
      const url = 'http://a.test/v';
      await put(s, url, Buffer.from('english'), ['accept-language'], ['Accept-Language', 'en']);
      await put(s, url, Buffer.from('french'), ['accept-language'], ['Accept-Language', 'fr']);
      const en = s.lookup(url, ['Accept-Language', 'en']);
      const fr = s.lookup(url, ['Accept-Language', 'fr']);
      assert.ok('entry' in en && 'entry' in fr);
      assert.equal((await readAll(s, en.entry)).toString(), 'english');
      assert.equal((await readAll(s, fr.entry)).toString(), 'french');
      assert.deepEqual(s.lookup(url, ['Accept-Language', 'de']), { miss: 'vary-miss' });
      assert.equal(await s.invalidate(url), true);
      assert.deepEqual(s.lookup(url, ['Accept-Language', 'en']), { miss: 'uri-miss' });
      assert.equal(await s.invalidate(url), false);
    });

    it('updates the header section and keeps the body (§3.2), unless the object was replaced', async () => {
      const s = await fresh();
      const url = 'http://a.test/u';
      await put(s, url, Buffer.from('one'));
      const first = s.lookup(url, []);
      assert.ok('entry' in first);
      await s.update(url, { ...first.entry, headers: ['X-Updated', '1'], responseTime: 99 });
      const updated = s.lookup(url, []);
      assert.ok('entry' in updated);
      assert.deepEqual(updated.entry.headers, ['X-Updated', '1']);
      assert.equal((await readAll(s, updated.entry)).toString(), 'one');
      await put(s, url, Buffer.from('two'));
      await s.update(url, { ...first.entry, headers: ['X-Stale-Update', '1'] });
      const replaced = s.lookup(url, []);
      assert.ok('entry' in replaced);
      assert.deepEqual(replaced.entry.headers, ['Content-Type', 'text/plain']);
      assert.equal((await readAll(s, replaced.entry)).toString(), 'two');
    });

    it('purges by tag across variants, by URL, and softly (marked stale, kept)', async () => {
      const s = await fresh();
      const url = 'http://a.test/t';
      const lang = (l: string) => ['Accept-Language', l];
      await put(s, url, Buffer.from('en'), ['accept-language'], lang('en'), { tags: ['product-1', 'all'] });
      await put(s, url, Buffer.from('fr'), ['accept-language'], lang('fr'), { tags: ['product-1', 'all'] });
      await put(s, 'http://a.test/other', Buffer.from('o'), null, [], { tags: ['product-2', 'all'] });
      await put(s, 'http://a.test/untagged', Buffer.from('u'));
      assert.equal(await s.purge({ tags: ['product-1'] }, true), 2);
      const soft = s.lookup(url, lang('en'));
      assert.ok('entry' in soft, 'a soft purge keeps the entry');
      assert.equal(soft.entry.policy.lifetime, 0, 'and makes it stale');
      assert.equal((await readAll(s, soft.entry)).toString(), 'en');
      assert.equal(await s.purge({ tags: ['product-1', 'nothing'] }, false), 2);
      assert.deepEqual(s.lookup(url, lang('fr')), { miss: 'vary-miss' });
      assert.ok('entry' in s.lookup('http://a.test/other', []));
      assert.equal(await s.purge({ urls: ['http://a.test/untagged'] }, false), 1);
      assert.deepEqual(s.lookup('http://a.test/untagged', []), { miss: 'uri-miss' });
      // An entry removed otherwise (invalidation, as eviction does) leaves no tag behind.
      await s.invalidate('http://a.test/other');
      assert.equal(await s.purge({ tags: ['all', 'product-2'] }, false), 0);
    });

    it('keeps a partial entry beside nothing else at its URL, combines matching pieces, reads them back', async () => {
      const s = await fresh();
      const url = 'http://a.test/partial';
      const size = CHUNK_SIZE * 3;
      const all = body(size, 3);
      const first = await putPiece(s, url, size, 0, all.subarray(0, 1000));
      assert.equal(first?.pieces.length, 1);
      const found = s.lookup(url, []);
      assert.ok('miss' in found && found.partial !== undefined, 'a partial entry is a miss that shows it');
      assert.equal(found.partial.size, size);
      const big = await putPiece(s, url, size, 500, all.subarray(500, CHUNK_SIZE + 9000));
      assert.deepEqual(
        big?.pieces.map((p) => [p.start, p.size]),
        [
          [0, 1000],
          [500, CHUNK_SIZE + 8500],
        ],
      );
      const p = big as PartialEntry;
      for (const piece of p.pieces) {
        const e = pieceBody(p, piece);
        assert.equal(s.bodyComplete(e), true);
        assert.deepEqual(await readAll(s, e), all.subarray(piece.start, piece.start + piece.size));
      }
      assert.deepEqual(
        await readAll(s, pieceBody(p, p.pieces[1]), CHUNK_SIZE - 10, CHUNK_SIZE + 10),
        all.subarray(500 + CHUNK_SIZE - 10, 500 + CHUNK_SIZE + 11),
      );
      // A piece covering an older one whole replaces it; its body is removed.
      const old = pieceBody(p, p.pieces[0]);
      const cover = await putPiece(s, url, size, 0, all.subarray(0, 2000));
      assert.deepEqual(
        cover?.pieces.map((x) => x.start),
        [0, 500],
      );
      assert.equal(cover?.pieces[0].size, 2000);
      if (old.chunks > 0) assert.equal(s.bodyComplete(old), false);
    });

    it('replaces a partial entry with another validator, with a complete entry, and completes one with `replaces`', async () => {
      const s = await fresh();
      const url = 'http://a.test/partial2';
      const size = CHUNK_SIZE + 100;
      const all = body(size, 5);
      const a = (await putPiece(s, url, size, 0, all.subarray(0, CHUNK_SIZE + 50))) as PartialEntry;
      const changed = await putPiece(s, url, size, 100, all.subarray(100, 200), { etag: '"v2"' });
      assert.deepEqual(
        changed?.pieces.map((x) => x.start),
        [100],
        'the newer response wins alone',
      );
      assert.equal(s.bodyComplete(pieceBody(a, a.pieces[0])), false, 'the old piece is gone');
      const p = changed as PartialEntry;
      // A completion commits only over the partial entry it read.
      const w = s.writer(size);
      w.write(all);
      assert.equal(await s.commit(url, null, [], entry(url), w, a.bodyId), false);
      const w2 = s.writer(size);
      w2.write(all);
      assert.equal(await s.commit(url, null, [], entry(url), w2, p.bodyId), true);
      const done = s.lookup(url, []);
      assert.ok('entry' in done);
      assert.deepEqual(await readAll(s, done.entry), all);
      // A piece of the same representation adds nothing to a complete entry.
      assert.equal(await putPiece(s, url, size, 0, all.subarray(0, 10)), null);
      assert.ok('entry' in s.lookup(url, []));
    });

    it('purges and invalidates partial entries, by URL and by tag', async () => {
      const s = await fresh();
      const a = 'http://a.test/pa';
      const b = 'http://a.test/pb';
      await putPiece(s, a, 100, 0, body(10), { tags: ['pt'] });
      await putPiece(s, b, 100, 0, body(10), { tags: ['pt'] });
      assert.equal(await s.purge({ tags: ['pt'] }, true), 2);
      const soft = s.lookup(a, []);
      assert.ok('miss' in soft && soft.partial?.policy.lifetime === 0, 'a soft purge makes it stale');
      assert.equal(await s.purge({ urls: [a] }, false), 1);
      assert.deepEqual(s.lookup(a, []), { miss: 'uri-miss' });
      assert.equal(await s.invalidate(b), true);
      assert.deepEqual(s.lookup(b, []), { miss: 'uri-miss' });
      assert.equal(await s.purge({ tags: ['pt'] }, false), 0, 'no tag left behind');
    });

    it('summarises what it holds', async () => {
      const s = await fresh();
      await put(s, 'http://a.test/s1', Buffer.alloc(10));
      await put(s, 'http://a.test/s2', Buffer.alloc(20));
      const sum = s.summary(1);
      assert.equal(sum.objects, 2);
      assert.equal(sum.bytes, 30);
      assert.equal(sum.list.length, 1);
    });
  });
}
