/**
 * Access for a squid.conf: its acl and http_access lines decide every request, CONNECT, the cache manager
 * and PURGE, with auth_param basic (407) and deny_info answers. The facts the ACLs saw, with the user,
 * stay on the transaction: header rules and the access log reuse them.
 */
import type { Access, Destination, RequestFacts } from '../access/access.js';
import { accessDenied, authRequired, ProxyError } from '../http/errors.js';
import { plainAddress } from '../http/forwarding.js';
import type { Transaction } from '../workers/transaction.js';
import { compileAccess, compileAcls } from './acl.js';
import { createBasicAuth } from './basic-auth.js';
import type { SquidSettings } from './conf.js';

/** What Squid's ACLs look at, for one request. */
function requestFacts(txn: Transaction, dest: Destination, user: string | null): RequestFacts {
  const req = txn.req;
  return {
    src: req.socket.remoteAddress,
    host: dest.host,
    port: dest.port,
    method: txn.method,
    proto: txn.method === 'CONNECT' ? 'NONE' : dest.scheme.toUpperCase(),
    url: dest.url,
    path: dest.path,
    userAgent: String(req.headers['user-agent'] ?? ''),
    user,
    now: new Date(),
  };
}

export function squidAccess(sq: SquidSettings, matchers = compileAcls(sq.acls)): Access {
  const rules = compileAccess(sq.acls, sq.httpAccess, matchers);
  const auth = sq.auth ? createBasicAuth(sq.auth.passwdFile, sq.auth.realm, sq.auth.ttlMs) : null;
  const decide = (txn: Transaction, dest: Destination): ProxyError | null => {
    const facts = requestFacts(txn, dest, auth?.check(txn.req.headers['proxy-authorization']) ?? null);
    txn.facts = facts;
    txn.user = facts.user;
    const d = rules.check(facts);
    if (d.needsAuth && auth) return authRequired(auth.realm, `proxy authentication required by ${d.rule}`);
    if (d.allow) return null;
    const why = `http_access denies ${txn.method} ${dest.url} from ${plainAddress(facts.src)} (${d.rule})`;
    return denial(d.acl === null ? undefined : sq.denyInfo[d.acl.replace(/^!/, '')], why);
  };
  return {
    client: () => null,
    checksRequests: true,
    request: decide,
    connect: (txn, host, port) =>
      decide(txn, { scheme: 'https', host, port, url: `${host}:${port}`, path: '' }),
    // Squid's stock rules apply: `http_access allow localhost manager`, `http_access deny manager`.
    manager: decide,
    // As Squid: PURGE exists only when some `acl … method PURGE` names it; then http_access (already
    // applied to the request) decides who may.
    purge: purgeNamed(sq)
      ? () => null
      : () => accessDenied('PURGE is not enabled: no acl of type method lists PURGE in squid.conf'),
  };
}

function purgeNamed(sq: SquidSettings): boolean {
  return sq.acls.some((a) => a.type === 'method' && a.values.includes('PURGE'));
}

/**
 * deny_info: the ACL that ended a denying line picks the answer: an error name (403 with that
 * X-Squid-Error) or a redirect (`URL` is 302, `307:URL` another 3xx status).
 */
function denial(info: string | undefined, why: string): ProxyError {
  if (!info) return accessDenied(why);
  if (info.startsWith('ERR_')) return new ProxyError(403, info, why);
  const m = /^(?:(\d{3}):)?(.*)$/.exec(info) as RegExpExecArray;
  return new ProxyError(Number(m[1] ?? 302), 'ERR_ACCESS_DENIED', why, ['Location', m[2]]);
}
