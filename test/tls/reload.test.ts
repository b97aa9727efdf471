/**
 * Certificates on SIGHUP: re-read by the primary and swapped in the running workers, so new handshakes
 * get the new certificate while open connections (HTTP/2 sessions included) keep working; a bad
 * certificate keeps the old one, with one log line.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, type Origin, sleep, startCuttle, startOrigin } from '../helpers/cuttle.js';
import { certFiles, h2Request, h2Session, handshake } from '../helpers/tls.js';

let origin: Origin;
let c: Cuttle;

before(async () => {
  origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    res.end('ok\n');
  });
});
after(() => origin?.close());

/** Waits for a log line starting with `msg`, counting from the `from`-th one. */
async function logged(msg: string, from: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (
      c
        .logs()
        .slice(from)
        .some((l) => String(l.msg).startsWith(msg))
    )
      return;
    await sleep(50);
  }
  assert.fail(`no log line "${msg}"`);
}

describe('certificates re-read on SIGHUP', () => {
  it('serves the new certificate, keeps open connections, and keeps the old one when the new is bad', async () => {
    // A missing file stops cuttle at start, with one line.
    await assert.rejects(
      startCuttle({
        workers: 1,
        args: [
          '--origin',
          origin.url,
          '--https-port',
          '0',
          '--tls-cert',
          '/nonexistent/c.pem',
          '--tls-key',
          '/nonexistent/k.pem',
        ],
      }),
      /exited with 2[\s\S]*cuttle: cannot read the certificate file \/nonexistent\/c\.pem: ENOENT/,
    );
    const dir = mkdtempSync(join(tmpdir(), 'cuttle-certs-'));
    const cert = join(dir, 'server.pem');
    const key = join(dir, 'server.key');
    const use = (name: 'a.example.test' | 'b.example.test') => {
      copyFileSync(certFiles(name).cert, cert);
      copyFileSync(certFiles(name).key, key);
    };
    use('a.example.test');
    c = await startCuttle({
      workers: 2,
      args: ['--origin', origin.url, '--https-port', '0', '--tls-cert', cert, '--tls-key', key],
    });
    try {
      const port = c.httpsPort as number;
      const pids = c.workerPids();
      assert.equal((await handshake(port, 'www.example')).cert.subject.CN, 'a.example.test');
      const open = await h2Session(port);
      assert.equal((await h2Request(open, '/before')).status, 200);

      use('b.example.test');
      let from = c.logs().length;
      c.proc.kill('SIGHUP');
      await logged('reload: certificates re-read', from);
      await sleep(200);
      // Both workers (round robin) now hand out the new certificate.
      for (let i = 0; i < 4; i++)
        assert.equal((await handshake(port, 'www.example')).cert.subject.CN, 'b.example.test');
      // The session opened before the reload still works, on the certificate it started with.
      assert.equal((await h2Request(open, '/after')).status, 200);
      assert.deepEqual(c.workerPids().sort(), pids.sort(), 'no worker was replaced');

      writeFileSync(cert, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
      from = c.logs().length;
      c.proc.kill('SIGHUP');
      await logged('reload: certificate not loaded; keeping the old certificates', from);
      const line = c
        .logs()
        .slice(from)
        .filter((l) => String(l.msg).startsWith('reload: certificate'));
      assert.equal(line.length, 1, 'one line');
      assert.match(String(line[0].err), /server\.pem/);
      assert.equal((await handshake(port, 'www.example')).cert.subject.CN, 'b.example.test');
      assert.equal((await h2Request(open, '/still')).status, 200);
      open.close();
    } finally {
      await c.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
