import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientMatcher, isValidClientRule } from '../../src/access/client-rules.js';

describe('default access: Squid localhost + localnet', () => {
  const allowed = clientMatcher(['localhost', 'localnet']);
  it('serves localhost and private networks', () => {
    for (const a of [
      '127.0.0.1',
      '::1',
      '::ffff:127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '100.64.0.1',
      '169.254.1.1',
      'fd00::1',
      'fe80::1',
      '0.1.2.3',
    ]) {
      assert.equal(allowed(a), true, a);
    }
  });
  it("localhost is Squid's: 127.0.0.1 and ::1, not the rest of 127/8", () => {
    const localhost = clientMatcher(['localhost']);
    for (const a of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1'])
      assert.equal(localhost(a), true, a);
    for (const a of ['127.0.0.2', '127.9.9.9', '::ffff:127.0.0.2', '::2']) {
      assert.equal(localhost(a), false, a);
      assert.equal(allowed(a), false, `${a} is not localnet either`);
    }
  });
  it('refuses public addresses', () => {
    for (const a of ['8.8.8.8', '172.32.0.1', '2001:db8::1', '::ffff:1.1.1.1', undefined, 'garbage']) {
      assert.equal(allowed(a), false, String(a));
    }
  });
  it('opens up with all, addresses and CIDRs', () => {
    assert.equal(clientMatcher(['all'])('8.8.8.8'), true);
    assert.equal(clientMatcher(['8.8.0.0/16'])('8.8.4.4'), true);
    assert.equal(clientMatcher(['8.8.0.0/16'])('127.0.0.1'), false);
    assert.equal(clientMatcher(['2001:db8::/32'])('2001:db8::1'), true);
    assert.equal(isValidClientRule('10.0.0.0/33'), false);
  });
});
