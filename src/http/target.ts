/**
 * recv: what a request asks for, from its request-target (RFC 9112 §3.2), before access and routing.
 */

export type Target =
  | { form: 'origin'; path: string }
  | {
      form: 'absolute';
      scheme: 'http' | 'https';
      authority: string;
      host: string;
      port: number;
      path: string;
    }
  | { form: 'asterisk' }
  | { form: 'invalid'; reason: string };

// RFC 3986 §3.2.2: reg-name or IPv4address characters; IP-literals are checked separately.
const REG_NAME = /^[A-Za-z0-9._~!$&'()*+,;=%-]+$/;
const IP_LITERAL = /^\[[0-9A-Fa-f:.]+\]$/;

export interface Authority {
  host: string;
  port: number;
}

/** RFC 9112 §3.2.3 authority-form `host:port`, as CONNECT uses it; `defaultPort` when the port is absent. */
export function parseAuthority(authority: string, defaultPort?: number): Authority | string {
  if (!authority) return 'empty authority';
  // RFC 9110 §4.2.4: userinfo is deprecated in http(s) URIs and treated as an error.
  if (authority.includes('@')) return 'userinfo is not allowed in the request-target';
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(authority);
  if (!m) return `invalid authority "${authority}"`;
  const host = m[1];
  if (!host || !(IP_LITERAL.test(host) || REG_NAME.test(host))) return `invalid host "${host}"`;
  const portText = m[2];
  const port = portText ? Number(portText) : defaultPort;
  if (port === undefined) return 'a port is required';
  if (!Number.isInteger(port) || port < 1 || port > 65535) return `invalid port "${portText}"`;
  return { host: host.toLowerCase(), port };
}

/** RFC 9112 §3.2: origin-form, absolute-form or asterisk-form (CONNECT's authority-form arrives elsewhere). */
export function parseTarget(target: string): Target {
  if (target === '*') return { form: 'asterisk' };
  // RFC 9112 §3.2: no fragment in a request-target.
  if (target.includes('#'))
    return { form: 'invalid', reason: 'a request-target may not contain a fragment (#)' };
  if (target[0] === '/') return { form: 'origin', path: target };
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?]*)(.*)$/.exec(target);
  if (!m) return { form: 'invalid', reason: `"${truncate(target)}" is neither an absolute URI nor a path` };
  const scheme = m[1].toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') {
    return {
      form: 'invalid',
      reason: `unsupported URI scheme "${scheme}" (http and https are proxied; use CONNECT for TLS)`,
    };
  }
  const auth = parseAuthority(m[2], scheme === 'https' ? 443 : 80);
  if (typeof auth === 'string') return { form: 'invalid', reason: auth };
  let path = m[3];
  if (path === '') path = '/';
  else if (path[0] === '?') path = `/${path}`;
  const authority = m[2].toLowerCase();
  return { form: 'absolute', scheme, authority, host: auth.host, port: auth.port, path };
}

function truncate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

/**
 * RFC 9112 §6.3: whether a request carries content. llhttp has already rejected the ambiguous cases
 * (Transfer-Encoding with Content-Length, conflicting lengths) as smuggling defences.
 */
export function hasRequestBody(headers: {
  'content-length'?: string;
  'transfer-encoding'?: string;
}): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const cl = headers['content-length'];
  return cl !== undefined && cl !== '0';
}
