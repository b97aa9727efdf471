/**
 * The HTTPS settings: flags, the JSON config's tls.certificates, squid.conf's https_port, and the
 * certificates' checks and names (pure SNI choice included).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { parseSquidConf } from '../../src/squid/conf.js';
import { loadTlsMaterial } from '../../src/tls/certificates.js';
import { certificateFor } from '../../src/tls/sni.js';
import { certFiles, TLS_DIR } from '../helpers/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'cuttle-tlsconf-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const a = certFiles('a.example.test');
const b = certFiles('b.example.test');
const edge = ['--origin', 'http://127.0.0.1:8080'];
/** An edge with an HTTPS port and the flags' certificate. */
const httpsWith = (cert: string, key: string) => [
  ...edge,
  '--https-port',
  '0',
  '--tls-cert',
  cert,
  '--tls-key',
  key,
];

describe('HTTPS settings', () => {
  it('takes --https-port with --tls-cert and --tls-key, the flags certificate first', () => {
    const cfg = file(
      'c.json',
      JSON.stringify({ tls: { certificates: [{ ...b, servernames: ['b.example.test'] }] } }),
    );
    const c = loadConfig([
      ...edge,
      '--https-port',
      '8443',
      '--tls-cert',
      a.cert,
      '--tls-key',
      a.key,
      '-c',
      cfg,
    ]).config;
    assert.equal(c.httpsPort, 8443);
    assert.deepEqual(
      c.tls.certificates.map((x) => x.cert),
      [a.cert, b.cert],
    );
    assert.equal(c.h2MaxStreams, 100);
    const d = loadConfig([
      ...httpsWith(a.cert, a.key),
      '--h2-max-streams',
      '8',
      '--h2-max-resets',
      '50',
    ]).config;
    assert.equal(d.h2MaxStreams, 8);
    assert.equal(d.h2MaxResets, 50);
  });

  it('refuses what cannot work, with one line naming it', () => {
    const refuse = (args: string[], re: RegExp) => assert.throws(() => loadConfig(args), re);
    refuse(['--https-port', '8443', '--tls-cert', a.cert, '--tls-key', a.key], /httpsPort: needs an origin/);
    refuse([...edge, '--https-port', '8443'], /httpsPort: needs a certificate/);
    refuse([...edge, '--https-port', '8443', '--tls-cert', a.cert], /--tls-cert and --tls-key go together/);
    refuse([...edge, '--tls-cert', a.cert, '--tls-key', a.key], /tls: certificates need an HTTPS port/);
    refuse(
      [...edge, '--port', '8443', '--https-port', '8443', '--tls-cert', a.cert, '--tls-key', a.key],
      /must differ/,
    );
    refuse(
      [
        ...edge,
        '--https-port',
        '1',
        '-c',
        file('bad.json', JSON.stringify({ tls: { certificates: [{ cert: 'x' }] } })),
      ],
      /tls\.certificates\[0\]\.key: expected a PEM file/,
    );
    refuse(
      [
        ...edge,
        '--https-port',
        '1',
        '-c',
        file('bad2.json', JSON.stringify({ tls: { certificates: [{ ...a, servernames: ['a b'] }] } })),
      ],
      /servernames: "a b" is not a host name/,
    );
    refuse([...edge, '--origin-insecure'], /originInsecure: applies to an https:\/\/ origin only/);
  });

  it('reads squid.conf https_port in accel mode', () => {
    const conf = file(
      'squid.conf',
      `https_port 127.0.0.1:8443 accel defaultsite=www.example.test cert=${a.cert} key=${a.key}\ncache_peer 127.0.0.1 parent 8080 0 originserver\n`,
    );
    const d = parseSquidConf(conf);
    assert.equal(d.httpsPort, 8443);
    assert.equal(d.port, 0, 'https_port alone: HTTPS is the only listener');
    assert.deepEqual(d.tls, { certificates: [{ cert: a.cert, key: a.key }] });
    const c = loadConfig(['--squid-conf', conf]).config;
    assert.equal(c.httpsPort, 8443);
    assert.equal(c.origin, 'http://127.0.0.1:8080');
    assert.throws(
      () => parseSquidConf(file('s2.conf', `https_port 8443 cert=${a.cert}\n`)),
      /only accel mode is supported \(cuttle does not intercept TLS\)/,
    );
    assert.throws(
      () => parseSquidConf(file('s3.conf', 'https_port 8443 accel defaultsite=x\n')),
      /needs cert=FILE/,
    );
  });

  it('checks each certificate with its key, and names it by its subjectAltName', () => {
    const c = loadConfig([
      ...edge,
      '--https-port',
      '0',
      '-c',
      file('ab.json', JSON.stringify({ tls: { certificates: [b, { ...a, servernames: ['www.a.test'] }] } })),
    ]).config;
    const m = loadTlsMaterial(c, 'keys');
    assert.deepEqual(m.certificates[0].names, ['b.example.test', '*.b.example.test']);
    assert.deepEqual(m.certificates[1].names, ['www.a.test']);
    assert.equal(m.defaultIndex, 0, 'the first without servernames');
    const mismatched = loadConfig(httpsWith(a.cert, b.key)).config;
    assert.throws(
      () => loadTlsMaterial(mismatched, 'keys'),
      /a\.example\.test\.pem with .*b\.example\.test\.key: .*/,
    );
    const missing = loadConfig(httpsWith(`${TLS_DIR}none.pem`, a.key)).config;
    assert.throws(
      () => loadTlsMaterial(missing, 'keys'),
      /cannot read the certificate file .*none\.pem: ENOENT/,
    );
  });

  it('chooses by SNI: exact name, then a one-label wildcard, else the default (RFC 6125 §6.4.3)', () => {
    const names = [['a.test'], ['b.test', '*.b.test']];
    assert.equal(certificateFor('a.test', names, 0), 0);
    assert.equal(certificateFor('B.TEST.', names, 0), 1);
    assert.equal(certificateFor('www.b.test', names, 0), 1);
    assert.equal(certificateFor('x.www.b.test', names, 0), 0);
    assert.equal(certificateFor(undefined, names, 1), 1);
    assert.equal(certificateFor('other', names, 1), 1);
  });
});
