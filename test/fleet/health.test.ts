import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { PeerHealth, probePeer } from '../../src/fleet/health.js';
import { peerDefaults } from '../../src/fleet/peers.js';
import { createLogger } from '../../src/shared/logger.js';

const log = createLogger('silent', {});

describe('peer health (per worker, Squid neighbors.cc counting)', () => {
  it('marks a peer down after connect-fail-limit consecutive failures; a success resets the count', () => {
    const p = { ...peerDefaults('127.0.0.1', 1, 'p'), connectFailLimit: 3, monitorInterval: 60_000 };
    const events: boolean[] = [];
    const h = new PeerHealth(
      [p],
      log,
      (_i, up) => events.push(up),
      async () => false,
    );
    h.connectFailed(0, 'ECONNREFUSED');
    h.connectFailed(0, 'ECONNREFUSED');
    h.connected(0);
    h.connectFailed(0, 'ECONNREFUSED');
    h.connectFailed(0, 'ECONNREFUSED');
    assert.equal(h.isUp(0), true);
    h.connectFailed(0, 'ECONNREFUSED');
    assert.equal(h.isUp(0), false);
    assert.deepEqual(events, [false]);
    assert.equal(h.counters[0].connectFailures, 5);
    h.close();
  });

  it('probes a down peer every monitorinterval and brings it back on the first success', async () => {
    const p = { ...peerDefaults('127.0.0.1', 1, 'p'), connectFailLimit: 1, monitorInterval: 20 };
    let answers = 0;
    const h = new PeerHealth([p], log, undefined, async () => ++answers >= 3);
    h.connectFailed(0, 'ECONNREFUSED');
    assert.equal(h.isUp(0), false);
    const deadline = Date.now() + 2000;
    while (!h.isUp(0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(h.isUp(0), true);
    assert.equal(answers, 3);
    h.close();
  });

  it('the TCP probe answers true for a listening port and false for a closed one', async () => {
    const server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    assert.equal(await probePeer(peerDefaults('127.0.0.1', port, 'p'), 1000), true);
    await new Promise((r) => server.close(r));
    assert.equal(await probePeer(peerDefaults('127.0.0.1', port, 'p'), 1000), false);
  });
});
