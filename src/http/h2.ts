/**
 * HTTP/2 messages in the terms of the HTTP/1.1 core (RFC 9113 §8), as pure functions over raw field lists:
 * a request's pseudo-header fields become the Host the rest of the pipeline reads, and a response loses the
 * connection-specific fields HTTP/2 forbids. Everything else about a message is version-independent
 * (RFC 9110), so caching, ranges and conditionals need nothing of their own.
 */
import { filterFields, type RawHeaders } from './fields.js';

/**
 * RFC 9113 §8.2.2: connection-specific fields MUST NOT appear in an HTTP/2 message; an intermediary
 * converting from HTTP/1.x removes them, and whatever `Connection` names (RFC 9110 §7.6.1, already gone
 * from what we relay: `endToEndHeaders`).
 */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

/** A response header section as sent on an HTTP/2 stream: no connection-specific field (§8.2.2). */
export function h2ResponseFields(raw: RawHeaders): RawHeaders {
  for (let i = 0; i < raw.length; i += 2)
    if (CONNECTION_SPECIFIC.has(raw[i].toLowerCase()))
      return filterFields(raw, (name) => !CONNECTION_SPECIFIC.has(name));
  return raw;
}

/**
 * A header section as node:http2's `respond` and `additionalHeaders` take it: lower-case names, a repeated
 * field as an array of its values in order (Set-Cookie), `:status` first.
 */
export function h2HeaderObject(status: number, raw: RawHeaders): Record<string, string | string[] | number> {
  const h: Record<string, string | string[] | number> = { ':status': status };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const prev = h[name];
    h[name] = prev === undefined ? raw[i + 1] : [String(prev), raw[i + 1]].flat();
  }
  return h;
}

/**
 * What a header section is counted as on an HTTP/2 stream, for the access log's bytes: what the same head
 * would cost in HTTP/1.1 (HPACK compresses it on the wire), status line and CRLFs included.
 */
export function headBytes(raw: RawHeaders): number {
  let n = 12;
  for (const f of raw) n += f.length + 2;
  return n;
}

export interface H2Request {
  /** The request's fields without pseudo-header fields, Host first when :authority gave it. */
  fields: RawHeaders;
  /** The authority the request names (`:authority`, else Host), or null. */
  authority: string | null;
  /** Why the request is malformed, or null. */
  error: string | null;
}

/**
 * An HTTP/2 request's header list as an HTTP/1.1 intermediary needs it.
 * - §8.3.1: `:authority` plays the role of Host; an intermediary generating Host uses its value. A Host
 *   that names another authority than `:authority` makes the request malformed (the SHOULD, taken).
 * - §8.2.3: a Cookie split into several fields ("crumbs") is joined with "; " into one, as HTTP/1.1 needs.
 * Pseudo-header fields are dropped: the method and target reach the pipeline as `req.method` and `req.url`.
 */
export function h2RequestFields(raw: RawHeaders): H2Request {
  const fields: RawHeaders = [];
  let authority: string | null = null;
  let host: string | null = null;
  let cookie: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') authority = raw[i + 1];
      continue;
    }
    const lower = name.toLowerCase();
    if (lower === 'cookie') {
      cookie = cookie === null ? raw[i + 1] : `${cookie}; ${raw[i + 1]}`;
      continue;
    }
    if (lower === 'host') {
      if (host !== null) return { fields, authority, error: 'more than one Host field (RFC 9112 §3.2)' };
      host = raw[i + 1];
    }
    fields.push(name, raw[i + 1]);
  }
  if (cookie !== null) fields.push('cookie', cookie);
  if (authority === null) return { fields, authority: host, error: null };
  if (host === null) {
    fields.unshift('host', authority);
    return { fields, authority, error: null };
  }
  const error =
    host.toLowerCase() === authority.toLowerCase()
      ? null
      : `Host "${host.slice(0, 60)}" differs from :authority "${authority.slice(0, 60)}" (RFC 9113 §8.3.1)`;
  return { fields, authority, error };
}
