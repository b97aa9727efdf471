/**
 * RFC 9110 §14.4 Content-Range, as a pure function: what a 206 says it carries.
 */
import type { Span } from './ranges.js';

/** A single byte range of a representation whose complete length is known. */
export interface ContentRange extends Span {
  complete: number;
}

/**
 * RFC 9110 §14.4: `bytes first-last/complete`. Null for anything a cache cannot place: another unit, an
 * unknown complete length (`/*`, §14.4 "unknown"), an unsatisfied-range (`*\/N`, a 416's), or an invalid
 * range (§14.4: last before first, or past the complete length).
 */
export function parseContentRange(value: string | undefined): ContentRange | null {
  if (value === undefined) return null;
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+)\s*$/i.exec(value);
  if (!m) return null;
  const [start, end, complete] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!Number.isSafeInteger(complete) || end < start || end >= complete) return null;
  return { start, end, complete };
}

/** A Range field value asking for one span (RFC 9110 §14.1.2). */
export function rangeValue(span: Span): string {
  return `bytes=${span.start}-${span.end}`;
}
