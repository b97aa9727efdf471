/**
 * The worker's HTTP server and its composition root: node:http (llhttp, strict) with its limits, parse
 * errors answered on the raw socket, CONNECT handed to the tunnel stage, and the drain on shutdown. Every
 * request then runs through the pipeline (pipeline.ts).
 */

import nodeCluster from 'node:cluster';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Collapse } from '../cache/collapse.js';
import type { CacheContext } from '../cache/context.js';
import { heuristicRules } from '../cache/freshness-rules.js';
import type { Config } from '../config/config.js';
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
import { Tunnels } from '../tunnel/tunnel.js';
import { Upstream } from '../upstream/upstream.js';
import { isClosing } from './closing.js';
import { ClusterStatsClient, type PageReply } from './cluster-stats.js';
import { ClusterFillClient } from './fill-client.js';
import { Finish } from './finish.js';
import { createPipeline, upstreamRequestBuilder } from './pipeline.js';
import { Respond } from './respond.js';
import { createRouter } from './route.js';
import { SelfAnswers } from './self.js';
import type { FinishObserver } from './transaction.js';

export interface ProxyServer {
  server: Server;
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
}

/** How many of its most hit URLs a worker reports to the dashboard. */
const TOP_REPORTED = 20;

export function createProxy(config: Config, log: Logger, opts: ProxyOptions = {}): ProxyServer {
  const via = viaEntry('1.1', config.visibleHostname, PRODUCT);
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
        connections: () => new Promise<number>((r) => server.getConnections((err, n) => r(err ? 0 : n))),
        tunnels: (): number => tunnels.open.size,
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
  const upstream = new Upstream(
    config,
    log,
    metrics
      ? { connected: (s) => metrics.upstreamConnected(s), headers: (s) => metrics.upstreamHeaders(s) }
      : null,
  );
  const stats = new StatsCounter();
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
  const port = () => (server.address() as { port?: number } | null)?.port;
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
  const onRequest = createPipeline({
    config,
    access,
    route: createRouter(config),
    respond,
    finish,
    self,
    cache,
    draining: () => draining,
  });
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
  server.on('clientError', (err: Error & { code?: string; rawPacket?: Buffer }, socket: Socket) => {
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
  });

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
    await stores.close().catch(() => {});
    // Closed connections have written their lines by now; the buffered ones reach the file before exit.
    await accessLog?.close();
  }

  return {
    server,
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

/** llhttp reports one overflow for the whole head; a request line with no end in sight means the URI is at fault. */
function requestLineTooLong(packet: Buffer | undefined, maxUrlLength: number): boolean {
  if (!packet) return false;
  const eol = packet.indexOf('\n');
  return eol === -1 ? packet.length > maxUrlLength : eol > maxUrlLength;
}
