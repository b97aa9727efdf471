import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type Cuttle,
  type Origin,
  rawExchange,
  startCuttle,
  startOrigin,
  viaProxy,
} from '../helpers/cuttle.js';

let origin: Origin;
before(async () => {
  origin = await startOrigin((_req, res) => res.end('ok'));
});
after(() => origin.close());

describe('default access: localhost and private networks only', () => {
  it('serves loopback clients by default', async () => {
    const c = await startCuttle({ workers: 1 });
    try {
      assert.equal((await viaProxy(c.port, `${origin.url}/`)).status, 200);
    } finally {
      await c.stop();
    }
  });

  it("refuses 127.0.0.2 by default: Squid's localhost is 127.0.0.1 and ::1 only", async () => {
    const c = await startCuttle({ workers: 1 });
    try {
      const r = await viaProxy(c.port, `${origin.url}/`, { localAddress: '127.0.0.2' });
      assert.equal(r.status, 403);
      assert.equal(r.headers['x-squid-error'], 'ERR_ACCESS_DENIED');
      assert.match(r.body.toString(), /client 127\.0\.0\.2 is not allowed/);
      const ok = await viaProxy(c.port, `${origin.url}/`, { localAddress: '127.0.0.1' });
      assert.equal(ok.status, 200);
    } finally {
      await c.stop();
    }
  });

  let closed: Cuttle;
  it('refuses clients outside the allowed networks with 403, for requests and tunnels', async () => {
    // Loopback is outside 10.0.0.0/8, so this stands in for a public client.
    closed = await startCuttle({ workers: 1, args: ['--allow', '10.0.0.0/8'], logLevel: 'debug' });
    const seenBefore = origin.seen.length;
    try {
      const r = await viaProxy(closed.port, `${origin.url}/`);
      assert.equal(r.status, 403);
      assert.equal(r.headers['x-squid-error'], 'ERR_ACCESS_DENIED');
      assert.match(r.body.toString(), /client 127\.0\.0\.1 is not allowed/);
      assert.equal(origin.seen.length, seenBefore, 'nothing reached the origin');
      const t = await rawExchange(closed.port, 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.match(t.text, /^HTTP\/1\.1 403 /);
      assert.ok(
        closed.logs().some((l) => l.error === 'ERR_ACCESS_DENIED'),
        'the refusal is logged (at debug: info has no per-request lines)',
      );
    } finally {
      await closed.stop();
    }
  });

  it('opens up with --allow all', async () => {
    const c = await startCuttle({ workers: 1, args: ['--allow', 'all'] });
    try {
      assert.equal((await viaProxy(c.port, `${origin.url}/`)).status, 200);
    } finally {
      await c.stop();
    }
  });
});
