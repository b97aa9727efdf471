const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `512`, `64k`, `1g` (binary multiples, optional trailing `b`) into bytes. */
export function parseSize(input: string | number): number {
  if (typeof input === 'number' && Number.isSafeInteger(input) && input >= 0) return input;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$/i.exec(String(input));
  if (!m) throw new Error(`invalid size "${input}" (use a number with optional k, m or g)`);
  return Math.floor(Number(m[1]) * (SIZE_UNITS[(m[2] ?? '').toLowerCase()] ?? 1));
}

/** Parses `250ms`, `30s`, `5m`, `1h`; a bare number is milliseconds. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number' && Number.isFinite(input) && input >= 0) return input;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(String(input));
  if (!m) throw new Error(`invalid duration "${input}" (use e.g. 500ms, 30s, 5m)`);
  return Math.round(Number(m[1]) * (DURATION_UNITS[(m[2] ?? 'ms').toLowerCase()] ?? 1));
}
