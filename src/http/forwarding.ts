/**
 * Pure functions for a proxy's duties under RFC 9110 §7.6 (message forwarding).
 * Headers are Node's raw form: a flat [name, value, name, value, ...] array, names in their received case.
 */

export type RawHeaders = string[];

/** RFC 9110 §7.6.1 hop-by-hop fields, plus the fields the issue treats as hop-by-hop on a proxy link. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
]);

/** RFC 9110 §7.6.1: the field names listed in every `Connection` field (lower-cased). */
export function connectionOptions(raw: RawHeaders): Set<string> | null {
  let names: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      for (const token of raw[i + 1].split(',')) {
        const t = token.trim().toLowerCase();
        if (!t) continue;
        names ??= new Set();
        names.add(t);
      }
    }
  }
  return names;
}

/**
 * RFC 9110 §7.6.1: a proxy removes `Connection`, every field it names, and the other hop-by-hop fields
 * before forwarding, in either direction. `drop` removes more fields by lower-case name.
 */
export function endToEndHeaders(raw: RawHeaders, drop?: ReadonlySet<string>): RawHeaders {
  const named = connectionOptions(raw);
  return filterFields(raw, (name) => !HOP_BY_HOP.has(name) && !named?.has(name) && !drop?.has(name));
}

/** The fields whose lower-cased name passes `keep`, in order, duplicates included. */
export function filterFields(raw: RawHeaders, keep: (lowerName: string) => boolean): RawHeaders {
  const out: RawHeaders = [];
  for (let i = 0; i < raw.length; i += 2) if (keep(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
  return out;
}

/** All values of one field (case-insensitive), joined as a list per RFC 9110 §5.3. */
export function fieldValue(raw: RawHeaders, lowerName: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === lowerName.length && raw[i].toLowerCase() === lowerName) {
      value = value === undefined ? raw[i + 1] : `${value}, ${raw[i + 1]}`;
    }
  }
  return value;
}

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

export type ByteRange = { start: number; end: number } | 'unsatisfiable' | null;

/**
 * RFC 9110 §14.1.2: one `bytes` range against a representation of `size` bytes. Several ranges, other units
 * or an invalid value yield null: §14.2 lets a server ignore Range and send the whole representation.
 */
export function parseRange(value: string | undefined, size: number): ByteRange {
  if (value === undefined) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(value);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1) };
}

/** RFC 9110 §13.1.5: If-Range allows the range only for a strong ETag match or the exact Last-Modified. */
export function ifRangeAllows(
  value: string | undefined,
  etag: string | undefined,
  lastModified: string | undefined,
): boolean {
  if (value === undefined) return true;
  const v = value.trim();
  if (v.startsWith('"') || v.startsWith('W/'))
    return etag !== undefined && !etag.startsWith('W/') && v === etag;
  return lastModified !== undefined && v === lastModified.trim();
}
