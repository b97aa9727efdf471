/**
 * The one place that finishes every header section cuttle sends on a ServerResponse: a hit, a forwarded
 * response, a 304, a range, a synthetic answer or an error (Varnish's Resp_Setup_Deliver and
 * Resp_Setup_Synth). Cache-Status (RFC 9211) and X-Cache are rendered from the transaction record here,
 * then the reply header rules apply (squid.conf's reply_header_access, via off), so what rules remove from
 * the wire is still known to the log and the counters.
 */
import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { CACHE_NAME, formatCacheStatus } from '../cache/cache-status.js';
import { closesConnection, errorBody, errorHeaders, type ProxyError } from '../http/errors.js';
import { endToEndHeaders, type RawHeaders } from '../http/fields.js';
import { h2HeaderObject, h2ResponseFields } from '../http/h2.js';
import { hasRequestBody } from '../http/target.js';
import type { Logger } from '../shared/logger.js';
import { markClosing } from './closing.js';
import type { Transaction } from './transaction.js';

/** Header rules an operator configured (squid.conf's request/reply_header_access and replace, via off). */
export interface HeaderRules {
  request(raw: RawHeaders, txn: Transaction): RawHeaders;
  reply(raw: RawHeaders, txn: Transaction): RawHeaders;
}

export class Respond {
  constructor(
    /** Our host name, as X-Cache names it (Squid's visible_hostname). */
    private readonly name: string,
    /** Our Via member, for the answers we make ourselves. */
    readonly via: string,
    private readonly rules: HeaderRules | null,
    private readonly log: Logger,
  ) {}

  /** Sends the status line and header section. `fields` is ours to extend: callers pass a fresh array. */
  head(txn: Transaction, res: ServerResponse, status: number, fields: RawHeaders): void {
    const cs = txn.cache;
    if (cs !== null) {
      fields.push(
        'Cache-Status',
        // A request answered after waiting for another's fetch says so, whatever it was then (RFC 9211 §2.5).
        formatCacheStatus(CACHE_NAME, txn.collapsed && !cs.collapsed ? { ...cs, collapsed: true } : cs),
        'X-Cache',
        `${cs.hit ? 'HIT' : 'MISS'} from ${this.name}`,
      );
    }
    const ruled = this.rules === null ? fields : this.rules.reply(fields, txn);
    const out = txn.h2 ? h2ResponseFields(ruled) : ruled;
    txn.status = status;
    txn.fields = out;
    res.writeHead(status, out);
  }

  /**
   * Relays an interim response (RFC 9110 §15.2) ahead of the final one: hop-by-hop fields removed, never to
   * an HTTP/1.0 client (§15.2: it cannot tell them from the final answer), never once the final head is
   * out. 103 goes through node's writeEarlyHints (which sends it only with a valid Link, the reason it
   * exists), 102 through writeProcessing; other codes are written raw as node writes its own interim
   * responses. Nothing of it reaches the cache: only the final response is ever stored.
   */
  interim(txn: Transaction, res: ServerResponse, status: number, raw: RawHeaders): void {
    if (res.headersSent || res.destroyed || txn.req.httpVersion === '1.0') return;
    const fields = endToEndHeaders(raw);
    if (txn.h2 && status !== 103) return this.interimH2(txn, res, status, fields);
    if (status === 102) return res.writeProcessing();
    if (status === 103) {
      const hints: Record<string, string | string[]> = {};
      for (let i = 0; i < fields.length; i += 2) {
        const name = fields[i].toLowerCase();
        const prev = hints[name];
        hints[name] = prev === undefined ? fields[i + 1] : [prev, fields[i + 1]].flat();
      }
      try {
        res.writeEarlyHints(hints);
      } catch (err) {
        // A Link node will not send (invalid): the hints are dropped, the final answer still comes.
        this.log.debug({ url: txn.url, err: (err as Error).message }, 'interim 103 not relayed');
      }
      return;
    }
    const writeRaw = (res as unknown as { _writeRaw?: (data: string, encoding: string) => void })._writeRaw;
    if (typeof writeRaw !== 'function') return;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Informational'}\r\n`;
    for (let i = 0; i < fields.length; i += 2) head += `${fields[i]}: ${fields[i + 1]}\r\n`;
    writeRaw.call(res, `${head}\r\n`, 'latin1');
  }

  /** RFC 9113 §8.1: an interim response on an HTTP/2 stream is a HEADERS frame before the final one. */
  private interimH2(txn: Transaction, res: ServerResponse, status: number, fields: RawHeaders): void {
    const stream = (res as unknown as { stream?: ServerHttp2Stream }).stream;
    if (!stream || stream.destroyed) return;
    const headers = h2HeaderObject(status, h2ResponseFields(fields));
    try {
      stream.additionalHeaders(headers);
    } catch (err) {
      this.log.debug({ url: txn.url, err: (err as Error).message }, `interim ${status} not relayed`);
    }
  }

  /** A whole answer of our own: header section and body (none for HEAD). */
  synth(txn: Transaction, res: ServerResponse, status: number, fields: RawHeaders, body?: string): void {
    this.head(txn, res, status, fields);
    res.end(txn.method === 'HEAD' ? undefined : body);
  }

  /** Answers with an error page naming the cause; a response already under way can only be cut. */
  error(txn: Transaction, res: ServerResponse, err: ProxyError): void {
    txn.error = err;
    const req = txn.req;
    // Per request, so debug: the access log records every refusal and failure; operator events log above info.
    this.log.debug(
      {
        client: req.socket.remoteAddress,
        method: txn.method,
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
    const headers = errorHeaders(err, body, this.via);
    // An unread request body would otherwise have to be drained before the connection could be reused; after
    // a malformed request the stream cannot be trusted at all.
    if (closesConnection(err) || (!req.complete && hasRequestBody(req.headers))) {
      headers.push('Connection', 'close');
      markClosing(req.socket);
    }
    this.synth(txn, res, err.status, headers, body);
  }
}
