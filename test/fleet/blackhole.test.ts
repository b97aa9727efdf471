/**
 * A peer that never answers a connect (a black hole on loopback): a stopped process's listening socket,
 * whose accept queue is full, so the kernel drops further SYNs. connect-timeout= bounds the wait: the
 * client gets its answer from the next place (here the origin) after it, and once the peer is down, at once.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, type Origin, startCuttle, viaProxy } from '../helpers/cuttle.js';
import { cacheableOrigin, peerStatus, serverList } from '../helpers/fleet.js';

let origin: Origin;
let hole: ChildProcess;
let cuttle: Cuttle;
const fillers: Socket[] = [];

before(async () => {
  origin = await cacheableOrigin();
  hole = spawn(
    process.execPath,
    [
      '-e',
      "require('net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, function () { console.log(this.address().port) })",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve) =>
    hole.stdout?.once('data', (d) => resolve(Number(String(d)))),
  );
  hole.kill('SIGSTOP');
  // Fill the accept queue (backlog + 1 on Linux): later connects get no SYN-ACK.
  for (let i = 0; i < 4; i++) fillers.push(connect(port, '127.0.0.1').on('error', () => {}));
  const dir = mkdtempSync(join(tmpdir(), 'cuttle-hole-'));
  const conf = join(dir, 'squid.conf');
  writeFileSync(
    conf,
    `http_access allow all\ncache_peer 127.0.0.1 parent ${port} 0 connect-timeout=1 connect-fail-limit=1 name=hole\n`,
  );
  cuttle = await startCuttle({ workers: 1, args: ['--squid-conf', conf] });
});
after(async () => {
  await cuttle.stop();
  for (const s of fillers) s.destroy();
  hole.kill('SIGKILL');
  await origin.close();
});

describe('a black-holed peer', () => {
  it('costs a client at most connect-timeout, then the origin answers; once down it costs nothing', async () => {
    let t = performance.now();
    const first = await viaProxy(cuttle.port, `${origin.url}/a`);
    const waited = performance.now() - t;
    assert.equal(first.status, 200);
    assert.equal(first.body.toString(), 'body of /a');
    assert.ok(waited >= 900 && waited < 2500, `waited ${waited.toFixed(0)} ms for a 1 s connect-timeout`);
    assert.equal(peerStatus(await serverList(cuttle.port), 'hole'), 'Down');
    t = performance.now();
    const second = await viaProxy(cuttle.port, `${origin.url}/b`);
    assert.equal(second.status, 200);
    assert.ok(performance.now() - t < 500, 'the down peer is skipped');
  });
});
