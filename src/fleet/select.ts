/**
 * Peer selection, as Squid's peer_select.cc orders it (peerSelectFoo, peerGetSomeParent,
 * peerGetAllParents), as a pure function from the request's facts and the peers' state to the list of
 * places to try, in order (Squid's FwdServer list):
 *
 * 1. Whether going direct is allowed: always_direct allows → direct only; never_direct allows → peers
 *    only; a request that already passed a member of the fleet (Squid's loop detection) → direct only.
 * 2. direct only: [DIRECT]. Peers only: some parent, then every other live parent (ANY_OLD_PARENT), then
 *    the default parent. Otherwise: DIRECT first when prefer_direct is on; some parent when the request is
 *    hierarchical or nonhierarchical_direct is off; DIRECT last when prefer_direct is off.
 * 3. Some parent: the `default` parent (DEFAULT_PARENT), else CARP over the carp parents (CARP), else the
 *    first live parent in configuration order (FIRSTUP_PARENT), as peerGetSomeParent's chain (cuttle has
 *    no round-robin, userhash or sourcehash parents).
 *
 * Siblings are never chosen: Squid sends a miss to a sibling only after an ICP/HTCP or cache-digest hit,
 * and cuttle has neither (a no-query sibling is never used by Squid either). PARENT_HIT and SIBLING_HIT
 * need those queries, so they are never produced.
 *
 * A CARP choice of this member itself (a fleet lists every member, itself included) is DIRECT: its share
 * is fetched and stored here.
 */
import { type CarpTable, carpPick } from './carp.js';
import type { PeerConfig } from './peers.js';

export type HierarchyCode =
  | 'HIER_NONE'
  | 'HIER_DIRECT'
  | 'CARP'
  | 'DEFAULT_PARENT'
  | 'FIRSTUP_PARENT'
  | 'ANY_OLD_PARENT'
  | 'PARENT_HIT'
  | 'SIBLING_HIT';

/** One place to try: a peer (its index in the peer list) or the origin itself (`peer: null`). */
export interface Hop {
  peer: number | null;
  code: HierarchyCode;
}

export const DIRECT: Hop = { peer: null, code: 'HIER_DIRECT' };

/** The request's facts that selection reads, decided by the caller (ACLs, methods, headers). */
export interface SelectionFacts {
  /** always_direct allows the request. */
  alwaysDirect: boolean;
  /** never_direct allows the request. */
  neverDirect: boolean;
  /** The request came through a member of the fleet (its Via names one of our peers). */
  fromPeer: boolean;
  /** Squid's hierarchical request (clientHierarchical): GET or HEAD without credentials. */
  hierarchical: boolean;
  /** Squid's CARP key: the request's absolute URI, which is cuttle's cache key. */
  key: string;
}

export interface SelectionRules {
  preferDirect: boolean;
  nonhierarchicalDirect: boolean;
}

/** The peers with a CARP table over the carp parents; `carpMembers[i]` is the peer index of member i. */
export interface PeerSet {
  peers: readonly PeerConfig[];
  carp: CarpTable | null;
  carpMembers: readonly number[];
}

/**
 * Squid's clientHierarchical (client_side_request.cc): a request may go through the hierarchy when it is a
 * GET (cuttle also counts HEAD, which has the same cache key) and carries no Authorization (flags.auth).
 */
export function isHierarchical(method: string, hasAuthorization: boolean): boolean {
  return (method === 'GET' || method === 'HEAD') && !hasAuthorization;
}

/**
 * The places to try, in order. `usable(i)`: peer i is up and cache_peer_access allows the request to it.
 * An empty list means nowhere: never_direct with no usable parent (ERR_CANNOT_FORWARD).
 */
export function selectHops(
  set: PeerSet,
  facts: SelectionFacts,
  rules: SelectionRules,
  usable: (index: number) => boolean,
): Hop[] {
  const direct = facts.alwaysDirect ? 'yes' : facts.neverDirect ? 'no' : facts.fromPeer ? 'yes' : 'maybe';
  if (direct === 'yes') return [DIRECT];
  const hops: Hop[] = [];
  const add = (hop: Hop | null) => {
    if (hop === null) return;
    if (hops.some((h) => h.peer === hop.peer)) return;
    hops.push(hop);
  };
  const parent = (i: number) => set.peers[i].type === 'parent' && !set.peers[i].self && usable(i);
  if (direct === 'no') {
    add(someParent(set, facts.key, usable, parent));
    for (let i = 0; i < set.peers.length; i++) if (parent(i)) add({ peer: i, code: 'ANY_OLD_PARENT' });
    add(defaultParent(set, parent));
    return hops;
  }
  if (rules.preferDirect) add(DIRECT);
  if (facts.hierarchical || !rules.nonhierarchicalDirect) add(someParent(set, facts.key, usable, parent));
  if (!rules.preferDirect) add(DIRECT);
  return hops;
}

function defaultParent(set: PeerSet, parent: (i: number) => boolean): Hop | null {
  const i = set.peers.findIndex((p, i) => p.default && parent(i));
  return i < 0 ? null : { peer: i, code: 'DEFAULT_PARENT' };
}

/** peerGetSomeParent: default, then CARP, then first up. */
function someParent(
  set: PeerSet,
  key: string,
  usable: (index: number) => boolean,
  parent: (i: number) => boolean,
): Hop | null {
  const dflt = defaultParent(set, parent);
  if (dflt !== null) return dflt;
  if (set.carp !== null) {
    // This member takes its turn in CARP like any other (it is up and allows itself everything).
    const m = carpPick(set.carp, key, (j) => {
      const i = set.carpMembers[j];
      return set.peers[i].self || usable(i);
    });
    if (m >= 0) {
      const i = set.carpMembers[m];
      return set.peers[i].self ? DIRECT : { peer: i, code: 'CARP' };
    }
  }
  const first = set.peers.findIndex((_, i) => parent(i));
  return first < 0 ? null : { peer: first, code: 'FIRSTUP_PARENT' };
}
