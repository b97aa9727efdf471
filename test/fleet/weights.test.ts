/**
 * Shares of a reverse-mode fleet configured the JSON way (`peers` with names, so the CARP hashes, and so
 * the shares, are the same on every run): a third each with equal weights, twice the share for weight 2.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { type Cuttle, type Origin, viaProxy } from '../helpers/cuttle.js';
import { cacheableOrigin, fetchedBy, freePorts, pooled, startFleet } from '../helpers/fleet.js';

const SITE = 'site.test';
let origin: Origin | null = null;
let members: Cuttle[] = [];
afterEach(async () => {
  await Promise.all(members.map((m) => m.stop()));
  await origin?.close();
});

/** Starts three members named w1..w3 with these weights, sends 300 URLs through random members, and
 * returns how many each fetched from the origin. */
async function shares(weights: number[]): Promise<number[]> {
  const o = await cacheableOrigin();
  origin = o;
  const ports = await freePorts(3);
  const peers = ports.map((port, i) => ({
    host: '127.0.0.1',
    port,
    carp: true,
    name: `w${i + 1}`,
    weight: weights[i],
  }));
  members = await startFleet(ports, (port) => ({
    args: ['--port', String(port), '--origin', o.url],
    config: { peers },
  }));
  const paths = Array.from({ length: 300 }, (_, i) => `/w/${i}`);
  await pooled(paths, 6, async (path) => {
    const m = members[Math.floor(Math.random() * members.length)];
    const r = await viaProxy(m.port, path, { headers: { Host: SITE } });
    assert.equal(r.status, 200);
  });
  const count = [0, 0, 0];
  for (const path of paths) {
    const seen = o.seen.filter((s) => s.url === path);
    assert.equal(seen.length, 1, `${path} reached the origin once`);
    count[Number(fetchedBy(seen[0].headers.via).slice(1)) - 1]++;
  }
  return count;
}

describe('fleet shares', () => {
  it('equal weights: each member fetches within ±20 % of a third of the URLs', async () => {
    const count = await shares([1, 1, 1]);
    for (const c of count) assert.ok(c >= 80 && c <= 120, `shares ${count}`);
  });

  it('weight=2: that member fetches about twice the share of each other', async () => {
    const count = await shares([2, 1, 1]);
    for (const c of count.slice(1)) {
      const ratio = count[0] / c;
      assert.ok(ratio > 1.6 && ratio < 2.5, `shares ${count}`);
    }
  });
});
