/** The body of POST /cuttle-internal/purge: what it asks for, or a clear sentence. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePurgeRequest } from '../../src/cache/purge-request.js';

describe('purge request bodies', () => {
  it('turns URLs into cache keys and keeps tags and soft', () => {
    assert.deepEqual(
      parsePurgeRequest('{"urls": ["http://Example.test:80/a?b=1", "https://x.test:8443/"]}'),
      {
        urls: ['http://example.test/a?b=1', 'https://x.test:8443/'],
        tags: [],
        soft: false,
      },
    );
    assert.deepEqual(parsePurgeRequest('{"tags": ["t1", "t2"], "soft": true}'), {
      urls: [],
      tags: ['t1', 't2'],
      soft: true,
    });
  });

  it('names what is wrong', () => {
    const cases: Array<[string, RegExp]> = [
      ['not json', /not JSON/],
      ['[]', /JSON object/],
      ['{}', /nothing to purge/],
      ['{"urls": "http://a/"}', /"urls" must be a list/],
      ['{"tags": [1]}', /"tags" must be a list/],
      ['{"tags": ["a"], "soft": "yes"}', /"soft"/],
      ['{"urls": ["/relative"]}', /not an absolute URL/],
      ['{"urls": ["ftp://a/"]}', /not an http\(s\) URL/],
    ];
    for (const [body, why] of cases) assert.match(String(parsePurgeRequest(body)), why, body);
  });
});
