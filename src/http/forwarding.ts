/**
 * Pure functions for a proxy's duties under RFC 9110 §7.6 (message forwarding): Via, loops, Max-Forwards,
 * TRACE, and the header section sent upstream.
 */
import { endToEndHeaders, type RawHeaders } from './fields.js';

/** RFC 9110 §7.6.3: the `Via` member this proxy adds, naming the protocol version it received. */
export function viaEntry(httpVersion: string, name: string, product: string): string {
  return `${httpVersion} ${name} (${product})`;
}

/** RFC 9110 §7.6.3: appends our member to an existing `Via` list. */
export function appendVia(existing: string | undefined, entry: string): string {
  return existing ? `${existing}, ${entry}` : entry;
}

/**
 * RFC 9110 §7.6.3: `Via` members are `received-protocol received-by [comment]`.
 * A request that already passed through a proxy called `name` is a forwarding loop.
 */
export function viaNames(via: string): string[] {
  const names: string[] = [];
  // Comments may contain commas, so drop them before splitting the list.
  for (const member of via.replace(/\([^)]*\)/g, '').split(',')) {
    const parts = member.trim().split(/\s+/);
    if (parts.length >= 2) names.push(parts[1].toLowerCase());
  }
  return names;
}

export function isForwardingLoop(via: string | undefined, name: string): boolean {
  return via !== undefined && viaNames(via).includes(name.toLowerCase());
}

export type MaxForwards = { answer: true } | { answer: false; forward: string | undefined };

/**
 * RFC 9110 §7.6.2: for TRACE and OPTIONS, a proxy answers itself when Max-Forwards is 0 and otherwise
 * forwards the value minus one. Other methods, and an invalid value, pass unchanged (the field MAY be ignored).
 */
export function maxForwards(method: string, value: string | undefined): MaxForwards {
  if (value === undefined || (method !== 'OPTIONS' && method !== 'TRACE'))
    return { answer: false, forward: value };
  const v = value.trim();
  if (!/^\d+$/.test(v)) return { answer: false, forward: value };
  const n = Number(v);
  return n === 0 ? { answer: true } : { answer: false, forward: String(n - 1) };
}

/** RFC 9110 §9.3.8: fields a TRACE echo leaves out because they likely carry credentials. */
const TRACE_SENSITIVE = new Set(['authorization', 'proxy-authorization', 'cookie']);

/** RFC 9110 §9.3.8: the `message/http` body a TRACE recipient reflects. */
export function traceBody(method: string, target: string, httpVersion: string, raw: RawHeaders): string {
  let out = `${method} ${target} HTTP/${httpVersion}\r\n`;
  for (let i = 0; i < raw.length; i += 2) {
    if (!TRACE_SENSITIVE.has(raw[i].toLowerCase())) out += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return `${out}\r\n`;
}

/** Socket addresses of IPv4 clients on dual-stack listeners arrive IPv4-mapped; logs and headers want the IPv4. */
export function plainAddress(address: string | undefined): string {
  if (!address) return '-';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

const DROP_ON_REQUEST = new Set(['host', 'via', 'x-forwarded-for', 'max-forwards', 'expect']);

export interface RequestRewrite {
  /** RFC 9112 §3.2.2: the authority of an absolute-form target replaces any received Host. */
  host: string;
  /** Null sends none (Squid's `via off` with no Via received). */
  via: string | null;
  /** Null sends none (Squid's `forwarded_for delete`). */
  forwardedFor: string | null;
  maxForwards: string | undefined;
}

/**
 * The header section sent upstream: end-to-end fields (§7.6.1), then Host, Via (§7.6.3), X-Forwarded-For and
 * Max-Forwards (§7.6.2). `Expect` is dropped because this proxy answers 100-continue on its own link (§10.1.1).
 */
export function forwardedRequestHeaders(raw: RawHeaders, rw: RequestRewrite): RawHeaders {
  const out = endToEndHeaders(raw, DROP_ON_REQUEST);
  out.push('Host', rw.host);
  if (rw.via !== null) out.push('Via', rw.via);
  if (rw.forwardedFor !== null) out.push('X-Forwarded-For', rw.forwardedFor);
  if (rw.maxForwards !== undefined) out.push('Max-Forwards', rw.maxForwards);
  return out;
}

export const FORWARDED_FOR_MODES = ['on', 'off', 'transparent', 'truncate', 'delete'] as const;
export type ForwardedForMode = (typeof FORWARDED_FOR_MODES)[number];

/**
 * X-Forwarded-For (de facto), as Squid's forwarded_for sets it: `on` (the default) appends the client address, `off` appends "unknown", `transparent` passes the
 * header on untouched, `truncate` replaces it with the client address alone, `delete` removes it.
 * Returns the value to send, or null for none.
 */
export function forwardedForValue(
  mode: ForwardedForMode,
  existing: string | undefined,
  client: string,
): string | null {
  switch (mode) {
    case 'on':
      return existing ? `${existing}, ${client}` : client;
    case 'off':
      return existing ? `${existing}, unknown` : 'unknown';
    case 'transparent':
      return existing ?? null;
    case 'truncate':
      return client;
    case 'delete':
      return null;
  }
}
