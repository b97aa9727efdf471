/**
 * Squid as a layer: what a squid.conf plugs into the core, through the core's interfaces (access checks,
 * header rules, freshness rules). Without a squid.conf the core's defaults stand. The access log, in
 * Squid's formats, plugs in as a finish observer wherever it is configured (squid/access-log.ts).
 */
import { type Access, defaultAccess } from '../access/access.js';
import type { FreshnessRules } from '../cache/freshness-rules.js';
import type { Config } from '../config/config.js';
import type { HeaderRules } from '../workers/respond.js';
import { squidAccess } from './access.js';
import { compileAcls } from './acl.js';
import { squidHeaderRules } from './headers.js';
import { refreshPatternRules } from './refresh-pattern.js';

export interface Plugins {
  access: Access;
  headerRules: HeaderRules | null;
  freshness: FreshnessRules;
}

export function plugins(config: Config, ourVia: string, base: FreshnessRules): Plugins {
  const sq = config.squid;
  if (sq === null) return { access: defaultAccess(config), headerRules: null, freshness: base };
  // Compiled once per worker, for http_access and the header rules alike.
  const matchers = compileAcls(sq.acls);
  return {
    access: squidAccess(sq, matchers),
    headerRules: squidHeaderRules(sq, matchers, ourVia),
    freshness: sq.refreshPatterns.length > 0 ? refreshPatternRules(sq.refreshPatterns, base) : base,
  };
}
