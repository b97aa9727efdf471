/**
 * access: who may use the proxy, where CONNECT may go, and who may reach the cache manager and PURGE.
 * This is the interface the pipeline asks, and its default rules: Squid's stock rules in short
 * (`allow localhost`, `allow localnet`, `deny CONNECT !SSL_ports`, `deny all`, the manager and PURGE from
 * this host only), driven by `allow` and `connectPorts`. A squid.conf replaces them (`squid/access.ts`).
 */
import type { Config } from '../config/config.js';
import { accessDenied, type ProxyError } from '../http/errors.js';
import { plainAddress } from '../http/forwarding.js';
import type { Transaction } from '../workers/transaction.js';
import { clientMatcher, isLoopback } from './client-rules.js';

/** The request's destination, once its target is parsed. */
export interface Destination {
  scheme: string;
  host: string;
  port: number;
  /** The absolute URL (host:port for CONNECT). */
  url: string;
  path: string;
}

/** What access rules look at, from one request (Squid's ACL types match on these). */
export interface RequestFacts {
  /** Client address. */
  src: string | undefined;
  /** Destination host as requested (name or address) and port. */
  host: string;
  port: number;
  method: string;
  /** Squid's protocol names: HTTP, HTTPS, … CONNECT requests count as their own kind. */
  proto: string;
  /** The absolute URL (for CONNECT, host:port). */
  url: string;
  /** Path and query (urlpath_regex). */
  path: string;
  userAgent: string;
  /** The authenticated user, when credentials were checked. */
  user: string | null;
  now: Date;
}

/**
 * Each check answers null (go on) or the refusal to send. A check that authenticates records the user and
 * the facts it looked at on the transaction, for header rules and the log.
 */
export interface Access {
  /** Before the target is parsed: the client address alone. */
  client(txn: Transaction): ProxyError | null;
  /** Whether `request` looks at the destination (it is built only then). */
  readonly checksRequests: boolean;
  request(txn: Transaction, dest: Destination): ProxyError | null;
  connect(txn: Transaction, host: string, port: number): ProxyError | null;
  /** The cache manager and /cuttle-internal/ pages. */
  manager(txn: Transaction, dest: Destination): ProxyError | null;
  /** PURGE of a stored URL (after `request`). */
  purge(txn: Transaction): ProxyError | null;
}

export function defaultAccess(config: Config): Access {
  const allowed = clientMatcher(config.allow);
  const ports = new Set(config.connectPorts);
  const client = (txn: Transaction) => {
    const address = txn.req.socket.remoteAddress;
    return allowed(address)
      ? null
      : accessDenied(`client ${plainAddress(address)} is not allowed to use this proxy`);
  };
  const thisHostOnly = (why: string) => (txn: Transaction) =>
    isLoopback(txn.req.socket.remoteAddress) ? null : accessDenied(why);
  return {
    client,
    checksRequests: false,
    request: () => null,
    connect: (txn, _host, port) =>
      client(txn) ??
      (ports.has(port)
        ? null
        : accessDenied(`CONNECT to port ${port} is not allowed (allowed: ${[...ports].join(', ')})`)),
    manager: thisHostOnly('the cache manager answers this host only'),
    purge: thisHostOnly('PURGE is allowed from this host only'),
  };
}
