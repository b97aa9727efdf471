import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { respawnDelay } from '../../src/main/supervisor.js';
import { isAlive, type Origin, sleep, startCuttle, startOrigin, viaProxy } from '../helpers/cuttle.js';

let origin: Origin;
before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('slow done'), 1200);
    else res.end('ok');
  });
});
after(() => origin.close());

/**
 * Sends `count` requests one after another (bounded in count, not time), calling `at[i]` before request i;
 * records each outcome.
 */
async function load(
  port: number,
  count: number,
  at: Record<number, () => void | Promise<void>> = {},
): Promise<{ ok: number; failed: number }> {
  let ok = 0;
  let failed = 0;
  for (let i = 0; i < count; i++) {
    await at[i]?.();
    try {
      const r = await viaProxy(port, `${origin.url}/x`, { agent: false });
      if (r.status === 200) ok++;
      else failed++;
    } catch {
      failed++;
    }
  }
  return { ok, failed };
}

describe('respawn backoff', () => {
  it('respawns at once, then backs off exponentially up to 30 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5].map(respawnDelay), [0, 250, 500, 1000, 2000]);
    assert.equal(respawnDelay(40), 30_000);
  });
});

describe('cluster', () => {
  it('prints one ready line naming version, address, mode and workers', async () => {
    const c = await startCuttle({ workers: 2 });
    try {
      assert.match(
        c.stdout[0],
        /^cuttle \d+\.\d+\.\d+ listening on 127\.0\.0\.1:\d+ \(forward proxy, 2 workers\)$/,
      );
      assert.equal(c.workerPids().length, 2);
    } finally {
      await c.stop();
    }
  });

  it('replaces a worker killed under load while the others keep serving', async () => {
    const c = await startCuttle({ workers: 2 });
    try {
      const [victim, survivor] = c.workerPids();
      const r = await load(c.port, 120, { 30: () => void process.kill(victim, 'SIGKILL') });
      // Only exchanges in flight on the killed worker may fail.
      assert.ok(r.failed <= 2, `failed ${r.failed}`);
      for (let i = 0; i < 50 && c.workerPids().length < 2; i++) await sleep(100);
      const now = c.workerPids();
      assert.equal(now.length, 2);
      assert.ok(
        now.includes(survivor) && !now.includes(victim),
        "a replacement took the dead worker's place",
      );
      assert.ok(c.logs().some((l) => l.msg === 'worker died' && l.workerPid === victim));
      const after = await load(c.port, 10);
      assert.equal(after.failed, 0);
    } finally {
      await c.stop();
    }
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`stops gracefully on ${signal}: in-flight requests finish, no new connections, exit 0`, async () => {
      const c = await startCuttle({ workers: 2 });
      const inflight = viaProxy(c.port, `${origin.url}/slow`, { agent: false });
      await sleep(300);
      c.proc.kill(signal);
      await sleep(300);
      const refused = await new Promise<boolean>((resolve) => {
        const s = connect(c.port, '127.0.0.1');
        s.on('connect', () => {
          s.destroy();
          resolve(false);
        });
        s.on('error', () => resolve(true));
      });
      const r = await inflight;
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'slow done');
      assert.equal(refused, true, 'new connections are refused while draining');
      const exit = await c.exited;
      assert.deepEqual(exit, { code: 0, signal: null });
      await c.stop();
    });
  }

  for (const frontEnd of ['lean', 'node'] as const) {
    it(`answers a request on a connection accepted just before the stop (${frontEnd} front end)`, async () => {
      // Regression (seen in CI during a SIGHUP reload): the drain counted a connection that had not sent its
      // request yet as idle and closed it, failing the request its client was sending.
      const c = await startCuttle({ workers: 1, config: { frontEnd } });
      try {
        const s = connect(c.port, '127.0.0.1');
        const reply: Buffer[] = [];
        s.on('data', (d: Buffer) => reply.push(d));
        const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
        s.on('error', () => {});
        await new Promise<void>((resolve) => s.once('connect', () => resolve()));
        await sleep(300); // the worker has the connection now
        c.proc.kill('SIGTERM');
        await sleep(200); // the drain has begun
        s.write(`GET ${origin.url}/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
        await closed;
        const text = Buffer.concat(reply).toString();
        assert.match(text, /^HTTP\/1\.1 200 /, `answered: ${JSON.stringify(text.slice(0, 80))}`);
        assert.match(text, /\r\nconnection: close\r\n/i, 'and told the connection closes');
        assert.deepEqual(await c.exited, { code: 0, signal: null });
      } finally {
        await c.stop();
      }
    });
  }

  it('cuts connections still busy at the shutdown deadline and exits 0', async () => {
    const c = await startCuttle({ workers: 1, config: { timeouts: { shutdown: '300ms' } } });
    const inflight = viaProxy(c.port, `${origin.url}/slow`, { agent: false }).catch((e: Error) => e);
    await sleep(200);
    c.proc.kill('SIGTERM');
    assert.ok((await inflight) instanceof Error, 'the slow exchange was cut');
    assert.deepEqual(await c.exited, { code: 0, signal: null });
    await c.stop();
  });

  it('reloads on SIGHUP by replacing workers one at a time without refusing connections', async () => {
    const c = await startCuttle({ workers: 2, config: { visibleHostname: 'before-reload' } });
    try {
      const old = c.workerPids();
      writeFileSync(join(c.dir, 'cuttle.json'), JSON.stringify({ visibleHostname: 'after-reload' }));
      const reloaded = () => c.logs().some((l) => l.msg === 'reload complete');
      let r = await load(c.port, 20, { 5: () => void c.proc.kill('SIGHUP') });
      // Keep the traffic going until every old worker is replaced (bounded: at most 60 more rounds).
      for (let i = 0; i < 60 && !reloaded(); i++) {
        const more = await load(c.port, 5);
        r = { ok: r.ok + more.ok, failed: r.failed + more.failed };
      }
      assert.ok(reloaded(), 'the reload completed');
      assert.equal(r.failed, 0, 'no request failed during the reload');
      for (let i = 0; i < 60 && old.some(isAlive); i++) await sleep(100);
      const now = c.workerPids();
      assert.equal(now.length, 2);
      assert.ok(
        now.every((p) => !old.includes(p)),
        'every worker was replaced',
      );
      const v = await viaProxy(c.port, `${origin.url}/x`);
      assert.match(v.headers.via as string, /after-reload/);
    } finally {
      await c.stop();
    }
  });

  it('keeps the old workers when the reloaded configuration is invalid', async () => {
    const c = await startCuttle({ workers: 1, config: {} });
    try {
      const old = c.workerPids();
      writeFileSync(join(c.dir, 'cuttle.json'), '{broken');
      c.proc.kill('SIGHUP');
      for (let i = 0; i < 40 && !c.logs().some((l) => String(l.msg).startsWith('reload refused')); i++)
        await sleep(50);
      assert.ok(c.logs().some((l) => String(l.msg).startsWith('reload refused')));
      assert.deepEqual(c.workerPids(), old);
      assert.equal((await viaProxy(c.port, `${origin.url}/x`)).status, 200);
    } finally {
      await c.stop();
    }
  });

  it('exits 1 with one clear line when the port is taken', async () => {
    const c = await startCuttle({ workers: 1 });
    try {
      const { spawnSync } = await import('node:child_process');
      const { CLI } = await import('../helpers/cuttle.js');
      const r = spawnSync(
        process.execPath,
        [CLI, '--port', String(c.port), '--workers', '1', '--cache-dir', join(c.dir, 'c2')],
        {
          encoding: 'utf8',
          timeout: 10_000,
        },
      );
      assert.equal(r.status, 1);
      assert.match(r.stderr, /cuttle: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
    } finally {
      await c.stop();
    }
  });
});
