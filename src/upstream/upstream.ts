/**
 * fetch: forwards a request upstream through undici's per-origin pools and streams the answer back.
 * Hooks let the cache stage look at the response head, tee the body into the store, or take the response
 * over (a 304 on revalidation, stale-if-error) and answer the client itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, type Dispatcher } from 'undici';
import type { Config } from '../config/config.js';
import { upstreamError } from '../http/errors.js';
import type { RawHeaders } from '../http/forwarding.js';
import { responseHeaders, sendError } from '../http/respond.js';
import type { Logger } from '../shared/logger.js';

export interface UpstreamRequest {
  origin: string;
  path: string;
  method: string;
  headers: RawHeaders;
  /** The client's request stream, when the request has content. */
  body: IncomingMessage | null;
}

/** Receives a copy of the response body as it streams. */
export interface BodyTee {
  write(chunk: Buffer): void;
  /** May resolve when the copy is durable (the store's commit). */
  end(): Promise<unknown> | undefined;
  abort(reason: string): void;
}

export type HeadDecision =
  /** Send the response to the client with these header fields. */
  | { take: false; headers: RawHeaders; tee?: BodyTee }
  /** The hook answered the client itself; the body (if any) goes only to the tee. */
  | { take: true; tee?: BodyTee };

export interface ForwardHooks {
  onHead?(status: number, raw: RawHeaders): HeadDecision;
  /** No response arrived; return true when the hook answered the client (e.g. stale-if-error). */
  onError?(err: Error & { code?: string }): boolean;
}

// Errors where the request cannot have been processed: the pooled connection died under us.
const RETRYABLE = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
// RFC 9110 §9.2.2: only idempotent requests may be retried automatically.
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export class Upstream {
  readonly agent: Agent;

  constructor(
    config: Config,
    private readonly via: string,
    private readonly log: Logger,
  ) {
    const t = config.timeouts;
    this.agent = new Agent({
      connect: { timeout: t.connect },
      headersTimeout: t.response,
      bodyTimeout: t.read,
      keepAliveTimeout: 4_000,
      maxHeaderSize: config.maxHeaderSize,
    });
  }

  /** Forwards for a client; `res` null means a background fetch (revalidation) with no client. */
  forward(
    req: IncomingMessage | null,
    res: ServerResponse | null,
    up: UpstreamRequest,
    hooks: ForwardHooks = {},
  ): void {
    this.dispatch(req, res, up, hooks, IDEMPOTENT.has(up.method) && up.body === null ? 1 : 0);
  }

  private dispatch(
    req: IncomingMessage | null,
    res: ServerResponse | null,
    up: UpstreamRequest,
    hooks: ForwardHooks,
    retries: number,
  ): void {
    const handler = new ForwardHandler(res, this.via, hooks, (err) => {
      if (retries > 0 && RETRYABLE.has(err.code ?? '')) {
        this.log.debug({ origin: up.origin, code: err.code }, 'retrying on a fresh upstream connection');
        this.dispatch(req, res, up, hooks, retries - 1);
        return;
      }
      if (hooks.onError?.(err)) return;
      const perr = upstreamError(err, up.origin);
      if (req && res) sendError(req, res, perr, this.via, this.log);
      else
        this.log.info(
          { origin: up.origin, path: up.path, error: perr.squidError },
          `background fetch: ${perr.message}`,
        );
    });
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
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

class ForwardHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private started = false;
  private taken = false;
  private tee: BodyTee | undefined;

  constructor(
    private readonly res: ServerResponse | null,
    private readonly via: string,
    private readonly hooks: ForwardHooks,
    private readonly onFailure: (err: Error & { code?: string }) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (!this.res) return;
    if (this.res.destroyed) {
      controller.abort(new Error('client went away'));
      return;
    }
    // A client that disconnects aborts the upstream exchange too.
    this.res.once('close', this.onClientClose);
  }

  private onClientClose = (): void => {
    if (!this.res?.writableFinished && !this.taken && this.controller && !this.controller.aborted) {
      this.controller.abort(new Error('client closed the connection'));
    }
  };

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode < 200) return;
    this.started = true;
    const raw = controller.rawHeaders as Buffer[];
    const strings: RawHeaders = new Array(raw.length);
    for (let i = 0; i < raw.length; i++) strings[i] = raw[i].toString('latin1');
    const decision = this.hooks.onHead?.(statusCode, strings) ?? {
      take: false,
      headers: responseHeaders(strings, this.via),
    };
    this.tee = decision.tee;
    if (decision.take || !this.res) {
      this.taken = true;
      return;
    }
    try {
      this.res.writeHead(statusCode, decision.headers);
    } catch {
      this.tee?.abort('invalid header');
      this.tee = undefined;
      controller.abort(
        Object.assign(new Error('response header not deliverable'), { code: 'HPE_INVALID_HEADER_TOKEN' }),
      );
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.tee?.write(chunk);
    if (this.taken || !this.res) return;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.res?.off('close', this.onClientClose);
    void this.tee?.end();
    if (!this.taken) this.res?.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error & { code?: string }): void {
    this.res?.off('close', this.onClientClose);
    // An incomplete body is never stored.
    this.tee?.abort(err.message);
    if (this.started) {
      // Mid-body failure: the client must see a cut connection, never a short body passed off as whole.
      if (!this.taken) this.res?.destroy();
      return;
    }
    if (this.res?.destroyed) return;
    this.onFailure(err);
  }
}
