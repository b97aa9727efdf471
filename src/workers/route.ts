/**
 * route: where a request goes and under which cache key. Forward mode: an absolute-form target names its
 * origin. Reverse mode: every request goes to the one origin, and the site is the Host the client named
 * (as Varnish hashes on it), or the accel defaultsite (squid.conf's no-vhost).
 */
import { cacheKey } from '../cache/key.js';
import type { Config } from '../config/config.js';
import { invalidRequest, type ProxyError } from '../http/errors.js';
import type { Target } from '../http/target.js';
import type { Transaction } from './transaction.js';

const NOT_A_PROXY_REQUEST =
  'this is a forward proxy: send absolute-form requests (curl -x http://host:port http://site/) or start cuttle with --origin for reverse-proxy mode';

export type Routable = Extract<Target, { form: 'origin' | 'absolute' }>;

export function createRouter(config: Config): (txn: Transaction, target: Routable) => ProxyError | null {
  const originUrl = config.origin ? new URL(config.origin) : null;
  const siteOf = (hostHeader: string | undefined) =>
    config.accelSite && (!config.accelVhost || !hostHeader) ? config.accelSite : hostHeader;
  return (txn, target) => {
    const path = target.path;
    if (originUrl === null) {
      if (target.form === 'origin') return invalidRequest(NOT_A_PROXY_REQUEST);
      const origin = `${target.scheme}://${target.authority}`;
      txn.route = { origin, path, host: target.authority, server: target.host };
      txn.key = cacheKey(target.scheme, target.host, target.port, path);
      txn.url = txn.req.url as string;
      return null;
    }
    // In reverse mode only the path of an absolute target counts.
    const host = siteOf(txn.req.headers.host);
    const origin = config.origin as string;
    txn.route = { origin, path, host: host ?? '', server: originUrl.hostname };
    txn.key = `${originUrl.protocol}//${(host ?? originUrl.host).toLowerCase()}${path}`;
    txn.url = `${origin}${path}`;
    return null;
  };
}
