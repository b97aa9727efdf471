/**
 * Replays the request-smuggling corpus (test/fixtures/smuggling/*.json) against a running cuttle: each case
 * on its own connection, then a follow-up request on that connection when it is still open, then a request
 * on a fresh connection. The origin records every request it parses. A case fails on a desync (a response
 * that answers another request, or an origin request the client did not send as one), a hang (no answer and
 * no close within the bound), an error answer that leaves the connection open, or an answer other than the
 * one the case expects.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { SmugglingCase } from '../fixtures/smuggling/generate.js';
import { type Origin, startOrigin, viaProxy } from './cuttle.js';

export type { SmugglingCase };

const DIR = fileURLToPath(new URL('../../../test/fixtures/smuggling/', import.meta.url));

export function loadCorpus(): SmugglingCase[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .flatMap((f) => JSON.parse(readFileSync(DIR + f, 'utf8')) as SmugglingCase[]);
}

export interface SmugglingOrigin extends Origin {
  /** Raw packets the origin's parser refused: the proxy forwarded something malformed. */
  parseErrors: string[];
  /** Requests whose body arrived whole: the ones the origin acted on. */
  completed: string[];
}

/** An origin that answers every request with its own path in `X-Echo` and the body, never cacheable. */
export async function startEchoOrigin(): Promise<SmugglingOrigin> {
  const completed: string[] = [];
  const origin = await startOrigin((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      completed.push(req.url ?? '');
      res.writeHead(200, {
        'X-Echo': req.url ?? '',
        'Cache-Control': 'no-store',
        'Content-Type': 'text/plain',
        'Content-Length': Buffer.byteLength(req.url ?? ''),
      });
      res.end(req.url);
    });
  });
  const parseErrors: string[] = [];
  origin.server.on('clientError', (err: Error & { code?: string; rawPacket?: Buffer }, socket: Socket) => {
    // A body the proxy cut short (the client's framing failed mid-body) ends the connection early: expected.
    if (err.code !== 'HPE_INVALID_EOF_STATE' && err.code !== 'ECONNRESET')
      parseErrors.push(
        `${err.code} ${err.message}: ${JSON.stringify(err.rawPacket?.toString('latin1') ?? '')}`,
      );
    socket.destroy();
  });
  return Object.assign(origin, { parseErrors, completed });
}

interface Parsed {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Reads HTTP/1.1 responses off a socket one at a time (Content-Length or chunked bodies; 1xx skipped). */
class ResponseReader {
  private buf = Buffer.alloc(0);
  closed = false;
  private wake: (() => void) | null = null;

  constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    const end = () => {
      this.closed = true;
      this.wake?.();
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', end);
  }

  /** The next whole response, or 'closed' (the server closed first), or 'timeout'. */
  async next(timeoutMs: number): Promise<Parsed | 'closed' | 'timeout'> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const r = this.parse();
      if (r) return r;
      if (this.closed) return 'closed';
      const left = until - Date.now();
      if (left <= 0) return 'timeout';
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  /** Whether the server closes within the bound, with no more bytes before it. */
  async closes(timeoutMs: number): Promise<'closed' | 'open' | 'more'> {
    const until = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < until) {
      if (this.buf.length) return 'more';
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, until - Date.now());
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          resolve();
        };
      });
    }
    return this.buf.length ? 'more' : this.closed ? 'closed' : 'open';
  }

  private parse(): Parsed | null {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end === -1) return null;
      const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      let rest = this.buf.subarray(end + 4);
      if (status >= 100 && status < 200) {
        this.buf = rest;
        continue;
      }
      let body: string;
      if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
        const parts: Buffer[] = [];
        for (;;) {
          const eol = rest.indexOf('\r\n');
          if (eol === -1) return null;
          const size = Number.parseInt(rest.subarray(0, eol).toString(), 16);
          if (rest.length < eol + 2 + size + 2) return null;
          if (size === 0) {
            const trailerEnd = rest.indexOf('\r\n', eol + 2);
            if (trailerEnd === -1) return null;
            rest = rest.subarray(trailerEnd + 2);
            break;
          }
          parts.push(rest.subarray(eol + 2, eol + 2 + size));
          rest = rest.subarray(eol + 2 + size + 2);
        }
        body = Buffer.concat(parts).toString('latin1');
      } else {
        const len = Number(headers['content-length'] ?? 0);
        if (rest.length < len) return null;
        body = rest.subarray(0, len).toString('latin1');
        rest = rest.subarray(len);
      }
      this.buf = rest;
      return { status, headers, body };
    }
  }
}

export interface CaseResult {
  id: string;
  cls: string;
  expect: SmugglingCase['expect'];
  /** What the proxy did with the case itself. */
  outcome: 'accepted' | 'rejected' | 'closed' | 'hung';
  status: number;
  failures: string[];
  ms: number;
}

export interface CorpusReport {
  results: CaseResult[];
  desyncs: number;
  hangs: number;
  openAfterError: number;
  unexpected: number;
  failures: string[];
}

/** Where a case's requests go: absolute-form to a forward proxy, origin-form to a reverse proxy. */
const targetOf = (originPort: number, reverse: boolean) => (path: string) =>
  reverse ? path : `http://127.0.0.1:${originPort}${path}`;

function fill(s: string, originPort: number, id: string, reverse: boolean): string {
  const host = `127.0.0.1:${originPort}`;
  const at = targetOf(originPort, reverse);
  const smuggled = at(`/c/${id}/smuggled`);
  const smuggledLength = `GET ${smuggled} HTTP/1.1\r\nHost: ${host}\r\n\r\n`.length;
  return s
    .replaceAll('{target}', at(`/c/${id}/a`))
    .replaceAll('{smuggled}', smuggled)
    .replaceAll('{host}', host)
    .replaceAll('{smuggled-size}', smuggledLength.toString(16))
    .replaceAll('{smuggled-length}', String(smuggledLength));
}

async function runCase(
  c: SmugglingCase,
  proxyPort: number,
  originPort: number,
  boundMs: number,
  reverse: boolean,
): Promise<CaseResult> {
  const t0 = Date.now();
  const failures: string[] = [];
  const base = targetOf(originPort, reverse)(`/c/${c.id}`);
  const sock = connect(proxyPort, '127.0.0.1');
  const reader = new ResponseReader(sock);
  sock.write(Buffer.from(fill(c.request, originPort, c.id, reverse), 'latin1'));
  let outcome: CaseResult['outcome'];
  let status = 0;
  const r1 = await reader.next(boundMs);
  if (r1 === 'timeout') {
    outcome = 'hung';
    failures.push(`no answer and no close within ${boundMs} ms`);
  } else if (r1 === 'closed') {
    outcome = 'closed';
    failures.push('closed without an answer');
  } else if (r1.headers['x-echo'] === undefined) {
    outcome = 'rejected';
    status = r1.status;
    if (r1.status < 400) failures.push(`answer ${r1.status} without the origin's echo`);
    if (!r1.headers['x-squid-error']) failures.push(`error ${r1.status} without X-Squid-Error`);
    const after = await reader.closes(boundMs);
    if (after === 'open') failures.push(`connection left open after ${r1.status}`);
    if (after === 'more') failures.push(`more bytes after the ${r1.status} error`);
  } else {
    outcome = 'accepted';
    status = r1.status;
    if (r1.headers['x-echo'] !== `/c/${c.id}/a`)
      failures.push(`desync: answered with ${r1.headers['x-echo']}`);
    // The follow-up on the same connection must get its own answer, unless the proxy closes it.
    if (r1.headers.connection?.toLowerCase() === 'close') {
      if ((await reader.closes(boundMs)) !== 'closed') failures.push('Connection: close, but not closed');
    } else if (!reader.closed) {
      sock.write(`GET ${base}/follow HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\n\r\n`);
      const r2 = await reader.next(boundMs);
      if (r2 === 'timeout') failures.push('follow-up: no answer and no close');
      else if (r2 !== 'closed' && r2.headers['x-squid-error'] && r2.headers['x-echo'] === undefined) {
        // Bytes the client sent after the case were refused (the case ended early by its own framing).
        if ((await reader.closes(boundMs)) !== 'closed')
          failures.push(`connection left open after ${r2.status}`);
      } else if (r2 !== 'closed' && r2.headers['x-echo'] !== `/c/${c.id}/follow`)
        failures.push(`desync: follow-up answered with ${r2.status} ${r2.headers['x-echo'] ?? r2.body}`);
    }
  }
  sock.destroy();
  if (c.expect === 'reject' && outcome === 'accepted') failures.push('accepted; expected a rejection');
  if (c.expect === 'accept' && outcome === 'rejected')
    failures.push(`rejected with ${status}; expected it served`);
  try {
    const fresh = await viaProxy(proxyPort, `${base}/fresh`, { agent: false, timeoutMs: boundMs });
    if (fresh.headers['x-echo'] !== `/c/${c.id}/fresh`)
      failures.push(`desync: fresh connection answered with ${fresh.status} ${fresh.headers['x-echo']}`);
  } catch (err) {
    failures.push(`fresh connection: ${(err as Error).message}`);
  }
  return { id: c.id, cls: c.class, expect: c.expect, outcome, status, failures, ms: Date.now() - t0 };
}

/** Runs every case, `concurrency` at a time, and checks what the origin saw. */
export async function runCorpus(
  cases: SmugglingCase[],
  proxyPort: number,
  origin: SmugglingOrigin,
  { concurrency = 8, boundMs = 5000, reverse = false } = {},
): Promise<CorpusReport> {
  const results: CaseResult[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < cases.length) {
        const c = cases[next++];
        results.push(await runCase(c, proxyPort, origin.port, boundMs, reverse));
      }
    }),
  );
  const byId = new Map(results.map((r) => [r.id, r]));
  for (const s of origin.seen) {
    const m = /^\/c\/([^/]+)\/(a|follow|fresh)$/.exec(s.url);
    const r = m ? byId.get(m[1]) : undefined;
    if (!m || !r) {
      const owner = /^\/c\/([^/]+)\//.exec(s.url)?.[1];
      const victim = owner ? byId.get(owner) : undefined;
      const why = `desync: the origin saw ${s.method} ${s.url}, which no client sent as a request`;
      if (victim) victim.failures.push(why);
      else
        results.push({
          id: '?',
          cls: '?',
          expect: 'either',
          outcome: 'accepted',
          status: 0,
          failures: [why],
          ms: 0,
        });
    }
  }
  // A streamed body that turns out malformed reaches the origin cut short; a whole one must not.
  for (const url of origin.completed) {
    const r = byId.get(/^\/c\/([^/]+)\/a$/.exec(url)?.[1] ?? '');
    if (r?.outcome === 'rejected')
      r.failures.push(`the origin acted on ${url} although the client was told ${r.status}`);
  }
  const failures = results.flatMap((r) => r.failures.map((f) => `${r.id}: ${f}`));
  failures.push(...origin.parseErrors.map((e) => `the origin could not parse what the proxy sent: ${e}`));
  return {
    results: results.sort((a, b) => a.id.localeCompare(b.id)),
    desyncs: results.filter((r) => r.failures.some((f) => f.startsWith('desync'))).length,
    hangs: results.filter((r) => r.failures.some((f) => /no answer and no close|no answer from/.test(f)))
      .length,
    openAfterError: results.filter((r) => r.failures.some((f) => /left open|more bytes after/.test(f)))
      .length,
    unexpected: results.filter((r) => r.failures.some((f) => /expected/.test(f))).length,
    failures,
  };
}
