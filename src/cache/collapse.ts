/**
 * Collapsed forwarding (Varnish's busy objects, cache_hash.c; Squid's collapsed_forwarding): while one
 * request fetches or revalidates an object, the others for the same key wait for that one fetch, in this
 * worker and in every other.
 *
 * - Within a worker the first request for a key asks the registry (the primary, over IPC: main/fill-registry.ts)
 *   whether another worker already fetches it; requests after it join the same local fill without asking.
 * - The leader publishes its fill as it goes: the response head once it is known to be storable, each body
 *   chunk once it is committed to the shared store, and the end. Waiters in any worker stream the committed
 *   chunks from the store, each at its own client's pace, from the first byte however late they joined.
 * - A response that is not stored releases the waiters at once to fetch for themselves, and the key is then
 *   fetched without queueing for a while (Varnish's hit-for-miss), here and in the primary.
 * - A fill that fails before its head gives its waiters the error (or their stale content); one that fails
 *   mid-body cuts the waiters that got bytes. A leader whose worker dies is replaced: the primary ends its
 *   fills as "leader gone" and the waiters claim again.
 *
 * A fresh hit never comes here: only a request that needs the origin pays for a claim.
 */
import type { RawHeaders } from '../http/fields.js';
import { type BodySink, CHUNK_SIZE } from '../store/store.js';

/** What the leader learnt from the origin that waiters need to answer from the fill. */
export interface FillHead {
  status: number;
  /** The header section as stored (our Via, no Content-Length, no Age). */
  headers: RawHeaders;
  /** The representation's length when the origin sent Content-Length. */
  length: number | null;
  bodyId: string;
  initialAge: number;
  responseTime: number;
  noCacheFields: string[];
  /** The response varies: a waiter's request may select another variant, so it looks again at the end. */
  vary: boolean;
}

/** An upstream failure as waiters are told of it (a ProxyError's fields). */
export interface FillError {
  status: number;
  squidError: string;
  message: string;
}

export type FillEnd =
  /**
   * Committed: `chunks` body chunks (0: the body is inline in the entry); `responseTime` of the entry
   * stored, for the primary to tell requests that saw an older one to look again.
   */
  | { result: 'stored'; chunks: number; responseTime?: number }
  | { result: 'not-storable' }
  /** No stored response: the origin failed (`error`), the store refused it (null), or the leader died. */
  | { result: 'failed'; error: FillError | null; leaderGone?: boolean };

export type FillEvent =
  | { kind: 'head'; head: FillHead }
  | { kind: 'chunk'; n: number }
  | { kind: 'end'; end: FillEnd }
  /** To the leader: a request in another worker waits for this fill. */
  | { kind: 'followed' };

/** The registry's answer to a claim. */
export type Claim =
  | { role: 'lead' }
  /** Within the hit-for-miss window: fetch without leading anybody. */
  | { role: 'pass' }
  /** Another worker leads; what it has published so far. */
  | { role: 'wait'; head: FillHead | null; chunks: number }
  /**
   * A fill of the key was stored a moment ago, newer than what the request saw: its worker's read snapshot
   * predates that commit. It looks again instead of fetching once more.
   */
  | { role: 'stored' };

/** Who fetches what across workers. Absent in a single process. */
export interface FillRegistry {
  /**
   * Asks who fetches `key`; `done` is called once, synchronously with the answer's arrival, so that the
   * events the primary sends right after it find the fill already set up. `seen`: the responseTime of the
   * stored response the request found stale (0 for none), or null once it has looked again after a store.
   */
  claim(key: string, seen: number | null, done: (c: Claim) => void): void;
  publish(key: string, ev: FillEvent): void;
  /** Events of fills this worker waits for, as the primary relays them. */
  listen(handler: (key: string, ev: FillEvent) => void): void;
}

/** What the leading fetch reports as it goes; every call after `end` does nothing. */
export interface FillLead {
  head(h: FillHead): void;
  chunk(n: number): void;
  end(e: FillEnd): void;
  /**
   * The leader's own client, slower than the origin, goes on from byte `from` of the stored fill like a
   * waiter, so the fetch does not wait for it. False when there is no fill to follow.
   */
  follow(sink: BodySink, from: number): boolean;
}

/** A request waiting for another's fetch. */
export interface Waiter {
  /** The client left: this request neither leads nor waits any more. */
  gone(): boolean;
  /** Another worker stored the object a moment ago: look again in a new snapshot. */
  lookAgain(): void;
  /** Look again: the object is stored or will not be (`again` false), or the leader died (`again` true). */
  retry(again: boolean): void;
  /** The fetch failed before any byte reached this waiter. */
  failed(err: FillError | null): void;
  /** A sink for the fill's body with its head sent, or null when this request cannot take it (a Range, a
   * conditional, a client that left): it then looks again at the end. */
  stream(head: FillHead): BodySink | null;
}

/** Reads a committed body chunk of a fill from the store. */
export type ChunkReader = (bodyId: string, n: number) => Buffer | undefined;

/** For a fetch that leads nobody. */
export const NO_LEAD: FillLead = { head() {}, chunk() {}, end() {}, follow: () => false };

/** Marks kept at most; the oldest go first (they also expire first: the window is the same for all). */
const MAX_MARKS = 10_000;

/** A waiter streaming the fill: its sink and the next chunk it needs. */
interface Reader {
  sink: BodySink;
  next: number;
  /** Bytes of the next chunk it already has (a leader's client that started reading mid-chunk). */
  skip: number;
  /** Waiting for its client to drain. */
  blocked: boolean;
  done: boolean;
}

class Fill {
  /** Requests queued while the claim is asked, the first of which leads if it is ours. */
  claiming: Array<{ waiter: Waiter; lead: (l: FillLead) => void }> | null = [];
  waiters: Waiter[] = [];
  readers: Reader[] = [];
  head: FillHead | null = null;
  /** Chunks committed so far. */
  chunks = 0;
  /** Chunks in the stored body, once it is stored. */
  total: number | null = null;
  ended = false;
  /** This worker leads the fetch (else another worker does). */
  leading = false;
  /** Requests in other workers wait for it (told by the primary). */
  followedRemotely = false;

  constructor(readonly key: string) {}
}

export class Collapse {
  private readonly fills = new Map<string, Fill>();
  /** Keys whose last response could not be stored, and until when (ms) they are fetched without queueing. */
  private readonly uncacheable = new Map<string, number>();

  /** `hitForMissMs`: Varnish's hit-for-miss window; 0 turns it off. */
  constructor(
    private readonly hitForMissMs = 0,
    private readonly registry: FillRegistry | null = null,
    private readonly readChunk: ChunkReader = () => undefined,
  ) {
    registry?.listen((key, ev) => {
      const fill = this.fills.get(key);
      if (fill === undefined) return;
      if (ev.kind === 'followed') fill.followedRemotely = true;
      else if (!fill.leading) this.apply(fill, ev);
    });
  }

  /**
   * A GET that needs the origin: `lead` is called when this request is to fetch (with the handle to publish
   * its fill on), otherwise `waiter` hears of another request's fetch.
   */
  join(key: string, waiter: Waiter, lead: (l: FillLead) => void, seen: number | null = 0): void {
    const fill = this.fills.get(key);
    if (fill !== undefined) {
      if (fill.claiming !== null) fill.claiming.push({ waiter, lead });
      else this.addWaiter(fill, waiter);
      return;
    }
    if (this.passing(key)) return lead(NO_LEAD);
    const f = new Fill(key);
    this.fills.set(key, f);
    f.claiming?.push({ waiter, lead });
    if (this.registry === null) return this.claimed(f, { role: 'lead' });
    this.registry.claim(key, seen, (c) => this.claimed(f, c));
  }

  /** Whether other requests, here or in other workers, wait for this worker's fill of `key`. */
  followed(key: string): boolean {
    const f = this.fills.get(key);
    if (f === undefined) return false;
    return f.followedRemotely || f.waiters.some((w) => !w.gone()) || f.readers.some((r) => !r.done);
  }

  private claimed(f: Fill, c: Claim): void {
    const queued = f.claiming ?? [];
    f.claiming = null;
    if (c.role === 'pass') {
      this.fills.delete(f.key);
      for (const q of queued) q.lead(NO_LEAD);
      return;
    }
    if (c.role === 'stored') {
      this.fills.delete(f.key);
      for (const q of queued) if (!q.waiter.gone()) q.waiter.lookAgain();
      return;
    }
    if (c.role === 'wait') {
      for (const q of queued) this.addWaiter(f, q.waiter);
      if (c.head !== null) this.apply(f, { kind: 'head', head: c.head });
      if (c.chunks > 0) this.apply(f, { kind: 'chunk', n: c.chunks - 1 });
      return;
    }
    f.leading = true;
    const handle = this.leadHandle(f);
    // A request whose client left while the claim was asked must not lead: nobody would take its answer.
    const i = queued.findIndex((q) => !q.waiter.gone());
    if (i < 0) return handle.end({ result: 'failed', error: null, leaderGone: true });
    for (const q of queued.slice(i + 1)) this.addWaiter(f, q.waiter);
    queued[i].lead(handle);
  }

  private leadHandle(f: Fill): FillLead {
    const publish = (ev: FillEvent) => {
      if (f.ended) return;
      this.apply(f, ev);
      this.registry?.publish(f.key, ev);
    };
    return {
      head: (head) => publish({ kind: 'head', head }),
      chunk: (n) => publish({ kind: 'chunk', n }),
      end: (end) => publish({ kind: 'end', end }),
      follow: (sink, from) => {
        // A store that names a body only at its commit (the memory store) has no chunks to follow.
        if (f.ended || f.head === null || f.head.bodyId === '') return false;
        this.read(f, sink, from);
        return true;
      },
    };
  }

  private addWaiter(f: Fill, w: Waiter): void {
    if (f.head !== null && f.chunks > 0 && this.startReading(f, w)) return;
    f.waiters.push(w);
  }

  /** A waiter takes the fill's body from its first chunk; false when it cannot. */
  private startReading(f: Fill, w: Waiter): boolean {
    const sink = w.stream(f.head as FillHead);
    if (sink === null) return false;
    this.read(f, sink, 0);
    return true;
  }

  private read(f: Fill, sink: BodySink, from: number): void {
    const r: Reader = {
      sink,
      next: Math.floor(from / CHUNK_SIZE),
      skip: from % CHUNK_SIZE,
      blocked: false,
      done: false,
    };
    f.readers.push(r);
    sink.onGone(() => {
      r.done = true;
    });
    this.pump(f, r);
  }

  private apply(f: Fill, ev: FillEvent): void {
    if (f.ended) return;
    if (ev.kind === 'followed') return;
    if (ev.kind === 'head') {
      f.head = ev.head;
      return;
    }
    if (ev.kind === 'chunk') {
      if (ev.n + 1 <= f.chunks) return;
      f.chunks = ev.n + 1;
      // Waiters start streaming with the first chunk (a small body is never chunked: they look again).
      if (f.head !== null && !f.head.vary) {
        const still: Waiter[] = [];
        for (const w of f.waiters) if (!this.startReading(f, w)) still.push(w);
        f.waiters = still;
      }
      for (const r of f.readers) if (!r.blocked) this.pump(f, r);
      return;
    }
    f.ended = true;
    this.fills.delete(f.key);
    const end = ev.end;
    if (end.result === 'not-storable') this.notStorable(f.key);
    const waiters = f.waiters;
    f.waiters = [];
    if (end.result === 'stored') {
      // Every chunk is committed before the entry is: a chunk notice still on its way changes nothing.
      f.total = end.chunks;
      f.chunks = Math.max(f.chunks, end.chunks);
      for (const r of f.readers) if (!r.blocked) this.pump(f, r);
      for (const w of waiters) if (!w.gone()) w.retry(false);
      return;
    }
    // Readers got bytes of a body that will never be whole: they are cut.
    for (const r of f.readers) {
      if (r.done) continue;
      r.done = true;
      r.sink.abort('the collapsed fetch failed');
    }
    for (const w of waiters) {
      if (w.gone()) continue;
      if (end.result === 'not-storable') w.retry(false);
      else if (end.leaderGone) w.retry(true);
      else w.failed(end.error);
    }
  }

  /** Hands a reader the committed chunks it has not had yet, as fast as its client takes them. */
  private pump(f: Fill, r: Reader): void {
    r.blocked = false;
    const head = f.head as FillHead;
    while (!r.done && r.next < f.chunks) {
      let chunk = this.readChunk(head.bodyId, r.next);
      if (chunk === undefined) {
        r.done = true;
        r.sink.abort('a chunk of the collapsed fetch is missing');
        return;
      }
      if (r.skip > 0) {
        chunk = chunk.subarray(r.skip);
        r.skip = 0;
      }
      r.next++;
      if (!r.sink.write(chunk, () => this.pump(f, r))) {
        r.blocked = true;
        return;
      }
    }
    // With Content-Length the last chunk is known before the commit: the response ends with its last byte,
    // not at the commit (a client that has every byte may close at once, and that is no abort).
    const total = f.total ?? (head.length !== null ? Math.ceil(head.length / CHUNK_SIZE) : null);
    if (!r.done && total !== null && r.next >= total) {
      r.done = true;
      r.sink.end();
    }
  }

  /** The response for `key` will not be stored: its next requests go to the origin without waiting. */
  notStorable(key: string): void {
    if (this.hitForMissMs <= 0) return;
    this.uncacheable.delete(key);
    this.uncacheable.set(key, Date.now() + this.hitForMissMs);
    for (const [k, until] of this.uncacheable) {
      if (this.uncacheable.size <= MAX_MARKS && until > Date.now()) break;
      this.uncacheable.delete(k);
    }
  }

  /** The response for `key` is being stored: collapse its requests again. */
  storable(key: string): void {
    this.uncacheable.delete(key);
  }

  private passing(key: string): boolean {
    const until = this.uncacheable.get(key);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.uncacheable.delete(key);
    return false;
  }
}
