/**
 * deliver: what goes back to the client, whoever produced it (upstream, the proxy itself, an error).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../shared/logger.js';
import { errorBody, errorHeaders, type ProxyError } from './errors.js';
import { appendVia, endToEndHeaders, fieldValue, type RawHeaders } from './forwarding.js';
import { hasRequestBody } from './target.js';

const DROP_ON_RESPONSE = new Set(['via']);

/** RFC 9110 §7.6.1 and §7.6.3: the upstream response's end-to-end fields with our `Via` member appended. */
export function responseHeaders(raw: RawHeaders, via: string): RawHeaders {
  const out = endToEndHeaders(raw, DROP_ON_RESPONSE);
  out.push('Via', appendVia(fieldValue(raw, 'via'), via));
  return out;
}

/** Answers with an error page naming the cause; a response already under way can only be cut. */
export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  err: ProxyError,
  via: string,
  log: Logger,
): void {
  log.info(
    {
      client: req.socket.remoteAddress,
      method: req.method,
      url: req.url,
      status: err.status,
      error: err.squidError,
    },
    err.message,
  );
  if (res.headersSent || res.destroyed) {
    // The status line is gone: cutting the connection is the only way to tell the client the body is short.
    res.destroy();
    return;
  }
  const body = errorBody(err);
  const headers = errorHeaders(err, body, via);
  // An unread request body would otherwise have to be drained before the connection could be reused.
  if (!req.complete && hasRequestBody(req.headers)) headers.push('Connection', 'close');
  res.writeHead(err.status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}
