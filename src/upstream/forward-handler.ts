/**
 * One upstream exchange as undici's DispatchHandler: the head goes to the Exchange, which names the sink for
 * the body; chunks go to the sink with back-pressure (the sink pauses undici until it resumes it).
 */
import type { Dispatcher } from 'undici';
import type { RawHeaders } from '../http/fields.js';
import type { BodySink } from '../store/store.js';
import type { Exchange, UpstreamError } from './upstream.js';

/** The response's header section as undici received it, as strings. */
function fields(controller: Dispatcher.DispatchController): RawHeaders {
  const raw = controller.rawHeaders as Buffer[];
  const strings: RawHeaders = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) strings[i] = raw[i].toString('latin1');
  return strings;
}

export class ForwardHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private sink: BodySink | null = null;
  private done = false;
  private abortReason: string | null = null;

  constructor(
    private readonly exchange: Exchange,
    /** No response head arrived: the caller may retry, or reports the error. */
    private readonly onFailure: (err: UpstreamError) => void,
  ) {}

  /** The caller's side went away: cut the exchange, unless it is already over. */
  abort(reason: string): void {
    if (this.done) return;
    this.abortReason = reason;
    if (this.controller && !this.controller.aborted) this.controller.abort(new Error(reason));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason !== null) controller.abort(new Error(this.abortReason));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode < 200) {
      // Interim responses go to the caller as they come (RFC 9110 §15.2); 100 Continue is answered on the
      // client's link by us, and 101 only ever follows an upgrade, which this handler does not make.
      if (statusCode !== 100 && statusCode !== 101) this.exchange.onInterim?.(statusCode, fields(controller));
      return;
    }
    const strings = fields(controller);
    try {
      this.sink = this.exchange.onHead(statusCode, strings);
    } catch {
      // A field node refuses to send (an invalid token or value): nothing reached the client yet.
      controller.abort(
        Object.assign(new Error('response header not deliverable'), { code: 'HPE_INVALID_HEADER_TOKEN' }),
      );
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.sink && !this.sink.write(chunk, () => controller.resume())) controller.pause();
  }

  onResponseEnd(): void {
    this.done = true;
    this.sink?.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: UpstreamError): void {
    this.done = true;
    // Mid-body: the sink must not take a short body for whole (the client is cut, the store discards it).
    if (this.sink) this.sink.abort(err.message);
    else if (this.abortReason === null) this.onFailure(err);
  }
}
