/**
 * Upstream framing (RFC 9112 §6.3): a response whose head frames its body ambiguously or invalidly gets 502
 * ERR_INVALID_RESP, a body that breaks its framing midway cuts the client (never a short body passed off as
 * whole) and is not stored, and the upstream connection that carried either is closed, never reused.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, startCuttle, viaProxy } from '../helpers/cuttle.js';

const HEADS: Record<string, string> = {
  '/cl-te':
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  '/te-cl':
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\nCache-Control: max-age=60\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  '/cl-cl':
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\nCache-Control: max-age=60\r\n\r\nok!',
  '/cl-list': 'HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\nCache-Control: max-age=60\r\n\r\nok!',
  '/cl-bad': 'HTTP/1.1 200 OK\r\nContent-Length: 2x\r\nCache-Control: max-age=60\r\n\r\nok',
  '/obs-fold': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: a\r\n b\r\nCache-Control: max-age=60\r\n\r\nok',
  '/nul': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: a\x00b\r\nCache-Control: max-age=60\r\n\r\nok',
  '/bare-cr': 'HTTP/1.1 200 OK\r\nContent-Length: 2\rX-A: 1\r\nCache-Control: max-age=60\r\n\r\nok',
  '/status': 'HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok',
};
const BODIES: Record<string, string> = {
  '/bad-chunk':
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n2\r\nok\r\nzz\r\nmore\r\n0\r\n\r\n',
  '/chunk-overflow':
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n2\r\nok\r\nffffffffffffffffff\r\nx\r\n',
  '/chunk-no-crlf':
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n2\r\nokX0\r\n\r\n',
};
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok';

let server: Server;
let port: number;
let cuttle: Cuttle;
/** Which upstream connection each request arrived on, and which connections are closed. */
const seen: Array<{ conn: number; path: string }> = [];
const closed = new Set<number>();

before(async () => {
  let next = 0;
  server = createServer((s: Socket) => {
    const conn = next++;
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const path = /^\S+ (\S+)/.exec(buf)?.[1] ?? '';
        buf = buf.slice(end + 4);
        seen.push({ conn, path });
        s.write(HEADS[path] ?? BODIES[path] ?? OK);
      }
    });
    s.on('close', () => closed.add(conn));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
  cuttle = await startCuttle({ workers: 1 });
});
after(async () => {
  await cuttle.stop();
  server.close();
});

/** The connection a bad response came on is closed and no later request used it. */
async function discarded(path: string): Promise<void> {
  const bad = seen.findLast((s) => s.path === path);
  assert.ok(bad, `the origin saw ${path}`);
  for (let i = 0; i < 3; i++) {
    const r = await viaProxy(cuttle.port, `http://127.0.0.1:${port}/ok`);
    assert.equal(r.status, 200);
  }
  const later = seen.slice(seen.indexOf(bad) + 1);
  assert.ok(later.length >= 3);
  assert.ok(
    later.every((s) => s.conn !== bad.conn),
    `connection ${bad.conn} was reused after ${path}`,
  );
  for (let i = 0; i < 50 && !closed.has(bad.conn); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(closed.has(bad.conn), `connection ${bad.conn} is closed`);
}

describe('upstream responses with invalid framing', () => {
  for (const path of Object.keys(HEADS)) {
    it(`${path}: 502 ERR_INVALID_RESP, the upstream connection discarded`, async () => {
      // Warm a pooled connection first, so the bad response arrives on a connection that could be reused.
      await viaProxy(cuttle.port, `http://127.0.0.1:${port}/ok`);
      const r = await viaProxy(cuttle.port, `http://127.0.0.1:${port}${path}`);
      assert.equal(r.status, 502);
      assert.equal(r.headers['x-squid-error'], 'ERR_INVALID_RESP');
      await discarded(path);
    });
  }

  for (const path of Object.keys(BODIES)) {
    it(`${path}: the client is cut, nothing stored, the upstream connection discarded`, async () => {
      await viaProxy(cuttle.port, `http://127.0.0.1:${port}/ok`);
      await assert.rejects(viaProxy(cuttle.port, `http://127.0.0.1:${port}${path}`));
      await discarded(path);
      const again = seen.filter((s) => s.path === path).length;
      await assert.rejects(viaProxy(cuttle.port, `http://127.0.0.1:${port}${path}`));
      assert.equal(seen.filter((s) => s.path === path).length, again + 1, 'not served from the cache');
    });
  }
});
