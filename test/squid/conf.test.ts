import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { parseSquidConf } from '../../src/squid/conf.js';

const fixture = (name: string) =>
  fileURLToPath(new URL(`../../../test/fixtures/squid/${name}`, import.meta.url));
const conf = (text: string) => {
  const dir = mkdtempSync(join(tmpdir(), 'cuttle-squidconf-'));
  const file = join(dir, 'squid.conf');
  writeFileSync(file, text);
  return file;
};

describe('squid.conf reading', () => {
  it("reads Debian's stock directives, its conf.d include glob, continuations and quoted ACL files", () => {
    const d = parseSquidConf(fixture('stock.conf'));
    const acl = (n: string) => d.squid.acls.find((a) => a.name === n);
    assert.deepEqual(acl('SSL_ports')?.values, ['443']);
    assert.equal(acl('Safe_ports')?.values.length, 10);
    assert.equal(acl('localnet')?.values.length, 8, 'trailing # comments are not values');
    assert.deepEqual(
      acl('blocked')?.values,
      ['.blocked.test', 'exact.test'],
      'values read from the quoted file',
    );
    assert.deepEqual(
      d.squid.httpAccess.map((r) => `${r.allow ? 'allow' : 'deny'} ${r.acls.join(' ')}`),
      [
        'deny !Safe_ports',
        'deny CONNECT !SSL_ports',
        'allow localhost manager',
        'deny manager',
        'deny blocked',
        'allow localhost',
        'deny all',
      ],
      'the included file lands where the include line is, and a continued line is one directive',
    );
    assert.equal(d.port, 3128);
    assert.equal(d.logfileRotate, 0, "Debian's conf.d/debian.conf sets logfile_rotate 0");
    assert.match(d.squid.ignored.join('\n'), /coredump_dir \(.*stock\.conf:\d+\)/);
    assert.equal(d.squid.refreshPatterns.length, 4);
  });

  it('maps http_port accel with cache_peer originserver to reverse-proxy mode', () => {
    const d = parseSquidConf(
      conf(`http_port 127.0.0.1:8080 accel defaultsite=www.example.test no-vhost
cache_peer 127.0.0.1 parent 8081 0 no-query originserver name=origin
cache_dir ufs /var/spool/cuttle-test 2048 16 256
maximum_object_size 8 MB
minimum_object_size 2 KB
workers 3
visible_hostname edge1
connect_timeout 5 seconds
shutdown_lifetime 1 minute
max_stale 2 weeks
http_access allow all
`),
    );
    assert.equal(d.origin, 'http://127.0.0.1:8081');
    assert.equal(d.host, '127.0.0.1');
    assert.equal(d.port, 8080);
    assert.equal(d.cacheDir, '/var/spool/cuttle-test');
    assert.equal(d.cacheSize, 2048 * 1024 ** 2);
    assert.equal(d.maxObjectSize, 8 * 1024 ** 2);
    assert.equal(d.minObjectSize, 2048);
    assert.equal(d.workers, 3);
    assert.equal(d.visibleHostname, 'edge1');
    assert.deepEqual(d.timeouts, { connect: 5000, shutdown: 60_000 });
    assert.equal(d.maxStale, 14 * 86_400_000);
  });

  it('names file and line for a malformed supported directive', () => {
    const file = conf('acl ok src 10.0.0.0/8\nacl bad port eighty\n');
    assert.throws(
      () => parseSquidConf(file),
      (e: Error) => e instanceof ConfigError && e.message.includes(`${file}:2`),
    );
    assert.throws(
      () => parseSquidConf(conf('http_access allow nosuchacl\n')),
      /ACL "nosuchacl" is not defined/,
    );
    assert.throws(() => parseSquidConf(conf('acl x src 300.1.1.1\n')), /not an address/);
    assert.throws(
      () => parseSquidConf(conf('acl x arp 00:11:22:33:44:55\n')),
      /ACL type "arp" is not supported/,
    );
    assert.throws(() => parseSquidConf(conf('include /nonexistent/squid.conf\n')), /cannot read/);
  });

  it('is loaded by --squid-conf, with flags taking precedence, and -k parse needs it', () => {
    const r = loadConfig(['--squid-conf', fixture('stock.conf'), '--port', '0', '-k', 'parse']);
    assert.equal(r.command, 'parse');
    assert.equal(r.config.port, 0);
    assert.equal(r.config.squid?.httpAccess.length, 7);
    assert.throws(() => loadConfig(['-k', 'parse']), /needs --squid-conf/);
  });
});
