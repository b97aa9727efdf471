import { STATUS_CODES } from 'node:http';

/**
 * A failure the proxy answers itself, carrying the status and Squid's error name (`X-Squid-Error`),
 * so operators' existing tooling recognises it.
 */
export class ProxyError extends Error {
  constructor(
    readonly status: number,
    /** Squid's name, with its errno where Squid prints one: `ERR_CONNECT_FAIL 111`. */
    readonly squidError: string,
    message: string,
    /** Header fields the answer must carry, e.g. Proxy-Authenticate on a 407. */
    readonly extraHeaders: string[] = [],
  ) {
    super(message);
  }
}

export const invalidRequest = (why: string) => new ProxyError(400, 'ERR_INVALID_REQ', why);

// The answers to a request that is malformed or ambiguous, or whose head or body did not arrive as it should.
const CLIENT_FAULT = new Set([400, 408, 411, 413, 414, 431, 501, 505]);
/**
 * RFC 9112 §11.2 and §9.6: after answering a malformed or ambiguous request the proxy closes the
 * connection, since where the next request starts is in doubt.
 */
export const closesConnection = (err: ProxyError) => CLIENT_FAULT.has(err.status);
export const accessDenied = (why: string) => new ProxyError(403, 'ERR_ACCESS_DENIED', why);
/** RFC 9110 §15.5.8: 407 with a Basic challenge for the proxy's realm. */
export const authRequired = (realm: string, why: string) =>
  new ProxyError(407, 'ERR_CACHE_ACCESS_DENIED', why, [
    'Proxy-Authenticate',
    `Basic realm="${realm.replace(/["\\]/g, '')}"`,
  ]);
export const uriTooLong = (limit: number) =>
  new ProxyError(414, 'ERR_TOO_BIG', `request-target longer than ${limit} bytes`);
export const headersTooLarge = (limit: number) =>
  new ProxyError(431, 'ERR_TOO_BIG', `request header section larger than ${limit} bytes`);

/** Maps an undici or socket error on the upstream link to what the client is told (README: Errors). */
export function upstreamError(err: Error & { code?: string }, where: string): ProxyError {
  const code = err.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return new ProxyError(502, 'ERR_CONNECT_FAIL 111', `connection to ${where} refused`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
    case 'EAI_FAIL':
      return new ProxyError(502, 'ERR_DNS_FAIL', `cannot resolve the host of ${where} (${code})`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new ProxyError(502, 'ERR_CONNECT_FAIL 113', `no route to ${where}`);
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return new ProxyError(504, 'ERR_CONNECT_FAIL 110', `connection to ${where} timed out`);
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new ProxyError(504, 'ERR_READ_TIMEOUT', `${where} sent no response headers in time`);
    case 'UND_ERR_BODY_TIMEOUT':
      return new ProxyError(504, 'ERR_READ_TIMEOUT', `${where} stopped sending the response`);
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
      return new ProxyError(502, 'ERR_ZERO_SIZE_OBJECT', `${where} closed the connection without a response`);
    case 'CUTTLE_CANNOT_FORWARD':
      // Squid's answer when peer selection leaves nowhere to go (never_direct, every parent down).
      return new ProxyError(
        503,
        'ERR_CANNOT_FORWARD',
        `cannot forward the request to ${where}: ${err.message}`,
      );
    case 'UND_ERR_INVALID_ARG':
      return new ProxyError(400, 'ERR_INVALID_REQ', `the request cannot be forwarded: ${err.message}`);
    case 'UND_ERR_HEADERS_OVERFLOW':
      return new ProxyError(502, 'ERR_INVALID_RESP', `${where} sent response headers that are too large`);
    default:
      if (
        code.startsWith('HPE_') ||
        err.name === 'HTTPParserError' ||
        code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'
      ) {
        return new ProxyError(502, 'ERR_INVALID_RESP', `${where} sent an invalid response (${err.message})`);
      }
      return new ProxyError(502, 'ERR_READ_ERROR', `error talking to ${where}: ${err.message}`);
  }
}

export function errorBody(err: ProxyError): string {
  return `${err.status} ${STATUS_CODES[err.status] ?? ''}\n${err.squidError.split(' ')[0]}: ${err.message}\n`;
}

/** The header fields of every error response, whichever way it is written. */
export function errorHeaders(err: ProxyError, body: string, via: string): string[] {
  return [
    'Content-Type',
    'text/plain; charset=utf-8',
    'Content-Length',
    String(Buffer.byteLength(body)),
    'X-Squid-Error',
    err.squidError,
    'Via',
    via,
    ...err.extraHeaders,
  ];
}

/** A whole response as bytes, for sockets that have no ServerResponse (parse errors, CONNECT). */
export function rawErrorResponse(err: ProxyError, via: string): string {
  const body = errorBody(err);
  const h = [...errorHeaders(err, body, via), 'Connection', 'close'];
  let head = `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}\r\n`;
  for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`;
  return `${head}\r\n${body}`;
}
