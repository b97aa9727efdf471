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
