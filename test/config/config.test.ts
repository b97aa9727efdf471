import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, DEFAULTS, FLAGS, loadConfig } from '../../src/config/config.js';
import { parseDuration, parseSize } from '../../src/config/units.js';
import { CLI } from '../helpers/cuttle.js';

const dir = mkdtempSync(join(tmpdir(), 'cuttle-config-'));
function file(name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}
function runCli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 10_000 });
}

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig([]).config;
    assert.equal(c.port, 3128);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.workers, DEFAULTS.workers);
    assert.match(c.cacheDir, /\.cuttle-cache$/);
    assert.equal(c.origin, null);
    assert.deepEqual(c.allow, ['localhost', 'localnet']);
    assert.deepEqual(c.connectPorts, [443]);
  });

  it('parses every flag', () => {
    const c = loadConfig([
      '--port',
      '8080',
      '--host',
      '0.0.0.0',
      '--workers',
      '3',
      '--cache-dir',
      '/tmp/x',
      '--origin',
      'http://127.0.0.1:9000',
      '--log-level',
      'warn',
      '--allow',
      '10.0.0.0/8,localhost',
      '--allow',
      'all',
      '--log-format',
      'pretty',
      '--metrics-port',
      '9101',
    ]).config;
    assert.deepEqual(
      [c.port, c.host, c.workers, c.cacheDir, c.origin, c.logLevel, c.allow, c.logFormat, c.metricsPort],
      [
        8080,
        '0.0.0.0',
        3,
        '/tmp/x',
        'http://127.0.0.1:9000',
        'warn',
        ['10.0.0.0/8', 'localhost', 'all'],
        'pretty',
        9101,
      ],
    );
    assert.equal(loadConfig(['--metrics', 'off']).config.metrics, false);
    assert.equal(loadConfig([]).config.metrics, true);
  });

  it('lets flags override the config file, which overrides defaults', () => {
    const f = file(
      'a.json',
      JSON.stringify({ port: 9999, workers: 4, connectPorts: [443, 8443], timeouts: { connect: '5s' } }),
    );
    const c = loadConfig(['--config', f, '--port', '1234']).config;
    assert.equal(c.port, 1234);
    assert.equal(c.workers, 4);
    assert.deepEqual(c.connectPorts, [443, 8443]);
    assert.equal(c.timeouts.connect, 5000);
    assert.equal(c.timeouts.shutdown, DEFAULTS.timeouts.shutdown);
  });

  it('rejects bad values with a message naming the setting', () => {
    const bad: Array<[string[], RegExp]> = [
      [['--port', '70000'], /port/],
      [['--workers', '0'], /workers/],
      [['--origin', 'ftp://x'], /origin/],
      [['--origin', 'http://x/path'], /origin/],
      [['--allow', '300.1.1.1'], /allow/],
      [['--log-level', 'loud'], /logLevel/],
      [['--log-format', 'xml'], /logFormat/],
      [['--metrics', 'maybe'], /metrics/],
      [['--metrics-port', 'x'], /metricsPort/],
      [['--metrics', 'off', '--metrics-port', '9101'], /metricsPort: needs metrics on/],
      [['--bogus'], /bogus/],
      [['--config', file('b.json', '{"nope": 1}')], /nope: unknown setting/],
      [['--config', file('c.json', '{not json')], /not valid JSON/],
      [['--config', file('d.json', '{"timeouts": {"connect": "soon"}}')], /timeouts.connect/],
      [['--config', join(dir, 'missing.json')], /cannot read/],
    ];
    for (const [args, re] of bad)
      assert.throws(
        () => loadConfig(args),
        (e: Error) => e instanceof ConfigError && re.test(e.message),
        args.join(' '),
      );
  });

  it('parses sizes and durations with units', () => {
    assert.equal(parseSize('64k'), 65536);
    assert.equal(parseSize('1g'), 1024 ** 3);
    assert.equal(parseSize('2MB'), 2 * 1024 ** 2);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration(250), 250);
    assert.throws(() => parseSize('lots'));
  });
});

describe('cuttle CLI', () => {
  it('prints one clear line and exits 2 on a bad flag', () => {
    const r = runCli(['--port', 'x']);
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /^cuttle: .*port/);
  });

  it('exits 2 with one line on a bad config file', () => {
    const r = runCli(['--config', file('e.json', '[1]')]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('--help lists every flag', () => {
    const r = runCli(['--help']);
    assert.equal(r.status, 0);
    for (const name of Object.keys(FLAGS)) assert.match(r.stdout, new RegExp(`--${name}\\b`));
  });
});
