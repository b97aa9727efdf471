import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endToEndHeaders, fieldValue } from '../../src/http/fields.js';
import {
  appendVia,
  forwardedForValue,
  forwardedRequestHeaders,
  isForwardingLoop,
  maxForwards,
  traceBody,
  viaEntry,
} from '../../src/http/forwarding.js';

describe('RFC 9110 §7.6.1 hop-by-hop fields', () => {
  it('removes Connection, the fields it names, and the fixed hop-by-hop list', () => {
    const raw = [
      'Connection',
      'close, X-Secret',
      'Keep-Alive',
      'timeout=5',
      'Proxy-Connection',
      'keep-alive',
      'TE',
      'trailers',
      'Trailer',
      'X-T',
      'Transfer-Encoding',
      'chunked',
      'Upgrade',
      'websocket',
      'Proxy-Authorization',
      'Basic eA==',
      'Proxy-Authenticate',
      'Basic',
      'x-secret',
      'hidden',
      'Accept',
      'text/plain',
    ];
    assert.deepEqual(endToEndHeaders(raw), ['Accept', 'text/plain']);
  });

  it('reads every Connection field, case-insensitively', () => {
    const raw = ['connection', 'A', 'CONNECTION', 'b', 'a', '1', 'B', '2', 'C', '3'];
    assert.deepEqual(endToEndHeaders(raw), ['C', '3']);
  });

  it('removes a field the Connection field names even when it comes first, and the drop list', () => {
    const raw = ['X-Hop', '1', 'Keep', 'me', 'Connection', 'close, X-Hop', 'Server', 's'];
    assert.deepEqual(endToEndHeaders(raw, new Set(['server'])), ['Keep', 'me']);
  });

  it('keeps duplicate end-to-end fields in order', () => {
    const raw = ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'];
    assert.deepEqual(endToEndHeaders(raw), raw);
  });
});

describe('RFC 9110 §7.6.3 Via', () => {
  it('names the received protocol version and appends to a list', () => {
    assert.equal(viaEntry('1.0', 'px', 'cuttle/1'), '1.0 px (cuttle/1)');
    assert.equal(appendVia('1.1 a', '1.1 b'), '1.1 a, 1.1 b');
    assert.equal(appendVia(undefined, '1.1 b'), '1.1 b');
  });

  it('detects our own name as a forwarding loop, ignoring comments', () => {
    assert.equal(isForwardingLoop('1.1 other (x, me), 1.0 ME (cuttle/0.1)', 'me'), true);
    assert.equal(isForwardingLoop('1.1 other (me)', 'me'), false);
    assert.equal(isForwardingLoop(undefined, 'me'), false);
  });

  it('joins repeated fields as one list (§5.3)', () => {
    assert.equal(fieldValue(['Via', '1.1 a', 'via', '1.1 b'], 'via'), '1.1 a, 1.1 b');
  });
});

describe('RFC 9110 §7.6.2 Max-Forwards', () => {
  it('answers OPTIONS and TRACE at 0', () => {
    assert.deepEqual(maxForwards('OPTIONS', '0'), { answer: true });
    assert.deepEqual(maxForwards('TRACE', ' 0 '), { answer: true });
  });
  it('decrements for OPTIONS and TRACE', () => {
    assert.deepEqual(maxForwards('TRACE', '5'), { answer: false, forward: '4' });
  });
  it('leaves other methods and invalid values alone', () => {
    assert.deepEqual(maxForwards('GET', '0'), { answer: false, forward: '0' });
    assert.deepEqual(maxForwards('OPTIONS', 'x'), { answer: false, forward: 'x' });
    assert.deepEqual(maxForwards('OPTIONS', undefined), { answer: false, forward: undefined });
  });
});

describe('RFC 9110 §9.3.8 TRACE', () => {
  it('reflects the request but not credentials', () => {
    const body = traceBody('TRACE', '/x', '1.1', ['Host', 'h', 'Cookie', 'c=1', 'Authorization', 'x']);
    assert.equal(body, 'TRACE /x HTTP/1.1\r\nHost: h\r\n\r\n');
  });
});

describe('forwarded request header section', () => {
  it('replaces Host, appends Via and X-Forwarded-For, and drops Expect', () => {
    const out = forwardedRequestHeaders(
      ['Host', 'wrong', 'Expect', '100-continue', 'X-Forwarded-For', '10.0.0.1', 'Accept', '*/*'],
      { host: 'right:8080', via: '1.1 p', forwardedFor: '10.0.0.1, 127.0.0.1', maxForwards: undefined },
    );
    assert.deepEqual(out, [
      'Accept',
      '*/*',
      'Host',
      'right:8080',
      'Via',
      '1.1 p',
      'X-Forwarded-For',
      '10.0.0.1, 127.0.0.1',
    ]);
  });
});

describe('forwarded_for', () => {
  it('on appends, off appends unknown, transparent passes, truncate replaces, delete removes', () => {
    assert.equal(forwardedForValue('on', '10.0.0.1', '127.0.0.1'), '10.0.0.1, 127.0.0.1');
    assert.equal(forwardedForValue('on', undefined, '127.0.0.1'), '127.0.0.1');
    assert.equal(forwardedForValue('off', undefined, '127.0.0.1'), 'unknown');
    assert.equal(forwardedForValue('transparent', '10.0.0.1', '127.0.0.1'), '10.0.0.1');
    assert.equal(forwardedForValue('transparent', undefined, '127.0.0.1'), null);
    assert.equal(forwardedForValue('truncate', '10.0.0.1', '127.0.0.1'), '127.0.0.1');
    assert.equal(forwardedForValue('delete', '10.0.0.1', '127.0.0.1'), null);
  });
});
