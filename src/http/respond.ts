/**
 * RFC 9110 §7.6.1 and §7.6.3: what a proxy sends on of an upstream response's header section.
 */
import { endToEndHeaders, fieldValue, type RawHeaders } from './fields.js';
import { appendVia } from './forwarding.js';

const DROP_ON_RESPONSE = new Set(['via']);

/** The upstream response's end-to-end fields with our `Via` member appended. */
export function responseHeaders(raw: RawHeaders, via: string): RawHeaders {
  const out = endToEndHeaders(raw, DROP_ON_RESPONSE);
  out.push('Via', appendVia(fieldValue(raw, 'via'), via));
  return out;
}
