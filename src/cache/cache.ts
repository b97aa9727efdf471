/**
 * The cache stage: lookup → hit | stale → revalidate | miss → fetch and store, for GET and HEAD; and
 * invalidation after unsafe methods (RFC 9111 §4.4). Policy lives in cache-policy.ts, bytes in store.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/config.js';
import { ProxyError } from '../http/errors.js';
import {
  endToEndHeaders,
  fieldValue,
  filterFields,
  ifRangeAllows,
  parseRange,
  type RawHeaders,
} from '../http/forwarding.js';
import { responseHeaders, sendError } from '../http/respond.js';
import type { Logger } from '../shared/logger.js';
import type { StoredEntry } from '../store/lmdb/layout.js';
import type { Store } from '../store/lmdb/lmdb-store.js';
import type { BodyTee, HeadDecision, Upstream, UpstreamRequest } from '../upstream/upstream.js';
import {
  type CacheStatus,
  clientConditionalMatches,
  currentAge,
  formatCacheStatus,
  formatHttpDate,
  freshnessLifetime,
  type HeuristicOptions,
  initialAge,
  invalidates,
  NOT_MODIFIED_FIELDS,
  noCacheFields,
  parseHttpDate,
  type ResponseInfo,
  requestDirectives,
  responseDirectives,
  reuse,
  type StoredPolicy,
  staleIfErrorAllows,
  storability,
  storedPolicy,
  updateHeaders,
  varyNames,
} from './policy.js';

const CLIENT_VALIDATORS = new Set([
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'if-range',
]);
// Set-Cookie belongs to the client whose request fetched the response, never to later ones.
const NOT_STORED_FIELDS = new Set(['age', 'content-length', 'set-cookie']);
const UPDATE_IGNORES = new Set(['via', 'age', 'content-length']);

const nowSeconds = () => Date.now() / 1000;
export const CACHE_NAME = 'cuttle';
/** Marks a response served from an inline stored body, for access.log (a registered symbol: no import cycle). */
export const MEM_HIT = Symbol.for('cuttle.memHit');

/** What a refresh_pattern line decides for the URLs it matches. */
interface RefreshRule {
  heuristic: HeuristicOptions;
  ignore: { noStore?: boolean; private?: boolean };
  ignoreReload: boolean;
  refreshIms: boolean;
  /** Seconds a stale response may be served when revalidation fails (Squid's max-stale). */
  maxStale: number;
}

/** refresh_pattern max-stale=N: stale-if-error for N seconds unless the response grants its own. */
function withMaxStale(p: StoredPolicy, maxStale: number): StoredPolicy {
  return maxStale > p.staleIfError ? { ...p, staleIfError: maxStale } : p;
}

export class Cache {
  private readonly revalidating = new Set<string>();
  /** Misses being fetched by this worker, with the requests waiting for them. */
  private readonly inflight = new Map<string, Array<() => void>>();
  private readonly heuristic: { fraction: number; max: number };
  private readonly defaultRule: RefreshRule;
  private readonly patterns: Array<{ re: RegExp; rule: RefreshRule }>;
  /** Whether any refresh pattern changes how a request is served (ignore-reload, refresh-ims). */
  private readonly requestSideRules: boolean;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly upstream: Upstream,
    private readonly via: string,
    private readonly log: Logger,
  ) {
    this.heuristic = { fraction: config.heuristicFraction, max: config.heuristicMax / 1000 };
    this.defaultRule = {
      heuristic: this.heuristic,
      ignore: {},
      ignoreReload: false,
      refreshIms: false,
      maxStale: 0,
    };
    this.patterns = (config.squid?.refreshPatterns ?? []).map((p) => ({
      re: new RegExp(p.regex, p.ignoreCase ? 'i' : ''),
      rule: {
        heuristic: {
          fraction: p.percent / 100,
          min: p.min,
          max: p.max,
          overrideExpire: p.options.includes('override-expire'),
          overrideLastmod: p.options.includes('override-lastmod'),
        },
        ignore: {
          noStore: p.options.includes('ignore-no-store'),
          private: p.options.includes('ignore-private'),
        },
        ignoreReload: p.options.includes('ignore-reload'),
        refreshIms: p.options.includes('refresh-ims'),
        maxStale: p.maxStale ?? 0,
      },
    }));
    this.requestSideRules = this.patterns.some((p) => p.rule.ignoreReload || p.rule.refreshIms);
  }

  /**
   * Squid's refresh_pattern: the first pattern matching the URL sets the heuristic (min, percent, max) and
   * its overrides; without a squid.conf, or when none matches, the configured RFC 9111 §4.2.2 heuristic.
   */
  private refreshRule(url: string): RefreshRule {
    for (const p of this.patterns) if (p.re.test(url)) return p.rule;
    return this.defaultRule;
  }

  /** X-Cache names the host, as Squid does; Cache-Status names the cache (DESIGN.md: `cuttle; hit`). */
  private get name(): string {
    return this.config.visibleHostname;
  }

  /** GET and HEAD: answer from the store when RFC 9111 allows, otherwise fetch (and store). */
  serve(
    req: IncomingMessage,
    res: ServerResponse,
    makeUp: () => UpstreamRequest,
    key: string,
    mayWait = true,
  ): void {
    const raw = req.rawHeaders;
    // Only refresh patterns with request-side options are looked up here, so a hit pays for none otherwise.
    const rule = this.requestSideRules ? this.refreshRule(key) : this.defaultRule;
    const directives = requestDirectives(raw);
    // refresh_pattern ignore-reload: a client's no-cache or max-age=0 does not bypass the cache.
    let rd = rule.ignoreReload ? { ...directives, noCache: false, maxAge: undefined } : directives;
    // refresh_pattern refresh-ims: a client's conditional request is a hint to revalidate with the origin.
    if (
      rule.refreshIms &&
      (fieldValue(raw, 'if-modified-since') ?? fieldValue(raw, 'if-none-match')) !== undefined
    )
      rd = { ...rd, noCache: true };
    const found = rd.noStore ? { miss: 'uri-miss' as const } : this.store.lookup(key, raw);
    if ('entry' in found) {
      const e = found.entry;
      const age = currentAge(e.initialAge, e.responseTime, nowSeconds());
      const r = reuse(e.policy, age, rd);
      const ttl = e.policy.lifetime - age;
      switch (r.kind) {
        case 'fresh':
        case 'stale-ok':
          // Squid's TCP_SWAPFAIL_MISS: a stored body that cannot be read whole is dropped and fetched again,
          // before any byte of it reaches the client.
          if (!this.store.bodyComplete(e)) {
            this.log.error({ url: e.url }, 'stored body incomplete: dropping the entry and fetching again');
            void this.store.invalidate(found.key);
            return this.fetch(req, res, makeUp(), key, 'miss', 'stored body missing');
          }
          this.store.touch(found.key);
          return this.deliverStored(req, res, e, age, { hit: true, ttl });
        case 'stale-while-revalidate':
          this.store.touch(found.key);
          this.deliverStored(req, res, e, age, { hit: true, ttl, detail: 'stale-while-revalidate' });
          return this.revalidateInBackground(found.key, e, makeUp());
        case 'revalidate':
          if (rd.onlyIfCached) return this.onlyIfCachedMiss(req, res);
          return this.revalidate(
            req,
            res,
            makeUp(),
            found.key,
            e,
            r.reason === 'request' ? 'request' : 'stale',
          );
      }
    }
    if (rd.onlyIfCached) return this.onlyIfCachedMiss(req, res);
    // Collapsed forwarding (Varnish's busy objects), within this worker: a GET that misses while another
    // fetch of the same URL is under way waits for it, then looks again.
    const waiting = this.inflight.get(key);
    if (waiting && mayWait && req.method === 'GET' && !rd.noCache) {
      // A waiter whose client left meanwhile is dropped: it must not become the next fetch's leader.
      waiting.push(() => !res.destroyed && this.serve(req, res, makeUp, key, false));
      return;
    }
    this.fetch(req, res, makeUp(), key, found.miss);
  }

  /** RFC 9111 §5.2.1.7: only-if-cached with nothing usable stored is answered 504. */
  private onlyIfCachedMiss(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('Cache-Status', formatCacheStatus(CACHE_NAME, { fwd: 'miss', detail: 'only-if-cached' }));
    sendError(
      req,
      res,
      new ProxyError(504, 'ERR_ONLY_IF_CACHED_MISS', 'only-if-cached: no usable stored response'),
      this.via,
      this.log,
    );
  }

  /** A stored response to the client: 304 for its own matching conditional (§4.3.2), no body for HEAD. */
  private deliverStored(
    req: IncomingMessage,
    res: ServerResponse,
    e: StoredEntry,
    age: number,
    cs: CacheStatus,
  ): void {
    const status = formatCacheStatus(CACHE_NAME, cs);
    const xcache = `${cs.hit ? 'HIT' : 'MISS'} from ${this.name}`;
    const ageText = String(Math.floor(age));
    if (clientConditionalMatches(req.rawHeaders, e.etag, e.lastModified)) {
      const h = filterFields(e.headers, (n) => NOT_MODIFIED_FIELDS.has(n));
      h.push('Age', ageText, 'Cache-Status', status, 'X-Cache', xcache);
      res.writeHead(304, h);
      res.end();
      return;
    }
    // §5.2.2.4: the qualified no-cache fields are not sent on reuse without revalidation.
    const h =
      e.noCacheFields.length > 0
        ? filterFields(e.headers, (n) => !e.noCacheFields.includes(n))
        : e.headers.slice();
    h.push('Age', ageText, 'Cache-Status', status, 'X-Cache', xcache);
    if (req.method === 'GET' && e.status === 200 && this.sendRange(req, res, e, h)) return;
    res.writeHead(e.status, h);
    // Squid's TCP_MEM_HIT for a body kept inside the entry record itself (read with the entry, no chunks).
    if (e.body !== null) (res as unknown as Record<symbol, boolean>)[MEM_HIT] = true;
    if (req.method === 'HEAD') res.end();
    else this.store.sendBody(e, res);
  }

  /** RFC 9110 §14: a single byte range answered from the stored body (206, or 416 when unsatisfiable). */
  private sendRange(req: IncomingMessage, res: ServerResponse, e: StoredEntry, headers: RawHeaders): boolean {
    const range = parseRange(fieldValue(req.rawHeaders, 'range'), e.size);
    if (range === null) return false;
    if (
      !ifRangeAllows(fieldValue(req.rawHeaders, 'if-range'), e.etag, fieldValue(e.headers, 'last-modified'))
    )
      return false;
    const h = filterFields(headers, (n) => n !== 'content-length');
    if (range === 'unsatisfiable') {
      h.push('Content-Range', `bytes */${e.size}`, 'Content-Length', '0');
      res.writeHead(416, h);
      res.end();
      return true;
    }
    const { start, end } = range;
    h.push('Content-Range', `bytes ${start}-${end}/${e.size}`, 'Content-Length', String(end - start + 1));
    res.writeHead(206, h);
    this.store.sendBody(e, res, start, end);
    return true;
  }

  /** A miss: forward, and store while streaming when §3 allows. */
  private fetch(
    req: IncomingMessage,
    res: ServerResponse,
    up: UpstreamRequest,
    key: string,
    why: CacheStatus['fwd'],
    detail?: string,
  ): void {
    // Nothing to fetch for a client that is gone, and a leader with no client would never release its waiters.
    if (res.destroyed) return;
    const requestTime = nowSeconds();
    const leader = req.method === 'GET' && !this.inflight.has(key);
    if (leader) this.inflight.set(key, []);
    const release = () => {
      if (!leader) return;
      const waiters = this.inflight.get(key) ?? [];
      this.inflight.delete(key);
      for (const w of waiters) w();
    };
    // A client that goes away before the response is decided must not strand the waiters.
    if (leader) res.once('close', () => !res.writableFinished && release());
    this.upstream.forward(req, res, up, {
      onHead: (status, raw) => {
        const decision = this.storeOrPass(req, key, status, raw, requestTime, {
          fwd: why,
          fwdStatus: status,
          detail,
        });
        const tee = decision.tee;
        // Waiters go as soon as it is clear the response will not be stored, so uncacheable URLs never queue.
        if (!tee) {
          release();
          return decision;
        }
        return { ...decision, tee: whenSettled(tee, release) };
      },
      onError: () => {
        release();
        return false;
      },
    });
  }

  /** Decides storage for a response going to the client, and returns its header fields and store tee. */
  private storeOrPass(
    req: IncomingMessage | null,
    key: string,
    status: number,
    raw: RawHeaders,
    requestTime: number,
    cs: CacheStatus,
    reqHeaders: RawHeaders = req?.rawHeaders ?? [],
    method = req?.method ?? 'GET',
  ): HeadDecision & { take: false } {
    const info: ResponseInfo = { status, headers: raw, requestTime, responseTime: nowSeconds() };
    const { cc, targeted } = responseDirectives(raw);
    let tee: BodyTee | undefined;
    const rule = this.refreshRule(key);
    const notStorable = storability(method, reqHeaders, status, raw, cc, targeted, rule.ignore);
    const length = Number(fieldValue(raw, 'content-length') ?? Number.NaN);
    if (notStorable) cs.detail = `not stored: ${notStorable}`;
    else if (length > this.config.maxObjectSize) cs.detail = 'not stored: larger than max-object-size';
    else if (length < this.config.minObjectSize) cs.detail = 'not stored: smaller than minimum_object_size';
    else if (!this.store.admit(key, this.config.cacheMinUses, this.config.cacheMinUsesWindow))
      cs.detail = 'not stored: min-uses';
    else {
      const lifetime = freshnessLifetime(info, cc, rule.heuristic);
      const entry = this.entryFrom(key, info, lifetime, cc, rule.maxStale);
      tee = this.teeInto(key, entry, reqHeaders, raw);
      cs.stored = true;
      cs.ttl = lifetime - entry.initialAge;
    }
    const headers = responseHeaders(raw, this.via);
    headers.push('Cache-Status', formatCacheStatus(CACHE_NAME, cs), 'X-Cache', `MISS from ${this.name}`);
    return { take: false, headers, tee };
  }

  private entryFrom(
    key: string,
    info: ResponseInfo,
    lifetime: number,
    cc: ReturnType<typeof responseDirectives>['cc'],
    maxStale: number,
  ): StoredEntry {
    const headers = filterFields(responseHeaders(info.headers, this.via), (n) => !NOT_STORED_FIELDS.has(n));
    // RFC 9110 §6.6.1: a response stored without Date gets the time it was received.
    if (fieldValue(info.headers, 'date') === undefined)
      headers.push('Date', formatHttpDate(Math.floor(info.responseTime)));
    return {
      kind: 'entry',
      url: key,
      status: info.status,
      headers,
      requestTime: info.requestTime,
      responseTime: info.responseTime,
      initialAge: initialAge(info),
      policy: withMaxStale(storedPolicy(cc, lifetime), maxStale),
      noCacheFields: noCacheFields(cc),
      etag: fieldValue(info.headers, 'etag'),
      lastModified: parseHttpDate(fieldValue(info.headers, 'last-modified')),
      bodyId: '',
      size: 0,
      chunks: 0,
      body: null,
    };
  }

  private teeInto(key: string, entry: StoredEntry, reqHeaders: RawHeaders, raw: RawHeaders): BodyTee {
    const writer = this.store.writer(this.config.maxObjectSize);
    return {
      write: (chunk) => writer.write(chunk),
      abort: (reason) => writer.fail(reason),
      end: () => {
        entry.headers.push('Content-Length', String(writer.size));
        return this.store.commit(key, varyNames(raw), reqHeaders, entry, writer);
      },
    };
  }

  /** RFC 9111 §4.3.1: a conditional request with the stored validators; the client's own are set aside. */
  private conditional(up: UpstreamRequest, e: StoredEntry): UpstreamRequest {
    const headers = filterFields(up.headers, (n) => !CLIENT_VALIDATORS.has(n));
    if (e.etag !== undefined) headers.push('If-None-Match', e.etag);
    if (e.lastModified !== null) headers.push('If-Modified-Since', formatHttpDate(e.lastModified));
    return { ...up, headers };
  }

  /** RFC 9111 §4.3.3 and §4.3.4: the stored entry freshened by a 304. */
  private freshened(e: StoredEntry, raw: RawHeaders, requestTime: number): StoredEntry {
    const fresh = endToEndHeaders(raw, UPDATE_IGNORES);
    const headers = updateHeaders(e.headers, fresh);
    const info: ResponseInfo = { status: e.status, headers, requestTime, responseTime: nowSeconds() };
    const { cc } = responseDirectives(headers);
    const rule = this.refreshRule(e.url);
    const lifetime = freshnessLifetime(info, cc, rule.heuristic);
    return {
      ...e,
      headers,
      requestTime,
      responseTime: info.responseTime,
      // The 304's own Date and Age describe the age of the freshened response.
      initialAge: initialAge({ ...info, headers: raw }),
      policy: withMaxStale(storedPolicy(cc, lifetime), rule.maxStale),
      noCacheFields: noCacheFields(cc),
      etag: fieldValue(headers, 'etag'),
      lastModified: parseHttpDate(fieldValue(headers, 'last-modified')),
    };
  }

  private revalidate(
    req: IncomingMessage,
    res: ServerResponse,
    up: UpstreamRequest,
    key: string,
    e: StoredEntry,
    fwd: 'stale' | 'request',
  ): void {
    const requestTime = nowSeconds();
    const staleness = () => currentAge(e.initialAge, e.responseTime, nowSeconds()) - e.policy.lifetime;
    const serveStale = (fwdStatus: number | undefined) => {
      const age = currentAge(e.initialAge, e.responseTime, nowSeconds());
      this.deliverStored(req, res, e, age, { fwd: 'stale', fwdStatus, detail: 'stale-if-error' });
    };
    this.upstream.forward(req, res, this.conditional(up, e), {
      onHead: (status, raw) => {
        if (status === 304) {
          const ne = this.freshened(e, raw, requestTime);
          void this.store.update(key, ne);
          const age = currentAge(ne.initialAge, ne.responseTime, nowSeconds());
          this.deliverStored(req, res, ne, age, { fwd, fwdStatus: 304, ttl: ne.policy.lifetime - age });
          return { take: true };
        }
        // RFC 5861 §4: a 5xx while stale may be answered with the stored response.
        if (status >= 500 && fwd === 'stale' && staleIfErrorAllows(e.policy, staleness(), req.rawHeaders)) {
          serveStale(status);
          return { take: true };
        }
        return this.storeOrPass(req, key, status, raw, requestTime, { fwd, fwdStatus: status });
      },
      onError: () => {
        if (fwd !== 'stale' || !staleIfErrorAllows(e.policy, staleness(), req.rawHeaders)) return false;
        serveStale(undefined);
        return true;
      },
    });
  }

  /**
   * RFC 5861 §3: one background revalidation per object while stale content is served: per worker by a set,
   * across workers by a claim in the shared store.
   */
  private revalidateInBackground(key: string, e: StoredEntry, up: UpstreamRequest): void {
    if (this.revalidating.has(key)) return;
    this.revalidating.add(key);
    void this.store
      .claimRevalidation(key, this.config.timeouts.response + this.config.timeouts.read, e)
      .then((mine) => {
        if (mine) this.backgroundFetch(key, e, up);
        else this.revalidating.delete(key);
      });
  }

  private backgroundFetch(key: string, e: StoredEntry, up: UpstreamRequest): void {
    const requestTime = nowSeconds();
    const done = () => {
      this.revalidating.delete(key);
      this.store.releaseRevalidation(key);
    };
    const background: UpstreamRequest = { ...this.conditional(up, e), method: 'GET', body: null };
    this.upstream.forward(null, null, background, {
      onHead: (status, raw) => {
        if (status === 304) {
          void this.store.update(key, this.freshened(e, raw, requestTime)).finally(done);
          return { take: true };
        }
        const decision = this.storeOrPass(null, e.url, status, raw, requestTime, {}, up.headers, 'GET');
        const tee = decision.tee;
        if (!tee) {
          done();
          return { take: true };
        }
        // Held until the commit, so requests meanwhile do not start another revalidation.
        return { take: true, tee: whenSettled(tee, done) };
      },
      onError: () => {
        done();
        return true;
      },
    });
  }

  /**
   * RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI and the same-origin
   * URIs in Location and Content-Location.
   */
  forwardUnsafe(req: IncomingMessage, res: ServerResponse, up: UpstreamRequest, key: string): void {
    this.upstream.forward(req, res, up, {
      onHead: (status, raw) => {
        if (invalidates(req.method as string, status)) {
          void this.store.invalidate(key);
          for (const f of ['location', 'content-location']) {
            const other = sameOriginKey(key, fieldValue(raw, f));
            if (other) void this.store.invalidate(other);
          }
        }
        const headers = responseHeaders(raw, this.via);
        headers.push('Cache-Status', formatCacheStatus(CACHE_NAME, { fwd: 'method', fwdStatus: status }));
        return { take: false, headers };
      },
    });
  }
}

/** The same tee, calling `settled` once its copy is committed or abandoned. */
function whenSettled(tee: BodyTee, settled: () => void): BodyTee {
  return {
    write: (c) => tee.write(c),
    end: () => Promise.resolve(tee.end()).finally(settled),
    abort: (r) => {
      tee.abort(r);
      settled();
    },
  };
}

/** The cache key of a URI reference resolved against `base`, when it has the same origin (§4.4). */
export function sameOriginKey(base: string, ref: string | undefined): string | null {
  if (!ref) return null;
  try {
    const b = new URL(base);
    const u = new URL(ref, b);
    return u.origin === b.origin ? `${u.origin}${u.pathname}${u.search}` : null;
  } catch {
    return null;
  }
}

/** The primary cache key: the effective request URI (RFC 9110 §7.1), host lower-cased, default port dropped. */
export function cacheKey(scheme: string, host: string, port: number, path: string): string {
  const defaultPort = scheme === 'https' ? 443 : 80;
  return `${scheme}://${host.toLowerCase()}${port === defaultPort ? '' : `:${port}`}${path}`;
}
