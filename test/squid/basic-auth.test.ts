import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { verifyHash } from '../../src/squid/basic-auth.js';
import {
  type Cuttle,
  type Origin,
  rawExchange,
  sleep,
  startCuttle,
  startOrigin,
  viaProxy,
  waitStored,
} from '../helpers/cuttle.js';

const fixture = (name: string) =>
  fileURLToPath(new URL(`../../../test/fixtures/squid/${name}`, import.meta.url));
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('htpasswd hashes (as htpasswd writes them)', () => {
  const hashes = Object.fromEntries(
    readFileSync(fixture('passwords'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':') as [string, string]),
  );
  for (const [user, password, kind] of [
    ['bea', 'bcryptsecret', 'bcrypt'],
    ['mia', 'md5secret', 'MD5 (apr1)'],
    ['sam', 'shasecret', 'SHA'],
    ['dan', 'dessecret', 'DES crypt'],
  ]) {
    it(`verifies ${kind}, and rejects a wrong password`, () => {
      assert.equal(verifyHash(password, hashes[user]), true);
      // A changed first character: DES crypt reads only the first 8 (htpasswd -d warns of it).
      assert.equal(verifyHash(`x${password}`, hashes[user]), false);
    });
  }
});

describe('auth_param basic, PURGE and deny_info from a squid.conf', () => {
  let origin: Origin;
  let cuttle: Cuttle;
  let dir: string;
  before(async () => {
    origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'Cache-Control': 'max-age=600' });
      res.end('secret page');
    });
    dir = mkdtempSync(join(tmpdir(), 'cuttle-auth-'));
    const conf = join(dir, 'squid.conf');
    writeFileSync(
      conf,
      readFileSync(fixture('auth.conf'), 'utf8').replace('/PASSWORDS', fixture('passwords')),
    );
    cuttle = await startCuttle({
      args: ['--squid-conf', conf, '--host', '127.0.0.1', '--access-log', join(dir, 'access.log')],
    });
  });
  after(async () => {
    await cuttle.stop();
    await origin.close();
  });

  it('answers 407 with a Basic challenge for the realm when credentials are missing or wrong', async () => {
    const attempts: Record<string, string>[] = [{}, { 'Proxy-Authorization': basic('mia', 'wrong') }];
    for (const headers of attempts) {
      const r = await viaProxy(cuttle.port, `${origin.url}/p`, { headers });
      assert.equal(r.status, 407);
      assert.equal(r.headers['proxy-authenticate'], 'Basic realm="cuttle test realm"');
      assert.equal(r.headers['x-squid-error'], 'ERR_CACHE_ACCESS_DENIED');
    }
  });

  it('lets each hash type in, does not forward the credentials, and logs the user name', async () => {
    const seen: string[] = [];
    for (const [user, password] of [
      ['bea', 'bcryptsecret'],
      ['mia', 'md5secret'],
      ['sam', 'shasecret'],
      ['dan', 'dessecret'],
    ]) {
      const r = await viaProxy(cuttle.port, `${origin.url}/u-${user}`, {
        headers: { 'Proxy-Authorization': basic(user, password) },
      });
      assert.equal(r.status, 200, user);
      seen.push(user);
    }
    assert.deepEqual(seen.length, 4);
    await sleep(500);
    const log = readFileSync(join(dir, 'access.log'), 'utf8');
    for (const user of seen) assert.match(log, new RegExp(`/u-${user} ${user} HIER_DIRECT/`));
  });

  it('challenges CONNECT too', async () => {
    const t = await rawExchange(cuttle.port, 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n');
    assert.match(t.text, /^HTTP\/1\.1 407 /);
    assert.match(t.text, /Proxy-Authenticate: Basic realm="cuttle test realm"/);
  });

  it('PURGE removes a stored object (200), then finds nothing (404)', async () => {
    const url = `${origin.url}/purge-me`;
    await viaProxy(cuttle.port, url, { headers: { 'Proxy-Authorization': basic('sam', 'shasecret') } });
    await waitStored(cuttle.cacheDir, url);
    assert.equal((await viaProxy(cuttle.port, url, { method: 'PURGE' })).status, 200);
    assert.equal((await viaProxy(cuttle.port, url, { method: 'PURGE' })).status, 404);
    const other = await viaProxy(cuttle.port, url, { method: 'PURGE', localAddress: '127.0.0.2' });
    assert.equal(other.status, 403, 'http_access deny PURGE for everyone but localhost');
  });

  it('deny_info names the error, or redirects', async () => {
    const a = await viaProxy(cuttle.port, 'http://www.banned.test/');
    assert.equal(a.status, 403);
    assert.equal(a.headers['x-squid-error'], 'ERR_BANNED_SITE');
    const b = await viaProxy(cuttle.port, 'http://www.moved.test/');
    assert.equal(b.status, 302);
    assert.equal(b.headers.location, 'http://portal.test/blocked.html');
  });
});
