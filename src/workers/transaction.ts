/**
 * One record per request (Varnish's `struct req`), created when it arrives. Each stage writes the facts it
 * learns; Cache-Status, X-Cache, the access log and the counters are all rendered from it at the end, so
 * nothing reads back a header we wrote.
 */
import type { IncomingMessage } from 'node:http';
import type { RequestFacts } from '../access/access.js';
import type { CacheStatus } from '../cache/cache-status.js';
import type { RequestDirectives } from '../cache/policy.js';
import type { HierarchyCode } from '../fleet/select.js';
import type { ProxyError } from '../http/errors.js';
import type { RawHeaders } from '../http/fields.js';

/**
 * What the cache stage did with the request: Squid's result codes are named after these
 * (`squid/access-log.ts`), and the counters count them.
 */
export type Outcome =
  /** Answered from the store without contacting the origin (also stale-while-revalidate, max-stale). */
  | 'hit'
  | 'miss'
  /** The stored body could not be read whole: dropped and fetched again (Squid's TCP_SWAPFAIL_MISS). */
  | 'swapfail'
  /** Stale, revalidated: 304 (unmodified) or a new response (modified). */
  | 'refresh-unmodified'
  | 'refresh-modified'
  /** Stale, revalidation failed, the stored response served (stale-if-error). */
  | 'refresh-fail-old'
  /** The client's own no-cache or max-age made us go to the origin. */
  | 'client-refresh'
  /** Not a cacheable method: forwarded as it is (OPTIONS, TRACE, unsafe methods). */
  | 'pass'
  | 'tunnel'
  /** Answered by cuttle itself, or refused, before any of the above. */
  | 'none';

/** Where a request goes upstream, once routed. */
export interface Route {
  /** scheme://host[:port] of the server the request is sent to. */
  origin: string;
  path: string;
  /** The Host field sent upstream (the site the client named, in reverse mode). */
  host: string;
  /** The server's host name, for the access log's hierarchy field. */
  server: string;
}

/**
 * What the record keeps of the client's link: its address, and a byte counter from which the bytes sent
 * are taken. The connection's socket for HTTP/1.x; for an HTTP/2 stream its own (workers/h2.ts), since
 * the connection is shared by concurrent streams and node detaches a stream from it once closed.
 */
export interface ClientLink {
  readonly remoteAddress?: string;
  readonly bytesWritten: number;
}

export class Transaction {
  readonly started = Date.now();
  /** The same instant in high resolution, for the duration histograms' sub-millisecond buckets. */
  readonly startedHr = performance.now();
  /** The client socket's bytesWritten when the request arrived: bytes sent = the difference at the end. */
  readonly bytesBefore: number;
  readonly method: string;
  /** The URL as the access log shows it. */
  url: string;
  /** The cache key (primary), once routed. */
  key = '';
  route: Route | null = null;
  /** Max-Forwards to send upstream (RFC 9110 §7.6.2), if any. */
  maxForwards: string | undefined = undefined;
  /** What the access rules looked at, when they looked (squid.conf), with the authenticated user. */
  facts: RequestFacts | null = null;
  user: string | null = null;
  /** The request's Cache-Control, parsed once (RFC 9111 §5.2.1). */
  directives: RequestDirectives | null = null;
  outcome: Outcome = 'none';
  /** RFC 9211 parameters of our Cache-Status member; null when the cache stage was not involved. */
  cache: CacheStatus | null = null;
  /** Served from a body kept inside the entry record (Squid's TCP_MEM_HIT). */
  memory = false;
  /** Waited for another request's fetch of the same object (collapsed forwarding). */
  collapsed = false;
  /** The request went to a server (Squid's HIER_DIRECT). */
  forwarded = false;
  /** Where the routing stage sent it (src/fleet): Squid's hierarchy code and the server's host. */
  hier: { code: HierarchyCode; server: string } | null = null;
  /** A peer answered and this member keeps no copy (proxy-only, or a reverse fleet's non-owner). */
  peerNoStore = false;
  /** The answer cuttle made itself because something failed or was refused. */
  error: ProxyError | null = null;
  /** Status and header section sent to the client (after reply rules). */
  status = 0;
  fields: RawHeaders | null = null;
  upstreamStatus: number | null = null;

  /** The client's link, kept: node detaches the socket from the request once the response is done. */
  readonly socket: ClientLink;
  /** The request came on an HTTP/2 stream. */
  readonly h2: boolean;

  /** `h2link`: the stream's link, for a request that came over HTTP/2. */
  constructor(
    readonly req: IncomingMessage,
    h2link?: ClientLink,
  ) {
    this.h2 = h2link !== undefined;
    this.socket = h2link ?? req.socket;
    this.bytesBefore = this.socket.bytesWritten;
    this.method = req.method ?? '-';
    this.url = req.url ?? '-';
  }
}

/** Called once per finished transaction: the counters, the access log. */
export type FinishObserver = (txn: Transaction, end: number, bytes: number, complete: boolean) => void;
