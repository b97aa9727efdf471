/**
 * Regression tests for what the smuggling corpus found: an error for a malformed request closes the
 * connection, requests pipelined behind it are never forwarded, and an error for bytes after a whole request
 * comes after that request's response.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, type Origin, rawExchange, startCuttle, startOrigin } from '../helpers/cuttle.js';

let origin: Origin;
let cuttle: Cuttle;
before(async () => {
  origin = await startOrigin((req, res) => {
    req.resume();
    req.on('end', () => res.end(`answer for ${req.url}`));
  });
  cuttle = await startCuttle({ workers: 1 });
});
after(async () => {
  await cuttle.stop();
  await origin.close();
});

const host = () => `127.0.0.1:${origin.port}`;
const get = (path: string) => `GET http://${host()}${path} HTTP/1.1\r\nHost: ${host()}\r\n\r\n`;
const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

describe('after an error for a malformed request', () => {
  it('the connection closes and a request pipelined behind it is not forwarded', async () => {
    const r = await rawExchange(cuttle.port, `GET * HTTP/1.1\r\nHost: x\r\n\r\n${get('/behind-400')}`);
    assert.deepEqual(statuses(r.text), [400]);
    assert.match(r.text, /Connection: close/);
    assert.equal(r.closed, true);
    assert.ok(
      !origin.seen.some((s) => s.url === '/behind-400'),
      'the pipelined request never reached the origin',
    );
  });

  it('an empty Transfer-Encoding with Content-Length is 400, and what follows is not a request', async () => {
    const smuggled = get('/smuggled-after-empty-te');
    const r = await rawExchange(
      cuttle.port,
      `POST http://${host()}/te HTTP/1.1\r\nHost: ${host()}\r\nTransfer-Encoding: \r\nContent-Length: 4\r\n\r\nabcd${smuggled}`,
    );
    assert.deepEqual(statuses(r.text), [400]);
    // Node 20's llhttp lets it through to our framing check; Node 22's (22.23) and 24's refuse it themselves.
    assert.match(r.text, /Content-Length and Transfer-Encoding together|Empty Transfer-Encoding/);
    assert.equal(r.closed, true);
    assert.ok(!origin.seen.some((s) => s.url.startsWith('/smuggled')));
  });

  it('a parse error after a whole request is answered after that request, not in its place', async () => {
    const r = await rawExchange(
      cuttle.port,
      `POST http://${host()}/whole HTTP/1.1\r\nHost: ${host()}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nXGET / HTTP/1.1\r\n\r\n`,
    );
    assert.deepEqual(statuses(r.text), [200, 400]);
    assert.match(r.text, /answer for \/whole[\s\S]*HTTP\/1\.1 400 /);
    assert.equal(r.closed, true);
  });

  it('an HTTP/1.0 chunked request is answered, then the connection closes (RFC 9112 §6.1)', async () => {
    const r = await rawExchange(
      cuttle.port,
      `POST http://${host()}/old HTTP/1.0\r\nHost: ${host()}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n${get('/after-old')}`,
    );
    assert.deepEqual(statuses(r.text), [200]);
    assert.equal(r.closed, true);
    assert.ok(!origin.seen.some((s) => s.url === '/after-old'));
  });

  it('a missing or repeated Host is 400 with X-Squid-Error; HTTP/2.0 and 0.9 request lines are 505', async () => {
    for (const head of [
      `GET http://${host()}/nohost HTTP/1.1\r\n\r\n`,
      `GET http://${host()}/twohosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`,
    ]) {
      const r = await rawExchange(cuttle.port, head);
      assert.deepEqual(statuses(r.text), [400]);
      assert.match(r.text, /X-Squid-Error: ERR_INVALID_REQ/);
      assert.equal(r.closed, true);
    }
    const h2 = await rawExchange(cuttle.port, `GET http://${host()}/h2 HTTP/2.0\r\nHost: ${host()}\r\n\r\n`);
    assert.deepEqual(statuses(h2.text), [505]);
    assert.match(h2.text, /X-Squid-Error: ERR_UNSUP_HTTPVERSION/);
    assert.equal(h2.closed, true);
  });

  it('a coding before chunked is 501 ERR_UNSUP_REQ and closes', async () => {
    const r = await rawExchange(
      cuttle.port,
      `POST http://${host()}/gz HTTP/1.1\r\nHost: ${host()}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
    );
    assert.deepEqual(statuses(r.text), [501]);
    assert.match(r.text, /X-Squid-Error: ERR_UNSUP_REQ/);
    assert.equal(r.closed, true);
    assert.ok(!origin.seen.some((s) => s.url === '/gz'));
  });
});
