/**
 * Squid's access control as pure functions: ACL matching and the http_access rule list.
 * Semantics (squid-cache/squid src/cf.data.pre, "acl" and "http_access"):
 *  - the values of one ACL are ORed; the ACLs on one http_access line are ANDed; `!` negates one ACL;
 *  - the first line whose ACLs all match decides;
 *  - when no line matches, the answer is the opposite of the last line's action;
 *  - with no http_access lines at all, every request is denied.
 */
import type { RequestFacts } from '../access/access.js';
import { clientMatcher } from '../access/client-rules.js';
import type { AccessRule, AclDef } from './conf.js';

export type AclMatcher = (ctx: RequestFacts) => boolean;

/** Squid's day letters: S M T W H F A (Sunday to Saturday); D is every weekday. */
const DAYS = 'SMTWHFA';

function timeMatcher(values: string[]): AclMatcher {
  let days: Set<number> | null = null;
  let span: [number, number] | null = null;
  for (const v of values) {
    const t = /^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$/.exec(v);
    if (t) span = [Number(t[1]) * 60 + Number(t[2]), Number(t[3]) * 60 + Number(t[4])];
    else {
      days ??= new Set();
      for (const c of v) {
        if (c === 'D') for (const d of [1, 2, 3, 4, 5]) days.add(d);
        else days.add(DAYS.indexOf(c));
      }
    }
  }
  return ({ now }) => {
    if (days && !days.has(now.getDay())) return false;
    if (!span) return true;
    const m = now.getHours() * 60 + now.getMinutes();
    return m >= span[0] && m < span[1];
  };
}

/** dstdomain: `.example.com` matches the domain and every subdomain; a plain name matches exactly. */
function domainMatcher(values: string[]): AclMatcher {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const v of values.map((x) => x.toLowerCase())) {
    if (v.startsWith('.')) suffixes.push(v);
    else exact.add(v);
  }
  return ({ host }) => {
    const h = host.toLowerCase().replace(/^\[|\]$/g, '');
    return exact.has(h) || suffixes.some((s) => h.endsWith(s) || h === s.slice(1));
  };
}

function portMatcher(values: string[]): AclMatcher {
  const ranges = values.map((v) => {
    const [lo, hi = lo] = v.split('-').map(Number);
    return [lo, hi] as const;
  });
  return ({ port }) => ranges.some(([lo, hi]) => port >= lo && port <= hi);
}

function regexMatcher(values: string[], ignoreCase: boolean, pick: (c: RequestFacts) => string): AclMatcher {
  const res = values.map((v) => new RegExp(v, ignoreCase ? 'i' : ''));
  return (ctx) => {
    const s = pick(ctx);
    return res.some((r) => r.test(s));
  };
}

export function compileAcl(def: AclDef): AclMatcher {
  const v = def.values;
  switch (def.type) {
    case 'src': {
      const m = clientMatcher(v);
      return (c) => m(c.src);
    }
    case 'dst': {
      // Destinations named by host name would need DNS at check time; only address literals are compared.
      const m = clientMatcher(v);
      return (c) => /^[\d.]+$|:/.test(c.host) && m(c.host.replace(/^\[|\]$/g, ''));
    }
    case 'dstdomain':
      return domainMatcher(v);
    case 'port':
      return portMatcher(v);
    case 'method': {
      const set = new Set(v);
      return (c) => set.has(c.method);
    }
    case 'proto': {
      const set = new Set(v.map((x) => x.toUpperCase()));
      return (c) => set.has(c.proto);
    }
    case 'url_regex':
      return regexMatcher(v, def.ignoreCase, (c) => c.url);
    case 'urlpath_regex':
      return regexMatcher(v, def.ignoreCase, (c) => c.path);
    case 'browser':
      return regexMatcher(v, def.ignoreCase, (c) => c.userAgent);
    case 'proxy_auth': {
      // REQUIRED matches any authenticated user; otherwise the user must be listed.
      const any = v.length === 0 || v.includes('REQUIRED');
      const users = new Set(v);
      return (c) => c.user !== null && (any || users.has(c.user));
    }
    case 'time':
      return timeMatcher(v);
  }
}

export interface AccessDecision {
  allow: boolean;
  /** A proxy_auth ACL was reached without valid credentials: challenge with 407 (Squid does the same). */
  needsAuth?: boolean;
  /** The deciding line (file:line), or why none did. */
  rule: string;
  /** The deciding line's last ACL, for deny_info and the error page. */
  acl: string | null;
}

export interface CompiledAccess {
  check(ctx: RequestFacts): AccessDecision;
}

/** Every ACL compiled once, by name. */
export function compileAcls(acls: AclDef[]): Map<string, AclMatcher> {
  return new Map(acls.map((a) => [a.name, compileAcl(a)]));
}

/** An ACL named on an http_access-style line (`!` negates it) as a test over the context. */
export function aclTest(matchers: Map<string, AclMatcher>, ref: string): AclMatcher {
  const negated = ref.startsWith('!');
  const m = matchers.get(negated ? ref.slice(1) : ref);
  if (!m) throw new Error(`ACL ${ref} is not defined`);
  return negated ? (c) => !m(c) : m;
}

export function compileAccess(
  acls: AclDef[],
  rules: AccessRule[],
  matchers = compileAcls(acls),
): CompiledAccess {
  const needsUser = new Set(acls.filter((a) => a.type === 'proxy_auth').map((a) => a.name));
  const compiled = rules.map((r) => ({
    ...r,
    tests: r.acls.map((n) => ({ auth: needsUser.has(n.replace(/^!/, '')), test: aclTest(matchers, n) })),
  }));
  return {
    check(ctx) {
      for (const r of compiled) {
        let all = true;
        for (const t of r.tests) {
          // Left to right, stopping at the first false ACL, as Squid does; a proxy_auth ACL reached without
          // credentials makes Squid challenge the client.
          if (t.auth && ctx.user === null) return { allow: false, needsAuth: true, rule: r.where, acl: null };
          if (!t.test(ctx)) {
            all = false;
            break;
          }
        }
        if (all) return { allow: r.allow, rule: r.where, acl: r.acls[r.acls.length - 1] };
      }
      if (compiled.length === 0) return { allow: false, rule: 'no http_access lines', acl: null };
      const last = compiled[compiled.length - 1];
      return { allow: !last.allow, rule: `no line matched; the opposite of ${last.where}`, acl: null };
    },
  };
}
