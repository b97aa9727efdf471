/**
 * fetch: forwards a request upstream through undici's per-origin pools and streams the answer back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, type Dispatcher } from 'undici';
import type { Config } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import { deliverUpstream, sendError } from './deliver.js';
import { upstreamError } from './errors.js';

export interface UpstreamRequest {
  origin: string;
  path: string;
  method: string;
  headers: string[];
  /** The client's request stream, when the request has content. */
  body: IncomingMessage | null;
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

  forward(req: IncomingMessage, res: ServerResponse, up: UpstreamRequest): void {
    this.dispatch(req, res, up, IDEMPOTENT.has(up.method) && up.body === null ? 1 : 0);
  }

  private dispatch(req: IncomingMessage, res: ServerResponse, up: UpstreamRequest, retries: number): void {
    const handler = new ForwardHandler(res, this.via, (err) => {
      if (retries > 0 && RETRYABLE.has(err.code ?? '')) {
        this.log.debug({ origin: up.origin, code: err.code }, 'retrying on a fresh upstream connection');
        this.dispatch(req, res, up, retries - 1);
        return;
      }
      sendError(req, res, upstreamError(err, up.origin), this.via, this.log);
    });
    const opts: Dispatcher.DispatchOptions = {
      origin: up.origin,
      path: up.path,
      method: up.method as Dispatcher.HttpMethod,
      headers: up.headers,
      body: up.body,
      // Without this undici would pipeline; one request per connection at a time keeps errors attributable.
      blocking: true,
      upgrade: null,
    };
    this.agent.dispatch(opts, handler);
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

class ForwardHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private started = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly via: string,
    private readonly onFailure: (err: Error & { code?: string }) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.res.destroyed) {
      controller.abort(new Error('client went away'));
      return;
    }
    // A client that disconnects aborts the upstream exchange too.
    this.res.once('close', this.onClientClose);
  }

  private onClientClose = (): void => {
    if (!this.res.writableFinished && this.controller && !this.controller.aborted) {
      this.controller.abort(new Error('client closed the connection'));
    }
  };

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode < 200) return;
    this.started = true;
    const raw = controller.rawHeaders as Buffer[];
    const strings: string[] = new Array(raw.length);
    for (let i = 0; i < raw.length; i++) strings[i] = raw[i].toString('latin1');
    if (!deliverUpstream(this.res, statusCode, strings, this.via)) {
      controller.abort(
        Object.assign(new Error('response header not deliverable'), { code: 'HPE_INVALID_HEADER_TOKEN' }),
      );
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.res.off('close', this.onClientClose);
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error & { code?: string }): void {
    this.res.off('close', this.onClientClose);
    if (this.res.destroyed && !this.started) return;
    if (this.started) {
      // Mid-body failure: the client must see a cut connection, never a short body passed off as whole.
      this.res.destroy();
      return;
    }
    this.onFailure(err);
  }
}
