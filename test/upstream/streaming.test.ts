import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, type Origin, startCuttle, startOrigin, treeRss } from '../helpers/cuttle.js';

const GIB = 1024 ** 3;
const CHUNK = Buffer.alloc(1024 * 1024, 'z');
let origin: Origin;
let cuttle: Cuttle;

/** A 1 GiB stream made on the fly, so the test itself holds one chunk at a time. */
function gibibyte(): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= GIB) return void this.push(null);
      sent += CHUNK.length;
      this.push(CHUNK);
    },
  });
}

before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.method === 'POST') {
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
      });
      req.on('end', () => res.end(String(n)));
      return;
    }
    res.writeHead(200, { 'Content-Length': String(GIB) });
    gibibyte().pipe(res);
  });
  cuttle = await startCuttle({ workers: 1 });
});
after(async () => {
  await cuttle.stop();
  await origin.close();
});

/** Samples the proxy's process tree RSS while `work` runs; returns the peak growth over the starting RSS. */
async function rssGrowthDuring(work: Promise<unknown>): Promise<number> {
  const base = treeRss(cuttle.proc.pid as number);
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, treeRss(cuttle.proc.pid as number));
  }, 100);
  try {
    await work;
  } finally {
    clearInterval(timer);
  }
  return peak - base;
}

describe('bodies stream through without being buffered whole', () => {
  it('relays a 1 GiB response with flat memory', async () => {
    let received = 0;
    const work = new Promise<void>((resolve, reject) => {
      request({ host: '127.0.0.1', port: cuttle.port, path: `${origin.url}/big` }, (res) => {
        res.on('data', (c: Buffer) => {
          received += c.length;
        });
        res.on('end', resolve);
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
    const growth = await rssGrowthDuring(work);
    assert.equal(received, GIB);
    assert.ok(growth < 200 * 1024 ** 2, `RSS grew by ${Math.round(growth / 1024 ** 2)} MiB`);
  });

  it('relays a 1 GiB upload with flat memory', async () => {
    let answer = '';
    const work = new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: cuttle.port,
          path: `${origin.url}/up`,
          method: 'POST',
          headers: { 'Content-Length': String(GIB) },
        },
        (res) => {
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            answer += c;
          });
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      gibibyte().pipe(req);
    });
    const growth = await rssGrowthDuring(work);
    assert.equal(answer, String(GIB));
    assert.ok(growth < 200 * 1024 ** 2, `RSS grew by ${Math.round(growth / 1024 ** 2)} MiB`);
  });
});
