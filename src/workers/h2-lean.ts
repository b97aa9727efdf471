/**
 * The lean front end's HTTP/2 side (issues #9, #14): a hit on an HTTP/2 stream is answered with the core
 * stream API (`stream.respond`, `stream.end`) instead of node:http2's compatibility objects
 * (Http2ServerRequest/Response, adapted by h2.ts), which cost an object pair, listeners and a header
 * object round trip per stream. Only a bodiless GET or HEAD whose fields are well-formed
 * (http/h2.ts) and that the pipeline answers from the store takes this path (pipeline.ts `hit`, the same
 * checks, Transaction, Respond and Finish as the full path); every other stream goes on to the
 * compatibility layer untouched, as before.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2SecureServer, Http2Server, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { h2HeaderObject, h2RequestFields, headBytes } from '../http/h2.js';
import { StreamLink } from './h2.js';
import { LeanRequest } from './lean.js';
import type { ClientLink } from './transaction.js';

/** The pipeline's hit question, with the stream's own link (bytes are counted per stream). */
export type H2Hit = (req: IncomingMessage, res: ServerResponse, link: ClientLink) => boolean;

/**
 * Puts the lean hit in front of node:http2's compatibility handler on `server` (call it after the
 * 'request' listener is added: that is when node installs the handler). `counted` runs per lean hit.
 */
export function leanH2(server: Http2Server | Http2SecureServer, hit: H2Hit, counted: () => void): void {
  const compat = server.listeners('stream') as Array<(...args: unknown[]) => void>;
  server.removeAllListeners('stream');
  server.on(
    'stream',
    (
      stream: ServerHttp2Stream,
      headers: Record<string, string | string[] | undefined>,
      flags: number,
      rawHeaders: string[],
    ) => {
      if (answer(stream, headers, rawHeaders, hit)) {
        counted();
        return;
      }
      for (const l of compat) Reflect.apply(l, server, [stream, headers, flags, rawHeaders]);
    },
  );
}

function answer(
  stream: ServerHttp2Stream,
  headers: Record<string, string | string[] | undefined>,
  rawHeaders: string[],
  hit: H2Hit,
): boolean {
  const method = headers[':method'];
  // A body (DATA frames to come), extended CONNECT, or an Expect: the full path's.
  if (
    (method !== 'GET' && method !== 'HEAD') ||
    !stream.endAfterHeaders ||
    headers[':protocol'] !== undefined
  )
    return false;
  const { fields, error } = h2RequestFields(rawHeaders);
  if (error !== null || headers.expect !== undefined) return false;
  const socket = stream.session?.socket as Socket | undefined;
  if (socket === undefined) return false;
  const req = new LeanRequest(
    { method, url: String(headers[':path']), raw: fields, major: 2, minor: 0 },
    socket,
  );
  const link = new StreamLink(socket.remoteAddress);
  const res = new H2LeanResponse(stream, link, method === 'HEAD');
  return hit(req as unknown as IncomingMessage, res as unknown as ServerResponse, link);
}

/**
 * What the hit path calls of a ServerResponse, on an HTTP/2 stream. Bytes are counted as h2.ts counts
 * them for the compatibility path (field lengths as an HTTP/1.1 head would cost, and the body).
 */
class H2LeanResponse extends EventEmitter {
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  private noBody: boolean;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly link: StreamLink,
    head: boolean,
  ) {
    super();
    this.noBody = head;
    stream.on('error', () => {});
    stream.once('finish', () => {
      this.writableFinished = true;
    });
    stream.once('close', () => {
      // A head alone (HEAD, 304) ends the stream with the HEADERS frame: no 'finish' comes for it, so a
      // stream closed without error after our end() is whole.
      if (this.writableEnded && stream.rstCode === 0) this.writableFinished = true;
      this.emit('close');
    });
    stream.on('drain', () => this.emit('drain'));
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  get writableLength(): number {
    return this.stream.writableLength;
  }

  writeHead(status: number, fields: string[]): this {
    this.link.bytesWritten += headBytes(fields);
    this.noBody ||= status === 204 || status === 304;
    this.headersSent = true;
    this.stream.respond(h2HeaderObject(status, fields), { endStream: this.noBody });
    return this;
  }

  write(chunk: Buffer): boolean {
    if (this.noBody || this.writableEnded || this.stream.destroyed) return !this.stream.destroyed;
    this.link.bytesWritten += chunk.length;
    return this.stream.write(chunk);
  }

  end(last?: Buffer | string): this {
    if (this.writableEnded) return this;
    this.writableEnded = true;
    if (this.noBody || this.stream.destroyed) return this;
    if (last !== undefined)
      this.link.bytesWritten += typeof last === 'string' ? Buffer.byteLength(last) : last.length;
    this.stream.end(last);
    return this;
  }

  destroy(): this {
    this.stream.destroy();
    return this;
  }
}
