import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { carpOrder, carpTable } from '../../src/fleet/carp.js';
import { type PeerConfig, peerDefaults } from '../../src/fleet/peers.js';
import { isHierarchical, type PeerSet, type SelectionFacts, selectHops } from '../../src/fleet/select.js';

const peer = (name: string, o: Partial<PeerConfig> = {}): PeerConfig => ({
  ...peerDefaults('127.0.0.1', 3128, name),
  ...o,
});

function peerSet(peers: PeerConfig[]): PeerSet {
  const carpMembers = peers.flatMap((p, i) => (p.carp ? [i] : []));
  return {
    peers,
    carpMembers,
    carp: carpMembers.length
      ? carpTable(carpMembers.map((i) => ({ name: peers[i].name, weight: peers[i].weight })))
      : null,
  };
}

const facts = (o: Partial<SelectionFacts> = {}): SelectionFacts => ({
  alwaysDirect: false,
  neverDirect: false,
  fromPeer: false,
  hierarchical: true,
  key: 'http://example.com/a',
  ...o,
});
const RULES = { preferDirect: false, nonhierarchicalDirect: true };
const all = () => true;

describe('peer selection (Squid peer_select.cc order)', () => {
  const carp3 = peerSet([peer('a', { carp: true }), peer('b', { carp: true }), peer('c', { carp: true })]);

  it('picks the CARP owner first and the origin last, with prefer_direct off', () => {
    const key = 'http://example.com/x';
    const owner = carpOrder(carp3.carp as NonNullable<PeerSet['carp']>, key)[0];
    const hops = selectHops(carp3, facts({ key }), RULES, all);
    assert.deepEqual(hops, [
      { peer: owner, code: 'CARP' },
      { peer: null, code: 'HIER_DIRECT' },
    ]);
  });

  it('tries the origin before the parents with prefer_direct on', () => {
    const hops = selectHops(carp3, facts(), { ...RULES, preferDirect: true }, all);
    assert.equal(hops[0].code, 'HIER_DIRECT');
    assert.equal(hops[1].code, 'CARP');
  });

  it('skips a peer that is down: its URLs go to the next in CARP order, the others stay', () => {
    const table = carp3.carp as NonNullable<PeerSet['carp']>;
    let moved = 0;
    for (let n = 0; n < 300; n++) {
      const key = `http://example.com/${n}`;
      const order = carpOrder(table, key);
      const hop = selectHops(carp3, facts({ key }), RULES, (i) => i !== 1)[0];
      if (order[0] === 1) {
        moved++;
        assert.equal(hop.peer, order[1]);
      } else assert.equal(hop.peer, order[0]);
    }
    assert.ok(moved > 50, `peer b owned ${moved} of 300`);
  });

  it('always_direct: the origin only; a request from a fleet member (loop) likewise', () => {
    assert.deepEqual(selectHops(carp3, facts({ alwaysDirect: true }), RULES, all), [
      { peer: null, code: 'HIER_DIRECT' },
    ]);
    assert.deepEqual(selectHops(carp3, facts({ fromPeer: true }), RULES, all), [
      { peer: null, code: 'HIER_DIRECT' },
    ]);
  });

  it('never_direct: some parent, then every live parent, never the origin; nothing when all are down', () => {
    const hops = selectHops(carp3, facts({ neverDirect: true }), RULES, all);
    assert.equal(hops.length, 3);
    assert.equal(hops[0].code, 'CARP');
    assert.ok(hops.slice(1).every((h) => h.code === 'ANY_OLD_PARENT'));
    assert.ok(hops.every((h) => h.peer !== null));
    assert.deepEqual(
      selectHops(carp3, facts({ neverDirect: true }), RULES, () => false),
      [],
    );
  });

  it('a non-hierarchical request goes direct while nonhierarchical_direct is on', () => {
    assert.deepEqual(selectHops(carp3, facts({ hierarchical: false }), RULES, all), [
      { peer: null, code: 'HIER_DIRECT' },
    ]);
    const off = selectHops(
      carp3,
      facts({ hierarchical: false }),
      { ...RULES, nonhierarchicalDirect: false },
      all,
    );
    assert.equal(off[0].code, 'CARP');
    assert.equal(isHierarchical('POST', false), false);
    assert.equal(isHierarchical('GET', true), false);
    assert.equal(isHierarchical('GET', false), true);
    assert.equal(isHierarchical('HEAD', false), true);
  });

  it('a default parent comes first (DEFAULT_PARENT), then first-up parents in order (FIRSTUP_PARENT)', () => {
    const set = peerSet([peer('a'), peer('b', { default: true }), peer('c')]);
    assert.deepEqual(selectHops(set, facts(), RULES, all)[0], { peer: 1, code: 'DEFAULT_PARENT' });
    const plain = peerSet([peer('a'), peer('b'), peer('c')]);
    assert.deepEqual(selectHops(plain, facts(), RULES, all)[0], { peer: 0, code: 'FIRSTUP_PARENT' });
    assert.deepEqual(selectHops(plain, facts(), RULES, (i) => i !== 0)[0], {
      peer: 1,
      code: 'FIRSTUP_PARENT',
    });
  });

  it('never chooses a sibling (no ICP/HTCP/digests to learn of its hits)', () => {
    const set = peerSet([peer('s', { type: 'sibling' })]);
    assert.deepEqual(selectHops(set, facts(), RULES, all), [{ peer: null, code: 'HIER_DIRECT' }]);
    assert.deepEqual(selectHops(set, facts({ neverDirect: true }), RULES, all), []);
  });

  it('a CARP choice of this member itself is direct: its share is fetched here', () => {
    const set = peerSet([
      peer('a', { carp: true, self: true }),
      peer('b', { carp: true }),
      peer('c', { carp: true }),
    ]);
    const table = set.carp as NonNullable<PeerSet['carp']>;
    for (let n = 0; n < 50; n++) {
      const key = `http://example.com/${n}`;
      const hop = selectHops(set, facts({ key }), RULES, all)[0];
      if (carpOrder(table, key)[0] === 0) assert.deepEqual(hop, { peer: null, code: 'HIER_DIRECT' });
      else assert.equal(hop.code, 'CARP');
    }
  });
});
