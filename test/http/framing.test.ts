import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closesConnection } from '../../src/http/errors.js';
import { framingError, hostError, versionError } from '../../src/http/framing.js';

const status = (e: { status: number } | null) => e?.status ?? null;

describe('request framing (RFC 9112 §6)', () => {
  it('accepts one Content-Length, or Transfer-Encoding that is exactly chunked', () => {
    assert.equal(framingError(['Content-Length', '4']), null);
    assert.equal(framingError([]), null);
    for (const te of ['chunked', 'Chunked', ' CHUNKED ', ',chunked', 'chunked,'])
      assert.equal(framingError(['Transfer-Encoding', te]), null, te);
    assert.equal(framingError(['Transfer-Encoding', 'chunked', 'transfer-encoding', '']), null);
  });

  it('rejects Content-Length with Transfer-Encoding, whatever the coding (§6.1)', () => {
    assert.equal(status(framingError(['Content-Length', '4', 'Transfer-Encoding', 'chunked'])), 400);
    assert.equal(status(framingError(['Transfer-Encoding', '', 'Content-Length', '4'])), 400);
  });

  it('rejects more than one Content-Length, even equal ones (RFC 9110 §8.6)', () => {
    assert.equal(status(framingError(['Content-Length', '4', 'content-length', '4'])), 400);
  });

  it('answers 400 when chunked is not last or repeated, 501 for another coding', () => {
    assert.equal(status(framingError(['Transfer-Encoding', 'chunked, identity'])), 400);
    assert.equal(status(framingError(['Transfer-Encoding', 'xchunked'])), 400);
    assert.equal(status(framingError(['Transfer-Encoding', 'chunked, chunked'])), 400);
    assert.equal(status(framingError(['Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'])), 400);
    assert.equal(status(framingError(['Transfer-Encoding', ''])), 400);
    const gzip = framingError(['Transfer-Encoding', 'gzip, chunked']);
    assert.equal(status(gzip), 501);
    assert.equal(gzip?.squidError, 'ERR_UNSUP_REQ');
    assert.equal(
      status(framingError(['Transfer-Encoding', 'identity', 'Transfer-Encoding', 'chunked'])),
      501,
    );
  });
});

describe('Host (RFC 9112 §3.2) and version (§2.3)', () => {
  it('needs exactly one valid Host on HTTP/1.1', () => {
    assert.equal(hostError(['Host', 'example.com'], 1), null);
    assert.equal(hostError(['Host', '[::1]:8080'], 1), null);
    assert.equal(hostError(['Host', ''], 1), null);
    assert.equal(hostError([], 0), null, 'HTTP/1.0 may leave it out');
    assert.equal(status(hostError([], 1)), 400);
    assert.equal(status(hostError(['Host', 'a', 'host', 'a'], 1)), 400);
    for (const bad of ['a b', 'a, b', 'a/x', 'user@a', 'a:99999'])
      assert.equal(status(hostError(['Host', bad], 1)), 400, bad);
  });

  it('answers 505 to anything but HTTP/1.x', () => {
    assert.equal(versionError(1, 1), null);
    assert.equal(versionError(1, 0), null);
    assert.equal(status(versionError(2, 0)), 505);
    assert.equal(status(versionError(0, 9)), 505);
  });

  it('closes the connection after errors for malformed requests, not after a denial', () => {
    assert.equal(
      closesConnection(
        framingError(['Transfer-Encoding', 'x']) as NonNullable<ReturnType<typeof framingError>>,
      ),
      true,
    );
    assert.equal(closesConnection({ status: 403 } as Parameters<typeof closesConnection>[0]), false);
  });
});
