/**
 * HTTPS origins: the origin's certificate is verified (Node's CA list, or --origin-ca's), and
 * --origin-insecure, for tests only, skips that with a warning at start.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startCuttle, viaProxy } from '../helpers/cuttle.js';
import { CA_FILE, certFiles } from '../helpers/tls.js';

let server: Server;
let originUrl: string;

before(async () => {
  const files = certFiles('b.example.test');
  server = createServer({ cert: readFileSync(files.cert), key: readFileSync(files.key) }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
    res.end(`secure ${req.url}\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // The certificate names 127.0.0.1 among its addresses.
  originUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

describe('HTTPS origins', () => {
  it('verifies the origin certificate against --origin-ca', async () => {
    const c = await startCuttle({ workers: 1, args: ['--origin', originUrl, '--origin-ca', CA_FILE] });
    try {
      const r = await viaProxy(c.port, '/page');
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'secure /page\n');
    } finally {
      await c.stop();
    }
  });

  it('refuses an origin whose certificate does not verify (502), by default', async () => {
    const c = await startCuttle({ workers: 1, args: ['--origin', originUrl] });
    try {
      const r = await viaProxy(c.port, '/page');
      assert.equal(r.status, 502);
    } finally {
      await c.stop();
    }
  });

  it('--origin-insecure skips verification and warns at start', async () => {
    const c = await startCuttle({ workers: 1, args: ['--origin', originUrl, '--origin-insecure'] });
    try {
      assert.equal((await viaProxy(c.port, '/page')).status, 200);
      assert.ok(c.logs().some((l) => l.level === 40 && String(l.msg).startsWith('--origin-insecure')));
    } finally {
      await c.stop();
    }
  });

  it('refuses --origin-ca for a plain origin, and an unreadable CA file, with one line', async () => {
    await assert.rejects(
      startCuttle({ workers: 1, args: ['--origin', 'http://127.0.0.1:1', '--origin-ca', CA_FILE] }),
      /originCa: applies to an https:\/\/ origin only/,
    );
    await assert.rejects(
      startCuttle({ workers: 1, args: ['--origin', originUrl, '--origin-ca', '/nonexistent.pem'] }),
      /cannot read the --origin-ca file \/nonexistent\.pem: ENOENT/,
    );
  });
});
