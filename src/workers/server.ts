/**
 * The request's state machine in a worker: recv → access → route → (tunnel | fetch) → deliver.
 */
import { createServer, type IncomingMessage, type Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createAccess } from '../access/access.js';
import { isLoopback } from '../access/client-rules.js';
import { Cache, cacheKey } from '../cache/cache.js';
import type { Config } from '../config/config.js';
import {
  accessDenied,
  headersTooLarge,
  invalidRequest,
  ProxyError,
  rawErrorResponse,
  uriTooLong,
} from '../http/errors.js';
import {
  appendVia,
  fieldValue,
  forwardedRequestHeaders,
  isForwardingLoop,
  maxForwards,
  plainAddress,
  type RawHeaders,
  traceBody,
  viaEntry,
} from '../http/forwarding.js';
import { sendError } from '../http/respond.js';
import { hasRequestBody, parseTarget } from '../http/target.js';
import type { Logger } from '../shared/logger.js';
import type { WorkerMessage } from '../shared/messages.js';
import { PRODUCT } from '../shared/version.js';
import { AccessRecorder, openAccessLog } from '../squid/access-log.js';
import type { AccessContext } from '../squid/acl.js';
import { type ManagerDeps, MGR_PREFIX, serveManager } from '../squid/cache-manager.js';
import { compileHeaderFilter, FilteredResponse, forwardedForValue, withoutOurVia } from '../squid/headers.js';
import { type ClusterStats, StatsCounter, type WorkerStats } from '../stats/counters.js';
import { Store } from '../store/lmdb/lmdb-store.js';
import { Tunnels } from '../tunnel/tunnel.js';
import { Upstream, type UpstreamRequest } from '../upstream/upstream.js';

export interface ProxyServer {
  server: Server;
  /** Stops accepting, lets in-flight exchanges finish until the deadline, then cuts what is left. */
  shutdown(deadlineMs: number): Promise<void>;
  /** The access log was rotated: reopen its path. */
  reopenLogs(): void;
  /** This worker's counters, for the primary. */
  stats(): WorkerStats;
  /** The primary's answer to this worker's request for the cluster's counters. */
  clusterStats(id: number, stats: ClusterStats): void;
}

const NOT_A_PROXY_REQUEST =
  'this is a forward proxy: send absolute-form requests (curl -x http://host:port http://site/) or start cuttle with --origin for reverse-proxy mode';

const ALLOW = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH, CONNECT';

export function createProxy(config: Config, log: Logger): ProxyServer {
  const name = config.visibleHostname;
  const via11 = viaEntry('1.1', name, PRODUCT);
  const access = createAccess(config);
  const ownVia = config.squid?.via ?? true;
  const headerFilter = config.squid ? compileHeaderFilter(config.squid) : null;
  const replyFiltering = headerFilter !== null && (!headerFilter.empty || !ownVia);
  const accessLog = config.accessLog ? openAccessLog(config.accessLog, config.accessLogFormat) : null;
  const upstream = new Upstream(config, via11, log);
  const store = new Store(config.cacheDir, config.cacheSize, log);
  const cache = new Cache(config, store, upstream, via11, log);
  const stats = new StatsCounter();
  const recorder = new AccessRecorder(accessLog, stats);
  let clusterSeq = 0;
  const clusterWaiters = new Map<number, (s: ClusterStats) => void>();
  const manager: ManagerDeps = {
    store,
    capacity: config.cacheSize,
    passwords: config.squid?.managerPasswords ?? {},
    clusterStats: () =>
      new Promise((resolve, reject) => {
        const id = ++clusterSeq;
        // Outside a cluster (never in production) only this process's counters exist.
        if (!process.send)
          return resolve({ startedAt: Date.now(), now: Date.now(), workers: [stats.snapshot()] });
        const timer = setTimeout(() => {
          clusterWaiters.delete(id);
          reject(new Error('the primary did not answer'));
        }, 3000);
        clusterWaiters.set(id, (s) => {
          clearTimeout(timer);
          clusterWaiters.delete(id);
          resolve(s);
        });
        process.send({ type: 'mgr-request', id } satisfies WorkerMessage);
      }),
  };
  const originUrl = config.origin ? new URL(config.origin) : null;
  // In reverse mode the client's Host names the site, as Varnish hashes on it; without one, the origin's.
  // squid.conf accel: the site is the Host header (vhost) or always defaultsite (no-vhost).
  const accelSite = config.squid?.accelSite ?? null;
  const siteOf = (hostHeader: string | undefined) =>
    accelSite && (!config.squid?.accelVhost || !hostHeader) ? accelSite : hostHeader;
  const reverseKey = (host: string | undefined, path: string) =>
    `${originUrl?.protocol}//${(host ?? originUrl?.host ?? '').toLowerCase()}${path}`;
  const tunnels = new Tunnels({
    config,
    log,
    via: via11,
    check: access.connect,
    recorder,
  });
  const t = config.timeouts;
  let draining = false;

  const server = createServer(
    {
      maxHeaderSize: config.maxHeaderSize,
      requireHostHeader: true,
      insecureHTTPParser: false,
      headersTimeout: t.clientHeaders,
      // Whole-request deadline off: a large upload is bounded by the idle timeout instead.
      requestTimeout: 0,
      keepAliveTimeout: t.clientIdle,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, t.clientHeaders / 2)),
      // Squid's reply header filtering needs every header section that goes out; the plain class otherwise.
      ServerResponse: replyFiltering ? FilteredResponse : ServerResponse,
    },
    (req, res) => onRequest(req, res, false),
  );
  server.timeout = t.read;
  // RFC 9110 §10.1.1: decide on the request before inviting its body.
  server.on('checkContinue', (req, res) => onRequest(req, res, true));
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (draining) {
      socket.end(
        rawErrorResponse(new ProxyError(503, 'ERR_SHUTTING_DOWN', 'the proxy is shutting down'), via11),
      );
      return;
    }
    tunnels.handle(req, socket, head);
  });
  server.on('clientError', (err: Error & { code?: string; rawPacket?: Buffer }, socket: Socket) => {
    // RFC 9112 §9.6: after `Connection: close` further requests are not processed, but the one in flight
    // still gets its response; llhttp flags the extra bytes and the connection closes after that response.
    if (err.code === 'HPE_CLOSED_CONNECTION') return;
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    let perr: ProxyError;
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      perr = requestLineTooLong(err.rawPacket, config.maxUrlLength)
        ? uriTooLong(config.maxUrlLength)
        : headersTooLarge(config.maxHeaderSize);
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      perr = new ProxyError(
        408,
        'ERR_REQUEST_PARSE_TIMEOUT',
        'the request header section did not arrive in time',
      );
    } else {
      perr = invalidRequest(`malformed request: ${err.message.replace(/^Parse Error: /, '')}`);
    }
    log.info(
      { client: socket.remoteAddress, status: perr.status, error: perr.squidError, code: err.code },
      perr.message,
    );
    socket.end(rawErrorResponse(perr, via11));
  });

  function onRequest(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
    if (draining) res.shouldKeepAlive = false;
    const fail = (err: ProxyError) => sendError(req, res, err, via11, log);
    const where = recorder.track(req, res);
    const method = req.method as string;
    const url = req.url as string;

    const denied = access.client(req);
    if (denied) return fail(denied);
    if (url.length > config.maxUrlLength) return fail(uriTooLong(config.maxUrlLength));

    const target = parseTarget(url);
    const report = managerReport(target);
    if (report !== null) return manage(req, res, report);
    let origin: string;
    let path: string;
    let host: string | undefined;
    let key: string;
    switch (target.form) {
      case 'invalid':
        return fail(invalidRequest(target.reason));
      case 'asterisk':
        if (method === 'OPTIONS') return answerOptions(res);
        return fail(invalidRequest('the asterisk-form target is for OPTIONS only'));
      case 'origin':
        if (!config.origin) return fail(invalidRequest(NOT_A_PROXY_REQUEST));
        origin = config.origin;
        path = target.path;
        host = siteOf(req.headers.host);
        key = reverseKey(host, path);
        break;
      case 'absolute':
        // In reverse mode every request goes to the one origin; only the path of an absolute target counts.
        origin = config.origin ?? `${target.scheme}://${target.authority}`;
        path = target.path;
        host = config.origin ? siteOf(req.headers.host) : target.authority;
        key = config.origin
          ? reverseKey(host, path)
          : cacheKey(target.scheme, target.host, target.port, path);
        break;
    }

    if (accessLog) where.url = target.form === 'absolute' && !config.origin ? url : `${origin}${path}`;
    // No URL parsing per request: the host is known from the target or the configured origin.
    where.server = target.form === 'absolute' && !originUrl ? target.host : (originUrl?.hostname ?? '-');
    let ctx: AccessContext | null = null;
    if (access.request) {
      // In reverse mode the site is the one the client named (Squid's vhost), else the origin itself.
      const u = new URL(path, originUrl && host ? `${originUrl.protocol}//${host}` : origin);
      const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
      const scheme = u.protocol.slice(0, -1);
      const checked = access.request(req, { scheme, host: u.hostname, port, url: u.href, path });
      if (checked instanceof ProxyError) return fail(checked);
      ctx = checked;
      where.user = ctx.user;
      if (replyFiltering) {
        (res as FilteredResponse).filter = (h) => {
          const out = ctx && headerFilter ? headerFilter.reply(h, ctx) : h;
          return ownVia ? out : withoutOurVia(out, via11);
        };
      }
    }
    const raw = req.rawHeaders;
    const via = fieldValue(raw, 'via');
    if (isForwardingLoop(via, name))
      return fail(accessDenied(`forwarding loop detected: the request already passed ${name}`));
    const mf = maxForwards(method, fieldValue(raw, 'max-forwards'));
    if (mf.answer) {
      if (method === 'OPTIONS') return answerOptions(res);
      return answerTrace(req, res);
    }
    if (expectsContinue) res.writeContinue();
    // Built only when the request goes upstream: a hit never pays for it.
    const makeUp = (): UpstreamRequest => ({
      origin,
      path,
      method,
      headers: filterRequest(
        ctx,
        forwardedRequestHeaders(raw, {
          host: host ?? '',
          via: ownVia ? appendVia(via, viaEntry(req.httpVersion, name, PRODUCT)) : (via ?? null),
          forwardedFor: forwardedForValue(
            config.squid?.forwardedFor ?? 'on',
            fieldValue(raw, 'x-forwarded-for'),
            plainAddress(req.socket.remoteAddress),
          ),
          maxForwards: mf.forward,
        }),
      ),
      body: hasRequestBody(req.headers) ? req : null,
    });
    if (method === 'PURGE') return purge(req, res, key);
    if (method === 'GET' || method === 'HEAD') return cache.serve(req, res, makeUp, key);
    if (method === 'OPTIONS' || method === 'TRACE') return upstream.forward(req, res, makeUp());
    cache.forwardUnsafe(req, res, makeUp(), key);
  }

  /** request_header_access and request_header_replace, when a squid.conf has them. */
  function filterRequest(ctx: AccessContext | null, h: RawHeaders): RawHeaders {
    return ctx && headerFilter && !headerFilter.empty ? headerFilter.request(h, ctx) : h;
  }

  /** The cache manager report a target asks for (`/squid-internal-mgr/info`, on this host), or null. */
  function managerReport(target: ReturnType<typeof parseTarget>): string | null {
    if (target.form !== 'origin' && target.form !== 'absolute') return null;
    if (!target.path.startsWith(MGR_PREFIX)) return null;
    if (target.form === 'absolute') {
      const ours = new Set(['localhost', '127.0.0.1', '[::1]', name.toLowerCase()]);
      const port = (server.address() as { port?: number } | null)?.port;
      if (!ours.has(target.host.toLowerCase()) || target.port !== port) return null;
    }
    return target.path.slice(MGR_PREFIX.length).split(/[?/]/)[0] || 'menu';
  }

  function manage(req: IncomingMessage, res: ServerResponse, report: string): void {
    const fail = (err: ProxyError) => sendError(req, res, err, via11, log);
    if (access.request) {
      // Squid's stock rules apply: `http_access allow localhost manager`, `http_access deny manager`.
      const port = (server.address() as { port?: number } | null)?.port ?? config.port;
      const path = `${MGR_PREFIX}${report}`;
      const checked = access.request(req, {
        scheme: 'http',
        host: name,
        port,
        url: `http://${name}:${port}${path}`,
        path,
      });
      if (checked instanceof ProxyError) return fail(checked);
    } else if (!isLoopback(req.socket.remoteAddress)) {
      return fail(accessDenied('the cache manager answers this host only'));
    }
    serveManager(req, res, report, manager);
  }

  /**
   * Squid's PURGE: removes the stored response and all its variants; 200 when something was removed, 404
   * when nothing was stored. With a squid.conf, http_access decides who may (`acl PURGE method PURGE`);
   * without one, only clients on this host.
   */
  function purge(req: IncomingMessage, res: ServerResponse, key: string): void {
    if (!config.squid && !isLoopback(req.socket.remoteAddress))
      return sendError(req, res, accessDenied('PURGE is allowed from this host only'), via11, log);
    req.resume();
    void store.invalidate(key).then((removed) => {
      res.writeHead(removed ? 200 : 404, ['Content-Length', '0', 'Via', via11]);
      res.end();
    });
  }

  function answerOptions(res: ServerResponse): void {
    res.writeHead(200, ['Allow', ALLOW, 'Content-Length', '0', 'Via', via11]);
    res.end();
  }

  function answerTrace(req: IncomingMessage, res: ServerResponse): void {
    const body = traceBody(req.method as string, req.url as string, req.httpVersion, req.rawHeaders);
    res.writeHead(200, [
      'Content-Type',
      'message/http',
      'Content-Length',
      String(Buffer.byteLength(body)),
      'Via',
      via11,
    ]);
    res.end(body);
  }

  async function shutdown(deadlineMs: number): Promise<void> {
    draining = true;
    let serverClosed = false;
    server.close(() => {
      serverClosed = true;
    });
    const until = Date.now() + deadlineMs;
    // Keep-alive connections go as soon as they are idle; busy ones get `Connection: close` on their response.
    while (!(serverClosed && tunnels.open.size === 0) && Date.now() < until) {
      server.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!serverClosed || tunnels.open.size > 0) {
      log.warn(
        { tunnels: tunnels.open.size },
        'shutdown deadline reached: closing the remaining connections',
      );
      server.closeAllConnections();
      tunnels.destroyAll();
    }
    await upstream.close().catch(() => {});
    await store.close().catch(() => {});
    // Closed connections have written their lines by now; the buffered ones reach the file before exit.
    await accessLog?.close();
  }

  return {
    server,
    shutdown,
    reopenLogs: () => accessLog?.reopen(),
    stats: () => stats.snapshot(),
    clusterStats: (id, s) => clusterWaiters.get(id)?.(s),
  };
}

/** llhttp reports one overflow for the whole head; a request line with no end in sight means the URI is at fault. */
function requestLineTooLong(packet: Buffer | undefined, maxUrlLength: number): boolean {
  if (!packet) return false;
  const eol = packet.indexOf('\n');
  return eol === -1 ? packet.length > maxUrlLength : eol > maxUrlLength;
}
