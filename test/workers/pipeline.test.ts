import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
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

const NAME = 'test-cuttle';
let origin: Origin;
let cuttle: Cuttle;
const aborted: string[] = [];

before(async () => {
  origin = await startOrigin((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('aborted', () => aborted.push(`upload ${req.url}`));
    req.on('end', () => {
      const url = req.url ?? '';
      if (url.startsWith('/hop')) {
        res.setHeader('Connection', 'X-Internal');
        res.setHeader('X-Internal', 'secret');
        res.setHeader('Keep-Alive', 'timeout=99');
        res.setHeader('Proxy-Authenticate', 'Basic realm="x"');
        res.setHeader('Trailer', 'X-T');
        res.setHeader('Via', '1.1 upstream-proxy');
        res.setHeader('X-Kept', 'yes');
        res.end('ok');
        return;
      }
      if (url.startsWith('/close')) {
        res.setHeader('Connection', 'close');
        res.end(`port ${req.socket.remotePort}`);
        return;
      }
      if (url.startsWith('/slow-body')) {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('first chunk\n');
        const t = setInterval(() => res.write('more\n'), 50);
        res.on('close', () => {
          clearInterval(t);
          if (!res.writableFinished) aborted.push(url);
        });
        return;
      }
      const body = JSON.stringify({
        method: req.method,
        url,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString(),
        remotePort: req.socket.remotePort,
      });
      res.setHeader('Content-Type', 'application/json');
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
  cuttle = await startCuttle({ config: { visibleHostname: NAME } });
});

after(async () => {
  await cuttle.stop();
  await origin.close();
});

type Echo = {
  method: string;
  url: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  body: string;
  remotePort: number;
};
const echo = (b: Buffer) => JSON.parse(b.toString()) as Echo;

describe('forwarding absolute-form requests (RFC 9110, RFC 9112)', () => {
  it('forwards every method, with request bodies', async () => {
    for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PROPFIND']) {
      const r = await viaProxy(cuttle.port, `${origin.url}/m?x=1`, {
        method,
        body: method === 'GET' ? undefined : `body-${method}`,
      });
      assert.equal(r.status, 200, method);
      const e = echo(r.body);
      assert.equal(e.method, method);
      assert.equal(e.url, '/m?x=1');
      assert.equal(e.body, method === 'GET' ? '' : `body-${method}`);
    }
    const head = await viaProxy(cuttle.port, `${origin.url}/m`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  it('removes hop-by-hop request fields, including those named by Connection (§7.6.1)', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/h`, {
      headers: {
        Connection: 'X-Foo, keep-alive',
        'X-Foo': 'hop',
        'Keep-Alive': 'timeout=5',
        'Proxy-Connection': 'keep-alive',
        TE: 'trailers',
        Upgrade: 'h2c',
        'Proxy-Authorization': 'Basic dTpw',
        'X-End': 'kept',
      },
    });
    const h = echo(r.body).headers;
    for (const f of [
      'x-foo',
      'keep-alive',
      'proxy-connection',
      'te',
      'trailer',
      'upgrade',
      'proxy-authorization',
    ]) {
      assert.equal(h[f], undefined, f);
    }
    assert.equal(h['x-end'], 'kept');
  });

  it('removes hop-by-hop response fields and appends to the response Via (§7.6.1, §7.6.3)', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/hop`);
    for (const f of ['x-internal', 'proxy-authenticate', 'trailer']) assert.equal(r.headers[f], undefined, f);
    assert.notEqual(r.headers['keep-alive'], 'timeout=99', "the origin's Keep-Alive is not passed on");
    assert.notEqual(r.headers.connection, 'X-Internal');
    assert.equal(r.headers['x-kept'], 'yes');
    assert.match(r.headers.via ?? '', new RegExp(`^1\\.1 upstream-proxy, 1\\.1 ${NAME} \\(cuttle/`));
  });

  it('adds Via with the received protocol version to the forwarded request (§7.6.3)', async () => {
    const r11 = await viaProxy(cuttle.port, `${origin.url}/v`, { headers: { Via: '1.1 first' } });
    assert.match(echo(r11.body).headers.via, new RegExp(`^1\\.1 first, 1\\.1 ${NAME} \\(cuttle/[\\d.]+\\)$`));
    const raw = await rawExchange(cuttle.port, `GET ${origin.url}/v10 HTTP/1.0\r\n\r\n`);
    assert.match(raw.text, new RegExp(`"via":"1\\.0 ${NAME} \\(cuttle/`));
  });

  it('appends the client to X-Forwarded-For', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/x`, {
      headers: { 'X-Forwarded-For': '203.0.113.9' },
    });
    assert.equal(echo(r.body).headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
  });

  it('rewrites Host from the absolute-form target (RFC 9112 §3.2.2)', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/host`, { headers: { Host: 'wrong.example' } });
    assert.equal(echo(r.body).headers.host, `127.0.0.1:${origin.port}`);
  });

  it('refuses a forwarding loop: our own name already in Via', async () => {
    const before = origin.seen.length;
    const r = await viaProxy(cuttle.port, `${origin.url}/loop`, {
      headers: { Via: `1.1 ${NAME} (cuttle/0.1.0)` },
    });
    assert.equal(r.status, 403);
    assert.match(r.headers['x-squid-error'] as string, /^ERR_ACCESS_DENIED/);
    assert.match(r.body.toString(), /loop/);
    assert.equal(origin.seen.length, before);
  });
});

describe('Max-Forwards (RFC 9110 §7.6.2)', () => {
  it('answers OPTIONS itself at 0', async () => {
    const before = origin.seen.length;
    const r = await viaProxy(cuttle.port, `${origin.url}/o`, {
      method: 'OPTIONS',
      headers: { 'Max-Forwards': '0' },
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.allow as string, /GET/);
    assert.equal(origin.seen.length, before);
  });

  it('answers TRACE itself at 0 with the request as message/http', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/t`, {
      method: 'TRACE',
      headers: { 'Max-Forwards': '0', 'X-Probe': '1' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'message/http');
    assert.match(r.body.toString(), new RegExp(`^TRACE ${origin.url}/t HTTP/1.1\r\n`));
    assert.match(r.body.toString(), /X-Probe: 1/);
  });

  it('decrements it for OPTIONS and TRACE', async () => {
    const r = await viaProxy(cuttle.port, `${origin.url}/o`, {
      method: 'OPTIONS',
      headers: { 'Max-Forwards': '3' },
    });
    assert.equal(echo(r.body).headers['max-forwards'], '2');
    const t = await viaProxy(cuttle.port, `${origin.url}/o`, {
      method: 'TRACE',
      headers: { 'Max-Forwards': '1' },
    });
    assert.equal(echo(t.body).headers['max-forwards'], '0');
  });
});

describe('persistent connections, decided per link (RFC 9112 §9)', () => {
  const get = (path: string, version = '1.1', extra = '') =>
    `GET ${origin.url}${path} HTTP/${version}\r\nHost: 127.0.0.1\r\n${extra}\r\n`;

  it('keeps an HTTP/1.1 client connection open across requests', async () => {
    const r = await rawExchange(cuttle.port, get('/a') + get('/b'));
    assert.equal(r.text.match(/HTTP\/1\.1 200/g)?.length, 2);
    assert.equal(r.closed, false);
  });

  it('closes after the response to an HTTP/1.0 client that did not ask for keep-alive', async () => {
    const r = await rawExchange(cuttle.port, get('/a', '1.0'));
    assert.match(r.text, /^HTTP\/1\.1 200/);
    assert.equal(r.closed, true);
  });

  it('keeps an HTTP/1.0 client that asked for keep-alive', async () => {
    const r = await rawExchange(cuttle.port, get('/a', '1.0', 'Connection: keep-alive\r\n'));
    assert.match(r.text, /Connection: keep-alive/i);
    assert.equal(r.closed, false);
  });

  it('honours Connection: close from the client', async () => {
    const r = await rawExchange(cuttle.port, get('/a', '1.1', 'Connection: close\r\n') + get('/never'));
    assert.equal(r.text.match(/HTTP\/1\.1 200/g)?.length, 1);
    assert.equal(r.closed, true);
  });

  it('keeps the client link open when the origin closes its own', async () => {
    const r = await rawExchange(cuttle.port, get('/close1') + get('/close2'));
    assert.equal(r.text.match(/HTTP\/1\.1 200/g)?.length, 2);
    assert.doesNotMatch(r.text, /Connection: close/i);
    assert.equal(r.closed, false);
    const ports = [...r.text.matchAll(/port (\d+)/g)].map((m) => m[1]);
    assert.equal(ports.length, 2);
    assert.notEqual(ports[0], ports[1], 'a closed upstream connection is not reused');
  });

  it('pools upstream connections independently of client connections', async () => {
    const ports = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const r = await viaProxy(cuttle.port, `${origin.url}/pool`, {
        agent: false,
        headers: { Connection: 'close' },
      });
      ports.add(echo(r.body).remotePort);
    }
    // Six client connections, one pooled upstream connection per worker at most.
    assert.ok(ports.size <= 2, `upstream connections used: ${ports.size}`);
  });
});

describe('request bodies and aborts', () => {
  it('supports Expect: 100-continue', async () => {
    const sock = connect(cuttle.port, '127.0.0.1');
    const received: string[] = [];
    sock.setEncoding('latin1');
    const got = (re: RegExp) =>
      new Promise<void>((resolve) => {
        const check = () =>
          re.test(received.join(''))
            ? resolve()
            : sock.once('data', (d: string) => {
                received.push(d);
                check();
              });
        check();
      });
    sock.write(
      `POST ${origin.url}/expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`,
    );
    await got(/HTTP\/1\.1 100 Continue\r\n\r\n/);
    sock.write('hello');
    await got(/"body":"hello"/);
    sock.destroy();
    assert.match(received.join(''), /HTTP\/1\.1 200 OK/);
  });

  it('aborts the upstream request when the client disconnects mid-response', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: cuttle.port, path: `${origin.url}/slow-body-1` },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => {});
      req.on('timeout', reject);
      req.end();
    });
    for (let i = 0; i < 60 && !aborted.includes('/slow-body-1'); i++) await sleep(50);
    assert.ok(aborted.includes('/slow-body-1'), 'origin saw the abort');
  });

  it('aborts the upstream request when the client disconnects mid-upload', async () => {
    const sock = connect(cuttle.port, '127.0.0.1');
    sock.write(
      `POST ${origin.url}/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`,
    );
    for (let i = 0; i < 40 && !origin.seen.some((s) => s.url === '/upload'); i++) await sleep(25);
    sock.destroy();
    for (let i = 0; i < 60 && !aborted.includes('upload /upload'); i++) await sleep(50);
    assert.ok(aborted.includes('upload /upload'), 'origin saw the aborted upload');
  });
});

describe('routing', () => {
  it('answers an origin-form request in forward mode with 400 and an explanation', async () => {
    const r = await viaProxy(cuttle.port, '/some/page');
    assert.equal(r.status, 400);
    assert.equal(r.headers['x-squid-error'], 'ERR_INVALID_REQ');
    assert.match(r.body.toString(), /forward proxy.*--origin/);
  });

  it('sends origin-form requests to --origin in reverse-proxy mode', async () => {
    const edge = await startCuttle({ args: ['--origin', origin.url], workers: 1 });
    try {
      const r = await viaProxy(edge.port, '/rev/path?q=1', { headers: { Host: 'www.example.test' } });
      assert.equal(r.status, 200);
      const e = echo(r.body);
      assert.equal(e.url, '/rev/path?q=1');
      assert.equal(e.headers.host, 'www.example.test');
      assert.match(e.headers.via, /cuttle/);
      assert.match(edge.stdout[0], /reverse proxy for http:\/\/127\.0\.0\.1:\d+, 1 workers/);
    } finally {
      await edge.stop();
    }
  });
});
