import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { h2RequestFields, h2ResponseFields } from '../../src/http/h2.js';

describe('HTTP/2 messages for the HTTP/1.1 core (RFC 9113 §8)', () => {
  it('takes Host from :authority and drops pseudo-header fields (§8.3.1)', () => {
    const r = h2RequestFields([
      ':method',
      'GET',
      ':path',
      '/x',
      ':scheme',
      'https',
      ':authority',
      'a.test',
      'accept',
      '*/*',
    ]);
    assert.deepEqual(r, { fields: ['host', 'a.test', 'accept', '*/*'], authority: 'a.test', error: null });
  });

  it('keeps a Host that names the same authority, refuses one that does not', () => {
    assert.equal(h2RequestFields([':authority', 'A.test', 'host', 'a.TEST']).error, null);
    assert.match(
      String(h2RequestFields([':authority', 'a.test', 'host', 'b.test']).error),
      /differs from :authority/,
    );
    assert.match(String(h2RequestFields(['host', 'a.test', 'host', 'b.test']).error), /more than one Host/);
    assert.deepEqual(h2RequestFields(['host', 'a.test']), {
      fields: ['host', 'a.test'],
      authority: 'a.test',
      error: null,
    });
  });

  it('joins cookie crumbs with "; " (§8.2.3)', () => {
    const r = h2RequestFields([':authority', 'a', 'cookie', 'a=1', 'x', 'y', 'cookie', 'b=2']);
    assert.deepEqual(r.fields, ['host', 'a', 'x', 'y', 'cookie', 'a=1; b=2']);
  });

  it('removes connection-specific fields from responses (§8.2.2)', () => {
    const raw = [
      'Content-Type',
      'text/plain',
      'Connection',
      'close',
      'Keep-Alive',
      'timeout=5',
      'Transfer-Encoding',
      'chunked',
      'Upgrade',
      'h2c',
      'Proxy-Connection',
      'keep-alive',
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
    ];
    assert.deepEqual(h2ResponseFields(raw), [
      'Content-Type',
      'text/plain',
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
    ]);
    const clean = ['ETag', '"x"'];
    assert.equal(h2ResponseFields(clean), clean, 'nothing to remove: the same array');
  });
});
