/**
 * Squid's header anonymisation (squid-cache/squid src/cf.data.pre): request_header_access,
 * reply_header_access, request_header_replace, forwarded_for and via. Pure functions over raw header
 * arrays and an access context.
 */

import type { RequestFacts } from '../access/access.js';
import type { RawHeaders } from '../http/fields.js';
import type { HeaderRules } from '../workers/respond.js';
import type { Transaction } from '../workers/transaction.js';
import { type AclMatcher, aclTest, compileAcls } from './acl.js';
import type { HeaderRule, SquidSettings } from './conf.js';

type Compiled = { allow: boolean; tests: AclMatcher[] };

export interface HeaderFilter {
  request(raw: RawHeaders, ctx: RequestFacts): RawHeaders;
  reply(raw: RawHeaders, ctx: RequestFacts): RawHeaders;
  /** True when neither list has rules, so the caller can skip the work. */
  readonly empty: boolean;
}

/**
 * For each header the rules naming it apply first, then `All`; the first rule whose ACLs all match decides,
 * and a header no rule decides is allowed. A denied request header with a request_header_replace is sent
 * with the replacement value instead.
 */
export function compileHeaderFilter(sq: SquidSettings, matchers = compileAcls(sq.acls)): HeaderFilter {
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

  const allowed = (rules: Map<string, Compiled[]>, name: string, ctx: RequestFacts) => {
    for (const list of [rules.get(name), rules.get('other'), rules.get('all')]) {
      for (const r of list ?? []) if (r.tests.every((t) => t(ctx))) return r.allow;
    }
    return true;
  };
  const apply =
    (rules: Map<string, Compiled[]>, withReplace: boolean) => (raw: RawHeaders, ctx: RequestFacts) => {
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
 * The header rules a squid.conf sets, as the core's HeaderRules: request and reply header access with the
 * facts http_access saw, and `via off` (our own Via entry left out of replies). Null when there are none.
 */
export function squidHeaderRules(
  sq: SquidSettings,
  matchers: Map<string, AclMatcher>,
  ourVia: string,
): HeaderRules | null {
  const filter = compileHeaderFilter(sq, matchers);
  if (filter.empty && sq.via) return null;
  const facts = (txn: Transaction) => txn.facts as RequestFacts;
  return {
    request: (raw, txn) => (filter.empty || !txn.facts ? raw : filter.request(raw, facts(txn))),
    reply: (raw, txn) => {
      const out = filter.empty || !txn.facts ? raw : filter.reply(raw, facts(txn));
      return sq.via ? out : withoutOurVia(out, ourVia);
    },
  };
}
