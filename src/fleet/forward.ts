/**
 * The routing stage: where a request that needs an upstream goes, origin or peer. It sits between the
 * cache stage and undici (cache/miss.ts `forward` and the background revalidation call `fetch` with the
 * transaction), so a hit never reaches it and the cache stage does not know peers exist.
 *
 * For each exchange: the places to try (select.ts, from always_direct / never_direct / cache_peer_access,
 * the peers' health and CARP over the cache key), then the first of them. A peer gets the request as a
 * proxy gets it (absolute-form in forward mode; in reverse mode the origin-form request with the client's
 * Host, which is the same cache key at the owner), with Via and X-Forwarded-For as for an origin. A
 * connect failure counts against the peer (health.ts) and, for a request without a body, the next place
 * is tried at once, so a dead peer costs a client one refused connect and not an error.
 */
import type { Config } from '../config/config.js';
import { fieldValue, type RawHeaders } from '../http/fields.js';
import { viaNames } from '../http/forwarding.js';
import type { Logger } from '../shared/logger.js';
import { type CompiledAccess, compileAccess, compileAcls } from '../squid/acl.js';
import type { PeerStat } from '../stats/counters.js';
import {
  type Exchange,
  type Pending,
  Upstream,
  type UpstreamError,
  type UpstreamRequest,
  type UpstreamTimings,
} from '../upstream/upstream.js';
import type { Transaction } from '../workers/transaction.js';
import { carpTable } from './carp.js';
import { PeerHealth } from './health.js';
import type { PeerConfig } from './peers.js';
import { type Hop, isHierarchical, type PeerSet, type SelectionRules, selectHops } from './select.js';

/** What the cache stage sends through: undici directly, or the fleet's routing in front of it. */
export interface Forwarder {
  fetch(up: UpstreamRequest, exchange: Exchange, txn?: Transaction): Pending;
  close(): Promise<void>;
}

/** Errors where no connection to the peer was made: the request cannot have reached it. */
const CONNECT_FAILURES = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  // A pooled connection to a peer that died (kill -9) fails on write; undici retried it once already.
  'ECONNRESET',
  'UND_ERR_SOCKET',
]);

/** The error the client gets when no place is left (http/errors.ts maps it to 503 ERR_CANNOT_FORWARD). */
export const CANNOT_FORWARD = 'CUTTLE_CANNOT_FORWARD';

export interface FleetHooks {
  /** A peer was sent a request, or failed to connect: for the metrics. */
  fetched?(peer: string): void;
  failed?(peer: string): void;
  state?(peer: string, up: boolean): void;
}

export class FleetForwarder implements Forwarder {
  readonly peers: readonly PeerConfig[];
  readonly health: PeerHealth;
  private readonly set: PeerSet;
  private readonly rules: SelectionRules;
  private readonly alwaysDirect: CompiledAccess | null;
  private readonly neverDirect: CompiledAccess | null;
  private readonly access: Array<CompiledAccess | null>;
  private readonly names: Set<string>;
  private readonly reverse: boolean;
  private readonly peerCacheCopy: boolean;

  constructor(
    config: Config,
    log: Logger,
    private readonly direct: Upstream,
    /** One undici Agent per peer, so its connect-timeout bounds the connect. */
    private readonly viaPeer: Upstream[],
    private readonly hooks: FleetHooks = {},
  ) {
    const peers = config.peers;
    this.peers = peers;
    this.reverse = config.origin !== null;
    this.peerCacheCopy = config.peerCacheCopy;
    const carpMembers = peers.flatMap((p, i) => (p.carp && p.type === 'parent' ? [i] : []));
    this.set = {
      peers,
      carpMembers,
      carp:
        carpMembers.length === 0
          ? null
          : carpTable(carpMembers.map((i) => ({ name: peers[i].name, weight: peers[i].weight }))),
    };
    const sq = config.squid;
    const routing = sq?.routing;
    this.rules = {
      preferDirect: routing?.preferDirect ?? false,
      nonhierarchicalDirect: routing?.nonhierarchicalDirect ?? true,
    };
    const matchers = sq ? compileAcls(sq.acls) : null;
    const compile = (rules: NonNullable<typeof routing>['neverDirect'] | undefined) =>
      sq && matchers && rules && rules.length > 0 ? compileAccess(sq.acls, rules, matchers) : null;
    this.alwaysDirect = compile(routing?.alwaysDirect);
    this.neverDirect = compile(routing?.neverDirect);
    this.access = peers.map((p) => compile(routing?.peerAccess[p.name]));
    this.names = new Set(peers.filter((p) => !p.self).map((p) => p.name.toLowerCase()));
    this.health = new PeerHealth(
      peers,
      log,
      (i, up) => hooks.state?.(peers[i].name, up),
      undefined,
      config.timeouts.connect,
    );
    for (const p of peers) hooks.state?.(p.name, true);
  }

  fetch(up: UpstreamRequest, exchange: Exchange, txn?: Transaction): Pending {
    if (txn === undefined) return this.direct.fetch(up, exchange);
    const facts = this.facts(txn);
    const excluded = new Set<number>();
    const usable = (i: number) => !excluded.has(i) && this.health.isUp(i) && this.allowed(i, txn);
    let current: Pending | null = null;
    let aborted = false;
    const attempt = (): void => {
      const hop = selectHops(this.set, facts, this.rules, usable)[0];
      if (hop === undefined) {
        txn.hier = { code: 'HIER_NONE', server: '-' };
        const err: UpstreamError = new Error(
          facts.neverDirect
            ? 'never_direct forbids going direct and no parent is up or allowed'
            : 'no parent is up or allowed',
        );
        err.code = CANNOT_FORWARD;
        return exchange.onError(err);
      }
      if (hop.peer === null) {
        txn.hier = { code: hop.code, server: txn.route?.server ?? '-' };
        // After a peer failed: the origin's answer is ours to store.
        txn.peerNoStore = false;
        current = this.direct.fetch(up, exchange);
        return;
      }
      current = this.toPeer(hop, up, exchange, txn, (err) => {
        excluded.add(hop.peer as number);
        if (aborted) return;
        // A request with a body may have been partly sent: it is not replayed elsewhere.
        if (up.body === null) attempt();
        else exchange.onError(err);
      });
    };
    attempt();
    return {
      abort: (reason) => {
        aborted = true;
        current?.abort(reason);
      },
    };
  }

  private toPeer(
    hop: Hop,
    up: UpstreamRequest,
    exchange: Exchange,
    txn: Transaction,
    next: (err: UpstreamError) => void,
  ): Pending {
    const i = hop.peer as number;
    const p = this.peers[i];
    txn.hier = { code: hop.code, server: p.host };
    // Reverse mode: the owner stores; a copy here only with --peer-cache-copy. proxy-only: never.
    txn.peerNoStore = p.proxyOnly || (this.reverse && !this.peerCacheCopy);
    this.health.fetched(i);
    this.hooks.fetched?.(p.name);
    const host = p.host.includes(':') ? `[${p.host}]` : p.host;
    const toPeer: UpstreamRequest = {
      ...up,
      origin: `http://${host}:${p.port}`,
      // A parent proxy is asked as a proxy is: absolute-form (RFC 9112 §3.2.2).
      path: this.reverse ? up.path : `${up.origin}${up.path}`,
      headers: p.loginPass ? withCredentials(up.headers, txn) : up.headers,
    };
    return this.viaPeer[i].fetch(toPeer, {
      ...exchange,
      onHead: (status, raw) => {
        this.health.connected(i);
        return exchange.onHead(status, raw);
      },
      onError: (err) => {
        if (!CONNECT_FAILURES.has(err.code ?? '')) return exchange.onError(err);
        this.health.connectFailed(i, err.code ?? err.message);
        this.hooks.failed?.(p.name);
        next(err);
      },
    });
  }

  private facts(txn: Transaction) {
    const f = txn.facts;
    const raw = txn.req.rawHeaders;
    const via = fieldValue(raw, 'via');
    return {
      alwaysDirect: f !== null && this.alwaysDirect?.check(f).allow === true,
      neverDirect: f !== null && this.neverDirect?.check(f).allow === true,
      fromPeer: via !== undefined && viaNames(via).some((n) => this.names.has(n)),
      hierarchical: isHierarchical(txn.method, fieldValue(raw, 'authorization') !== undefined),
      key: txn.key,
    };
  }

  /** cache_peer_access: without lines for a peer, every request may go to it (Squid's default). */
  private allowed(i: number, txn: Transaction): boolean {
    const rules = this.access[i];
    if (rules === null) return true;
    return txn.facts !== null && rules.check(txn.facts).allow;
  }

  /** The peers as this worker sees them, for the cache manager's server_list. */
  peerStats(): PeerStat[] {
    return this.peers.map((p, i) => {
      const c = this.health.counters[i];
      return {
        name: p.name,
        host: p.host,
        port: p.port,
        type: p.self ? 'self' : p.type,
        flags: peerFlags(p),
        up: c.up,
        fetches: c.fetches,
        connectFailures: c.connectFailures,
      };
    });
  }

  close(): Promise<void> {
    this.health.close();
    return Promise.all([this.direct.close(), ...this.viaPeer.map((u) => u.close())]).then(() => {});
  }
}

/**
 * The worker's forwarder: undici alone without peers; with peers, the routing stage in front of one Agent
 * for origins and one per peer (each with the peer's connect-timeout).
 */
export function createForwarder(
  config: Config,
  log: Logger,
  timings: UpstreamTimings | null,
  hooks: FleetHooks = {},
): Forwarder & { peerStats?(): PeerStat[] } {
  const direct = new Upstream(config, log, timings);
  if (config.peers.length === 0) return direct;
  const viaPeer = config.peers.map(
    (p) =>
      new Upstream(
        {
          ...config,
          timeouts: { ...config.timeouts, connect: p.connectTimeout ?? config.timeouts.connect },
          // An https origin's CA is not a peer's: peers are plain HTTP.
          originCa: null,
          originInsecure: false,
        },
        log,
        timings,
      ),
  );
  return new FleetForwarder(config, log, direct, viaPeer, hooks);
}

/** The options server_list prints on its Flags line, as squid.conf spells them. */
function peerFlags(p: PeerConfig): string {
  const f: string[] = [];
  if (p.carp) f.push('carp');
  if (p.weight !== 1) f.push(`weight=${p.weight}`);
  if (p.default) f.push('default');
  if (p.noQuery) f.push('no-query');
  if (p.proxyOnly) f.push('proxy-only');
  if (p.loginPass) f.push('login=PASS');
  if (p.connectTimeout !== null) f.push(`connect-timeout=${p.connectTimeout / 1000}`);
  f.push(`connect-fail-limit=${p.connectFailLimit}`);
  return f.join(' ');
}

/** login=PASS: the client's Proxy-Authorization goes on to the peer (it is hop-by-hop otherwise). */
function withCredentials(headers: RawHeaders, txn: Transaction): RawHeaders {
  const v = fieldValue(txn.req.rawHeaders, 'proxy-authorization');
  return v === undefined ? headers : [...headers, 'Proxy-Authorization', v];
}
