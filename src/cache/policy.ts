/**
 * Pure RFC 9111 (shared cache), RFC 5861 and RFC 9213 logic. Times are in seconds unless a name says ms.
 * Nothing here touches the store or the network, so every rule can be tested on its own.
 */

import { parseDictionary } from 'structured-headers';
import { normalizeAcceptLanguage } from '../http/accept-language.js';
import { fieldValue, filterFields, type RawHeaders } from '../http/fields.js';

export type Directives = Map<string, string | true>;

/**
 * RFC 9111 §5.2: directive names are case-insensitive; values are tokens or quoted strings. When a
 * directive repeats, the first occurrence wins (§4.2.1 lets a cache treat conflicts as it sees fit).
 */
export function parseCacheControl(value: string | undefined): Directives {
  const out: Directives = new Map();
  if (!value) return out;
  const re = /\s*([^=,\s]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))?\s*(?:,|$)/g;
  let m: RegExpExecArray | null = re.exec(value);
  while (m !== null && m[0] !== '') {
    const name = m[1].toLowerCase();
    if (!out.has(name)) out.set(name, m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? true));
    m = re.exec(value);
  }
  return out;
}

/** RFC 9111 §1.2.2 delta-seconds; an invalid value yields undefined (the directive is ignored). */
export function deltaSeconds(v: string | true | undefined): number | undefined {
  if (typeof v !== 'string' || !/^\d+$/.test(v)) return undefined;
  return Math.min(Number(v), 2 ** 31);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
// Day and month names and GMT in any case: RFC 9110 §5.6.7 asks recipients to be robust in parsing dates;
// the shape (fields, widths, separators) stays strict.
const IMF = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (\w{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/i;
const RFC850 =
  /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d{2})-(\w{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/i;
const ASCTIME = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (\w{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/i;

/** RFC 9110 §5.6.7 HTTP-date in its three forms, strictly; anything else is invalid (null). Seconds. */
export function parseHttpDate(value: string | undefined): number | null {
  if (!value) return null;
  const v = value.trim();
  let parts: [number, string, number, number, number, number]; // year, month, day, h, m, s
  const imf = IMF.exec(v);
  const rfc850 = imf ? null : RFC850.exec(v);
  const asc = imf || rfc850 ? null : ASCTIME.exec(v);
  if (imf) parts = [Number(imf[3]), imf[2], Number(imf[1]), Number(imf[4]), Number(imf[5]), Number(imf[6])];
  else if (rfc850) {
    const yy = Number(rfc850[3]);
    // §5.6.7: a two-digit year more than 50 years in the future means the past century.
    const year = 2000 + yy > new Date().getUTCFullYear() + 50 ? 1900 + yy : 2000 + yy;
    parts = [year, rfc850[2], Number(rfc850[1]), Number(rfc850[4]), Number(rfc850[5]), Number(rfc850[6])];
  } else if (asc) {
    parts = [Number(asc[6]), asc[1], Number(asc[2].trim()), Number(asc[3]), Number(asc[4]), Number(asc[5])];
  } else return null;
  const [y, mon, d, hh, mm, ss] = parts;
  const month = MONTHS.indexOf(`${mon[0].toUpperCase()}${mon.slice(1).toLowerCase()}`);
  if (month < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60) return null;
  return Date.UTC(y, month, d, hh, mm, ss) / 1000;
}

export function formatHttpDate(seconds: number): string {
  return new Date(seconds * 1000).toUTCString();
}

/** RFC 9111 §5.1: Age is delta-seconds; for a list use the first member; an invalid value is ignored (0). */
export function parseAge(value: string | undefined): number {
  if (value === undefined) return 0;
  const first = value.split(',')[0].trim();
  return /^\d+$/.test(first) ? Math.min(Number(first), 2 ** 31) : 0;
}

/** RFC 9110 §15.1 / RFC 9111 §4.2.2: statuses a cache may store with heuristic freshness. */
export const HEURISTICALLY_CACHEABLE = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]);
/** Final statuses this cache understands (RFC 9111 §3 "understood"; §5.2.2.3 must-understand); others are
 * stored too when their freshness is explicit, unless the response says must-understand. */
const UNDERSTOOD = new Set([
  200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408,
  409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504,
  505,
]);

export interface ResponseInfo {
  status: number;
  headers: RawHeaders;
  /** When the request was sent and the response received, in seconds (§4.2.3 request_time, response_time). */
  requestTime: number;
  responseTime: number;
}

export interface HeuristicOptions {
  /** Fraction of the time since Last-Modified (§4.2.2 suggests 10%). */
  fraction: number;
  /** Upper bound on a heuristic lifetime, seconds. */
  max: number;
  /** Squid's refresh_pattern min, seconds: the lifetime of a response without Last-Modified. */
  min?: number;
  /** refresh_pattern override-expire: explicit freshness is raised to at least `min`. */
  overrideExpire?: boolean;
  /** refresh_pattern override-lastmod: `min` applies even when Last-Modified gives less. */
  overrideLastmod?: boolean;
}

/**
 * RFC 9213: a `CDN-Cache-Control` field targets caches like this one and, when present and valid, is used
 * instead of `Cache-Control` for this cache's freshness and storage decisions.
 */
export function responseDirectives(headers: RawHeaders): { cc: Directives; targeted: boolean } {
  const cdn = fieldValue(headers, 'cdn-cache-control');
  if (cdn !== undefined) {
    const parsed = parseCdnCacheControl(cdn);
    if (parsed !== null && parsed.size > 0) return { cc: parsed, targeted: true };
  }
  return { cc: parseCacheControl(fieldValue(headers, 'cache-control')), targeted: false };
}

/** Directives whose CDN-Cache-Control value is an sf-integer of delta-seconds (RFC 9213 §2.1). */
const INTEGER_DIRECTIVES = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error']);
/** Directives that name fields: true, or an inner list of strings (the field names). */
const FIELD_LIST_DIRECTIVES = new Set(['no-cache', 'private']);
/** Directives that are flags: an sf-boolean (`?0` means absent). */
const FLAG_DIRECTIVES = new Set([
  'no-store',
  'public',
  'must-revalidate',
  'proxy-revalidate',
  'must-understand',
  'no-transform',
  'immutable',
]);
// The parser reads 60.0 as the number 60; a decimal is the wrong type for these all the same.
const DECIMAL_FOR_INTEGER = /(?:^|,)\s*(?:max-age|s-maxage|stale-while-revalidate|stale-if-error)=-?\d+\.\d/;

/**
 * RFC 9213 §2.1: CDN-Cache-Control is a Structured Field Dictionary (RFC 8941). A value that does not parse
 * as one, or that gives a directive this cache knows a value of the wrong type, makes the whole field
 * ignored (null). Unknown directives are ignored, whatever their type.
 */
export function parseCdnCacheControl(value: string): Directives | null {
  let dict: ReturnType<typeof parseDictionary>;
  try {
    dict = parseDictionary(value);
  } catch {
    return null;
  }
  if (DECIMAL_FOR_INTEGER.test(value)) return null;
  const out: Directives = new Map();
  for (const [name, [item]] of dict) {
    if (INTEGER_DIRECTIVES.has(name)) {
      if (typeof item !== 'number' || !Number.isInteger(item) || item < 0) return null;
      out.set(name, String(item));
    } else if (FLAG_DIRECTIVES.has(name)) {
      if (typeof item !== 'boolean') return null;
      if (item) out.set(name, true);
    } else if (FIELD_LIST_DIRECTIVES.has(name)) {
      if (item === true) out.set(name, true);
      else if (Array.isArray(item) && item.every(([f]) => typeof f === 'string'))
        out.set(name, item.map(([f]) => f as string).join(', '));
      else if (item !== false) return null;
    }
  }
  return out;
}

/**
 * RFC 9111 §4.2.1: s-maxage (shared caches), then max-age, then Expires minus Date; an invalid Expires means
 * already expired. Without any, §4.2.2 heuristic freshness for heuristically cacheable statuses or `public`.
 */
export function freshnessLifetime(info: ResponseInfo, cc: Directives, heuristic: HeuristicOptions): number {
  const explicit = explicitLifetime(info, cc);
  const min = heuristic.min ?? 0;
  if (explicit !== undefined) return heuristic.overrideExpire ? Math.max(explicit, min) : explicit;
  if (!HEURISTICALLY_CACHEABLE.has(info.status) && !cc.has('public')) return 0;
  const lm = parseHttpDate(fieldValue(info.headers, 'last-modified'));
  // Squid's refresh_pattern: without Last-Modified the `min` of the matching pattern (0 by default).
  if (lm === null) return Math.min(heuristic.max, min);
  const date = parseHttpDate(fieldValue(info.headers, 'date')) ?? info.responseTime;
  const h = Math.max(0, Math.floor((date - lm) * heuristic.fraction));
  return Math.min(heuristic.max, heuristic.overrideLastmod ? Math.max(h, min) : h);
}

/** §4.2.1: s-maxage, then max-age, then Expires minus Date; undefined when none is given. */
function explicitLifetime(info: ResponseInfo, cc: Directives): number | undefined {
  const s = deltaSeconds(cc.get('s-maxage'));
  if (s !== undefined) return s;
  const m = deltaSeconds(cc.get('max-age'));
  if (m !== undefined) return m;
  const expiresRaw = fieldValue(info.headers, 'expires');
  if (expiresRaw === undefined) return undefined;
  const expires = parseHttpDate(expiresRaw);
  if (expires === null) return 0;
  const date = parseHttpDate(fieldValue(info.headers, 'date')) ?? info.responseTime;
  return Math.max(0, expires - date);
}

/** Whether a lifetime came from explicit freshness (§4.2.1) or heuristics (§4.2.2). */
export function hasExplicitFreshness(headers: RawHeaders, cc: Directives): boolean {
  return cc.has('s-maxage') || cc.has('max-age') || fieldValue(headers, 'expires') !== undefined;
}

/** RFC 9111 §4.2.3: the corrected initial age of a response when it was received. */
export function initialAge(info: ResponseInfo): number {
  const date = parseHttpDate(fieldValue(info.headers, 'date')) ?? info.responseTime;
  const apparentAge = Math.max(0, info.responseTime - date);
  const responseDelay = info.responseTime - info.requestTime;
  const correctedAgeValue = parseAge(fieldValue(info.headers, 'age')) + responseDelay;
  return Math.max(apparentAge, correctedAgeValue);
}

/** RFC 9111 §4.2.3: current_age = corrected_initial_age + resident_time. */
export function currentAge(initial: number, responseTime: number, now: number): number {
  return initial + Math.max(0, now - responseTime);
}

export type NotStorable = string;

/**
 * What a shared cache does with a response that sets a cookie (RFC 9111 §3.1 stores every field it received;
 * §7.3 leaves the risk to the cache): `store` keeps the field and serves it (the RFC's rule, for an
 * explicitly cacheable response), `strip` stores and reuses the response without it (Squid), `pass` never
 * stores such a response (Varnish's built-in VCL).
 */
export type SetCookiePolicy = 'store' | 'strip' | 'pass';
export const SET_COOKIE_POLICIES: readonly SetCookiePolicy[] = ['store', 'strip', 'pass'];

export interface StoringOptions {
  /** The response carries CDN-Cache-Control (RFC 9213): it addresses caches like this one. */
  targeted?: boolean;
  /** refresh_pattern ignore-no-store / ignore-private: operator overrides that RFC 9111 does not allow. */
  ignore?: { noStore?: boolean; private?: boolean };
  setCookie?: SetCookiePolicy;
}

/**
 * §5.2.2.7: `private="a, b"` lets a shared cache store the response without the named fields (unqualified
 * private forbids storing at all); `strip` drops Set-Cookie the same way.
 */
export function unstoredFields(cc: Directives, setCookie: SetCookiePolicy): Set<string> {
  const out = new Set<string>();
  const priv = cc.get('private');
  if (typeof priv === 'string')
    for (const f of priv.split(',')) if (f.trim()) out.add(f.trim().toLowerCase());
  if (setCookie !== 'store') out.add('set-cookie');
  return out;
}

/**
 * RFC 9111 §3: may a shared cache store this response to this request? Returns null when it may, or the
 * reason it may not (shown in Cache-Status `detail`).
 */
export function storability(
  /** The request, its directives parsed once (§5.2.1). */
  req: { method: string; headers: RawHeaders; directives: RequestDirectives },
  status: number,
  resHeaders: RawHeaders,
  cc: Directives,
  { targeted = false, ignore = {}, setCookie = 'strip' }: StoringOptions = {},
): NotStorable | null {
  // §3: only GET responses are stored here (HEAD is answered from them, §4).
  if (req.method !== 'GET') return 'method';
  // §3: the status must be final (any final code: only heuristic freshness is limited to a list, §4.2.2).
  // A 304 only updates what is stored (§4.3.4); partial content is not stored here (§3.3 allows that).
  if (status < 200 || status > 599 || status === 206 || status === 304) return 'status';
  // §5.2.2.3: must-understand restricts storing to the status codes this cache understands.
  if (cc.has('must-understand') && !UNDERSTOOD.has(status)) return 'status';
  if (req.directives.noStore) return 'request no-store';
  // §5.2.2.3: must-understand with an understood status overrides no-store.
  if (cc.has('no-store') && !cc.has('must-understand') && !ignore.noStore) return 'no-store';
  // §5.2.2.7: a shared cache never stores a private response; the qualified form only keeps the named
  // fields out of what is stored (unstoredFields).
  if (cc.get('private') === true && !ignore.private) return 'private';
  // §3.5: a request with Authorization is stored only with must-revalidate, public or s-maxage.
  if (fieldValue(req.headers, 'authorization') !== undefined) {
    if (!cc.has('must-revalidate') && !cc.has('public') && !cc.has('s-maxage')) return 'authorization';
  }
  if (fieldValue(resHeaders, 'set-cookie') !== undefined) {
    if (setCookie === 'pass') return 'set-cookie';
    // `store` serves the cookie to every client: only when the origin said plainly that the response is
    // for shared caches (public, s-maxage, CDN-Cache-Control, or max-age without private).
    const explicit =
      targeted || cc.has('public') || cc.has('s-maxage') || (cc.has('max-age') && !cc.has('private'));
    if (setCookie === 'store' && !explicit) return 'set-cookie';
  }
  // RFC 9110 §12.5.5: Vary: * can never be matched, so storing it is pointless.
  const vary = fieldValue(resHeaders, 'vary');
  if (vary?.split(',').some((v) => v.trim() === '*')) return 'vary-star';
  // §3: explicit freshness, a heuristically cacheable status, public, or a validator to revalidate with.
  if (
    !hasExplicitFreshness(resHeaders, cc) &&
    !cc.has('public') &&
    !HEURISTICALLY_CACHEABLE.has(status) &&
    !cc.has('no-cache')
  ) {
    return 'no freshness';
  }
  return null;
}

export interface RequestDirectives {
  noCache: boolean;
  noStore: boolean;
  onlyIfCached: boolean;
  maxAge: number | undefined;
  /** Seconds of staleness the client accepts; Infinity for a bare `max-stale`. */
  maxStale: number | undefined;
  minFresh: number | undefined;
  /** RFC 5861 §4: staleness the client accepts when revalidation fails. */
  staleIfError: number | undefined;
}

/** RFC 9111 §5.2.1 request directives; §5.4: `Pragma: no-cache` counts only without Cache-Control. */
export function requestDirectives(headers: RawHeaders): RequestDirectives {
  const raw = fieldValue(headers, 'cache-control');
  const cc = parseCacheControl(raw);
  const pragmaNoCache =
    raw === undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(fieldValue(headers, 'pragma') ?? '');
  const ms = cc.get('max-stale');
  return {
    noCache: cc.has('no-cache') || pragmaNoCache,
    noStore: cc.has('no-store'),
    onlyIfCached: cc.has('only-if-cached'),
    maxAge: deltaSeconds(cc.get('max-age')),
    maxStale: ms === true ? Number.POSITIVE_INFINITY : deltaSeconds(ms),
    minFresh: deltaSeconds(cc.get('min-fresh')),
    staleIfError: deltaSeconds(cc.get('stale-if-error')),
  };
}

/** What the stored response allows once stale (§4.2.4, §5.2.2, RFC 5861); stored with the entry. */
export interface StoredPolicy {
  /** Freshness lifetime, seconds. */
  lifetime: number;
  /** must-revalidate, proxy-revalidate or s-maxage (§5.2.2.2, §5.2.2.8, §5.2.2.10): never served stale. */
  mustRevalidate: boolean;
  /** Unqualified no-cache (§5.2.2.4): validate before every reuse. */
  noCache: boolean;
  staleWhileRevalidate: number;
  staleIfError: number;
}

export function storedPolicy(cc: Directives, lifetime: number): StoredPolicy {
  const noCache = cc.get('no-cache');
  return {
    lifetime,
    mustRevalidate: cc.has('must-revalidate') || cc.has('proxy-revalidate') || cc.has('s-maxage'),
    noCache: noCache === true,
    staleWhileRevalidate: deltaSeconds(cc.get('stale-while-revalidate')) ?? 0,
    staleIfError: deltaSeconds(cc.get('stale-if-error')) ?? 0,
  };
}

/** §5.2.2.4 qualified no-cache: the named fields are left out when a stored response is reused. */
export function noCacheFields(cc: Directives): string[] {
  const v = cc.get('no-cache');
  return typeof v === 'string'
    ? v
        .split(',')
        .map((f) => f.trim().toLowerCase())
        .filter(Boolean)
    : [];
}

export type Reuse =
  | { kind: 'fresh' }
  /** Usable as stale without contacting the origin only while revalidating in the background (RFC 5861 §3). */
  | { kind: 'stale-while-revalidate' }
  /** Stale but the client's max-stale accepts it (§4.2.4). */
  | { kind: 'stale-ok' }
  | { kind: 'revalidate'; reason: 'stale' | 'no-cache' | 'request' };

/**
 * RFC 9111 §4 and §4.2.4: may a stored response satisfy this request as it is, given its age and the request
 * directives? (`request` means the client's own directives refused a fresh response.)
 */
export function reuse(policy: StoredPolicy, age: number, req: RequestDirectives): Reuse {
  if (req.noCache) return { kind: 'revalidate', reason: 'request' };
  if (policy.noCache) return { kind: 'revalidate', reason: 'no-cache' };
  const remaining = policy.lifetime - age;
  if (req.maxAge !== undefined && age > req.maxAge) return { kind: 'revalidate', reason: 'request' };
  if (req.minFresh !== undefined && remaining < req.minFresh)
    return { kind: 'revalidate', reason: 'request' };
  if (remaining > 0) return { kind: 'fresh' };
  const staleness = -remaining;
  if (policy.mustRevalidate) return { kind: 'revalidate', reason: 'stale' };
  if (req.maxStale !== undefined && staleness <= req.maxStale) return { kind: 'stale-ok' };
  // RFC 5861 §3: only a positive window; at staleness 0 (age = lifetime, stale by RFC 9111 §4.2) none is open.
  if (policy.staleWhileRevalidate > 0 && staleness <= policy.staleWhileRevalidate)
    return { kind: 'stale-while-revalidate' };
  return { kind: 'revalidate', reason: 'stale' };
}

/** RFC 5861 §4: may a stale response be served because revalidation failed (5xx or no connection)? */
export function staleIfErrorAllows(policy: StoredPolicy, staleness: number, req: RequestDirectives): boolean {
  if (policy.mustRevalidate) return false;
  const window = Math.max(policy.staleIfError, req.staleIfError ?? 0);
  return window > 0 && staleness <= window;
}

/**
 * RFC 9111 §4.2.4: a cache that cannot reach the origin MAY serve a stale response, unless the response
 * forbids it: must-revalidate, proxy-revalidate or s-maxage (§5.2.2.2, §5.2.2.8, §5.2.2.10), or unqualified
 * no-cache (§5.2.2.4). `bound` is how stale it may be (Squid's max_stale).
 */
export function staleWhenDisconnectedAllows(policy: StoredPolicy, staleness: number, bound: number): boolean {
  if (policy.mustRevalidate || policy.noCache) return false;
  return staleness <= bound;
}

/** Fields whose list order carries no meaning once q-values are considered, so variants sort them. */
const UNORDERED_LISTS = new Set(['accept-encoding', 'accept', 'accept-charset']);
const CASE_INSENSITIVE = new Set(['accept-encoding', 'accept-charset']);

/**
 * RFC 9111 §4.1: the secondary key from the request's values of the stored Vary fields, normalised so that
 * semantically equal values match: whitespace folded, case folded where the field is case-insensitive, and
 * list members sorted where their order is meaningless; Accept-Language ordered by weight (RFC 9110
 * §12.5.4).
 */
export function varyKey(varyNames: readonly string[], reqHeaders: RawHeaders): string {
  let key = '';
  for (const name of varyNames) {
    let v = fieldValue(reqHeaders, name);
    if (v !== undefined && name === 'accept-language') v = normalizeAcceptLanguage(v);
    else if (v !== undefined) {
      if (CASE_INSENSITIVE.has(name)) v = v.toLowerCase();
      const members = v
        .split(',')
        .map((s) => s.replace(/\s+/g, '').trim())
        .filter(Boolean);
      if (UNORDERED_LISTS.has(name)) members.sort();
      v = members.join(',');
    }
    key += `${name}=${v === undefined ? '\u0001' : v}\u0000`;
  }
  return key;
}

/** The Vary field names of a response, lower-cased and sorted (RFC 9110 §12.5.5). */
export function varyNames(headers: RawHeaders): string[] | null {
  const v = fieldValue(headers, 'vary');
  if (v === undefined) return null;
  const names = [
    ...new Set(
      v
        .split(',')
        .map((s) => s.trim().toLowerCase())
        .filter(Boolean),
    ),
  ].sort();
  return names.length ? names : null;
}

/** RFC 9110 §8.8.3.2 weak comparison of entity tags. */
function weakMatch(a: string, b: string): boolean {
  return a.replace(/^W\//, '') === b.replace(/^W\//, '');
}

/** What a client's conditional is evaluated against: the stored response's validators and times. */
export interface StoredValidators {
  etag: string | undefined;
  lastModified: number | null;
  headers: RawHeaders;
  responseTime: number;
}

/**
 * RFC 9111 §4.3.2 / RFC 9110 §13.1.2, §13.1.3: does the client's own conditional GET/HEAD match the stored
 * response, so that 304 is the answer? If-None-Match, when present, decides alone. If-Modified-Since is
 * compared with Last-Modified or, without one, with the stored Date, or else the time it was received
 * (§4.3.2).
 */
export function clientConditionalMatches(reqHeaders: RawHeaders, stored: StoredValidators): boolean {
  const etag = stored.etag;
  const inm = fieldValue(reqHeaders, 'if-none-match');
  if (inm !== undefined) {
    if (inm.trim() === '*') return true;
    if (etag === undefined) return false;
    return inm.split(',').some((t) => weakMatch(t.trim(), etag));
  }
  const ims = parseHttpDate(fieldValue(reqHeaders, 'if-modified-since'));
  if (ims === null) return false;
  const modified =
    stored.lastModified ?? parseHttpDate(fieldValue(stored.headers, 'date')) ?? stored.responseTime;
  return modified <= ims;
}

/**
 * RFC 9111 §4.3.5: does a 200 answer to HEAD describe the stored GET response? Every validator it carries
 * (ETag, Last-Modified) must match the stored one's, and so must its Content-Length if it has one. Then
 * the stored response is updated from it as from a 304; otherwise the stored response is to be taken as
 * stale.
 */
export function headResponseMatches(head: RawHeaders, stored: StoredValidators): boolean {
  const etag = fieldValue(head, 'etag');
  if (etag !== undefined && etag !== stored.etag) return false;
  const lm = fieldValue(head, 'last-modified');
  if (lm !== undefined && parseHttpDate(lm) !== stored.lastModified) return false;
  const length = fieldValue(head, 'content-length');
  return length === undefined || length === fieldValue(stored.headers, 'content-length');
}

/** RFC 9110 §15.4.5: the fields a 304 carries from the stored response. */
export const NOT_MODIFIED_FIELDS = new Set([
  'cache-control',
  'content-location',
  'date',
  'etag',
  'expires',
  'vary',
  'last-modified',
  'via',
]);

/** Fields a 304 must not change in the stored response (RFC 9111 §3.2 lets caches keep these). */
const KEEP_ON_UPDATE = new Set([
  'content-length',
  'content-encoding',
  'content-type',
  'content-range',
  'transfer-encoding',
]);

/** RFC 9111 §3.2 / §4.3.4: the stored header section updated with the fields of a 304 (or HEAD) response. */
export function updateHeaders(stored: RawHeaders, fresh: RawHeaders): RawHeaders {
  const replace = new Set<string>();
  for (let i = 0; i < fresh.length; i += 2) {
    const n = fresh[i].toLowerCase();
    if (!KEEP_ON_UPDATE.has(n)) replace.add(n);
  }
  return [...filterFields(stored, (n) => !replace.has(n)), ...filterFields(fresh, (n) => replace.has(n))];
}

/** RFC 9111 §4.4: methods whose non-error responses invalidate stored responses. */
export function invalidates(method: string, status: number): boolean {
  return (
    method !== 'GET' &&
    method !== 'HEAD' &&
    method !== 'OPTIONS' &&
    method !== 'TRACE' &&
    status >= 200 &&
    status < 400
  );
}
