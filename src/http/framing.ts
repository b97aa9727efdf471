/**
 * recv: the checks on a request's framing and Host that llhttp leaves to us, as pure functions over the raw
 * header list. Each answers the error to send, or null. After any of these errors the connection closes
 * (RFC 9112 §11.2, §9.6): the bytes after a message whose framing is in doubt cannot be trusted to start
 * the next request.
 */
import { invalidRequest, ProxyError } from './errors.js';
import type { RawHeaders } from './fields.js';
import { parseAuthority } from './target.js';

/** RFC 9112 §2.3: this is an HTTP/1.x server; 0.9 and 2.0 request lines get 505. */
export function versionError(major: number, minor: number): ProxyError | null {
  if (major === 1) return null;
  return new ProxyError(505, 'ERR_UNSUP_HTTPVERSION', `HTTP/${major}.${minor} is not supported here`);
}

/**
 * RFC 9112 §6.1-6.3: the message body length must be unambiguous.
 * - Content-Length with Transfer-Encoding is a smuggling shape: §6.1 allows rejecting it, and we do.
 * - More than one Content-Length, even with equal values: RFC 9110 §8.6 allows rejecting it, and we do.
 * - Transfer-Encoding must end in `chunked` (§6.3 item 4: otherwise 400 and close), hold it once
 *   (§6.1: chunked MUST NOT be applied twice), and name no other coding: we strip Transfer-Encoding as a
 *   hop-by-hop field and could not pass another coding on, so those get 501 (§6.1).
 * Empty list members are ignored (RFC 9110 §5.6.1.2); an empty field is invalid.
 */
export function framingError(raw: RawHeaders): ProxyError | null {
  let lengths = 0;
  let encodings: string[] | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name === 'content-length') lengths++;
    else if (name === 'transfer-encoding') {
      encodings ??= [];
      for (const m of raw[i + 1].split(',')) {
        const t = m.trim().toLowerCase();
        if (t) encodings.push(t);
      }
    }
  }
  if (encodings !== null && lengths > 0)
    return invalidRequest('Content-Length and Transfer-Encoding together (RFC 9112 §6.1)');
  if (lengths > 1) return invalidRequest('more than one Content-Length (RFC 9112 §6.3)');
  if (encodings === null) return null;
  if (encodings.length === 0) return invalidRequest('empty Transfer-Encoding');
  if (encodings.at(-1) !== 'chunked')
    return invalidRequest('Transfer-Encoding does not end in chunked (RFC 9112 §6.3)');
  if (encodings.indexOf('chunked') !== encodings.length - 1)
    return invalidRequest('chunked applied more than once (RFC 9112 §6.1)');
  if (encodings.length > 1)
    return new ProxyError(
      501,
      'ERR_UNSUP_REQ',
      `transfer coding "${encodings[0]}" is not supported; only chunked is (RFC 9112 §6.1)`,
    );
  return null;
}

/**
 * RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, to any request with more
 * than one Host field line, and to a Host field with an invalid value.
 */
export function hostError(raw: RawHeaders, minor: number): ProxyError | null {
  let value: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') {
      if (value !== null) return invalidRequest('more than one Host field (RFC 9112 §3.2)');
      value = raw[i + 1];
    }
  }
  if (value === null) return minor >= 1 ? invalidRequest('missing Host field (RFC 9112 §3.2)') : null;
  // An empty Host is what a client sends for a target without an authority (RFC 9110 §7.2).
  if (value !== '' && typeof parseAuthority(value, 80) === 'string')
    return invalidRequest(`invalid Host field "${value.slice(0, 60)}" (RFC 9112 §3.2)`);
  return null;
}
