/**
 * Accept-Language (RFC 9110 §12.5.4) as a cache needs it: one normal form for the secondary key, so that
 * requests that state the same preferences share a variant, and the preference for a stored response's
 * Content-Language, so that a variant in the client's first choice of language can serve it.
 * Language ranges match tags by RFC 4647 §3.3.1 basic filtering.
 */

interface Range {
  range: string;
  q: number;
}

/** The ranges with their weights (RFC 9110 §12.4.2), lower-cased; members with an invalid weight are dropped. */
export function parseAcceptLanguage(value: string): Range[] {
  const out: Range[] = [];
  for (const member of value.split(',')) {
    const [rawRange, ...params] = member.split(';').map((p) => p.trim());
    if (!rawRange) continue;
    let q = 1;
    let valid = true;
    for (const p of params) {
      const m = /^q\s*=\s*(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/i.exec(p);
      if (m) q = Number(m[1]);
      else if (/^q\s*=/i.test(p)) valid = false;
    }
    if (valid) out.push({ range: rawRange.toLowerCase(), q });
  }
  return out;
}

/**
 * One form for equal preferences: case folded, spaces gone, weights written canonically (`;q=1.000` is
 * nothing), ordered by weight, most preferred first, and by name among equals (their order means nothing).
 */
export function normalizeAcceptLanguage(value: string): string {
  return parseAcceptLanguage(value)
    .sort((a, b) => b.q - a.q || (a.range < b.range ? -1 : a.range > b.range ? 1 : 0))
    .map((r) => (r.q === 1 ? r.range : `${r.range};q=${r.q}`))
    .join(',');
}

/** RFC 4647 §3.3.1: a basic range matches a tag equal to it or beginning with it and a hyphen; `*` all. */
function matches(range: string, tag: string): boolean {
  return range === '*' || range === tag || tag.startsWith(`${range}-`);
}

/**
 * How much the client wants a response in `contentLanguage` (a list of tags): the weight of the most
 * specific range matching any of its tags, 0 when none does.
 */
export function languagePreference(ranges: Range[], contentLanguage: string | undefined): number {
  if (!contentLanguage) return 0;
  let best = 0;
  for (const tag of contentLanguage.split(',').map((t) => t.trim().toLowerCase())) {
    let specific = -1;
    let q = 0;
    for (const r of ranges) {
      const len = r.range === '*' ? 0 : r.range.length;
      if (matches(r.range, tag) && len > specific) {
        specific = len;
        q = r.q;
      }
    }
    best = Math.max(best, q);
  }
  return best;
}

/** The client's first choice: the highest weight it gives any range (0 without a usable field). */
export function topPreference(ranges: Range[]): number {
  return ranges.reduce((m, r) => Math.max(m, r.q), 0);
}
