import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CLI, sleep, startCuttle, viaProxy } from '../helpers/cuttle.js';

const k = (command: string, cacheDir: string, ...more: string[]) =>
  spawnSync(process.execPath, [CLI, '-k', command, '--cache-dir', cacheDir, ...more], { encoding: 'utf8' });

describe('cuttle -k finds the running instance through its pid file (as squid -k)', () => {
  it('check, rotate, reconfigure, then shutdown; check fails once it is gone', async () => {
    const logFile = join(mkdtempSync(join(tmpdir(), 'cuttle-k-')), 'access.log');
    const c = await startCuttle({ workers: 1, args: ['--access-log', logFile] });
    try {
      const pidFile = join(c.cacheDir, 'cuttle.pid');
      assert.equal(readFileSync(pidFile, 'utf8').trim(), String(c.proc.pid));

      const check = k('check', c.cacheDir);
      assert.equal(check.status, 0, check.stderr);
      assert.match(check.stdout, new RegExp(`cuttle ${c.proc.pid} is running`));

      await viaProxy(c.port, 'http://127.0.0.1:1/before');
      await sleep(400);
      assert.equal(k('rotate', c.cacheDir).status, 0);
      await sleep(400);
      assert.match(readFileSync(`${logFile}.0`, 'utf8'), /\/before/);

      assert.equal(k('reconfigure', c.cacheDir).status, 0);
      for (
        let i = 0;
        i < 50 && !c.logs().some((l) => l.msg === 'reload: replacing workers one at a time');
        i++
      )
        await sleep(100);
      assert.ok(c.logs().some((l) => l.msg === 'reload: replacing workers one at a time'));

      assert.equal(k('shutdown', c.cacheDir).status, 0);
      const exit = await c.exited;
      assert.equal(exit.code, 0);
      assert.ok(!existsSync(pidFile), 'the pid file is removed on exit');
      const after = k('check', c.cacheDir);
      assert.equal(after.status, 1);
      assert.match(after.stderr, /no running cuttle/);
    } finally {
      await c.stop();
    }
  });

  it('rejects an unknown command with exit 2', () => {
    const r = k('explode', mkdtempSync(join(tmpdir(), 'cuttle-k-')));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /-k explode: not supported/);
  });
});
