/**
 * The worker's HTTP server and its composition root: node:http (llhttp, strict) with its limits, parse
 * errors answered on the raw socket, CONNECT handed to the tunnel stage, and the drain on shutdown. Every
 * request then runs through the pipeline (pipeline.ts).
 */

import nodeCluster from 'node:cluster';
import { createServer, type IncomingMessage, Server, type ServerResponse } from 'node:http';
import {
  createServer as createHttp2Server,
  createSecureServer,
  type Http2SecureServer,
  type Http2Server,
  Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
} from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Collapse } from '../cache/collapse.js';
import type { CacheContext } from '../cache/context.js';
import { heuristicRules } from '../cache/freshness-rules.js';
import type { Config } from '../config/config.js';
import { createForwarder } from '../fleet/forward.js';
import { fleetName } from '../fleet/peers.js';
import { headersTooLarge, invalidRequest, ProxyError, rawErrorResponse, uriTooLong } from '../http/errors.js';
import { viaEntry } from '../http/forwarding.js';
import type { Logger } from '../shared/logger.js';
import type { WorkerMetricsReport } from '../shared/messages.js';
import { PRODUCT } from '../shared/version.js';
import { accessLogObserver, openAccessLog } from '../squid/access-log.js';
import { plugins } from '../squid/layer.js';
import { type ClusterStats, StatsCounter, type WorkerStats } from '../stats/counters.js';
import { WorkerMetrics } from '../stats/metrics.js';
import { openLmdbStores } from '../store/lmdb/lmdb-store.js';
import type { Stores } from '../store/store.js';
import type { TlsMaterial } from '../tls/certificates.js';
import { TLS_VERSIONS, TlsContexts } from '../tls/contexts.js';
import { Tunnels } from '../tunnel/tunnel.js';
import { isClosing } from './closing.js';
import { ClusterStatsClient, type PageReply } from './cluster-stats.js';
import { ClusterFillClient } from './fill-client.js';
import { Finish } from './finish.js';
import { adaptH2, guardSession, sessionIdle } from './h2.js';
import { leanH2 } from './h2-lean.js';
import { createLeanFrontEnd, type LeanFrontEnd, leanParser } from './lean.js';
import { createPipeline, upstreamRequestBuilder } from './pipeline.js';
import { Respond } from './respond.js';
import { createRouter } from './route.js';
import { SelfAnswers } from './self.js';
import type { FinishObserver } from './transaction.js';

export interface ProxyServer {
  /** node:http: the full path for plain HTTP/1.x. */
  server: Server;
  /** What listens for plain HTTP/1.x: the lean front end's net server, or `server` itself. */
  listener: NetServer;
  /** The HTTPS listener (HTTP/1.1 and HTTP/2 by ALPN) when TLS material was given. */
  secure: Http2SecureServer | null;
  /** The h2c listener (cleartext HTTP/2, prior knowledge), with `h2cPort`. */
  cleartext: Http2Server | null;
  /** New certificates (SIGHUP): new handshakes use them, open connections keep theirs. */
  updateTls(material: TlsMaterial): void;
  /** Stops accepting, lets in-flight exchanges finish until the deadline, then cuts what is left. */
  shutdown(deadlineMs: number): Promise<void>;
  /** The access log was rotated: reopen its path. */
  reopenLogs(): void;
  /** This worker's counters, for the primary. */
  stats(): WorkerStats;
  /** The primary's answer to this worker's request for the cluster's counters, or for one of its pages. */
  clusterStats(id: number, answer: ClusterStats | PageReply): void;
  /** This worker's metrics for a scrape; null with `metrics: false`. */
  metricsReport(): Promise<WorkerMetricsReport> | null;
}

export interface ProxyOptions {
  /** The cache store; by default the LMDB environment in the cache dir (tests pass memoryStores()). */
  stores?: Stores;
  /** More finish hooks (tests read transactions through one). */
  observers?: FinishObserver[];
  /** Certificates and ticket keys for the HTTPS listener (from the primary); none, no HTTPS listener. */
  tls?: TlsMaterial;
}

/** How many of its most hit URLs a worker reports to the dashboard. */
const TOP_REPORTED = 20;

export function createProxy(config: Config, log: Logger, opts: ProxyOptions = {}): ProxyServer {
  const via = viaEntry('1.1', fleetName(config.peers, config.visibleHostname), PRODUCT);
  const heuristic = heuristicRules(
    config.heuristicFraction,
    config.heuristicMax / 1000,
    config.maxStale / 1000,
  );
  const { access, headerRules, freshness } = plugins(config, via, heuristic);
  const respond = new Respond(config.visibleHostname, via, headerRules, log);
  // Off (`metrics: false`): nothing is fed at finish, no timers run, and the hit path is as without metrics.
  const metrics: WorkerMetrics | null = config.metrics
    ? new WorkerMetrics({
        connections: () =>
          Promise.all(
            [listener, secure, cleartext].map(
              (s) => new Promise<number>((r) => (s ? s.getConnections((err, n) => r(err ? 0 : n)) : r(0))),
            ),
          ).then(([a, b]) => a + b),
        tunnels: (): number => tunnels.open.size,
        lean: () => ({ hits: lean?.counts.hits ?? 0, handovers: lean?.counts.handovers ?? 0, h2Hits }),
      })
    : null;
  const stores =
    opts.stores ??
    openLmdbStores(
      config.cacheDir,
      config.cacheSize,
      { minUses: config.cacheMinUses, windowMs: config.cacheMinUsesWindow },
      log,
      metrics ? () => metrics.writeFailed() : undefined,
    );
  const upstream = createForwarder(
    config,
    log,
    metrics
      ? { connected: (s) => metrics.upstreamConnected(s), headers: (s) => metrics.upstreamHeaders(s) }
      : null,
    metrics?.peerHooks(),
  );
  const stats = new StatsCounter();
  if (upstream.peerStats) stats.peers = () => upstream.peerStats?.() ?? [];
  const accessLog = config.accessLog ? openAccessLog(config.accessLog, config.accessLogFormat) : null;
  const finish = new Finish([
    stats.observer,
    ...(metrics ? [metrics.observer] : []),
    ...(accessLog ? [accessLogObserver(accessLog)] : []),
    ...(opts.observers ?? []),
  ]);
  const cluster = new ClusterStatsClient(stats);
  const cache: CacheContext = {
    stores,
    upstream,
    collapse: new Collapse(
      config.hitForMiss,
      // In a cluster the primary knows who fetches what in every worker; alone (tests), this worker is all.
      nodeCluster.isWorker ? new ClusterFillClient() : null,
      (bodyId, n) => stores.store.readChunk(bodyId, n),
    ),
    rules: freshness,
    respond,
    log,
    maxObjectSize: config.maxObjectSize,
    minObjectSize: config.minObjectSize,
    keyHeaders: config.cacheKeyHeaders,
    setCookie: config.setCookie,
    keepTagHeaders: config.keepTagHeaders,
    claimTtlMs: config.timeouts.response + config.timeouts.read,
    upstreamRequest: upstreamRequestBuilder(config, headerRules),
  };
  const tunnels = new Tunnels({ config, log, via, access, finish });
  const t = config.timeouts;
  let draining = false;

  const server = createServer({
    maxHeaderSize: config.maxHeaderSize,
    // Host is checked by the pipeline (http/framing.ts), so its 400 carries X-Squid-Error and a log line.
    requireHostHeader: false,
    insecureHTTPParser: false,
    headersTimeout: t.clientHeaders,
    // Whole-request deadline off: a large upload is bounded by the idle timeout instead.
    requestTimeout: 0,
    keepAliveTimeout: t.clientIdle,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, t.clientHeaders / 2)),
  });
  // The port this worker serves plain HTTP on: the lean front end's when it listens, else node:http's.
  const port = () => ((listener.address() ?? server.address()) as { port?: number } | null)?.port;
  const self = new SelfAnswers(
    config,
    respond,
    access,
    stores.store,
    {
      store: stores.store,
      respond,
      capacity: config.cacheSize,
      passwords: config.managerPasswords,
      clusterStats: () => cluster.request(),
    },
    port,
    cluster,
  );
  const pipeline = createPipeline({
    config,
    access,
    route: createRouter(config),
    respond,
    finish,
    self,
    cache,
    draining: () => draining,
  });
  const onRequest = pipeline.onRequest;
  const lean: LeanFrontEnd | null =
    config.frontEnd === 'lean' && leanParser() !== null
      ? createLeanFrontEnd({
          http: server,
          hit: pipeline.hit,
          maxHeaderSize: config.maxHeaderSize,
          idleMs: t.clientIdle,
          readMs: t.read,
          log,
        })
      : null;
  if (config.frontEnd === 'lean' && lean === null)
    log.warn('this Node has no llhttp binding for the lean front end: node:http answers every request');
  const listener: NetServer = lean?.server ?? server;
  /** HTTP/2 hits answered on the core stream API (h2-lean.ts). */
  let h2Hits = 0;
  server.on('request', (req, res) => onRequest(req, res, false));
  server.timeout = t.read;
  // RFC 9110 §10.1.1: decide on the request before inviting its body.
  server.on('checkContinue', (req, res) => onRequest(req, res, true));
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (draining) {
      socket.end(
        rawErrorResponse(new ProxyError(503, 'ERR_SHUTTING_DOWN', 'the proxy is shutting down'), via),
      );
      return;
    }
    tunnels.handle(req, socket, head);
  });
  const onClientError = (err: Error & { code?: string; rawPacket?: Buffer }, socket: Socket) => {
    // RFC 9112 §9.6: after `Connection: close` further requests are not processed, but the one in flight
    // still gets its response; llhttp flags the extra bytes and the connection closes after that response.
    if (err.code === 'HPE_CLOSED_CONNECTION') return;
    // An errored parser reports again on every later packet: answer once. When our answer to the request
    // already closes the connection (we refused its framing before llhttp did), it is the only answer.
    if (answered.has(socket) || isClosing(socket)) return;
    answered.add(socket);
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable) {
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
    log.debug(
      { client: socket.remoteAddress, status: perr.status, error: perr.squidError, code: err.code },
      perr.message,
    );
    if (inFlight && !inFlight.writableFinished) {
      if (inFlight.req.complete) {
        // The request in flight is whole: the bytes after it failed, so the error answers *them* and goes
        // after the response in flight, never before it (that would answer the wrong request).
        inFlight.once('finish', () => socket.writable && socket.end(rawErrorResponse(perr, via)));
        inFlight.once('close', () => inFlight.writableFinished || socket.destroy());
        return;
      }
      // Its own body failed to parse: answer it now, or cut the connection if its answer is under way.
      if (inFlight.headersSent) {
        socket.destroy();
        return;
      }
    }
    socket.end(rawErrorResponse(perr, via));
  };
  server.on('clientError', onClientError);

  const secure = opts.tls ? createSecure(opts.tls) : null;
  const cleartext = config.h2cPort === null ? null : createCleartext();
  const sessions = new Set<Http2Session>();

  /**
   * TLS termination, HTTP/1.1 and HTTP/2 on one port (ALPN `h2`, `http/1.1`). HTTP/1.1 connections go
   * through node:http's connection handling with the plain server's limits (set as properties, which is
   * where node:http reads them); HTTP/2 streams are adapted (h2.ts) and run through the same pipeline.
   */
  function createSecure(material: TlsMaterial): Http2SecureServer {
    const contexts = new TlsContexts(material);
    const s = createSecureServer({
      allowHTTP1: true,
      ...contexts.defaultPem(),
      ...TLS_VERSIONS,
      SNICallback: contexts.sniCallback,
      // A handshake is part of the request's head: the same bound as slowloris'.
      handshakeTimeout: t.clientHeaders,
      settings: { maxConcurrentStreams: config.h2MaxStreams, maxHeaderListSize: config.maxHeaderSize },
      maxSendHeaderBlockLength: config.maxHeaderSize,
    });
    s.setTicketKeys(Buffer.from(material.ticketKeys, 'base64'));
    const h1 = s as unknown as Record<string, unknown>;
    h1.maxHeaderSize = config.maxHeaderSize;
    h1.requireHostHeader = false;
    h1.insecureHTTPParser = false;
    h1.headersTimeout = t.clientHeaders;
    h1.requestTimeout = 0;
    h1.keepAliveTimeout = t.clientIdle;
    s.setTimeout(t.read);
    (s as unknown as { contexts: TlsContexts }).contexts = contexts;
    s.on('clientError', onClientError);
    s.on('tlsClientError', (err: Error & { code?: string }, socket) =>
      log.debug({ client: socket.remoteAddress, code: err.code }, `TLS handshake failed: ${err.message}`),
    );
    serveHttp2(s, 'HTTPS');
    // HTTPS/1.1 hits on the lean front end too: a connection that did not choose h2 goes to it first,
    // and what it does not answer goes on to node:http2's own handling of HTTP/1.1 (allowHTTP1).
    if (lean) {
      const front = lean;
      const handlers = s.listeners('secureConnection') as Array<(socket: Socket) => void>;
      const handOver = (socket: Socket) => {
        for (const h of handlers) Reflect.apply(h, s, [socket]);
      };
      s.removeAllListeners('secureConnection');
      s.on('secureConnection', (socket: TLSSocket) =>
        socket.alpnProtocol === 'h2' ? handOver(socket) : front.adopt(socket, handOver),
      );
    }
    return s;
  }

  /** Cleartext HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3): HTTP/2 only, no HTTP/1.1 on its port. */
  function createCleartext(): Http2Server {
    const s = createHttp2Server({
      settings: { maxConcurrentStreams: config.h2MaxStreams, maxHeaderListSize: config.maxHeaderSize },
      maxSendHeaderBlockLength: config.maxHeaderSize,
    });
    s.setTimeout(t.read);
    serveHttp2(s, 'h2c');
    return s;
  }

  /** Requests (both versions on the HTTPS port), CONNECT refused, sessions guarded, idle ones closed. */
  function serveHttp2(s: Http2SecureServer | Http2Server, port: string): void {
    s.on('request', (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) =>
      dispatch(req, res, false),
    );
    s.on(
      'checkContinue',
      (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) =>
        dispatch(req, res, true),
    );
    // The lean front end's HTTP/2 side: hits on the core stream API, the rest to the handlers above.
    if (config.frontEnd === 'lean')
      leanH2(s, pipeline.hit, () => {
        h2Hits++;
      });
    // A reverse proxy has no tunnels to offer: CONNECT (either version) is refused with a reason.
    s.on('connect', (req: IncomingMessage | Http2ServerRequest, second: Socket | Http2ServerResponse) => {
      const err = new ProxyError(405, 'ERR_UNSUP_REQ', `CONNECT is not served on the ${port} port`);
      if (req instanceof Http2ServerRequest) {
        const res = second as Http2ServerResponse;
        res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`${err.message}\n`);
      } else (second as Socket).end(rawErrorResponse(err, via));
    });
    s.on('session', (session: Http2Session) => {
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
      session.on('error', (err) => log.debug({ err: err.message }, 'HTTP/2 session error'));
      if (draining) session.close();
      guardSession(
        session,
        { idleMs: t.clientIdle, streamIdleMs: t.read, resetsPerSecond: config.h2MaxResets },
        log,
      );
    });
    // node:http2 reports an idle session here, node:http an idle HTTP/1.1 socket.
    s.on('timeout', (x: Http2Session | Socket) => {
      if (typeof (x as Http2Session).goaway === 'function') sessionIdle(x as Http2Session);
      else (x as Socket).destroy();
    });
  }

  function dispatch(
    req: IncomingMessage | Http2ServerRequest,
    res: ServerResponse | Http2ServerResponse,
    expectsContinue: boolean,
  ): void {
    if (req instanceof Http2ServerRequest) {
      const h2 = adaptH2(req, res as Http2ServerResponse);
      onRequest(h2.req, h2.res, expectsContinue, h2);
    } else onRequest(req, res as ServerResponse, expectsContinue);
  }

  function updateTls(material: TlsMaterial): void {
    if (!secure) return;
    try {
      (secure as unknown as { contexts: TlsContexts }).contexts.update(material);
      secure.setSecureContext({ ...material.certificates[material.defaultIndex], ...TLS_VERSIONS });
      secure.setTicketKeys(Buffer.from(material.ticketKeys, 'base64'));
    } catch (err) {
      // The primary checked them; should this worker disagree, it keeps serving with what it had.
      log.error({ err: (err as Error).message }, 'new certificates refused; keeping the old ones');
    }
  }

  async function shutdown(deadlineMs: number): Promise<void> {
    draining = true;
    let serverClosed = false;
    let secureClosed = secure === null;
    let cleartextClosed = true;
    if (cleartext?.listening) {
      cleartextClosed = false;
      cleartext.close(() => {
        cleartextClosed = true;
      });
    }
    const closeServer = () => {
      server.close(() => {
        serverClosed = true;
      });
    };
    let leanClosed = !lean?.server.listening;
    if (lean?.server.listening)
      lean.server.close(() => {
        leanClosed = true;
      });
    if (server.listening) closeServer();
    else serverClosed = true;
    if (secure?.listening)
      secure.close(() => {
        secureClosed = true;
      });
    else secureClosed = true;
    // HTTP/2: GOAWAY; streams under way finish, new ones go to another worker on a new connection.
    for (const s of sessions) s.close();
    const closed = () =>
      serverClosed &&
      leanClosed &&
      secureClosed &&
      cleartextClosed &&
      tunnels.open.size === 0 &&
      (lean?.open ?? 0) === 0;
    const start = Date.now();
    const until = start + deadlineMs;
    // A connection the primary handed over just before the listener closed may not have sent its request
    // yet, and has none under way: closing it as idle would fail the request its client is sending. So
    // idle connections are left alone for the first moments of the drain; what arrives meanwhile is
    // answered with `Connection: close`.
    const sweepFrom = start + Math.min(FIRST_REQUEST_GRACE_MS, deadlineMs / 2);
    // Keep-alive connections go as soon as they are idle; busy ones get `Connection: close` on their response.
    while (!closed() && Date.now() < until) {
      if (Date.now() >= sweepFrom) {
        lean?.closeIdle();
        server.closeIdleConnections();
        (secure as unknown as Server | null)?.closeIdleConnections();
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!closed()) {
      log.warn(
        { tunnels: tunnels.open.size, sessions: sessions.size },
        'shutdown deadline reached: closing the remaining connections',
      );
      server.closeAllConnections();
      lean?.destroyAll();
      // node:http2 has closeIdleConnections for its HTTP/1.1 connections but not this one; node:http's works.
      if (secure) Server.prototype.closeAllConnections.call(secure as unknown as Server);
      for (const s of sessions) s.destroy();
      tunnels.destroyAll();
    }
    await upstream.close().catch(() => {});
    await stores.close().catch(() => {});
    // Closed connections have written their lines by now; the buffered ones reach the file before exit.
    await accessLog?.close();
  }

  return {
    server,
    listener,
    secure,
    cleartext,
    updateTls,
    shutdown,
    reopenLogs: () => accessLog?.reopen(),
    stats: () => stats.snapshot(),
    clusterStats: (id, s) => cluster.answered(id, s),
    metricsReport: () =>
      metrics
        ? metrics.registry
            .getMetricsAsJSON()
            .then((m) => ({ metrics: m, top: metrics.top.top(TOP_REPORTED) }))
        : null,
  };
}

const answered = new WeakSet<Socket>();

/** How long a drain leaves idle connections open, so those accepted just before it can send their request. */
const FIRST_REQUEST_GRACE_MS = 1000;

/** llhttp reports one overflow for the whole head; a request line with no end in sight means the URI is at fault. */
function requestLineTooLong(packet: Buffer | undefined, maxUrlLength: number): boolean {
  if (!packet) return false;
  const eol = packet.indexOf('\n');
  return eol === -1 ? packet.length > maxUrlLength : eol > maxUrlLength;
}
