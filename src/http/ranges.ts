/**
 * RFC 9110 §14 (Range) and §13.1.5 (If-Range), as pure functions.
 */

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
