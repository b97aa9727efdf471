/**
 * Header fields in Node's raw form: a flat [name, value, name, value, ...] array, names in their received
 * case, so duplicates (Set-Cookie) and case survive and nothing is re-parsed. RFC 9110 §5 and §7.6.1.
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

/**
 * RFC 9110 §7.6.1: a proxy removes `Connection`, every field it names, and the other hop-by-hop fields
 * before forwarding, in either direction. `drop` removes more fields by lower-case name. One pass over
 * the fields (issue #9: this runs for every forwarded head); a second only when `Connection` names a
 * field that is not hop-by-hop anyway, which is rare (it usually says keep-alive or close).
 */
export function endToEndHeaders(raw: RawHeaders, drop?: ReadonlySet<string>): RawHeaders {
  const out: RawHeaders = [];
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name === 'connection') {
      for (const token of raw[i + 1].split(',')) {
        const t = token.trim().toLowerCase();
        if (!t || t === 'close' || HOP_BY_HOP.has(t)) continue;
        named ??= new Set();
        named.add(t);
      }
      continue;
    }
    if (!HOP_BY_HOP.has(name) && !drop?.has(name)) out.push(raw[i], raw[i + 1]);
  }
  if (named === null) return out;
  const listed = named;
  return filterFields(out, (name) => !listed.has(name));
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
