/**
 * CARP, the Cache Array Routing Protocol, as Squid computes it (squid-cache/squid `src/carp.cc`, the same
 * in 5.7 and in today's master), which follows draft-vinod-carp-v1-03 §3 with three differences a fleet
 * mixing cuttle and Squid must share, so they are kept here on purpose:
 *
 * - Load multipliers are C `double`s (`CachePeer::carp.load_multiplier`), not the draft's 32-bit floats.
 *   `**` is V8's pow where Squid calls glibc's; both are within an ulp of the exact power, far below what
 *   could reorder two scores made from 32-bit hashes.
 * - The URL hash is not reset between peers. carp.cc declares `user_hash` once, before the loop over the
 *   peers, and since carp-key= (Squid 3.2) the key is hashed inside that loop, so the peer in position j
 *   of the table is scored with the hash of the key run through the hash j + 1 times (without this, about
 *   half the fixture's rows come out differently). A down peer still takes its turn (the hash is computed
 *   before `peerHTTPOkay`), so it shifts nothing; a peer removed from the configuration does shift the
 *   later peers' hashes (see `carpTable`).
 * - Bytes are C `char`s, signed on x86-64 (where Squid is built by Debian): a byte of 0x80 or more adds
 *   its value minus 256. Both the name hash (`(unsigned int) *t`) and the URL hash (`*c`) sign-extend.
 *
 * The key Squid hashes by default is `request->effectiveRequestUri()`, the absolute URI as Squid prints
 * it: lower-case scheme and host, the port only when it is not the scheme's default, then the path and
 * query (no user info, no fragment). That is cuttle's primary cache key (`cache/key.ts` `cacheKey`), so the
 * caller passes the cache key. cache_peer's carp-key= (a per-peer choice of URL parts to hash) is not
 * implemented: every peer is scored on the full URI, which is Squid's default.
 *
 * test/fixtures/carp/squid-carp.json holds 1,500 choices a real Squid 5.7 made (test/fixtures/carp/generate.ts),
 * and test/fleet/carp.test.ts checks every one, with Squid's own name hashes and multipliers.
 */

/** A CARP parent: Squid's peer name (cache_peer name=, or its host) and its weight= (1 or more). */
export interface CarpMember {
  name: string;
  weight: number;
}

/** One peer of the table in Squid's scoring order, with the figures Squid's `carp` manager page shows. */
export interface CarpPeer {
  /** Index of the member in the array given to `carpTable`. */
  readonly index: number;
  /** The peer's name hash (carp.cc carpInit), unsigned 32-bit. */
  readonly hash: number;
  /** weight / total weight, or 0 under 0.001 (as carp.cc). */
  readonly loadFactor: number;
  /** X_k of the draft's §3.3, as a double. */
  readonly loadMultiplier: number;
}

/** A CARP table, built once per peer set: the peers in scoring order with their hashes and multipliers. */
export interface CarpTable {
  readonly members: readonly CarpMember[];
  /** Ascending weight, configuration order among equal weights (carp.cc sorts with glibc's qsort, a stable merge sort). */
  readonly peers: readonly CarpPeer[];
}

const MULTIPLY = 0x62531965;
const UTF8 = new TextEncoder();

/** ROTATE_LEFT of carp.cc on an unsigned 32-bit value. */
function rotl(x: number, n: number): number {
  return ((x << n) | (x >>> (32 - n))) >>> 0;
}

/** The key's bytes: UTF-8, as the request line carried them (ASCII keys skip the encoder). */
function keyBytes(key: string): Uint8Array | string {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) > 0x7f) return UTF8.encode(key);
  return key;
}

/** `h += ROTATE_LEFT(h, 19) + c` over every byte, with c a signed char. */
function hashBytes(h: number, bytes: Uint8Array | string): number {
  if (typeof bytes === 'string') {
    for (let i = 0; i < bytes.length; i++) h = (h + rotl(h, 19) + bytes.charCodeAt(i)) >>> 0;
    return h;
  }
  for (const b of bytes) h = (h + rotl(h, 19) + (b < 0x80 ? b : b - 256)) >>> 0;
  return h;
}

/** `h += h * 0x62531965; h = ROTATE_LEFT(h, 21)`, the mixing step both hashes end with. */
function mix(h: number): number {
  return rotl((h + Math.imul(h, MULTIPLY)) >>> 0, 21);
}

/** A peer's name hash (carp.cc carpInit; the draft's MemberProxy_Hash). */
export function carpNameHash(name: string): number {
  return mix(hashBytes(0, keyBytes(name)));
}

/**
 * The table for a peer set (carp.cc carpInit). Every member takes part; a member that is down is not left
 * out here but skipped by `carpPick`'s `usable`, as Squid does: load factors are computed once, over every
 * configured CARP parent, when the configuration is read, and `carpSelectParent` only skips a peer that
 * `peerHTTPOkay` refuses. So a peer going down moves only its own URLs, each to the peer next in that URL's
 * order. Building a new table without a member (a reconfiguration) is what Squid does on reconfigure: the
 * load factors are recomputed, and the peers after it in the table are scored with different URL hashes
 * (see above), so more than its share moves.
 */
export function carpTable(members: readonly CarpMember[]): CarpTable {
  let total = 0;
  for (const m of members) {
    if (!Number.isInteger(m.weight) || m.weight < 1) {
      throw new RangeError(`CARP peer ${m.name}: weight must be a whole number of at least 1`);
    }
    total += m.weight;
  }
  // qsort by weight (peerSortWeight), stable as glibc's merge sort is: Array.prototype.sort is stable too.
  const order = members.map((_, i) => i).sort((a, b) => members[a].weight - members[b].weight);
  const k = order.length;
  const peers: CarpPeer[] = [];
  // X_1 = (K·p_1)^(1/K); X_k = ((K-k+1)(p_k - p_{k-1}) / (X_1···X_{k-1}) + X_{k-1}^(K-k+1))^(1/(K-k+1)),
  // with the same operations in the same order as carp.cc, so the doubles come out bit for bit.
  let pLast = 0;
  let xn = 1;
  let xLast = 0;
  for (let i = 1; i <= k; i++) {
    const index = order[i - 1];
    const member = members[index];
    let loadFactor = member.weight / total;
    if (Math.floor(loadFactor * 1000) === 0) loadFactor = 0;
    const kk1 = k - i + 1;
    let x = (kk1 * (loadFactor - pLast)) / xn;
    x += xLast ** kk1;
    x = x ** (1 / kk1);
    xn *= x;
    xLast = x;
    pLast = loadFactor;
    peers.push({ index, hash: carpNameHash(member.name), loadFactor, loadMultiplier: x });
  }
  return { members, peers };
}

/** Each peer's score for the key, in table order (carp.cc carpSelectParent). */
function carpScores(table: CarpTable, key: string): Float64Array {
  const bytes = keyBytes(key);
  const scores = new Float64Array(table.peers.length);
  let userHash = 0; // carried over from peer to peer, as carp.cc does
  for (let j = 0; j < table.peers.length; j++) {
    const peer = table.peers[j];
    userHash = hashBytes(userHash, bytes);
    scores[j] = mix((userHash ^ peer.hash) >>> 0) * peer.loadMultiplier;
  }
  return scores;
}

/**
 * Member indexes in descending score for this key; equal scores in table order, since Squid keeps the
 * first of equal scores (`score > high_score`). Scores Squid never picks (0, NaN) come last.
 */
export function carpOrder(table: CarpTable, key: string): number[] {
  const scores = carpScores(table, key);
  const rank = (j: number) => (scores[j] > 0 ? scores[j] : -1);
  return table.peers
    .map((_, j) => j)
    .sort((a, b) => rank(b) - rank(a) || a - b)
    .map((j) => table.peers[j].index);
}

/**
 * The highest-scoring usable member, or -1 when none is usable: carp.cc's loop, where `usable` is
 * `peerHTTPOkay` (the peer is up, allowed, under max-conn). A score must be above 0 to be picked.
 */
export function carpPick(table: CarpTable, key: string, usable?: (index: number) => boolean): number {
  const scores = carpScores(table, key);
  let best = -1;
  let high = 0;
  for (let j = 0; j < scores.length; j++) {
    const index = table.peers[j].index;
    if (scores[j] > high && (usable === undefined || usable(index))) {
      best = index;
      high = scores[j];
    }
  }
  return best;
}
