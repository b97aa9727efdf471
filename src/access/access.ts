/**
 * access: who may use the proxy, and where CONNECT may go. Without a squid.conf these are Squid's stock
 * rules in short (`allow localhost`, `allow localnet`, `deny CONNECT !SSL_ports`, `deny all`) driven by
 * `allow` and `connectPorts`; with --squid-conf, its own acl and http_access lines decide.
 */
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/config.js';
import { accessDenied, authRequired, ProxyError } from '../http/errors.js';
import { plainAddress } from '../http/forwarding.js';
import { type AccessContext, compileAccess } from '../squid/acl.js';
import { createBasicAuth } from '../squid/basic-auth.js';
import { clientMatcher } from './client-rules.js';

/** The request's destination, once its target is parsed. */
export interface Destination {
  scheme: string;
  host: string;
  port: number;
  /** The absolute URL (host:port for CONNECT). */
  url: string;
  path: string;
}

export interface Access {
  /** Checked before the target is parsed: the client address alone. */
  client(req: IncomingMessage): ProxyError | null;
  /**
   * With a squid.conf only, once the destination is known: http_access's refusal, or the context the ACLs
   * saw (with the authenticated user), which header filtering and the access log reuse.
   */
  request?(req: IncomingMessage, dest: Destination): ProxyError | AccessContext;
  connect(req: IncomingMessage, host: string, port: number): ProxyError | null;
}

export function createAccess(config: Config): Access {
  if (config.squid) return squidAccess(config);
  const allowed = clientMatcher(config.allow);
  const ports = new Set(config.connectPorts);
  const client = (req: IncomingMessage) => {
    const address = req.socket.remoteAddress;
    return allowed(address)
      ? null
      : accessDenied(`client ${plainAddress(address)} is not allowed to use this proxy`);
  };
  return {
    client,
    connect: (req, _host, port) =>
      client(req) ??
      (ports.has(port)
        ? null
        : accessDenied(`CONNECT to port ${port} is not allowed (allowed: ${[...ports].join(', ')})`)),
  };
}

/** What Squid's ACLs look at, for one request. */
function accessContext(req: IncomingMessage, dest: Destination, user: string | null = null): AccessContext {
  return {
    src: req.socket.remoteAddress,
    host: dest.host,
    port: dest.port,
    method: req.method ?? '',
    proto: req.method === 'CONNECT' ? 'NONE' : dest.scheme.toUpperCase(),
    url: dest.url,
    path: dest.path,
    userAgent: String(req.headers['user-agent'] ?? ''),
    user,
    now: new Date(),
  };
}

function squidAccess(config: Config): Access {
  const sq = config.squid as NonNullable<Config['squid']>;
  const rules = compileAccess(sq.acls, sq.httpAccess);
  const auth = sq.auth ? createBasicAuth(sq.auth.passwdFile, sq.auth.realm, sq.auth.ttlMs) : null;
  const decide = (req: IncomingMessage, dest: Destination): ProxyError | AccessContext => {
    const ctx = accessContext(req, dest, auth?.check(req.headers['proxy-authorization']) ?? null);
    const d = rules.check(ctx);
    if (d.needsAuth && auth) return authRequired(auth.realm, `proxy authentication required by ${d.rule}`);
    if (d.allow) return ctx;
    const why = `http_access denies ${req.method} ${dest.url} from ${plainAddress(ctx.src)} (${d.rule})`;
    return denial(d.acl === null ? undefined : sq.denyInfo[d.acl.replace(/^!/, '')], why);
  };
  return {
    client: () => null,
    request: decide,
    connect: (req, host, port) => {
      const r = decide(req, { scheme: 'https', host, port, url: `${host}:${port}`, path: '' });
      return r instanceof ProxyError ? r : null;
    },
  };
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
