import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { fleetName } from '../../src/fleet/peers.js';
import { parseSquidConf } from '../../src/squid/conf.js';
import { parseReport } from '../../src/squid/parse-report.js';

const dir = mkdtempSync(join(tmpdir(), 'cuttle-peers-'));
let n = 0;
function file(text: string, ext = 'conf'): string {
  const p = join(dir, `f${n++}.${ext}`);
  writeFileSync(p, text);
  return p;
}

describe('cache peers in squid.conf', () => {
  it('reads cache_peer HOSTNAME TYPE HTTP-PORT ICP-PORT with the options cuttle applies', () => {
    const d = parseSquidConf(
      file(`acl local src 127.0.0.1
acl api urlpath_regex ^/api/
cache_peer 10.0.0.1 parent 3128 0 carp weight=2 name=a no-query proxy-only login=PASS connect-timeout=2 connect-fail-limit=4 monitorurl=http://10.0.0.1:3128/ok monitorinterval=5 round-robin
cache_peer 10.0.0.2 parent 3128 3130 carp name=b
cache_peer 10.0.0.3 sibling 3128 3130 default
cache_peer_access a deny api
cache_peer_access a allow all
never_direct allow all
always_direct allow local api
prefer_direct on
nonhierarchical_direct off
`),
    );
    const [a, b, s] = d.peers ?? [];
    assert.deepEqual(
      { ...a },
      {
        host: '10.0.0.1',
        port: 3128,
        type: 'parent',
        name: 'a',
        carp: true,
        weight: 2,
        default: false,
        noQuery: true,
        proxyOnly: true,
        loginPass: true,
        connectTimeout: 2000,
        connectFailLimit: 4,
        monitorUrl: 'http://10.0.0.1:3128/ok',
        monitorInterval: 5000,
        self: false,
      },
    );
    assert.equal(b.name, 'b');
    assert.equal(b.connectFailLimit, 10, "Squid's default connect-fail-limit");
    assert.equal(s.type, 'sibling');
    assert.equal(s.name, '10.0.0.3', 'the name defaults to the host');
    assert.equal(s.default, true);
    const r = d.squid.routing;
    assert.deepEqual(
      r.peerAccess.a.map((x) => `${x.allow ? 'allow' : 'deny'} ${x.acls.join(' ')}`),
      ['deny api', 'allow all'],
    );
    assert.equal(r.neverDirect.length, 1);
    assert.deepEqual(r.alwaysDirect[0].acls, ['local', 'api']);
    assert.equal(r.preferDirect, true);
    assert.equal(r.nonhierarchicalDirect, false);
    assert.match(d.squid.ignored.join('\n'), /cache_peer option round-robin/);
  });

  it('keeps an originserver peer as the accel origin, not a routing peer', () => {
    const d = parseSquidConf(
      file('http_port 8080 accel defaultsite=a.test\ncache_peer 127.0.0.1 parent 8081 0 originserver\n'),
    );
    assert.equal(d.origin, 'http://127.0.0.1:8081');
    assert.equal(d.peers, undefined);
  });

  it('refuses malformed lines, naming file and line', () => {
    const bad = (text: string, why: RegExp) =>
      assert.throws(
        () => parseSquidConf(file(text)),
        (e: Error) => e instanceof ConfigError && /:1: /.test(e.message) && why.test(e.message),
      );
    bad('cache_peer 10.0.0.1 3128 0 parent\n', /expected: cache_peer HOSTNAME TYPE HTTP-PORT ICP-PORT/);
    bad('cache_peer 10.0.0.1 multicast 3128 0\n', /type "multicast" is not supported/);
    bad('cache_peer 10.0.0.1 parent 3128 0 weight=0\n', /weight: expected a whole number of 1 or more/);
    bad('cache_peer_access nobody allow all\n', /no cache_peer named "nobody"/);
    bad('never_direct allow undefinedacl\n', /ACL "undefinedacl" is not defined/);
    bad('prefer_direct maybe\n', /expected on or off/);
    assert.throws(
      () => parseSquidConf(file('cache_peer 10.0.0.1 parent 3128 0\ncache_peer 10.0.0.1 parent 3129 0\n')),
      /named "10.0.0.1" is defined twice \(give each a distinct name=\)/,
    );
  });

  it('recognises this member in the list by its port and a local address, and names Via after it', () => {
    const conf = file(`http_port 127.0.0.1:4001
cache_peer 127.0.0.1 parent 4001 0 carp name=m1
cache_peer 127.0.0.1 parent 4002 0 carp name=m2
http_access allow all
`);
    const c = loadConfig(['--squid-conf', conf]).config;
    assert.deepEqual(
      c.peers.map((p) => p.self),
      [true, false],
    );
    assert.equal(fleetName(c.peers, c.visibleHostname), 'm1');
    assert.match(
      parseReport(c),
      /\ncache peers: m1 \(this member, carp\), m2 \(parent, carp\)\n/,
      '-k parse',
    );
  });
});

describe('cache peers in the JSON config and flags', () => {
  it('reads peers: [{host, port, type, carp, weight, name}] with defaults', () => {
    const c = loadConfig([
      '--config',
      file(
        JSON.stringify({
          port: 5000,
          peers: [
            { host: '127.0.0.1', port: 5000, carp: true },
            { host: '127.0.0.1', port: 5001, carp: true, weight: 2, connectTimeout: '2s' },
            { host: 'cache3.test', port: 3128, type: 'sibling', name: 'c3' },
          ],
        }),
        'json',
      ),
    ]).config;
    assert.deepEqual(
      c.peers.map((p) => [p.name, p.type, p.carp, p.weight, p.self, p.connectTimeout]),
      [
        ['127.0.0.1:5000', 'parent', true, 1, true, null],
        ['127.0.0.1:5001', 'parent', true, 2, false, 2000],
        ['c3', 'sibling', false, 1, false, null],
      ],
    );
  });

  it('refuses bad peers with a clear error', () => {
    const bad = (peers: unknown, why: RegExp) =>
      assert.throws(() => loadConfig(['--config', file(JSON.stringify({ peers }), 'json')]), why);
    bad({}, /peers: expected a list/);
    bad([{ port: 1 }], /peers\[0\]\.host: expected a host name/);
    bad([{ host: 'a', port: 70000 }], /peers\[0\]\.port: expected a whole number from 1 to 65535/);
    bad([{ host: 'a', port: 1, type: 'child' }], /peers\[0\]\.type: expected parent or sibling/);
    bad([{ host: 'a', port: 1, weight: 0 }], /peers\[0\]\.weight/);
    bad([{ host: 'a', port: 1, colour: 'red' }], /peers\[0\]\.colour: unknown setting/);
    bad(
      [
        { host: 'a', port: 1 },
        { host: 'a', port: 1 },
      ],
      /two peers are named "a:1"/,
    );
  });

  it('--peer URL is repeatable: CARP parents named host:port; --peer-cache-copy', () => {
    const c = loadConfig([
      '--port',
      '6001',
      '--origin',
      'http://127.0.0.1:6000',
      '--peer',
      'http://127.0.0.1:6001',
      '--peer',
      'http://localhost:6002',
      '--peer-cache-copy',
    ]).config;
    assert.deepEqual(
      c.peers.map((p) => [p.name, p.host, p.port, p.carp, p.self]),
      [
        ['127.0.0.1:6001', '127.0.0.1', 6001, true, true],
        ['localhost:6002', 'localhost', 6002, true, false],
      ],
    );
    assert.equal(c.peerCacheCopy, true);
    assert.throws(() => loadConfig(['--peer', 'ftp://x:1']), /--peer: "ftp:\/\/x:1": only http:\/\/ peers/);
    assert.throws(() => loadConfig(['--peer', 'nonsense']), /--peer: "nonsense" is not a URL/);
  });
});
