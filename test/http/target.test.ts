import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAuthority, parseTarget } from '../../src/http/target.js';

describe('RFC 9112 §3.2 request-target forms', () => {
  it('parses absolute-form with default and explicit ports', () => {
    assert.deepEqual(parseTarget('http://Example.COM/a?b=1'), {
      form: 'absolute',
      scheme: 'http',
      authority: 'example.com',
      host: 'example.com',
      port: 80,
      path: '/a?b=1',
    });
    assert.deepEqual(parseTarget('HTTP://h:8080'), {
      form: 'absolute',
      scheme: 'http',
      authority: 'h:8080',
      host: 'h',
      port: 8080,
      path: '/',
    });
    assert.equal((parseTarget('https://h?q') as { path: string }).path, '/?q');
    assert.equal((parseTarget('http://[::1]:81/') as { host: string }).host, '[::1]');
  });

  it('parses origin-form and asterisk-form', () => {
    assert.deepEqual(parseTarget('/p?q'), { form: 'origin', path: '/p?q' });
    assert.deepEqual(parseTarget('*'), { form: 'asterisk' });
  });

  it('rejects userinfo (RFC 9110 §4.2.4), fragments, bad ports and other schemes', () => {
    for (const t of [
      'http://u:p@h/',
      'http://h/#x',
      'http://h:0/',
      'http://h:70000/',
      'ftp://h/',
      'http:///x',
      'x',
    ]) {
      assert.equal(parseTarget(t).form, 'invalid', t);
    }
  });

  it('parses CONNECT authority-form and needs a port', () => {
    assert.deepEqual(parseAuthority('Host:443'), { host: 'host', port: 443 });
    assert.equal(typeof parseAuthority('host'), 'string');
    assert.equal(typeof parseAuthority('ho st:443'), 'string');
  });
});
