/**
 * Squid's cache manager: `GET http://<proxy>/squid-internal-mgr/<report>` with the reports menu, info,
 * counters, utilization and objects, figures summed over every worker by the primary. Who may ask is
 * http_access with Squid's `manager` ACL (localhost only without a squid.conf); cachemgr_passwd protects
 * reports with a password, given as HTTP Basic credentials (`curl -u any:PASSWORD`), since Squid 7 removed
 * squidclient.
 */
import type { ServerResponse } from 'node:http';
import { VERSION } from '../shared/version.js';
import type { ClusterStats } from '../stats/counters.js';
import { totals } from '../stats/counters.js';
import type { CacheStore, StoredEntry } from '../store/store.js';
import type { Respond } from '../workers/respond.js';
import type { Transaction } from '../workers/transaction.js';
import { basicCredentials } from './basic-auth.js';

export const MGR_PREFIX = '/squid-internal-mgr/';

const REPORTS: Record<string, string> = {
  menu: 'Cache Manager Menu',
  info: 'General Runtime Information',
  counters: 'Traffic and Resource Counters',
  utilization: 'Cache Utilization',
  objects: 'All Cache Objects',
  server_list: 'Peer Cache Statistics',
};

/** cachemgr_passwd: per report a password, `none` (free) or `disable`; `all` covers the rest. */
export type ManagerPasswords = Record<string, string>;

/** Whether the request may see `report`; null when it may, otherwise the status to answer. */
export function managerAccess(
  report: string,
  passwords: ManagerPasswords,
  authorization: string | undefined,
): 401 | 403 | null {
  const rule = passwords[report] ?? passwords.all;
  if (rule === undefined || rule === 'none') return null;
  if (rule === 'disable') return 403;
  const c = basicCredentials(authorization);
  return c && c.password === rule ? null : 401;
}

const n = (x: number, d = 2) => x.toFixed(d);

export function formatReport(
  report: string,
  stats: ClusterStats,
  store: { objects: number; bytes: number; capacity: number; list: StoredEntry[] },
  passwords: ManagerPasswords,
): string {
  const t = totals(stats);
  switch (report) {
    case 'menu':
      return Object.entries(REPORTS)
        .map(([name, title]) => {
          const rule = passwords[name] ?? passwords.all;
          const access =
            rule === undefined || rule === 'none' ? 'public' : rule === 'disable' ? 'hidden' : 'protected';
          return ` ${name.padEnd(23)}\t${title.padEnd(39)}\t${access}`;
        })
        .join('\n')
        .concat('\n');
    case 'info': {
      const perMin = t.uptimeSeconds > 0 ? (t.requests * 60) / t.uptimeSeconds : 0;
      return `Squid Object Cache: Version ${VERSION} (cuttle)
Service Name: cuttle
Start Time:\t${new Date(stats.startedAt).toUTCString()}
Current Time:\t${new Date(stats.now).toUTCString()}
Connection information for cuttle:
\tNumber of clients accessing cache:\t${t.clients}
\tNumber of HTTP requests received:\t${t.requests}
\tAverage HTTP requests per minute since start:\t${n(perMin, 1)}
Cache information for cuttle:
\tHits as % of all requests:\t${n(t.hitRatio * 100, 1)}%
\tHits as % of bytes sent:\t${n(t.byteHitRatio * 100, 1)}%
\tStorage Swap size:\t${Math.round(store.bytes / 1024)} KB
\tStorage Swap capacity:\t${n(store.capacity ? (store.bytes / store.capacity) * 100 : 0, 1)}% used
\tMean Object Size:\t${n(store.objects ? store.bytes / store.objects / 1024 : 0)} KB
Median Service Times (seconds)  since start:
\tHTTP Requests (All):  ${n(t.medianAll / 1000, 5)}
\tCache Misses:         ${n(t.medianMiss / 1000, 5)}
\tCache Hits:           ${n(t.medianHit / 1000, 5)}
Resource usage for cuttle:
\tUP Time:\t${n(t.uptimeSeconds, 3)} seconds
\tResident Size (all workers):\t${Math.round(t.rssBytes / 1024)} KB
Internal Data Structures:
\t${String(store.objects).padStart(6)} StoreEntries
\tkid processes:\t${stats.workers.length}
`;
    }
    case 'counters':
    case 'utilization': {
      const lines = [
        `sample_time = ${n(stats.now / 1000, 6)} (${new Date(stats.now).toUTCString()})`,
        `client_http.clients = ${t.clients}`,
        `client_http.requests = ${t.requests}`,
        `client_http.hits = ${t.hits}`,
        `client_http.errors = ${t.errors}`,
        `client_http.kbytes_out = ${Math.round(t.bytesOut / 1024)}`,
        `client_http.hit_kbytes_out = ${Math.round(t.hitBytesOut / 1024)}`,
        `client_http.all_median_svc_time = ${n(t.medianAll / 1000, 6)} seconds`,
        `client_http.miss_median_svc_time = ${n(t.medianMiss / 1000, 6)} seconds`,
        `client_http.hit_median_svc_time = ${n(t.medianHit / 1000, 6)} seconds`,
        `server.all.requests = ${t.serverRequests}`,
        // Not in Squid's report: requests that waited for another's fetch, and those that needed none.
        `collapsed_forwarding.requests = ${t.collapsed}`,
        `collapsed_forwarding.saved = ${t.collapsedSaved}`,
        `store.objects = ${store.objects}`,
        `store.kbytes = ${Math.round(store.bytes / 1024)}`,
        `kid_processes = ${stats.workers.length}`,
      ];
      if (report === 'utilization') {
        const per = t.uptimeSeconds || 1;
        lines.push(
          `client_http.requests = ${n(t.requests / per, 6)}/sec`,
          `client_http.hits = ${n(t.hits / per, 6)}/sec`,
          `client_http.kbytes_out = ${n(t.bytesOut / 1024 / per, 6)}/sec`,
          `request_hit_ratio = ${n(t.hitRatio * 100)}%`,
          `byte_hit_ratio = ${n(t.byteHitRatio * 100)}%`,
        );
      }
      return `${lines.join('\n')}\n`;
    }
    case 'server_list':
      return serverList(stats);
    case 'objects':
      return `${store.list
        .map(
          (e) =>
            `KEY ${e.url}\n\tGET ${e.url}\n\tSTORE_OK status ${e.status}, ${e.size} bytes, stored ${new Date(e.responseTime * 1000).toUTCString()}\n`,
        )
        .join(
          '',
        )}${store.objects > store.list.length ? `(${store.objects - store.list.length} more not listed)\n` : ''}`;
    default:
      return '';
  }
}

/**
 * Squid's server_list (neighbors.cc dump_peers), one block per peer with the fields cuttle has: its type
 * and name, host/http-port/icp-port, flags, status and the fetch and connect-failure counts summed over the
 * workers. Each worker judges a peer by its own connects: "Down" when every worker has marked it down,
 * "Up" when none has.
 */
export function serverList(stats: ClusterStats): string {
  const views = stats.workers.map((w) => w.peers ?? []);
  const first = views.find((v) => v.length > 0);
  if (!first) return 'There are no neighbors installed.\n';
  return first
    .map((p, i) => {
      const all = views.filter((v) => v.length > i).map((v) => v[i]);
      const down = all.filter((x) => !x.up).length;
      const status =
        down === 0 ? 'Up' : down === all.length ? 'Down' : `Down in ${down} of ${all.length} workers`;
      const sum = (f: (x: (typeof all)[number]) => number) => all.reduce((a, x) => a + f(x), 0);
      const type = p.type === 'self' ? 'Self' : p.type === 'parent' ? 'Parent' : 'Sibling';
      return [
        '',
        `${type.padEnd(11)}: ${p.name}`,
        `Host       : ${p.host}/${p.port}/0`,
        `Flags      : ${p.flags}`,
        `Status     : ${status}`,
        `FETCHES    : ${sum((x) => x.fetches)}`,
        `CONNECT FAILURES : ${sum((x) => x.connectFailures)}`,
        '',
      ].join('\n');
    })
    .join('');
}

export interface ManagerDeps {
  store: CacheStore;
  respond: Respond;
  capacity: number;
  passwords: ManagerPasswords;
  /** Asks the primary for the whole cluster's counters. */
  clusterStats(): Promise<ClusterStats>;
}

const OBJECTS_LISTED = 1000;

export function serveManager(txn: Transaction, res: ServerResponse, report: string, deps: ManagerDeps): void {
  const req = txn.req;
  const text = (status: number, body: string, extra: string[] = []) => {
    deps.respond.synth(
      txn,
      res,
      status,
      [
        'Content-Type',
        'text/plain; charset=utf-8',
        'Content-Length',
        String(Buffer.byteLength(body)),
        'Cache-Control',
        'no-store',
        ...extra,
      ],
      body,
    );
  };
  if (!(report in REPORTS)) return text(404, `unknown cache manager report "${report}"; try menu\n`);
  const denied = managerAccess(report, deps.passwords, req.headers.authorization);
  if (denied === 403) return text(403, `the ${report} report is disabled (cachemgr_passwd disable)\n`);
  if (denied === 401)
    return text(401, `the ${report} report needs the cachemgr_passwd password (curl -u user:PASSWORD)\n`, [
      'WWW-Authenticate',
      'Basic realm="cuttle cache manager"',
    ]);
  void deps
    .clusterStats()
    .then((stats) => {
      const s = deps.store.summary(report === 'objects' ? OBJECTS_LISTED : 0);
      text(200, formatReport(report, stats, { ...s, capacity: deps.capacity }, deps.passwords));
    })
    .catch((err: Error) => text(503, `cache manager: ${err.message}\n`));
}
