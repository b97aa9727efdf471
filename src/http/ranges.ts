/**
 * RFC 9110 §14 (Range) and §13.1.5 (If-Range), as pure functions.
 */

export interface Span {
  start: number;
  end: number;
}

/** Satisfiable ranges in the order they are to be sent, or why there are none to send. */
export type ByteRanges = Span[] | 'unsatisfiable' | null;

/** More ranges than this in one request are ignored (the whole representation is sent, §14.2). */
const MAX_RANGES = 32;

/**
 * RFC 9110 §14.1.2: a `bytes` Range against a representation of `size` bytes. An invalid value, another
 * unit or too many ranges yield null: §14.2 lets a server ignore Range and send the whole representation.
 * Ranges past the end are dropped; none left is 'unsatisfiable' (416). Overlapping and adjacent ranges are
 * coalesced, in order of position (§14.2 allows it, and it keeps a many-ranges request from costing more
 * than the representation).
 */
export function parseRanges(value: string | undefined, size: number): ByteRanges {
  if (value === undefined) return null;
  const m = /^\s*bytes\s*=(.*)$/i.exec(value);
  if (!m) return null;
  const specs = m[1].split(',').map((s) => s.trim());
  if (specs.length > MAX_RANGES) return null;
  const spans: Span[] = [];
  for (const spec of specs) {
    if (spec === '') continue;
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (!r || (r[1] === '' && r[2] === '')) return null;
    if (r[1] === '') {
      const suffix = Number(r[2]);
      if (suffix > 0 && size > 0) spans.push({ start: Math.max(0, size - suffix), end: size - 1 });
      continue;
    }
    const start = Number(r[1]);
    if (r[2] !== '' && Number(r[2]) < start) return null;
    if (start < size) spans.push({ start, end: r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1) });
  }
  if (spans.length === 0) return 'unsatisfiable';
  return coalesce(spans);
}

/** Spans sorted by position, overlapping and adjacent ones merged (new objects: the input is left alone). */
export function coalesce(spans: readonly Span[]): Span[] {
  const sorted = spans.map((s) => ({ start: s.start, end: s.end })).sort((a, b) => a.start - b.start);
  const out: Span[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && s.start <= last.end + 1) last.end = Math.max(last.end, s.end);
    else out.push(s);
  }
  return out;
}

/** RFC 9110 §14.6: the framing of a multipart/byteranges body: each part's head, and the closing line. */
export function byterangesParts(
  spans: Span[],
  size: number,
  contentType: string | undefined,
  boundary: string,
): { heads: string[]; tail: string; length: number } {
  const type = contentType === undefined ? '' : `Content-Type: ${contentType}\r\n`;
  const heads = spans.map(
    (s, i) =>
      `${i === 0 ? '' : '\r\n'}--${boundary}\r\n${type}Content-Range: bytes ${s.start}-${s.end}/${size}\r\n\r\n`,
  );
  const tail = `\r\n--${boundary}--\r\n`;
  let length = Buffer.byteLength(tail);
  for (let i = 0; i < spans.length; i++)
    length += Buffer.byteLength(heads[i]) + spans[i].end - spans[i].start + 1;
  return { heads, tail, length };
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
