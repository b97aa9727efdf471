/**
 * Cache peers as plain data (they cross to the workers in CUTTLE_CONFIG): what squid.conf's cache_peer,
 * the JSON config's `peers` and `--peer URL` describe, and the rule by which a member of a fleet
 * recognises itself in the list every member is given.
 */
import { networkInterfaces } from 'node:os';
import ipaddr from 'ipaddr.js';

export type PeerType = 'parent' | 'sibling';

export interface PeerConfig {
  host: string;
  /** The peer's HTTP port. */
  port: number;
  type: PeerType;
  /** Squid's peer name (cache_peer name=, else the host): what CARP hashes, what logs and pages show. */
  name: string;
  /** A CARP parent (cache_peer … carp). */
  carp: boolean;
  /** weight= (1 or more): CARP's load factor. */
  weight: number;
  /** cache_peer … default: the parent of last resort (Squid's DEFAULT_PARENT). */
  default: boolean;
  /** no-query: accepted; cuttle sends no ICP/HTCP queries to any peer. */
  noQuery: boolean;
  /** proxy-only: the peer's answers are not stored here. */
  proxyOnly: boolean;
  /** login=PASS: the client's Proxy-Authorization goes on to the peer. */
  loginPass: boolean;
  /** connect-timeout= in ms; null: the global connect timeout (Squid's peer_connect_timeout). */
  connectTimeout: number | null;
  /** connect-fail-limit=: consecutive connect failures that mark the peer down (Squid's default 10). */
  connectFailLimit: number;
  /** monitorurl= (Squid 2.7's name): HEAD this URL to probe a down peer; null: a TCP connect. */
  monitorUrl: string | null;
  /** monitorinterval= in ms: how often a down peer is probed. */
  monitorInterval: number;
  /** This entry is the member reading the list (resolved once in the primary, `markSelf`). */
  self: boolean;
}

/** Squid's connect-fail-limit default (cf.data.pre, cache_peer: "connect-fail-limit=N ... default 10"). */
export const CONNECT_FAIL_LIMIT = 10;
export const MONITOR_INTERVAL = 3000;

export function peerDefaults(host: string, port: number, name: string): PeerConfig {
  return {
    host,
    port,
    type: 'parent',
    name,
    carp: false,
    weight: 1,
    default: false,
    noQuery: false,
    proxyOnly: false,
    loginPass: false,
    connectTimeout: null,
    connectFailLimit: CONNECT_FAIL_LIMIT,
    monitorUrl: null,
    monitorInterval: MONITOR_INTERVAL,
    self: false,
  };
}

/**
 * `--peer URL`: a member of a consistent-hashing fleet, a CARP parent named by its URL's host:port (so
 * members on one host differ, and every member names every other the same way).
 */
export function peerFromUrl(url: string): PeerConfig {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a URL (expected http://host:port)`);
  }
  if (u.protocol !== 'http:') throw new Error(`"${url}": only http:// peers are supported`);
  if (u.pathname !== '/' || u.search || u.username) throw new Error(`"${url}": expected http://host:port`);
  const port = Number(u.port || 80);
  return { ...peerDefaults(u.hostname.replace(/^\[|\]$/g, ''), port, u.host), carp: true };
}

/** Whether `host` names this machine: a loopback address, `localhost`, or one of its interfaces' addresses. */
export function isOwnHost(host: string, listenHost: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === listenHost.toLowerCase()) return true;
  if (!ipaddr.isValid(h)) return false;
  const addr = ipaddr.process(h);
  if (addr.range() === 'loopback') return true;
  for (const list of Object.values(networkInterfaces()))
    for (const i of list ?? []) if (ipaddr.process(i.address).toString() === addr.toString()) return true;
  return false;
}

/**
 * A fleet gives every member the same list, itself included: the entry whose port is our listen port
 * and whose host is this machine is us (or the one marked `self` in the JSON config). Its share of the
 * URLs is then served here, from the origin, instead of being forwarded to ourselves.
 */
export function markSelf(peers: PeerConfig[], port: number, listenHost: string): PeerConfig[] {
  if (peers.some((p) => p.self)) return peers;
  return peers.map((p) => ({ ...p, self: p.port === port && isOwnHost(p.host, listenHost) }));
}

/**
 * The name this member puts in Via: its own peer name when it is in the list (so the others recognise a
 * request that came through it), else visible_hostname. Members on one host must differ here (Squid's
 * unique_hostname rule), which host:port names do.
 */
export function fleetName(peers: readonly PeerConfig[], visibleHostname: string): string {
  return peers.find((p) => p.self)?.name ?? visibleHostname;
}
