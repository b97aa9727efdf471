/**
 * Which certificate answers a TLS client's server name (SNI, RFC 6066 §3), as a pure function: the
 * exact name first, then a wildcard covering exactly its first label (RFC 6125 §6.4.3: `*.example.com`
 * matches `www.example.com`, not `example.com` nor `a.b.example.com`), else the default.
 */

/** Lower case, without the trailing dot of an absolute name (RFC 6066 §3: the name has none). */
export function normalServerName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** Index of the certificate for `servername` among `names` (each certificate's names), or `fallback`. */
export function certificateFor(servername: string | undefined, names: string[][], fallback: number): number {
  if (!servername) return fallback;
  const n = normalServerName(servername);
  for (let i = 0; i < names.length; i++) if (names[i].includes(n)) return i;
  const dot = n.indexOf('.');
  if (dot > 0) {
    const wild = `*${n.slice(dot)}`;
    for (let i = 0; i < names.length; i++) if (names[i].includes(wild)) return i;
  }
  return fallback;
}
