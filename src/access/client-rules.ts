import ipaddr from 'ipaddr.js';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;
export type ClientMatcher = (address: string | undefined) => boolean;

// Squid's stock `localnet` ACL: RFC 1122 "this" network, RFC 1918, RFC 6598, link-local and ULA ranges.
const LOCALNET_RANGES = new Set(['private', 'carrierGradeNat', 'linkLocal', 'uniqueLocal']);
const THIS_NETWORK = ipaddr.parseCIDR('0.0.0.0/8');
// Squid's built-in `localhost` ACL is `src 127.0.0.1/32 ::1`: not all of 127/8 (a client bound to 127.0.0.2
// is another host as far as access rules go), the same list squid/conf.ts gives its BUILTIN_ACLS.
const LOCALHOST = new Set(['127.0.0.1', '::1']);

function parseRule(rule: string): ((a: Addr) => boolean) | null {
  if (rule === 'all') return () => true;
  if (rule === 'localhost') return (a) => LOCALHOST.has(a.toString());
  if (rule === 'localnet') {
    return (a) =>
      LOCALNET_RANGES.has(a.range()) ||
      (a.kind() === 'ipv4' && a.match(THIS_NETWORK) && a.toString() !== '0.0.0.0');
  }
  try {
    // Squid's src/dst forms: a range `a-b` (IPv4), `address/netmask` in dotted form, a CIDR, an address.
    const range = /^([\d.]+)-([\d.]+)$/.exec(rule);
    if (range) {
      const lo = ipaddr.IPv4.parse(range[1]).toByteArray();
      const hi = ipaddr.IPv4.parse(range[2]).toByteArray();
      const num = (b: number[]) => ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3];
      return (a) => a.kind() === 'ipv4' && num(a.toByteArray()) >= num(lo) && num(a.toByteArray()) <= num(hi);
    }
    const mask = /^([\d.]+)\/(\d+\.\d+\.\d+\.\d+)$/.exec(rule);
    const [net, bits] = mask
      ? [ipaddr.IPv4.parse(mask[1]), ipaddr.IPv4.parse(mask[2]).prefixLengthFromSubnetMask() ?? Number.NaN]
      : rule.includes('/')
        ? ipaddr.parseCIDR(rule)
        : (() => {
            const a = ipaddr.parse(rule);
            return [a, a.kind() === 'ipv4' ? 32 : 128] as [Addr, number];
          })();
    if (Number.isNaN(bits)) return null;
    return (a) => a.kind() === net.kind() && a.match(net, bits);
  } catch {
    return null;
  }
}

export function isValidClientRule(rule: string): boolean {
  return parseRule(rule) !== null;
}

/** A squid.conf src/dst value as a predicate, or null when it is not one. */
export const parseAddressSpec = parseRule;

/** Builds a predicate over client addresses; IPv4-mapped IPv6 addresses are matched as IPv4. */
export function clientMatcher(rules: readonly string[]): ClientMatcher {
  const tests = rules.map((r) => {
    const t = parseRule(r);
    if (!t) throw new Error(`invalid client rule "${r}"`);
    return t;
  });
  const memo = new Map<string, boolean>();
  return (address) => {
    if (!address) return false;
    let ok = memo.get(address);
    if (ok === undefined) {
      let a: Addr;
      try {
        a = ipaddr.process(address);
      } catch {
        return false;
      }
      ok = tests.some((t) => t(a));
      // Bounded so a scan from many addresses cannot grow it without limit.
      if (memo.size > 4096) memo.clear();
      memo.set(address, ok);
    }
    return ok;
  };
}

/** Whether a socket address is Squid's `localhost`: 127.0.0.1 or ::1 (or 127.0.0.1 IPv4-mapped). */
export const isLoopback: ClientMatcher = clientMatcher(['localhost']);
