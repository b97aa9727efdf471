/**
 * HTTP/2 streams into the pipeline. node:http2's compatibility API hands each stream over as request and
 * response objects shaped like node:http's, so the pipeline, the cache stage and the sinks serve both
 * versions with the same code; this module adapts what differs:
 * - the request's fields: pseudo-header fields out, Host from `:authority` (http/h2.ts);
 * - a body of unknown length (DATA frames without Content-Length) is announced to the core the way
 *   HTTP/1.1 announces one, so it is forwarded (the field itself is never sent upstream: it is not in the
 *   raw list the upstream request is built from);
 * - the bytes sent, counted per stream (the connection's counter is shared by every stream on it);
 * and guards each session: an idle limit, a read timeout per stream, and a bound on stream resets.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  constants,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import { h2RequestFields, headBytes } from '../http/h2.js';
import type { Logger } from '../shared/logger.js';
import type { ClientLink } from './transaction.js';

/** What the pipeline gets with an HTTP/2 stream. */
export interface H2Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  link: ClientLink;
  /** The request is malformed (RFC 9113 §8.1.1), answered 400. */
  error: string | null;
}

/** A stream's side of the connection: the client's address, and the bytes written for this stream. */
export class StreamLink implements ClientLink {
  bytesWritten = 0;
  constructor(readonly remoteAddress: string | undefined) {}
}

export function adaptH2(req: Http2ServerRequest, res: Http2ServerResponse): H2Exchange {
  const { fields, authority, error } = h2RequestFields(req.rawHeaders);
  Object.defineProperty(req, 'rawHeaders', { value: fields });
  const headers = req.headers as Record<string, string | string[] | undefined>;
  if (authority !== null && headers.host === undefined) headers.host = authority;
  if (!req.stream.endAfterHeaders && headers['content-length'] === undefined)
    headers['transfer-encoding'] = 'chunked';
  const link = new StreamLink(req.socket.remoteAddress);
  countBytes(res, link);
  return {
    req: req as unknown as IncomingMessage,
    res: res as unknown as ServerResponse,
    link,
    error,
  };
}

/**
 * Counts what the response writes: header fields as name and value lengths (HPACK compresses them on the
 * wire, so this is what an HTTP/1.1 answer would have cost) and the body's bytes.
 */
function countBytes(res: Http2ServerResponse, link: StreamLink): void {
  type Writer = (chunk?: unknown, ...rest: unknown[]) => unknown;
  const size = (chunk: unknown) =>
    typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk instanceof Uint8Array ? chunk.length : 0;
  const r = res as unknown as { write: Writer; end: Writer; writeHead: Writer };
  const { write, end, writeHead } = r;
  r.writeHead = function (this: unknown, status: unknown, fields: unknown, ...rest: unknown[]) {
    link.bytesWritten += headBytes(Array.isArray(fields) ? fields.map(String) : []);
    return writeHead.call(this, status, fields, ...rest);
  };
  r.write = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
    link.bytesWritten += size(chunk);
    return write.call(this, chunk, ...rest);
  };
  r.end = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
    if (typeof chunk !== 'function') link.bytesWritten += size(chunk);
    return end.call(this, chunk, ...rest);
  };
}

export interface SessionLimits {
  /** A session with no open stream is closed after this long without frames. */
  idleMs: number;
  /** A stream with nothing moving either way for this long is reset. */
  streamIdleMs: number;
  /** Streams the client may reset per second (a bucket of this many, refilled each second). */
  resetsPerSecond: number;
}

const open = new WeakMap<Http2Session, number>();

/**
 * Guards one session. Rapid reset (CVE-2023-44487): a client that opens streams and resets them at once
 * makes the server start work it never delivers, and the concurrency limit does not count reset streams.
 * nghttp2 has its own bound (a burst of 1000, then 33 a second); this one is the operator's, tighter and
 * logged: over the budget, the session gets GOAWAY (ENHANCE_YOUR_CALM) and is closed. With nghttp2 1.69
 * or later (Node 22.23, Node 24) nghttp2 may refuse resets before they reach JavaScript; its own bound then
 * closes the session, unlogged.
 */
export function guardSession(session: Http2Session, limits: SessionLimits, log: Logger): void {
  open.set(session, 0);
  session.setTimeout(limits.idleMs);
  let tokens = limits.resetsPerSecond;
  let refilled = Date.now();
  let calmed = false;
  session.on('stream', (stream: ServerHttp2Stream) => {
    open.set(session, (open.get(session) ?? 0) + 1);
    stream.setTimeout(limits.streamIdleMs, () => stream.close(constants.NGHTTP2_CANCEL));
    stream.once('close', () => open.set(session, (open.get(session) ?? 1) - 1));
    stream.once('aborted', () => {
      const now = Date.now();
      tokens = Math.min(limits.resetsPerSecond, tokens + ((now - refilled) / 1000) * limits.resetsPerSecond);
      refilled = now;
      if (--tokens >= 0 || calmed || session.destroyed) return;
      calmed = true;
      log.warn(
        { client: session.socket?.remoteAddress, limit: limits.resetsPerSecond },
        'HTTP/2 client reset too many streams: GOAWAY, connection closed',
      );
      // GOAWAY first, so the client learns why; the connection goes soon after whatever it does.
      session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      setTimeout(() => session.destroy(), 1000).unref();
    });
  });
}

/** The session's idle timer fired: close it when no stream is open (open streams have their own timer). */
export function sessionIdle(session: Http2Session): void {
  if ((open.get(session) ?? 0) === 0 && !session.closed) session.close();
}
