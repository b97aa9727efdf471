/**
 * TLS and HTTP/2 clients for the HTTPS edge's tests, and the fixtures' certificates (test/fixtures/tls,
 * made by its make.sh: a test CA and two server certificates, `a.example.test` and `b.example.test`).
 */
import { readFileSync } from 'node:fs';
import { type ClientHttp2Session, connect as h2connect, type IncomingHttpHeaders } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { type PeerCertificate, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { replyOf } from './cuttle.js';

export const TLS_DIR = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));
export const CA_FILE = `${TLS_DIR}ca.pem`;
export const CA = readFileSync(CA_FILE, 'utf8');
export const certFiles = (name: 'a.example.test' | 'b.example.test') => ({
  cert: `${TLS_DIR}${name}.pem`,
  key: `${TLS_DIR}${name}.key`,
});

export interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An HTTP/2 session to 127.0.0.1:port, trusting the test CA; `servername` for SNI. */
export function h2Session(port: number, servername = 'a.example.test'): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect(`https://127.0.0.1:${port}`, { ca: CA, servername });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Runs `fn` with a fresh session, closed after it whatever happens. */
export async function withH2<T>(port: number, fn: (s: ClientHttp2Session) => Promise<T>): Promise<T> {
  const s = await h2Session(port);
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

/** One request on a session; headers may include `:method`. */
export function h2Request(
  session: ClientHttp2Session,
  path: string,
  headers: Record<string, string | string[]> = {},
  body?: string | Buffer,
): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ...headers }, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let head: IncomingHttpHeaders = {};
    stream.on('response', (h) => {
      head = h;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () =>
      resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) }),
    );
    stream.on('error', reject);
    stream.setTimeout(15_000, () => stream.destroy(new Error(`no answer for ${path}`)));
    if (body !== undefined) stream.end(body);
  });
}

/**
 * An HTTPS request over HTTP/1.1 (node:https), trusting the test CA. Host names the server name, as
 * node:http2's client names it in :authority, so both reach one cache key.
 */
export function h1Request(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  servername = 'a.example.test',
): Promise<H2Reply & { httpVersion: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        headers: { host: `${servername}:${port}`, ...headers },
        ca: CA,
        servername,
        agent: false,
      },
      (res) => replyOf(res).then((r) => resolve({ ...r, httpVersion: res.httpVersion }), reject),
    );
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer for ${path}`)));
    req.end();
  });
}

/** A TLS handshake alone: the certificate the server chose, and whether the session was resumed. */
export function handshake(
  port: number,
  servername: string,
  session?: Buffer,
): Promise<{ cert: PeerCertificate; reused: boolean; session: Buffer | undefined; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = tlsConnect({
      host: '127.0.0.1',
      port,
      servername,
      ca: CA,
      session,
      ALPNProtocols: ['http/1.1'],
      // The name may be one no certificate has: which certificate came is what is looked at.
      checkServerIdentity: () => undefined,
    });
    let got: Buffer | undefined;
    // TLS 1.3 tickets come after the handshake.
    socket.on('session', (s: Buffer) => {
      got = s;
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      const reused = socket.isSessionReused();
      const alpn = socket.alpnProtocol;
      setTimeout(() => {
        socket.end();
        resolve({ cert, reused, session: got ?? socket.getSession(), alpn: alpn ?? false });
      }, 50);
    });
    socket.once('error', reject);
  });
}
