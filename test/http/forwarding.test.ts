import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  appendVia,
  endToEndHeaders,
  fieldValue,
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

describe('RFC 9110 §14 ranges', () => {
  it('parses one byte range, suffixes and open ends; ignores what it may ignore', async () => {
    const { parseRange } = await import('../../src/http/forwarding.js');
    assert.deepEqual(parseRange('bytes=0-99', 1000), { start: 0, end: 99 });
    assert.deepEqual(parseRange('bytes=900-', 1000), { start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=-100', 1000), { start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=990-5000', 1000), { start: 990, end: 999 });
    assert.equal(parseRange('bytes=1000-', 1000), 'unsatisfiable');
    assert.equal(parseRange('bytes=0-1,5-6', 1000), null);
    assert.equal(parseRange('items=0-1', 1000), null);
    assert.equal(parseRange('bytes=5-1', 1000), null);
  });

  it('honours If-Range only for a strong ETag or the exact Last-Modified (§13.1.5)', async () => {
    const { ifRangeAllows } = await import('../../src/http/forwarding.js');
    assert.equal(ifRangeAllows(undefined, undefined, undefined), true);
    assert.equal(ifRangeAllows('"a"', '"a"', undefined), true);
    assert.equal(ifRangeAllows('"a"', 'W/"a"', undefined), false);
    assert.equal(
      ifRangeAllows('Mon, 01 Jan 2024 00:00:00 GMT', undefined, 'Mon, 01 Jan 2024 00:00:00 GMT'),
      true,
    );
    assert.equal(
      ifRangeAllows('Tue, 02 Jan 2024 00:00:00 GMT', undefined, 'Mon, 01 Jan 2024 00:00:00 GMT'),
      false,
    );
  });
});
