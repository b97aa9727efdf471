/**
 * Squid's header anonymisation (squid-cache/squid src/cf.data.pre): request_header_access,
 * reply_header_access, request_header_replace, forwarded_for and via. Pure functions over raw header
 * arrays and an access context.
 */
import { type OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { RawHeaders } from '../http/forwarding.js';
import { type AccessContext, type AclMatcher, aclTest, compileAcls } from './acl.js';
import type { HeaderRule, SquidSettings } from './conf.js';

export type ForwardedForMode = 'on' | 'off' | 'transparent' | 'truncate' | 'delete';

/**
 * X-Forwarded-For (de facto), as Squid's forwarded_for sets it: `on` (the default) appends the client address, `off` appends "unknown", `transparent` passes the
 * header on untouched, `truncate` replaces it with the client address alone, `delete` removes it.
 * Returns the value to send, or null for none.
 */
export function forwardedForValue(
  mode: ForwardedForMode,
  existing: string | undefined,
  client: string,
): string | null {
  switch (mode) {
    case 'on':
      return existing ? `${existing}, ${client}` : client;
    case 'off':
      return existing ? `${existing}, unknown` : 'unknown';
    case 'transparent':
      return existing ?? null;
    case 'truncate':
      return client;
    case 'delete':
      return null;
  }
}

type Compiled = { allow: boolean; tests: AclMatcher[] };

export interface HeaderFilter {
  request(raw: RawHeaders, ctx: AccessContext): RawHeaders;
  reply(raw: RawHeaders, ctx: AccessContext): RawHeaders;
  /** True when neither list has rules, so the caller can skip the work. */
  readonly empty: boolean;
}

/**
 * For each header the rules naming it apply first, then `All`; the first rule whose ACLs all match decides,
 * and a header no rule decides is allowed. A denied request header with a request_header_replace is sent
 * with the replacement value instead.
 */
export function compileHeaderFilter(sq: SquidSettings): HeaderFilter {
  const matchers = compileAcls(sq.acls);
  const compile = (rules: HeaderRule[]): Map<string, Compiled[]> => {
    const byName = new Map<string, Compiled[]>();
    for (const r of rules) {
      const key = r.header.toLowerCase();
      const tests = r.acls.map((n) => aclTest(matchers, n));
      byName.set(key, [...(byName.get(key) ?? []), { allow: r.allow, tests }]);
    }
    return byName;
  };
  const request = compile(sq.requestHeaderAccess);
  const reply = compile(sq.replyHeaderAccess);
  const replace = new Map(Object.entries(sq.requestHeaderReplace).map(([k, v]) => [k.toLowerCase(), v]));

  const allowed = (rules: Map<string, Compiled[]>, name: string, ctx: AccessContext) => {
    for (const list of [rules.get(name), rules.get('other'), rules.get('all')]) {
      for (const r of list ?? []) if (r.tests.every((t) => t(ctx))) return r.allow;
    }
    return true;
  };
  const apply =
    (rules: Map<string, Compiled[]>, withReplace: boolean) => (raw: RawHeaders, ctx: AccessContext) => {
      if (rules.size === 0) return raw;
      const out: RawHeaders = [];
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i].toLowerCase();
        if (allowed(rules, name, ctx)) out.push(raw[i], raw[i + 1]);
        else if (withReplace && replace.has(name)) out.push(raw[i], replace.get(name) as string);
      }
      return out;
    };
  return {
    request: apply(request, true),
    reply: apply(reply, false),
    empty: request.size === 0 && reply.size === 0,
  };
}

/** via off: our own entry is not added to a Via field (the others pass on). */
export function withoutOurVia(raw: RawHeaders, ours: string): RawHeaders {
  const out: RawHeaders = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].toLowerCase() !== 'via') {
      out.push(raw[i], raw[i + 1]);
      continue;
    }
    const rest = raw[i + 1]
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s && s !== ours);
    if (rest.length) out.push(raw[i], rest.join(', '));
  }
  return out;
}

/**
 * A response whose header section passes through `filter` (reply_header_access, via off) whichever path
 * wrote it: a hit, a forwarded response or an error page.
 */
export class FilteredResponse extends ServerResponse {
  filter: ((raw: RawHeaders) => RawHeaders) | null = null;

  // biome-ignore lint/suspicious/noExplicitAny: writeHead's overloads are (status, [message,] headers).
  override writeHead(status: number, ...rest: any[]): this {
    if (this.filter) {
      const i = typeof rest[0] === 'string' ? 1 : 0;
      const h = rest[i] as RawHeaders | OutgoingHttpHeaders | undefined;
      if (h !== undefined) {
        const flat: RawHeaders = Array.isArray(h)
          ? (h as RawHeaders)
          : Object.entries(h).flatMap(([k, v]) =>
              Array.isArray(v) ? v.flatMap((x) => [k, String(x)]) : v === undefined ? [] : [k, String(v)],
            );
        rest[i] = this.filter(flat);
      }
    }
    return super.writeHead(status, ...(rest as [OutgoingHttpHeaders]));
  }
}
