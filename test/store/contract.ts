/**
 * The contract every CacheStore keeps (src/store/store.ts), as one suite run against each implementation,
 * as undici runs one suite over its cache stores.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { type CacheStore, CHUNK_SIZE, type StoredEntry } from '../../src/store/store.js';

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

async function put(
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
