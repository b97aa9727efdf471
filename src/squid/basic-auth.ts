/**
 * Proxy authentication with Basic credentials (RFC 9110 §11.7.1, RFC 7617), checked against an htpasswd
 * file read directly, as Squid's basic_ncsa_auth helper does, with the hashes `htpasswd` writes:
 * bcrypt ($2y$), MD5 ($apr1$), SHA ({SHA}) and DES crypt.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import crypt from 'apache-crypt';
import md5 from 'apache-md5';
import bcrypt from 'bcryptjs';

/** Parses htpasswd text: `user:hash` per line; blank lines and # comments are skipped. */
export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const i = t.indexOf(':');
    if (i > 0) users.set(t.slice(0, i), t.slice(i + 1));
  }
  return users;
}

const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/** Whether `password` matches an htpasswd `hash`, whichever of its formats it is in. */
export function verifyHash(password: string, hash: string): boolean {
  if (/^\$2[aby]\$/.test(hash)) return bcrypt.compareSync(password, hash);
  if (hash.startsWith('$apr1$')) return same(md5(password, hash), hash);
  if (hash.startsWith('{SHA}'))
    return same(`{SHA}${createHash('sha1').update(password).digest('base64')}`, hash);
  // Traditional DES crypt: 13 characters of [./0-9A-Za-z].
  if (/^[./0-9A-Za-z]{13}$/.test(hash)) return same(crypt(password, hash), hash);
  return false;
}

/** The user name and password of a `Proxy-Authorization: Basic …` value, or null. */
export function basicCredentials(value: string | undefined): { user: string; password: string } | null {
  const m = /^\s*basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value ?? '');
  if (!m) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const i = text.indexOf(':');
  return i < 0 ? null : { user: text.slice(0, i), password: text.slice(i + 1) };
}

export interface BasicAuth {
  readonly realm: string;
  /** The authenticated user for a Proxy-Authorization value, or null when missing or wrong. */
  check(value: string | undefined): string | null;
}

/**
 * Verified credentials are remembered for `ttlMs` (Squid's credentialsttl), so bcrypt is paid once per
 * client and not per request; the map is bounded.
 */
export function createBasicAuth(passwdFile: string, realm: string, ttlMs: number): BasicAuth {
  const users = parseHtpasswd(readFileSync(passwdFile, 'utf8'));
  const verified = new Map<string, { user: string; until: number }>();
  return {
    realm,
    check(value) {
      if (!value) return null;
      const hit = verified.get(value);
      if (hit && hit.until > Date.now()) return hit.user;
      const c = basicCredentials(value);
      const hash = c && users.get(c.user);
      if (!c || !hash || !verifyHash(c.password, hash)) return null;
      if (verified.size > 10_000) verified.clear();
      verified.set(value, { user: c.user, until: Date.now() + ttlMs });
      return c.user;
    },
  };
}
