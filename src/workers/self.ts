/**
 * Answers cuttle makes itself: OPTIONS and TRACE at Max-Forwards 0 (RFC 9110 §7.6.2, §9.3.8), Squid's
 * PURGE, the cache manager's pages on the proxy's own host, and /cuttle-internal/ (metrics, stats.json,
 * dashboard) under the cache manager's access rule.
 */
import type { ServerResponse } from 'node:http';
import type { Access } from '../access/access.js';
import { parsePurgeRequest } from '../cache/purge-request.js';
import { parseTags } from '../cache/tags.js';
import type { Config } from '../config/config.js';
import { invalidRequest, ProxyError } from '../http/errors.js';
import { fieldValue } from '../http/fields.js';
import { traceBody } from '../http/forwarding.js';
import type { Target } from '../http/target.js';
import type { PrimaryPage } from '../shared/messages.js';
import { type ManagerDeps, MGR_PREFIX, serveManager } from '../squid/cache-manager.js';
import { DASHBOARD_HTML } from '../stats/dashboard-page.js';
import type { CacheStore } from '../store/store.js';
import type { ClusterStatsClient } from './cluster-stats.js';
import type { Respond } from './respond.js';
import type { Transaction } from './transaction.js';

const ALLOW = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH, CONNECT';
export const INTERNAL_PREFIX = '/cuttle-internal/';

/** A /cuttle-internal/ page; `unknown` is answered 404. */
export type InternalPage = PrimaryPage | 'dashboard' | 'purge' | 'unknown';
const PAGES = new Set<string>(['metrics', 'stats.json', 'dashboard', 'purge']);
/** A purge body larger than this is refused (10,000 URLs fit). */
const MAX_PURGE_BODY = 4 * 1024 * 1024;

export class SelfAnswers {
  constructor(
    private readonly config: Config,
    private readonly respond: Respond,
    private readonly access: Access,
    private readonly store: CacheStore,
    private readonly manager: ManagerDeps,
    /** The port we listen on, once listening. */
    private readonly port: () => number | undefined,
    private readonly primary: ClusterStatsClient,
  ) {}

  options(txn: Transaction, res: ServerResponse): void {
    this.respond.synth(txn, res, 200, ['Allow', ALLOW, 'Content-Length', '0', 'Via', this.respond.via]);
  }

  trace(txn: Transaction, res: ServerResponse): void {
    const req = txn.req;
    const body = traceBody(txn.method, req.url as string, req.httpVersion, req.rawHeaders);
    const h = ['Content-Type', 'message/http', 'Content-Length', String(Buffer.byteLength(body)), 'Via'];
    this.respond.synth(txn, res, 200, [...h, this.respond.via], body);
  }

  /**
   * Squid's PURGE: removes the stored response and all its variants; 200 when something was removed, 404
   * when nothing was stored. With `Surrogate-Key: a b` (or `Cache-Tag: a, b`) it purges every entry that
   * carries one of those tags instead, and with `Fastly-Soft-Purge: 1` it marks them stale rather than
   * removing them; those answer `{"purged": N}`. Who may is the access rules' call.
   */
  purge(txn: Transaction, res: ServerResponse): void {
    const denied = this.access.purge(txn);
    if (denied) return this.respond.error(txn, res, denied);
    txn.req.resume();
    const raw = txn.req.rawHeaders;
    const tags = parseTags(fieldValue(raw, 'surrogate-key'), fieldValue(raw, 'cache-tag'));
    const soft = fieldValue(raw, 'fastly-soft-purge')?.trim() === '1';
    if (tags.length === 0 && !soft) {
      void this.store.invalidate(txn.key).then((removed) => {
        this.respond.synth(txn, res, removed ? 200 : 404, ['Content-Length', '0', 'Via', this.respond.via]);
      });
      return;
    }
    void this.store.purge(tags.length > 0 ? { tags } : { urls: [txn.key] }, soft).then((n) => {
      this.sendPurged(txn, res, n > 0 ? 200 : 404, n, soft);
    });
  }

  /**
   * `POST /cuttle-internal/purge` with `{"urls": [...]}` and/or `{"tags": [...]}` (and `"soft": true`, or
   * the `Fastly-Soft-Purge: 1` header): the same purge as PURGE, for many URLs or tags at once, under
   * PURGE's access rule as well as the pages' one. Answers `{"purged": N, "soft": …}`.
   */
  private purgeByBody(txn: Transaction, res: ServerResponse): void {
    const req = txn.req;
    if (txn.method !== 'POST') {
      req.resume();
      const why = 'POST a JSON body {"urls": [...]} or {"tags": [...]} to purge';
      return this.respond.error(txn, res, new ProxyError(405, 'ERR_UNSUP_REQ', why, ['Allow', 'POST']));
    }
    const denied = this.access.purge(txn);
    if (denied) return this.respond.error(txn, res, denied);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_PURGE_BODY) chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_PURGE_BODY) {
        const tooBig = new ProxyError(413, 'ERR_TOO_BIG', `purge body larger than ${MAX_PURGE_BODY} bytes`);
        return this.respond.error(txn, res, tooBig);
      }
      const asked = parsePurgeRequest(Buffer.concat(chunks).toString('utf8'));
      if (typeof asked === 'string') return this.respond.error(txn, res, invalidRequest(asked));
      const soft = asked.soft || fieldValue(req.rawHeaders, 'fastly-soft-purge')?.trim() === '1';
      void this.store.purge({ urls: asked.urls, tags: asked.tags }, soft).then((n) => {
        this.sendPurged(txn, res, 200, n, soft);
      });
    });
  }

  private sendPurged(txn: Transaction, res: ServerResponse, status: number, n: number, soft: boolean): void {
    const body = `${JSON.stringify({ purged: n, soft })}\n`;
    this.respond.synth(
      txn,
      res,
      status,
      ['Content-Type', 'application/json', 'Content-Length', String(body.length), 'Via', this.respond.via],
      body,
    );
  }

  /** The cache manager report a target asks for (`/squid-internal-mgr/info`, on this host), or null. */
  managerReport(target: Target): string | null {
    if (target.form !== 'origin' && target.form !== 'absolute') return null;
    if (!target.path.startsWith(MGR_PREFIX) || !this.forUs(target)) return null;
    return target.path.slice(MGR_PREFIX.length).split(/[?/]/)[0] || 'menu';
  }

  /**
   * The /cuttle-internal/ page a target asks for, or null. Plain `/metrics` too, when the request is for
   * the proxy itself: origin form in forward mode (in reverse mode it is the site's), or our own host.
   */
  internalPage(target: Target): InternalPage | null {
    if (target.form !== 'origin' && target.form !== 'absolute') return null;
    const path = target.path;
    let page: string;
    if (path.startsWith(INTERNAL_PREFIX)) page = path.slice(INTERNAL_PREFIX.length).split(/[?/]/)[0];
    else if (path === '/metrics' || path.startsWith('/metrics?')) {
      if (target.form === 'origin' && this.config.origin !== null) return null;
      page = 'metrics';
    } else return null;
    if (!this.forUs(target)) return null;
    return PAGES.has(page) ? (page as InternalPage) : 'unknown';
  }

  /** An absolute-form target names this proxy: one of our names, and the port we listen on. */
  private forUs(target: Target): boolean {
    if (target.form !== 'absolute') return true;
    const ours = new Set(['localhost', '127.0.0.1', '[::1]', this.config.visibleHostname.toLowerCase()]);
    return ours.has(target.host.toLowerCase()) && target.port === this.port();
  }

  /** Whether the access rules let this request see the proxy's own pages (Squid's `manager` ACL). */
  private managerDenied(txn: Transaction, path: string) {
    const name = this.config.visibleHostname;
    const port = this.port() ?? this.config.port;
    return this.access.manager(txn, {
      scheme: 'http',
      host: name,
      port,
      url: `http://${name}:${port}${path}`,
      path,
    });
  }

  manage(txn: Transaction, res: ServerResponse, report: string): void {
    const denied = this.managerDenied(txn, `${MGR_PREFIX}${report}`);
    if (denied) return this.respond.error(txn, res, denied);
    serveManager(txn, res, report, this.manager);
  }

  internal(txn: Transaction, res: ServerResponse, page: InternalPage): void {
    const denied = this.managerDenied(txn, `${INTERNAL_PREFIX}${page}`);
    if (denied) return this.respond.error(txn, res, denied);
    if (page === 'purge') return this.purgeByBody(txn, res);
    txn.req.resume();
    const send = (status: number, contentType: string, body: string) =>
      this.respond.synth(
        txn,
        res,
        status,
        [
          'Content-Type',
          contentType,
          'Content-Length',
          String(Buffer.byteLength(body)),
          'Cache-Control',
          'no-store',
        ],
        body,
      );
    if (page === 'unknown')
      return send(
        404,
        'text/plain; charset=utf-8',
        'not found: try metrics, stats.json, dashboard or purge\n',
      );
    if (page === 'dashboard') return send(200, 'text/html; charset=utf-8', DASHBOARD_HTML);
    this.primary
      .page(page)
      .then((r) => send(r.status, r.contentType, r.body))
      .catch((err: Error) => send(503, 'text/plain; charset=utf-8', `${err.message}\n`));
  }
}
