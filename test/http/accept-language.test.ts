/** Accept-Language for a cache (RFC 9110 §12.5.4, RFC 4647 §3.3.1): a table of cases. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  languagePreference,
  normalizeAcceptLanguage,
  parseAcceptLanguage,
  topPreference,
} from '../../src/http/accept-language.js';

describe('Accept-Language (RFC 9110 §12.5.4)', () => {
  it('normalises equal preferences to one form: case, spaces, weights, order by weight', () => {
    const same: Array<[string, string]> = [
      ['en-US, fr;q=0.5', 'EN-us,FR;Q=0.5'],
      ['en-US, fr;q=0.5', 'fr;q=0.50 ,  en-us'],
      ['en;q=1.0, de', 'de, en'],
      ['da, en-gb;q=0.8, en;q=0.7', 'en;q=0.7, en-GB;q=0.8, da'],
    ];
    for (const [a, b] of same)
      assert.equal(normalizeAcceptLanguage(a), normalizeAcceptLanguage(b), `${a} ~ ${b}`);
    const different: Array<[string, string]> = [
      ['en, fr;q=0.5', 'fr, en;q=0.5'],
      ['en', 'en-us'],
      ['en;q=0.9', 'en'],
    ];
    for (const [a, b] of different)
      assert.notEqual(normalizeAcceptLanguage(a), normalizeAcceptLanguage(b), `${a} vs ${b}`);
    assert.equal(normalizeAcceptLanguage('fr;q=0.5, EN-us, *;q=0'), 'en-us,fr;q=0.5,*;q=0');
    assert.equal(normalizeAcceptLanguage('en;q=2, fr'), 'fr', 'an invalid weight drops its member');
  });

  it('weighs a Content-Language by the most specific matching range (RFC 4647 §3.3.1)', () => {
    const r = parseAcceptLanguage('en-US, en;q=0.8, fr;q=0.5, *;q=0.1');
    const cases: Array<[string | undefined, number]> = [
      ['en-US', 1],
      ['en-us', 1],
      ['en', 0.8],
      ['en-GB', 0.8],
      ['fr-CA', 0.5],
      ['de', 0.1],
      ['de, fr', 0.5],
      [undefined, 0],
    ];
    for (const [tag, q] of cases) assert.equal(languagePreference(r, tag), q, String(tag));
    assert.equal(languagePreference(parseAcceptLanguage('fr'), 'en'), 0);
    assert.equal(topPreference(r), 1);
    assert.equal(topPreference(parseAcceptLanguage('')), 0);
  });
});
