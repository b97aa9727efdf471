/**
 * The lean front end (issue #9): a raw `net` server whose connections are parsed by Node's own llhttp
 * binding (`HTTPParser` from node:_http_common, the parser node:http itself uses), so that a cache hit is
 * answered without node:http's IncomingMessage/ServerResponse machinery: one parse, one lookup, one corked
 * write of head and body.
 *
 * Only what is surely a hit takes this path: a bodiless GET or HEAD (no Content-Length, Transfer-Encoding,
 * Expect or Upgrade) that passes every check of the pipeline and finds a fresh entry whole in the store
 * (pipeline.ts `hit`). Anything else, and any head that did not arrive whole in one read, hands the
 * connection to node:http for good: its bytes from the start of that request are replayed into the
 * node:http server (`emit('connection')`, the documented way to inject a socket), which then runs the full
 * pipeline with its limits, timeouts and error answers. Requests answered here are recorded exactly as
 * on the full path (the same Transaction, Finish observers, Respond), so the access log, counters and
 * Cache-Status cannot tell the front ends apart.
 *
 * Feature-detected: where the binding is missing, `leanParser()` is null and node:http listens alone.
 */
import { EventEmitter } from 'node:events';
import type { Server as HttpServer, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../shared/logger.js';
import { isClosing } from './closing.js';

/** The parts of node's internal llhttp binding used here (stable across Node 20, 22 and 24). */
interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  close(): void;
  [callback: number]: unknown;
}
interface ParserBinding {
  HTTPParser: {
    new (): Parser;
    REQUEST: number;
    kOnMessageBegin: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kLenientNone: number;
  };
  methods: string[];
}

let binding: ParserBinding | null | undefined;

/** Node's llhttp binding, or null where this Node does not expose it. */
export function leanParser(): ParserBinding | null {
  if (binding !== undefined) return binding;
  try {
    const c = createRequire(import.meta.url)('node:_http_common') as Partial<ParserBinding>;
    const P = c.HTTPParser;
    binding =
      typeof P === 'function' &&
      Array.isArray(c.methods) &&
      typeof P.prototype.execute === 'function' &&
      typeof P.kOnHeadersComplete === 'number'
        ? (c as ParserBinding)
        : null;
  } catch {
    binding = null;
  }
  return binding;
}

export interface LeanOptions {
  /** The full path: requests handed over go to this server's 'connection'. */
  http: HttpServer;
  /** The pipeline's hit question: true when it answered on `res`, false (nothing written) otherwise. */
  hit: (req: IncomingMessage, res: ServerResponse) => boolean;
  maxHeaderSize: number;
  /** Between requests, and before the first (node:http's keepAliveTimeout). */
  idleMs: number;
  /** With a response under way and the client not reading (node:http's server.timeout). */
  readMs: number;
  log: Logger;
}

export interface LeanFrontEnd {
  /** What listens: every plain connection arrives here first. */
  server: Server;
  /**
   * Takes a connection accepted elsewhere (an HTTPS connection that chose HTTP/1.1): hits are answered
   * here, and `handOver` gets the socket, its unanswered bytes replayed, for the rest.
   */
  adopt(socket: Socket, handOver: (socket: Socket) => void): void;
  /** Hits answered here, connections handed over to node:http (for /metrics). */
  readonly counts: { hits: number; handovers: number };
  /** Connections still open, on either front end. */
  readonly open: number;
  /** Closes connections waiting between requests on this front end (the shutdown's drain). */
  closeIdle(): void;
  destroyAll(): void;
}

const HEAD_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
const LF_LF = Buffer.from('\n\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');
const EMPTY = Buffer.alloc(0);
/** Bytes read ahead of a response still going out, before the socket stops reading (pipelining bound). */
const READ_AHEAD = 64 * 1024;

export function createLeanFrontEnd(o: LeanOptions): LeanFrontEnd {
  const b = leanParser();
  if (b === null) throw new Error('the lean front end needs node:_http_common.HTTPParser');
  const all = new Set<Socket>();
  const lean = new Set<LeanConnection>();
  const counts = { hits: 0, handovers: 0 };
  // As node:http's: a client's FIN ends its requests, not our answers to them (handled per connection).
  const adopt = (socket: Socket, handOver: (socket: Socket) => void) => {
    all.add(socket);
    socket.once('close', () => all.delete(socket));
    const c = new LeanConnection(socket, b, o, counts, handOver, () => lean.delete(c));
    lean.add(c);
  };
  const toHttp = (socket: Socket) => o.http.emit('connection', socket);
  const server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => adopt(socket, toHttp));
  // node:http tracks its connections (head and idle timeouts) from its 'listening' event, and never
  // listens itself here: it is told when the lean server does.
  server.once('listening', () => {
    if (!o.http.listening) o.http.emit('listening');
  });
  return {
    server,
    counts,
    adopt,
    get open() {
      return all.size;
    },
    closeIdle: () => {
      for (const c of lean) c.closeIfIdle();
    },
    destroyAll: () => {
      for (const s of all) s.destroy();
    },
  };
}

/** What a request shim is made of: the method, target, fields and version. */
export interface RequestHead {
  method: string;
  url: string;
  raw: string[];
  major: number;
  minor: number;
}

/** A request head as llhttp reported it, and whether this front end may answer it. */
interface Head extends RequestHead {
  keepAlive: boolean;
  eligible: boolean;
}

/** Fields that make a request anything but a plain bodiless fetch: node:http handles those. */
const NOT_LEAN = new Set(['content-length', 'transfer-encoding', 'expect', 'upgrade']);

class LeanConnection {
  private parser: Parser | null;
  /** Bytes from the first request not yet answered (at `pos`) to the last read. */
  private pending: Buffer = Buffer.alloc(0);
  private pos = 0;
  private readonly heads: (Head | null)[] = [];
  private partialRaw: string[] = [];
  private partialUrl = '';
  private inFlight: LeanResponse | null = null;
  /** Parsing stopped: a request for node:http, a parse error, or the connection is closing. */
  private stopped = false;
  private gone = false;
  private readonly onData = (chunk: Buffer) => this.data(chunk);
  private readonly onTimeout = () => this.socket.destroy();
  private readonly onClose = () => this.finish();
  /** The client sent FIN: no more requests; the connection ends after the answers owed. */
  private ended = false;
  private readonly onEnd = () => {
    this.ended = true;
    if (this.inFlight === null) this.drive();
  };

  constructor(
    private readonly socket: Socket,
    b: ParserBinding,
    private readonly o: LeanOptions,
    private readonly counts: { hits: number; handovers: number },
    private readonly handOverTo: (socket: Socket) => void,
    private readonly forget: () => void,
  ) {
    const P = b.HTTPParser;
    const parser = new P();
    parser.initialize(P.REQUEST, {}, o.maxHeaderSize, P.kLenientNone);
    parser[P.kOnMessageBegin] = () => {
      this.partialRaw = [];
      this.partialUrl = '';
    };
    // Many fields come in several flushes before the head completes (node's parserOnHeaders).
    parser[P.kOnHeaders] = (raw: string[], url: string) => {
      for (const x of raw) this.partialRaw.push(x);
      this.partialUrl += url;
    };
    parser[P.kOnHeadersComplete] = (
      major: number,
      minor: number,
      raw: string[] | undefined,
      method: number,
      url: string | undefined,
      _status: unknown,
      _message: unknown,
      upgrade: boolean,
      keepAlive: boolean,
    ) => {
      const fields = raw ?? this.partialRaw;
      const name = b.methods[method];
      let eligible = (name === 'GET' || name === 'HEAD') && major === 1 && minor <= 1 && !upgrade;
      for (let i = 0; eligible && i < fields.length; i += 2)
        if (NOT_LEAN.has(fields[i].toLowerCase())) eligible = false;
      this.heads.push({
        method: name,
        url: url ?? this.partialUrl,
        raw: fields,
        major,
        minor,
        keepAlive,
        eligible,
      });
      if (!eligible) this.stopped = true;
      return 0;
    };
    parser[P.kOnBody] = () => {};
    parser[P.kOnMessageComplete] = () => {};
    this.parser = parser;
    socket.setTimeout(o.idleMs);
    socket.on('data', this.onData);
    socket.on('timeout', this.onTimeout);
    socket.on('error', noop);
    socket.once('end', this.onEnd);
    socket.once('close', this.onClose);
  }

  private data(chunk: Buffer): void {
    this.pending =
      this.pos === this.pending.length ? chunk : Buffer.concat([this.pending.subarray(this.pos), chunk]);
    this.pos = 0;
    if (!this.stopped && this.parser !== null) {
      const r = this.parser.execute(chunk);
      // A parse error: the requests before it are answered, then node:http parses it again and answers it.
      if (typeof r !== 'number') {
        this.heads.push(null);
        this.stopped = true;
      }
    }
    if (this.inFlight !== null && this.pending.length > READ_AHEAD) this.socket.pause();
    this.drive();
  }

  /** Answers the parsed requests in order, one response at a time; hands over at the first it cannot. */
  private drive(): void {
    while (this.inFlight === null && !this.gone) {
      const head = this.heads.shift();
      if (head === undefined) {
        // Bytes of a request not yet whole: node:http's head timeout and limits take over from here.
        if (this.pos < this.pending.length || this.stopped) this.handOver();
        else if (this.ended) {
          this.gone = true;
          this.socket.end();
        }
        return;
      }
      const first = this.pending[this.pos];
      const end = this.pending.indexOf(HEAD_END, this.pos);
      // A bodiless head ends at its first empty line; leading empty lines (allowed) are left to node:http.
      if (head === null || !head.eligible || end === -1 || first === 13 || first === 10)
        return this.handOver();
      // The head's end is found by its CRLF CRLF, which holds because llhttp (strict, no lenient flags)
      // refuses bare LF line ends on Node 20, 22 and 24. Should one ever pass, the bytes go to node:http
      // rather than risk misplacing the next request's start (a desync).
      const bareLf = this.pending.indexOf(LF_LF, this.pos);
      if (bareLf !== -1 && bareLf < end) return this.handOver();
      const req = new LeanRequest(head, this.socket);
      const res = new LeanResponse(this.socket, head, this.o.idleMs);
      let answered: boolean;
      try {
        answered = this.o.hit(req as unknown as IncomingMessage, res as unknown as ServerResponse);
      } catch (err) {
        this.o.log.error({ err: (err as Error).message, url: head.url }, 'lean front end: hit failed');
        if (res.headersSent) {
          this.socket.destroy();
          return;
        }
        answered = false;
      }
      if (!answered) return this.handOver();
      this.counts.hits++;
      this.pos = end + HEAD_END.length;
      if (!res.writableEnded) {
        this.inFlight = res;
        this.socket.setTimeout(this.o.readMs);
        res.once('ended', () => {
          this.inFlight = null;
          this.socket.setTimeout(this.o.idleMs);
          this.socket.resume();
          if (this.afterResponse(res)) this.drive();
        });
        return;
      }
      if (!this.afterResponse(res)) return;
    }
  }

  /** After a response: false when the connection closes with it (RFC 9112 §9.6). */
  private afterResponse(res: LeanResponse): boolean {
    if (res.keepAlive && !isClosing(this.socket)) return true;
    this.gone = true;
    this.socket.end();
    return false;
  }

  /** The rest of this connection's life goes to node:http, starting with the bytes not answered here. */
  private handOver(): void {
    if (this.gone) return;
    this.gone = true;
    this.counts.handovers++;
    const rest = this.pending.subarray(this.pos);
    const s = this.socket;
    s.removeListener('data', this.onData);
    s.removeListener('timeout', this.onTimeout);
    s.removeListener('error', noop);
    s.removeListener('close', this.onClose);
    s.removeListener('end', this.onEnd);
    s.setTimeout(0);
    this.release();
    s.resume();
    this.handOverTo(s);
    // Synchronously, so no later read can overtake them (node:http reads the socket's handle directly).
    if (rest.length > 0) s.emit('data', rest);
    // A FIN that came before the handover is node:http's to act on too (it was emitted only to us).
    if (this.ended) s.emit('end');
  }

  closeIfIdle(): void {
    if (this.inFlight === null && this.pos === this.pending.length && !this.gone) {
      this.gone = true;
      this.socket.end();
    }
  }

  private finish(): void {
    this.gone = true;
    this.release();
  }

  private release(): void {
    this.parser?.close();
    this.parser = null;
    this.forget();
  }
}

function noop(): void {}

/** node:http keeps the first of a repeated field for these, and joins the others (IncomingMessage). */
const FIRST_WINS = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/**
 * What the pipeline reads of a request (IncomingMessage's fields), for a bodiless one. `socket` is the
 * connection's (an HTTP/2 stream's session socket: the client's address for the access rules).
 */
export class LeanRequest {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly httpVersion: string;
  readonly complete = true;
  private parsed: IncomingHttpHeaders | null = null;

  constructor(
    head: RequestHead,
    readonly socket: Socket,
  ) {
    this.method = head.method;
    this.url = head.url;
    this.rawHeaders = head.raw;
    this.httpVersionMajor = head.major;
    this.httpVersionMinor = head.minor;
    this.httpVersion = `${head.major}.${head.minor}`;
  }

  get headers(): IncomingHttpHeaders {
    if (this.parsed !== null) return this.parsed;
    const h: Record<string, string | string[]> = {};
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toLowerCase();
      const value = raw[i + 1];
      const prev = h[name];
      if (prev === undefined) h[name] = name === 'set-cookie' ? [value] : value;
      else if (name === 'set-cookie') (prev as string[]).push(value);
      else if (!FIRST_WINS.has(name)) h[name] = `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
    }
    this.parsed = h;
    return h;
  }

  /** No body to read or discard. */
  resume(): this {
    return this;
  }
}

let dateSecond = 0;
let dateText = '';
/** RFC 9110 §6.6.1: Date on every response, as node:http sends it (formatted once a second). */
function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/**
 * What the hit path calls of a ServerResponse, written straight to the socket: the head is corked with
 * the body's first bytes so that a small hit leaves in one writev. Connection handling is node:http's
 * (Connection and Keep-Alive fields, chunked when the length is unknown, close for HTTP/1.0 without one).
 */
class LeanResponse extends EventEmitter {
  headersSent = false;
  destroyed = false;
  writableEnded = false;
  writableFinished = false;
  keepAlive: boolean;
  private chunked = false;
  /** The serialised head, held until the body's first bytes or the end (one writev for both). */
  private head: string | null = null;
  private drainHooked = false;
  private readonly bodiless: boolean;
  private readonly onSocketClose = () => {
    if (this.writableFinished) return;
    this.destroyed = true;
    this.emit('close');
  };

  constructor(
    private readonly socket: Socket,
    head: Head,
    private readonly idleMs: number,
  ) {
    super();
    this.keepAlive = head.keepAlive;
    this.bodiless = head.method === 'HEAD';
    this.minor = head.minor;
    socket.once('close', this.onSocketClose);
  }

  private readonly minor: number;
  private noBody = false;

  get writableLength(): number {
    return this.socket.writableLength;
  }

  writeHead(status: number, fields: string[]): this {
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    let length = false;
    let connection = false;
    let date = false;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i];
      const value = fields[i + 1];
      head += `${name}: ${value}\r\n`;
      switch (name.length) {
        case 4:
          if (name.toLowerCase() === 'date') date = true;
          break;
        case 10:
          if (name.toLowerCase() === 'connection') {
            connection = true;
            if (/\bclose\b/i.test(value)) this.keepAlive = false;
          }
          break;
        case 14:
          if (name.toLowerCase() === 'content-length') length = true;
          break;
      }
    }
    this.noBody = this.bodiless || status === 204 || status === 304 || status < 200;
    if (!length && !this.noBody) {
      // RFC 9112 §6.1, §6.3: chunked for HTTP/1.1; an HTTP/1.0 client learns the end from the close.
      if (this.minor === 1) {
        this.chunked = true;
        head += 'Transfer-Encoding: chunked\r\n';
      } else this.keepAlive = false;
    }
    if (!date) head += `Date: ${httpDate()}\r\n`;
    if (!connection)
      head += this.keepAlive
        ? `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(this.idleMs / 1000)}\r\n\r\n`
        : 'Connection: close\r\n\r\n';
    else head += '\r\n';
    this.headersSent = true;
    this.head = head;
    return this;
  }

  /**
   * Writes `parts` after the head if it is still held, as one batch (one writev); `done` runs once the
   * last of them is flushed to the kernel.
   */
  private send(parts: Buffer[], done?: () => void): boolean {
    const s = this.socket;
    const head = this.head;
    this.head = null;
    const batch = parts.length + (head === null ? 0 : 1) > 1;
    if (batch) s.cork();
    let ok = true;
    if (head !== null) ok = s.write(head, 'latin1', parts.length === 0 ? done : undefined);
    for (let i = 0; i < parts.length; i++) ok = s.write(parts[i], i === parts.length - 1 ? done : undefined);
    if (batch) s.uncork();
    return ok;
  }

  /** A body chunk as it goes on the wire: framed when chunked (RFC 9112 §7.1). */
  private framed(chunk: Buffer, parts: Buffer[]): void {
    if (!this.chunked) parts.push(chunk);
    else parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'), chunk, CRLF);
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.writableEnded) return false;
    if (this.noBody || chunk.length === 0) return true;
    const parts: Buffer[] = [];
    this.framed(chunk, parts);
    const ok = this.send(parts);
    // One 'drain' per full buffer, however many writes found it full (the sink may write past the mark).
    if (!ok && !this.drainHooked) {
      this.drainHooked = true;
      this.socket.once('drain', () => {
        this.drainHooked = false;
        this.emit('drain');
      });
    }
    return ok;
  }

  end(last?: Buffer | string): this {
    if (this.writableEnded || this.destroyed) return this;
    this.writableEnded = true;
    const parts: Buffer[] = [];
    if (last !== undefined && last.length > 0 && !this.noBody)
      this.framed(typeof last === 'string' ? Buffer.from(last) : last, parts);
    if (this.chunked) parts.push(LAST_CHUNK);
    // Nothing left to send (a body streamed before): an empty write still reports when all is flushed.
    if (parts.length === 0 && this.head === null) parts.push(EMPTY);
    this.send(parts, () => {
      this.writableFinished = true;
      this.socket.removeListener('close', this.onSocketClose);
      this.emit('finish');
      this.emit('close');
    });
    this.emit('ended');
    return this;
  }

  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      this.socket.destroy();
    }
    return this;
  }
}
