/**
 * Decoded entries kept per worker, so that a hit skips the msgpack decode of its entry (most of a small
 * hit's store cost). Each use compares the stored bytes with the ones decoded: identical bytes are the same
 * record, so another worker's commit, a 304 update or an eviction is seen at once, and no invalidation has
 * to travel between processes. The comparison is a memcmp of the record (metadata, plus an inline body of
 * at most INLINE_MAX), where a decode builds every header string again.
 *
 * Bounded by count and bytes; the oldest decoded goes first.
 */
import type { Database } from 'lmdb';
import type { StoredRecord } from '../store.js';

type Rec = StoredRecord;

export class DecodedEntries {
  private readonly memo = new Map<string, { raw: Buffer; rec: Rec }>();
  private bytes = 0;

  constructor(
    private readonly entries: Database<Rec, string>,
    private readonly maxCount = 4096,
    private readonly maxBytes = 16 * 1024 * 1024,
  ) {}

  /** The record at `key` in the current read snapshot, decoded at most once per version. */
  get(key: string): Rec | undefined {
    // lmdb-js's reusable read buffer: valid until the next read, so compared or copied at once. Its `length`
    // is overridden to the record's size over a larger allocation, so take a view of exactly that.
    const fast = this.entries.getBinaryFast(key) as Buffer | undefined;
    const bin = fast?.subarray(0, fast.length);
    const memo = this.memo.get(key);
    if (bin === undefined) {
      if (memo !== undefined) this.drop(key, memo.raw);
      return undefined;
    }
    if (memo !== undefined) {
      if (memo.raw.equals(bin)) return memo.rec;
      this.drop(key, memo.raw);
    }
    if (bin.length > this.maxBytes >> 4) return this.entries.get(key);
    const raw = Buffer.from(bin);
    const rec = this.entries.get(key);
    if (rec === undefined) return undefined;
    this.memo.set(key, { raw, rec });
    this.bytes += raw.length;
    while (this.memo.size > this.maxCount || this.bytes > this.maxBytes) {
      const [oldest, m] = this.memo.entries().next().value as [string, { raw: Buffer }];
      this.drop(oldest, m.raw);
    }
    return rec;
  }

  private drop(key: string, raw: Buffer): void {
    this.memo.delete(key);
    this.bytes -= raw.length;
  }
}
