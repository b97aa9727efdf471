/**
 * upstream: forwards a request through undici's per-origin keep-alive pools. The caller says what to do
 * with the answer through an Exchange: at the response head it returns the sink the body goes to (the
 * client, a tee into the store, or nothing for a background revalidation), so this module never sees a
 * ServerResponse and never decides anything about caching.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import type { Config } from '../config/config.js';
import type { RawHeaders } from '../http/fields.js';
import type { Logger } from '../shared/logger.js';
import type { BodySink } from '../store/store.js';
import { ForwardHandler } from './forward-handler.js';
import { OriginHealth } from './origin-health.js';

export interface UpstreamRequest {
  origin: string;
  path: string;
  method: string;
  headers: RawHeaders;
  /** The client's request stream, when the request has content. */
  body: IncomingMessage | null;
}

export type UpstreamError = Error & { code?: string };

/** What to do with one upstream exchange's outcome. */
export interface Exchange {
  /** The final response head arrived: where its body goes. Throwing refuses the response (502). */
  onHead(status: number, raw: RawHeaders): BodySink;
  /** No response arrived, after the one retry an idempotent request may get. */
  onError(err: UpstreamError): void;
  /** An interim (1xx) response arrived before the final one (RFC 9110 §15.2); never 100 or 101. */
  onInterim?(status: number, raw: RawHeaders): void;
}

/** A running exchange: `abort` cuts it (the client went away). */
export interface Pending {
  abort(reason: string): void;
}

/** Timings the metrics take from the upstream link (a connection is not a request's, so not on the record). */
export interface UpstreamTimings {
  /** A connection to an origin opened, in this many seconds. */
  connected(seconds: number): void;
  /** A response header section arrived this many seconds after the request was dispatched. */
  headers(seconds: number): void;
}

// Errors where the request cannot have been processed: the pooled connection died under us.
const RETRYABLE = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
// RFC 9110 §9.2.2: only idempotent requests may be retried automatically.
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export class Upstream {
  private readonly agent: Agent;

  constructor(
    config: Config,
    private readonly log: Logger,
    private readonly timings: UpstreamTimings | null = null,
  ) {
    const t = config.timeouts;
    // An https origin's certificate is verified (Node's CA list, or --origin-ca's), unless --origin-insecure.
    const connector = buildConnector({
      timeout: t.connect,
      ...(config.originCa ? { ca: readFileSync(config.originCa, 'utf8') } : {}),
      ...(config.originInsecure ? { rejectUnauthorized: false } : {}),
    });
    const health = new OriginHealth(log);
    this.agent = new Agent({
      // undici's own connector, timed, and watched for origins that stop accepting connections.
      connect: (opts, callback) => {
        const start = performance.now();
        connector(opts, (...args) => {
          const origin = `${opts.protocol}//${opts.hostname}:${opts.port}`;
          if (args[0] === null) {
            health.connected(origin);
            timings?.connected((performance.now() - start) / 1000);
          } else health.connectFailed(origin, args[0]);
          callback(...args);
        });
      },
      headersTimeout: t.response,
      bodyTimeout: t.read,
      keepAliveTimeout: 4_000,
      maxHeaderSize: config.maxHeaderSize,
    });
  }

  fetch(up: UpstreamRequest, asked: Exchange): Pending {
    const timings = this.timings;
    let exchange = asked;
    if (timings !== null) {
      const start = performance.now();
      // Exchanges are plain objects (as miss.ts builds them): keep every hook, time the head.
      exchange = {
        ...asked,
        onHead: (status, raw) => {
          timings.headers((performance.now() - start) / 1000);
          return asked.onHead(status, raw);
        },
      };
    }
    const pending = { handler: null as ForwardHandler | null, aborted: null as string | null };
    const dispatch = (retries: number) => {
      const handler = new ForwardHandler(exchange, (err) => {
        if (retries > 0 && RETRYABLE.has(err.code ?? '') && pending.aborted === null) {
          this.log.debug({ origin: up.origin, code: err.code }, 'retrying on a fresh upstream connection');
          dispatch(retries - 1);
          return;
        }
        if (pending.aborted === null) exchange.onError(err);
      });
      pending.handler = handler;
      this.agent.dispatch(
        {
          origin: up.origin,
          path: up.path,
          method: up.method as Dispatcher.HttpMethod,
          headers: up.headers,
          body: up.body,
          // One request per connection at a time: no pipelining, so a failure is attributable.
          blocking: true,
          upgrade: null,
        },
        handler,
      );
    };
    dispatch(IDEMPOTENT.has(up.method) && up.body === null ? 1 : 0);
    return {
      abort: (reason) => {
        if (pending.aborted !== null) return;
        pending.aborted = reason;
        pending.handler?.abort(reason);
      },
    };
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
