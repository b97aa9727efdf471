import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, rawExchange, sleep, startCuttle } from '../helpers/cuttle.js';

let echo: Server;
let echoPort: number;
let cuttle: Cuttle;

before(async () => {
  // Echoes bytes; on the client's FIN it answers "bye" and closes its side, to show a half-close passes through.
  echo = createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end('bye'));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as { port: number }).port;
  cuttle = await startCuttle({
    workers: 1,
    config: { connectPorts: [443, echoPort], timeouts: { tunnelIdle: '700ms' } },
  });
});

after(async () => {
  await cuttle.stop();
  echo.close();
});

function openTunnel(port: number, target: string): Promise<{ sock: Socket; head: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('error', reject);
    sock.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end !== -1) {
        sock.off('data', onData);
        resolve({ sock, head: buf.slice(0, end) });
      }
    };
    sock.on('data', onData);
  });
}

describe('CONNECT tunnels (RFC 9110 §9.3.6)', () => {
  it('relays bytes both ways on an allowed port', async () => {
    const { sock, head } = await openTunnel(cuttle.port, `127.0.0.1:${echoPort}`);
    assert.match(head, /^HTTP\/1\.1 200 /);
    const got = new Promise<string>((r) => sock.once('data', (d) => r(d.toString())));
    sock.write('ping');
    assert.equal(await got, 'ping');
    sock.destroy();
  });

  it('passes a half-close through: the client ends, the server still answers', async () => {
    const { sock } = await openTunnel(cuttle.port, `127.0.0.1:${echoPort}`);
    let text = '';
    sock.on('data', (d) => {
      text += d.toString();
    });
    const ended = new Promise<void>((r) => sock.on('end', () => r()));
    sock.write('data');
    await sleep(50);
    sock.end();
    await ended;
    assert.equal(text, 'databye');
  });

  it("refuses ports outside the allowed set with 403, like Squid's SSL_ports rule", async () => {
    const r = await rawExchange(cuttle.port, 'CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: 127.0.0.1:25\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 403 /);
    assert.match(r.text, /X-Squid-Error: ERR_ACCESS_DENIED/);
    assert.match(r.text, /port 25 is not allowed/);
    assert.equal(r.closed, true);
  });

  it('answers 502 when the target refuses the connection', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    const c = await startCuttle({ workers: 1, config: { connectPorts: [port] } });
    try {
      const r = await rawExchange(c.port, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.match(r.text, /^HTTP\/1\.1 502 /);
      assert.match(r.text, /ERR_CONNECT_FAIL 111/);
    } finally {
      await c.stop();
    }
  });

  it('answers 400 for a malformed CONNECT target', async () => {
    const r = await rawExchange(cuttle.port, 'CONNECT no-port HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 400 /);
  });

  it('closes an idle tunnel', async () => {
    const { sock } = await openTunnel(cuttle.port, `127.0.0.1:${echoPort}`);
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    const outcome = await Promise.race([closed.then(() => 'closed'), sleep(5000).then(() => 'open')]);
    assert.equal(outcome, 'closed');
  });

  it('allows only port 443 by default', async () => {
    const c = await startCuttle({ workers: 1 });
    try {
      const r = await rawExchange(c.port, `CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.match(r.text, /^HTTP\/1\.1 403 /);
    } finally {
      await c.stop();
    }
  });
});
