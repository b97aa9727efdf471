/**
 * A request's life in a worker, as named steps over its transaction record:
 * recv (limits, target) → access → route → dispatch (self answer | cache | pass | unsafe → invalidate).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Access, Destination } from '../access/access.js';
import type { CacheContext } from '../cache/context.js';
import { forwardUnsafe } from '../cache/invalidate.js';
import { pass } from '../cache/miss.js';
import { serve, serveLocal } from '../cache/serve.js';
import type { Config } from '../config/config.js';
import { fleetName } from '../fleet/peers.js';
import { accessDenied, invalidRequest, type ProxyError, uriTooLong } from '../http/errors.js';
import { fieldValue } from '../http/fields.js';
import {
  appendVia,
  forwardedForValue,
  forwardedRequestHeaders,
  isForwardingLoop,
  maxForwards,
  plainAddress,
  viaEntry,
} from '../http/forwarding.js';
import { framingError, hostError, versionError } from '../http/framing.js';
import { hasRequestBody, parseTarget } from '../http/target.js';
import { PRODUCT } from '../shared/version.js';
import type { UpstreamRequest } from '../upstream/upstream.js';
import { isClosing, markClosing } from './closing.js';
import type { Finish } from './finish.js';
import type { H2Exchange } from './h2.js';
import type { HeaderRules, Respond } from './respond.js';
import type { Routable } from './route.js';
import type { SelfAnswers } from './self.js';
import { type ClientLink, Transaction } from './transaction.js';

export interface PipelineDeps {
  config: Config;
  access: Access;
  route: (txn: Transaction, target: Routable) => ReturnType<typeof invalidRequest> | null;
  respond: Respond;
  finish: Finish;
  self: SelfAnswers;
  cache: CacheContext;
  /** Whether the server is draining: responses then close their connection. */
  draining: () => boolean;
}

export function createPipeline(d: PipelineDeps) {
  const { config, access, respond, self, cache } = d;
  const name = fleetName(config.peers, config.visibleHostname);

  /**
   * recv and access after framing: the client address, the request-target's limits and form, route, the
   * access rules that look at the destination, loops and Max-Forwards. Decides without answering, so the
   * lean front end (lean.ts) can run the same checks and hand anything but a hit to node:http untouched.
   */
  function admit(txn: Transaction, req: IncomingMessage): Admitted {
    const denied = access.client(txn);
    if (denied) return { kind: 'error', error: denied };
    if (txn.url.length > config.maxUrlLength)
      return { kind: 'error', error: uriTooLong(config.maxUrlLength) };
    const target = parseTarget(txn.url);
    const report = self.managerReport(target);
    if (report !== null) return { kind: 'manage', report };
    const page = self.internalPage(target);
    if (page !== null) return { kind: 'internal', page };
    if (target.form === 'invalid') return { kind: 'error', error: invalidRequest(target.reason) };
    if (target.form === 'asterisk') {
      if (txn.method === 'OPTIONS') return { kind: 'options' };
      return { kind: 'error', error: invalidRequest('the asterisk-form target is for OPTIONS only') };
    }
    // route, then the access rules that look at the destination.
    const unroutable = d.route(txn, target);
    if (unroutable) return { kind: 'error', error: unroutable };
    if (access.checksRequests) {
      const refused = access.request(txn, destination(txn));
      if (refused) return { kind: 'error', error: refused };
    }
    const raw = req.rawHeaders;
    if (isForwardingLoop(fieldValue(raw, 'via'), name))
      return {
        kind: 'error',
        error: accessDenied(`forwarding loop detected: the request already passed ${name}`),
      };
    const mf = maxForwards(txn.method, fieldValue(raw, 'max-forwards'));
    if (mf.answer) return { kind: txn.method === 'OPTIONS' ? 'options' : 'trace' };
    txn.maxForwards = mf.forward;
    return { kind: 'dispatch' };
  }

  /**
   * The lean front ends' question (lean.ts, h2-lean.ts): a bodiless GET or HEAD, already framed, answered
   * from the store when every check passes and a fresh entry is there. False, with nothing written and
   * nothing recorded, for anything else: node:http then gets the request's bytes and runs onRequest.
   */
  function hit(req: IncomingMessage, res: ServerResponse, h2link?: ClientLink): boolean {
    // An HTTP/2 stream (h2-lean.ts) is framed by nghttp2 and may omit Host, as in onRequest.
    const malformed = h2link ? hostError(req.rawHeaders, 0) : http1Malformed(req);
    if (d.draining() || malformed !== null) return false;
    const txn = new Transaction(req, h2link);
    if (admit(txn, req).kind !== 'dispatch') return false;
    return serveLocal(cache, txn, res, () => d.finish.track(txn, res));
  }

  /** `h2`: the request came on an HTTP/2 stream (workers/h2.ts adapted it). */
  function onRequest(
    req: IncomingMessage,
    res: ServerResponse,
    expectsContinue: boolean,
    h2?: H2Exchange,
  ): void {
    // A request pipelined behind an answer that closes the connection is not processed (RFC 9112 §9.6).
    if (isClosing(req.socket)) {
      req.resume();
      return;
    }
    if (d.draining()) res.shouldKeepAlive = false;
    const txn = new Transaction(req, h2?.link);
    d.finish.track(txn, res);

    // recv: framing and Host first, since a request that fails them closes the connection whoever sent it.
    // HTTP/2 frames its messages itself (nghttp2 checks Content-Length against DATA, RFC 9113 §8.1.1) and
    // may omit Host when :authority is absent.
    const raw = req.rawHeaders;
    const malformed = h2
      ? h2.error === null
        ? hostError(raw, 0)
        : invalidRequest(h2.error)
      : http1Malformed(req);
    if (malformed) return respond.error(txn, res, malformed);
    // RFC 9112 §6.1: chunked in an HTTP/1.0 request means the framing may be faulty: close after answering.
    if (!h2 && req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) {
      res.shouldKeepAlive = false;
      markClosing(req.socket);
    }

    const checked = admit(txn, req);
    switch (checked.kind) {
      case 'error':
        return respond.error(txn, res, checked.error);
      case 'manage':
        return self.manage(txn, res, checked.report);
      case 'internal':
        return self.internal(txn, res, checked.page);
      case 'options':
        return self.options(txn, res);
      case 'trace':
        return self.trace(txn, res);
    }
    if (expectsContinue) res.writeContinue();

    // dispatch
    switch (txn.method) {
      case 'PURGE':
        return self.purge(txn, res);
      case 'GET':
      case 'HEAD':
        return serve(cache, txn, res);
      case 'OPTIONS':
      case 'TRACE':
        return pass(cache, txn, res);
      default:
        return forwardUnsafe(cache, txn, res);
    }
  }

  return { onRequest, hit };
}

type Admitted =
  | { kind: 'dispatch' | 'options' | 'trace' }
  | { kind: 'error'; error: ProxyError }
  | { kind: 'manage'; report: NonNullable<ReturnType<SelfAnswers['managerReport']>> }
  | { kind: 'internal'; page: NonNullable<ReturnType<SelfAnswers['internalPage']>> };

/** RFC 9112: an HTTP/1.x request's version, framing (§6) and Host (§3.2), checked before anything else. */
function http1Malformed(req: IncomingMessage): ProxyError | null {
  const raw = req.rawHeaders;
  return (
    versionError(req.httpVersionMajor, req.httpVersionMinor) ??
    framingError(raw) ??
    hostError(raw, req.httpVersionMinor)
  );
}

/** The destination as access rules see it: in reverse mode the site the client named (Squid's vhost). */
function destination(txn: Transaction): Destination {
  const route = txn.route as NonNullable<Transaction['route']>;
  const base = new URL(route.origin);
  const u = new URL(route.path, route.host ? `${base.protocol}//${route.host}` : route.origin);
  return {
    scheme: u.protocol.slice(0, -1),
    host: u.hostname,
    port: Number(u.port) || (u.protocol === 'https:' ? 443 : 80),
    url: u.href,
    path: route.path,
  };
}

/** RFC 9110 §7.6: the request as it is sent upstream, built only when one is. */
export function upstreamRequestBuilder(
  config: Config,
  rules: HeaderRules | null,
): (txn: Transaction) => UpstreamRequest {
  const name = fleetName(config.peers, config.visibleHostname);
  return (txn) => {
    const req = txn.req;
    const raw = req.rawHeaders;
    const route = txn.route as NonNullable<Transaction['route']>;
    const via = fieldValue(raw, 'via');
    const headers = forwardedRequestHeaders(raw, {
      host: route.host,
      // RFC 9110 §7.6.3: the protocol received, whose version for HTTP/2 is "2" (RFC 9113 §3.1).
      via: config.via
        ? appendVia(via, viaEntry(txn.h2 ? '2' : req.httpVersion, name, PRODUCT))
        : (via ?? null),
      forwardedFor: forwardedForValue(
        config.forwardedFor,
        fieldValue(raw, 'x-forwarded-for'),
        plainAddress(req.socket.remoteAddress),
      ),
      maxForwards: txn.maxForwards,
    });
    return {
      origin: route.origin,
      path: route.path,
      method: txn.method,
      headers: rules === null ? headers : rules.request(headers, txn),
      body: hasRequestBody(req.headers) ? req : null,
    };
  };
}
