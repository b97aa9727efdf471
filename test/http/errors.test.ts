import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { type Server as NetServer, createServer as netServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  type Cuttle,
  type Origin,
  rawExchange,
  sleep,
  startCuttle,
  startOrigin,
  viaProxy,
} from '../helpers/cuttle.js';

let origin: Origin;
let cuttle: Cuttle;
let pidsAtStart: number[];
const servers: NetServer[] = [];

async function rawServer(onConnection: (s: Socket) => void): Promise<number> {
  const s = netServer(onConnection);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as { port: number }).port;
}

before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url === '/truncated') {
      res.writeHead(200, { 'Content-Length': '1000' });
      res.write('only ten b');
      setTimeout(() => res.destroy(), 50);
      return;
    }
    res.end('fine');
  });
  cuttle = await startCuttle({
    config: {
      maxUrlLength: 1000,
      maxHeaderSize: '8k',
      timeouts: { response: '600ms', clientHeaders: '800ms', connect: '700ms' },
    },
  });
  pidsAtStart = cuttle.workerPids();
});

after(async () => {
  await cuttle.stop();
  await origin.close();
  for (const s of servers) s.close();
});

const squidError = (text: string) => /X-Squid-Error: (.*)\r\n/.exec(text)?.[1];

describe('client errors: a status, a named cause, a closed connection', () => {
  it('400 for a malformed request line', async () => {
    const r = await rawExchange(cuttle.port, 'GET\x01 nonsense\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.equal(squidError(r.text), 'ERR_INVALID_REQ');
    assert.match(r.text, /malformed request/);
    assert.equal(r.closed, true);
  });

  it('400 for Content-Length together with Transfer-Encoding (request smuggling, RFC 9112 §6.3)', async () => {
    const r = await rawExchange(
      cuttle.port,
      `POST ${origin.url}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    );
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.equal(r.closed, true);
  });

  it('400 for conflicting Content-Length fields', async () => {
    const r = await rawExchange(
      cuttle.port,
      `POST ${origin.url}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde`,
    );
    assert.match(r.text, /^HTTP\/1\.1 400 /);
  });

  it('400 for a Transfer-Encoding whose final coding is not chunked', async () => {
    const r = await rawExchange(
      cuttle.port,
      `POST ${origin.url}/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc`,
    );
    assert.match(r.text, /^HTTP\/1\.1 400 /);
  });

  it('400 for an HTTP/1.1 request without Host (RFC 9112 §3.2)', async () => {
    const r = await rawExchange(cuttle.port, `GET ${origin.url}/ HTTP/1.1\r\n\r\n`);
    assert.match(r.text, /^HTTP\/1\.1 400 /);
  });

  it('400 for userinfo in the target and for unsupported schemes', async () => {
    const a = await viaProxy(cuttle.port, `http://user:pw@127.0.0.1:${origin.port}/`);
    assert.equal(a.status, 400);
    const b = await viaProxy(cuttle.port, 'ftp://127.0.0.1/file');
    assert.equal(b.status, 400);
    assert.match(b.body.toString(), /unsupported URI scheme/);
  });

  it('414 for a request-target over the URL limit', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/${'a'.repeat(2000)}`);
    assert.equal(r.status, 414);
    assert.equal(r.headers['x-squid-error'], 'ERR_TOO_BIG');
  });

  it('414 for a request line longer than the whole header limit', async () => {
    const r = await rawExchange(
      cuttle.port,
      `GET ${origin.url}/${'a'.repeat(10_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    assert.match(r.text, /^HTTP\/1\.1 414 /);
    assert.equal(r.closed, true);
  });

  it('431 for a header section over the limit', async () => {
    const r = await rawExchange(
      cuttle.port,
      `GET ${origin.url}/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(10_000)}\r\n\r\n`,
    );
    assert.match(r.text, /^HTTP\/1\.1 431 /);
    assert.equal(squidError(r.text), 'ERR_TOO_BIG');
    assert.equal(r.closed, true);
  });

  it('408 and a closed connection for a client that sends its headers too slowly (slowloris)', async () => {
    const { connect } = await import('node:net');
    const sock = connect(cuttle.port, '127.0.0.1');
    let text = '';
    sock.on('data', (d) => {
      text += d.toString();
    });
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.write(`GET ${origin.url}/ HTTP/1.1\r\nHost: x\r\n`);
    const drip = setInterval(() => sock.writable && sock.write('X-Drip: 1\r\n'), 200);
    await Promise.race([closed, sleep(8000)]);
    clearInterval(drip);
    assert.ok(sock.destroyed || sock.readableEnded, 'the proxy closed the connection');
    assert.match(text, /^HTTP\/1\.1 408 /);
    sock.destroy();
  });
});

describe('upstream errors', () => {
  it('502 ERR_CONNECT_FAIL when the origin refuses the connection', async () => {
    const port = await rawServer(() => {});
    await new Promise<void>((r) => servers.pop()?.close(() => r()));
    const r = await viaProxy(cuttle.port, `http://127.0.0.1:${port}/`);
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-squid-error'], 'ERR_CONNECT_FAIL 111');
    assert.match(r.body.toString(), /refused/);
  });

  it('502 ERR_DNS_FAIL when the host does not resolve', async () => {
    // A label over 63 octets fails inside the resolver without a query leaving the machine.
    const r = await viaProxy(cuttle.port, `http://${'a'.repeat(70)}.test/`);
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-squid-error'], 'ERR_DNS_FAIL');
  });

  it('502 ERR_INVALID_RESP for an invalid upstream response', async () => {
    const port = await rawServer((s) => {
      s.on('data', () => s.end('HTTP/1.1 2OO Fine\r\nbroken header\r\n\r\n'));
      s.on('error', () => {});
    });
    const r = await viaProxy(cuttle.port, `http://127.0.0.1:${port}/`);
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-squid-error'], 'ERR_INVALID_RESP');
  });

  it('502 ERR_ZERO_SIZE_OBJECT when the origin closes without answering', async () => {
    const port = await rawServer((s) => {
      s.on('data', () => s.end());
      s.on('error', () => {});
    });
    const r = await viaProxy(cuttle.port, `http://127.0.0.1:${port}/`);
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-squid-error'], 'ERR_ZERO_SIZE_OBJECT');
  });

  it('504 ERR_READ_TIMEOUT when no response headers arrive in time', async () => {
    const port = await rawServer((s) => s.on('error', () => {}));
    const r = await viaProxy(cuttle.port, `http://127.0.0.1:${port}/`);
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-squid-error'], 'ERR_READ_TIMEOUT');
  });

  it('504 ERR_CONNECT_FAIL 110 when the connection cannot be set up in time', async (t) => {
    // A listening socket whose backlog is full and that never accepts: the kernel drops further SYNs.
    const py = spawn(
      'python3',
      [
        '-c',
        'import socket,sys,time\ns=socket.socket();s.bind(("127.0.0.1",0));s.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const port = await new Promise<number | null>((resolve) => {
      py.on('error', () => resolve(null));
      py.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    });
    if (port === null) return t.skip('python3 is not installed');
    try {
      const { connect } = await import('node:net');
      const fillers = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
      for (const f of fillers) f.on('error', () => {});
      await sleep(200);
      const r = await viaProxy(cuttle.port, `http://127.0.0.1:${port}/`);
      assert.equal(r.status, 504);
      assert.equal(r.headers['x-squid-error'], 'ERR_CONNECT_FAIL 110');
      for (const f of fillers) f.destroy();
    } finally {
      py.kill();
    }
  });

  it('cuts the client connection when the upstream body is truncated, never passing it off as whole', async () => {
    const r = await rawExchange(cuttle.port, `GET ${origin.url}/truncated HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    assert.match(r.text, /Content-Length: 1000/);
    assert.equal(r.closed, true);
    assert.ok(r.text.endsWith('only ten b'));
  });

  it('no error crashed a worker', () => {
    assert.deepEqual(cuttle.workerPids().sort(), pidsAtStart.sort());
    assert.equal(cuttle.logs().filter((l) => l.msg === 'worker died').length, 0);
  });
});
