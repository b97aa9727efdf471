/**
 * Collects a body as it streams to the client: small ones in memory (stored inline with the entry), large
 * ones as CHUNK_SIZE chunks written ahead, so memory stays flat whatever the object's size.
 */
import { type BodyWriter, CHUNK_SIZE, INLINE_MAX } from '../store.js';
import { type CacheEnv, newBodyId, silenceCommitError } from './layout.js';
import type { WriteFailed } from './write-failed.js';

export class LmdbBodyWriter implements BodyWriter {
  readonly id = newBodyId();
  size = 0;
  chunks = 0;
  inline: Buffer | null = null;
  failed: string | null = null;
  onChunk: ((n: number) => void) | null = null;
  /** Chunks committed, in order (a later chunk's commit is announced only after the ones before it). */
  private announced = 0;
  private committed = new Set<number>();
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private puts: Promise<boolean>[] = [];

  constructor(
    private readonly env: CacheEnv,
    private readonly maxSize: number,
    private readonly writeFailed: WriteFailed,
  ) {}

  write(chunk: Buffer): void {
    if (this.failed) return;
    this.size += chunk.length;
    if (this.size > this.maxSize) {
      this.fail('larger than max-object-size');
      return;
    }
    this.pending.push(chunk);
    this.pendingLen += chunk.length;
    if (this.size > INLINE_MAX) while (this.pendingLen >= CHUNK_SIZE) this.flushChunk();
  }

  /** Writes the next chunk: exactly CHUNK_SIZE bytes, or what is left at the end. */
  private flushChunk(): void {
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingLen);
    const buf = all.length > CHUNK_SIZE ? all.subarray(0, CHUNK_SIZE) : all;
    const rest = all.subarray(buf.length);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingLen = rest.length;
    const n = this.chunks++;
    const put = this.env.bodies.put([this.id, n], buf);
    // Handled here at once (finish() reports it), so a failed write is never an unhandled rejection.
    put.then(() => this.committedChunk(n), silenceCommitError);
    this.puts.push(put);
  }

  private committedChunk(n: number): void {
    if (this.failed || this.onChunk === null) return;
    this.committed.add(n);
    while (this.committed.delete(this.announced)) this.onChunk(this.announced++);
  }

  fail(reason: string): void {
    if (this.failed) return;
    this.failed = reason;
    this.pending = [];
    this.discard();
  }

  /** Resolves true when every chunk is durable in the store and the body is whole. */
  async finish(): Promise<boolean> {
    if (this.failed) return false;
    if (this.size <= INLINE_MAX) {
      this.inline = Buffer.concat(this.pending, this.pendingLen);
      this.pending = [];
    } else if (this.pendingLen > 0) this.flushChunk();
    try {
      await Promise.all(this.puts);
      return !this.failed;
    } catch (err) {
      this.writeFailed(err);
      this.failed = 'write failed';
      return false;
    }
  }

  /** Removes whatever chunks were written, once their writes have settled. */
  discard(): void {
    const n = this.chunks;
    if (n === 0) return;
    void Promise.allSettled(this.puts).then(() => {
      for (let i = 0; i < n; i++) this.env.bodies.remove([this.id, i]).catch(() => {});
    });
  }
}
