/**
 * RFC 9110 §15.2 interim responses through the real cluster: relayed to the client as they arrive, ahead of
 * the final response, never to an HTTP/1.0 client, and never stored.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, rawExchange, startCuttle, waitStored } from '../helpers/cuttle.js';

let origin: Server;
let port: number;
let cuttle: Cuttle;

before(async () => {
  // A raw origin: 103 with a Link, 102, an unregistered 1xx, then the final response.
  origin = createServer((s) => {
    s.once('data', () => {
      s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n');
      s.write('HTTP/1.1 102 Processing\r\n\r\n');
      s.write('HTTP/1.1 150 Custom\r\nX-Step: one\r\nConnection: X-Step-Hop\r\nX-Step-Hop: gone\r\n\r\n');
      setTimeout(
        () =>
          s.end(
            'HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello',
          ),
        50,
      );
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
  port = (origin.address() as { port: number }).port;
  cuttle = await startCuttle({ workers: 1 });
});
after(async () => {
  await cuttle.stop();
  origin.close();
});

const request = (path: string, version = '1.1') =>
  rawExchange(
    cuttle.port,
    `GET http://127.0.0.1:${port}${path} HTTP/${version}\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
  );

describe('interim responses (RFC 9110 §15.2)', () => {
  it('relays 103, 102 and other 1xx in order before the final response, without hop-by-hop fields', async () => {
    const { text } = await request('/relay');
    const heads = [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1]);
    assert.deepEqual(heads, ['103', '102', '150', '200']);
    assert.match(text, /^HTTP\/1\.1 103 Early Hints\r\nLink: <\/a\.css>; rel=preload\r\n\r\n/);
    assert.match(text, /X-Step: one/);
    assert.doesNotMatch(text, /X-Step-Hop/);
    assert.match(text, /\r\n\r\nhello$/);
  });

  it('sends no interim response to an HTTP/1.0 client (§15.2)', async () => {
    const { text } = await request('/old', '1.0');
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.doesNotMatch(text, /HTTP\/1\.1 1\d\d/);
  });

  it('stores only the final response: a hit carries neither the interim responses nor their fields (RFC 9111 §3)', async () => {
    await request('/stored');
    await waitStored(cuttle.cacheDir, `http://127.0.0.1:${port}/stored`);
    const { text } = await request('/stored');
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.match(text, /Cache-Status: cuttle; hit/);
    assert.doesNotMatch(text, /Link:|X-Step|HTTP\/1\.1 1\d\d/);
  });
});
