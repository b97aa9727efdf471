import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RequestFacts } from '../../src/access/access.js';
import { compileAccess, compileAcl } from '../../src/squid/acl.js';
import { type AccessRule, type AclDef, BUILTIN_ACLS } from '../../src/squid/conf.js';

const ctx = (over: Partial<RequestFacts> = {}): RequestFacts => ({
  src: '127.0.0.1',
  host: 'www.example.test',
  port: 80,
  method: 'GET',
  proto: 'HTTP',
  url: 'http://www.example.test/a?b=1',
  path: '/a?b=1',
  userAgent: 'curl/8',
  user: null,
  now: new Date(2026, 10, 24, 10, 30), // a Tuesday
  ...over,
});
const acl = (name: string, type: AclDef['type'], values: string[], ignoreCase = false): AclDef => ({
  name,
  type,
  values,
  ignoreCase,
});
const rule = (line: string, n: number): AccessRule => {
  const [action, ...acls] = line.split(' ');
  return { allow: action === 'allow', acls, where: `t:${n}` };
};

// Two ACLs whose truth the table controls through the client address and the port.
const A = acl('A', 'src', ['10.0.0.1', '10.0.0.3']);
const B = acl('B', 'port', ['8080']);
const contexts = {
  'A B': ctx({ src: '10.0.0.1', port: 8080 }),
  'A !B': ctx({ src: '10.0.0.3', port: 80 }),
  '!A B': ctx({ src: '10.0.0.2', port: 8080 }),
  '!A !B': ctx({ src: '10.0.0.2', port: 80 }),
};
type Truth = keyof typeof contexts;

/** Expected outcome by Squid's rules, written out independently of the implementation. */
function expected(lines: string[], truth: Truth): boolean {
  const holds = (name: string) => {
    const neg = name.startsWith('!');
    const base = neg ? name.slice(1) : name;
    const v = base === 'all' ? true : truth.split(' ').includes(base);
    return neg ? !v : v;
  };
  for (const l of lines) {
    const [action, ...names] = l.split(' ');
    if (names.every(holds)) return action === 'allow';
  }
  if (lines.length === 0) return false;
  return !lines[lines.length - 1].startsWith('allow');
}

describe('http_access (squid-cache/squid cf.data.pre)', () => {
  const terms = ['A', '!A', 'B', '!B', 'A B', 'A !B', '!A B', 'all'];
  const lineSets: string[][] = [[]];
  for (const a of ['allow', 'deny'])
    for (const t of terms) {
      lineSets.push([`${a} ${t}`]);
      for (const a2 of ['allow', 'deny']) for (const t2 of terms) lineSets.push([`${a} ${t}`, `${a2} ${t2}`]);
    }

  it(`decides every one of ${lineSets.length} rule lists × 4 ACL truth values as Squid does`, () => {
    let checked = 0;
    for (const lines of lineSets) {
      const access = compileAccess([...BUILTIN_ACLS, A, B], lines.map(rule));
      for (const [truth, c] of Object.entries(contexts) as [Truth, RequestFacts][]) {
        assert.equal(access.check(c).allow, expected(lines, truth), `${JSON.stringify(lines)} with ${truth}`);
        checked++;
      }
    }
    assert.equal(checked, lineSets.length * 4);
  });

  it('the first matching line wins; no match takes the opposite of the last line; none at all denies', () => {
    const access = (lines: string[]) => compileAccess([...BUILTIN_ACLS, A, B], lines.map(rule));
    assert.deepEqual(access(['deny A', 'allow A']).check(contexts['A B']), {
      allow: false,
      rule: 't:0',
      acl: 'A',
    });
    assert.equal(access(['allow A']).check(contexts['!A B']).allow, false, 'last line allow → deny');
    assert.equal(access(['deny A']).check(contexts['!A B']).allow, true, 'last line deny → allow');
    assert.equal(access([]).check(contexts['A B']).allow, false);
  });
});

describe('ACL types', () => {
  const m = (def: AclDef, c: Partial<RequestFacts>) => compileAcl(def)(ctx(c));

  it('src: addresses, CIDR, netmask and ranges, IPv6, IPv4-mapped clients', () => {
    const d = acl('x', 'src', [
      '10.0.0.0/8',
      '192.168.1.0/255.255.255.0',
      '172.16.0.5-172.16.0.9',
      'fc00::/7',
    ]);
    assert.equal(m(d, { src: '10.9.8.7' }), true);
    assert.equal(m(d, { src: '192.168.1.77' }), true);
    assert.equal(m(d, { src: '172.16.0.7' }), true);
    assert.equal(m(d, { src: '172.16.0.10' }), false);
    assert.equal(m(d, { src: 'fd00::1' }), true);
    assert.equal(m(d, { src: '::ffff:10.1.2.3' }), true);
    assert.equal(m(d, { src: '11.0.0.1' }), false);
  });

  it('dst compares address literals; to_localhost is built in', () => {
    const toLocal = BUILTIN_ACLS.find((a) => a.name === 'to_localhost') as AclDef;
    assert.equal(m(toLocal, { host: '127.0.0.5' }), true);
    assert.equal(m(toLocal, { host: '[::1]' }), true);
    assert.equal(m(toLocal, { host: 'example.test' }), false);
  });

  it('dstdomain: a leading dot covers the domain and its subdomains, case-insensitively', () => {
    const d = acl('x', 'dstdomain', ['.Example.test', 'exact.test']);
    assert.equal(m(d, { host: 'example.test' }), true);
    assert.equal(m(d, { host: 'a.b.EXAMPLE.test' }), true);
    assert.equal(m(d, { host: 'notexample.test' }), false);
    assert.equal(m(d, { host: 'exact.test' }), true);
    assert.equal(m(d, { host: 'sub.exact.test' }), false);
  });

  it('port ranges, method, proto', () => {
    assert.equal(m(acl('x', 'port', ['1025-65535']), { port: 8080 }), true);
    assert.equal(m(acl('x', 'port', ['1025-65535']), { port: 25 }), false);
    assert.equal(m(acl('x', 'method', ['PURGE']), { method: 'PURGE' }), true);
    assert.equal(m(acl('x', 'method', ['PURGE']), { method: 'GET' }), false);
    assert.equal(m(acl('x', 'proto', ['http']), { proto: 'HTTP' }), true);
  });

  it('url_regex, urlpath_regex and browser, with -i', () => {
    assert.equal(m(acl('x', 'url_regex', ['^http://www\\.example']), {}), true);
    assert.equal(m(acl('x', 'urlpath_regex', ['\\.(jpg|png)$'], true), { path: '/A.PNG' }), true);
    assert.equal(m(acl('x', 'urlpath_regex', ['\\.(jpg|png)$']), { path: '/A.PNG' }), false);
    assert.equal(m(acl('x', 'browser', ['^Mozilla']), { userAgent: 'Mozilla/5.0' }), true);
    assert.equal(m(acl('x', 'browser', ['^Mozilla']), { userAgent: 'curl/8' }), false);
  });

  it('time: day letters and a time span', () => {
    const d = acl('x', 'time', ['MTWHF', '09:00-17:00']);
    assert.equal(m(d, { now: new Date(2026, 10, 24, 10, 30) }), true);
    assert.equal(m(d, { now: new Date(2026, 10, 24, 18, 0) }), false);
    assert.equal(m(d, { now: new Date(2026, 10, 22, 10, 0) }), false, 'a Sunday');
  });

  it('proxy_auth: REQUIRED matches any authenticated user, a list only those users', () => {
    assert.equal(m(acl('x', 'proxy_auth', ['REQUIRED']), { user: 'ann' }), true);
    assert.equal(m(acl('x', 'proxy_auth', ['REQUIRED']), { user: null }), false);
    assert.equal(m(acl('x', 'proxy_auth', ['bob']), { user: 'ann' }), false);
  });
});
