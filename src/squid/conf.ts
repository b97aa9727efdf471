/**
 * squid.conf reading: the file syntax (comments, `\` continuations, `include` with globs, quoted file names
 * holding ACL values) and the directives cuttle applies. Squid's own reference is src/cf.data.pre in
 * squid-cache/squid; the semantics of each directive are noted where it is applied.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { globSync } from 'tinyglobby';
import { parseAddressSpec } from '../access/client-rules.js';
import { ConfigError } from '../config/config-error.js';
import { type PeerConfig, type PeerType, peerDefaults } from '../fleet/peers.js';
import { FORWARDED_FOR_MODES, type ForwardedForMode } from '../http/forwarding.js';
import { LOG_FORMATS, type LogFormat } from './log-formats.js';

/** One directive line, with where it came from for error messages. */
export interface SquidLine {
  file: string;
  line: number;
  name: string;
  args: string[];
}

export const ACL_TYPES = [
  'src',
  'dst',
  'dstdomain',
  'port',
  'method',
  'proto',
  'url_regex',
  'urlpath_regex',
  'browser',
  'proxy_auth',
  'time',
] as const;
export type AclType = (typeof ACL_TYPES)[number];

export interface AclDef {
  name: string;
  type: AclType;
  /** -i: case-insensitive regex types. */
  ignoreCase: boolean;
  values: string[];
}

export interface AccessRule {
  allow: boolean;
  /** ACL names, each possibly negated with a leading `!`. */
  acls: string[];
  where: string;
}

/** request_header_access / reply_header_access NAME allow|deny ACL... */
export interface HeaderRule {
  header: string;
  allow: boolean;
  acls: string[];
}

/** refresh_pattern [-i] REGEX MIN PERCENT MAX [options]: MIN and MAX are minutes in the file. */
export interface RefreshPattern {
  regex: string;
  ignoreCase: boolean;
  min: number;
  percent: number;
  max: number;
  options: string[];
  maxStale?: number;
}

/** What a squid.conf contributes, as plain data (it crosses to the workers as JSON). */
export interface SquidSettings {
  file: string;
  acls: AclDef[];
  httpAccess: AccessRule[];
  /** via on|off: whether cuttle adds its own Via entry. */
  via: boolean;
  forwardedFor: ForwardedForMode;
  requestHeaderAccess: HeaderRule[];
  replyHeaderAccess: HeaderRule[];
  requestHeaderReplace: Record<string, string>;
  /** http_port accel: defaultsite, and whether the Host header names the site (vhost) or not (no-vhost). */
  accelSite: string | null;
  accelVhost: boolean;
  /** refresh_pattern lines in order; times in seconds, percent as written. */
  refreshPatterns: RefreshPattern[];
  /** cachemgr_passwd: a password (or none, disable) per cache manager report; `all` for the rest. */
  managerPasswords: Record<string, string>;
  /** deny_info: the error name (ERR_…) or redirect URL to answer with when a line ending in the ACL denies. */
  denyInfo: Record<string, string>;
  /** auth_param basic: the htpasswd file the helper would read, the realm and credentialsttl. */
  auth: { passwdFile: string; realm: string; ttlMs: number } | null;
  /** Directives that are recognised but not applied, with their place, listed once at startup. */
  ignored: string[];
  /** Peer selection: cache_peer_access per peer name, always/never_direct, prefer/nonhierarchical_direct. */
  routing: RoutingRules;
}

/** squid.conf's peer selection rules (src/fleet/select.ts applies them). */
export interface RoutingRules {
  alwaysDirect: AccessRule[];
  neverDirect: AccessRule[];
  /** cache_peer_access lines by peer name. */
  peerAccess: Record<string, AccessRule[]>;
  /** prefer_direct (default off): try the origin before the parents. */
  preferDirect: boolean;
  /** nonhierarchical_direct (default on): non-hierarchical requests go to the origin. */
  nonhierarchicalDirect: boolean;
}

/** Config keys a squid.conf sets, in cuttle's own terms (see config.ts). */
export interface SquidDerived {
  port?: number;
  host?: string;
  origin?: string;
  workers?: number;
  cacheDir?: string;
  cacheSize?: number;
  maxObjectSize?: number;
  minObjectSize?: number;
  visibleHostname?: string;
  maxHeaderSize?: number;
  accessLog?: string | null;
  accessLogFormat?: LogFormat;
  logfileRotate?: number;
  pidFile?: string;
  timeouts?: Record<string, number>;
  maxStale?: number;
  httpsPort?: number;
  tls?: { certificates: Array<{ cert: string; key: string }> };
  peers?: PeerConfig[];
  squid: SquidSettings;
}

const where = (l: SquidLine) => `${l.file}:${l.line}`;
const bad = (l: SquidLine, why: string): never => {
  throw new ConfigError(`${where(l)}: ${l.name}: ${why}`);
};

/** Splits a squid.conf into directive lines, following includes (globs allowed, nesting bounded). */
export function readSquidLines(file: string, depth = 0): SquidLine[] {
  if (depth > 16) throw new ConfigError(`${file}: include nesting deeper than 16 (a loop?)`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const out: SquidLine[] = [];
  const raw = text.split(/\r?\n/);
  for (let i = 0; i < raw.length; i++) {
    const start = i;
    let line = raw[i];
    // A trailing backslash continues the directive on the next line.
    while (line.endsWith('\\') && i + 1 < raw.length) line = `${line.slice(0, -1)} ${raw[++i]}`;
    // A `#` after whitespace starts a comment too: Debian's stock file annotates its ACL values that way.
    const trimmed = line.replace(/(^|\s)#.*$/, '').trim();
    if (trimmed === '') continue;
    const [name, ...args] = trimmed.split(/\s+/);
    const l: SquidLine = { file, line: start + 1, name: name.toLowerCase(), args };
    if (l.name === 'include') {
      if (args.length !== 1) bad(l, 'expected one file name or pattern');
      const pattern = isAbsolute(args[0]) ? args[0] : resolve(dirname(file), args[0]);
      const files = /[*?[{]/.test(pattern) ? globSync(pattern, { absolute: true }).sort() : [pattern];
      for (const f of files) out.push(...readSquidLines(f, depth + 1));
      continue;
    }
    out.push(l);
  }
  return out;
}

/** ACL values: a quoted argument names a file with one value per line (Squid's `"/path"` form). */
function aclValues(l: SquidLine, args: string[]): string[] {
  const values: string[] = [];
  for (const a of args) {
    const m = /^"(.+)"$/.exec(a);
    if (!m) {
      values.push(a);
      continue;
    }
    const path = isAbsolute(m[1]) ? m[1] : resolve(dirname(l.file), m[1]);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      return bad(l, `cannot read ACL file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    for (const v of text.split(/\r?\n/)) {
      const t = v.replace(/#.*/, '').trim();
      if (t) values.push(...t.split(/\s+/));
    }
  }
  return values;
}

/** Squid's built-in ACLs (squid.conf's `acl all src all` and friends are predefined since Squid 3.2). */
export const BUILTIN_ACLS: AclDef[] = [
  { name: 'all', type: 'src', ignoreCase: false, values: ['0.0.0.0/0', '::/0'] },
  { name: 'localhost', type: 'src', ignoreCase: false, values: ['127.0.0.1/32', '::1'] },
  { name: 'to_localhost', type: 'dst', ignoreCase: false, values: ['127.0.0.0/8', '0.0.0.0/32', '::1'] },
  {
    name: 'manager',
    type: 'url_regex',
    ignoreCase: true,
    values: ['^cache_object://', '^https?://[^/]+/squid-internal-mgr/'],
  },
  { name: 'CONNECT', type: 'method', ignoreCase: false, values: ['CONNECT'] },
];

/** Directives Squid has that cuttle reads without applying: listed at startup, never an error. */
function ignore(settings: SquidSettings, l: SquidLine): void {
  settings.ignored.push(`${l.name} (${where(l)})`);
}

function size(
  l: SquidLine,
  value: string | undefined,
  unit: string | undefined,
  defaultUnit: string,
): number {
  if (value === undefined || !/^\d+$/.test(value)) return bad(l, `expected a size, got "${value ?? ''}"`);
  const u = (unit ?? defaultUnit).toLowerCase();
  const scale: Record<string, number> = { bytes: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
  if (!(u in scale)) bad(l, `unknown size unit "${unit}" (bytes, KB, MB, GB)`);
  return Number(value) * scale[u];
}

function duration(l: SquidLine): number {
  const [n, unit = 'seconds'] = l.args;
  if (n === undefined || !/^\d+(\.\d+)?$/.test(n)) return bad(l, `expected a time, got "${n ?? ''}"`);
  const u = unit.toLowerCase().replace(/s$/, '');
  const scale: Record<string, number> = {
    millisecond: 1,
    second: 1000,
    minute: 60_000,
    hour: 3_600_000,
    day: 86_400_000,
    week: 604_800_000,
  };
  if (!(u in scale)) bad(l, `unknown time unit "${unit}"`);
  return Math.round(Number(n) * scale[u]);
}

/** Reads a squid.conf and returns the settings cuttle applies. Throws ConfigError naming file and line. */
export function parseSquidConf(file: string): SquidDerived {
  const path = resolve(file);
  const settings: SquidSettings = {
    file: path,
    acls: [],
    httpAccess: [],
    via: true,
    forwardedFor: 'on',
    requestHeaderAccess: [],
    replyHeaderAccess: [],
    requestHeaderReplace: {},
    auth: null,
    denyInfo: {},
    managerPasswords: {},
    refreshPatterns: [],
    accelSite: null,
    accelVhost: true,
    ignored: [],
    routing: {
      alwaysDirect: [],
      neverDirect: [],
      peerAccess: {},
      preferDirect: false,
      nonhierarchicalDirect: true,
    },
  };
  const peers: PeerConfig[] = [];
  const d: SquidDerived = { squid: settings };
  const timeouts: Record<string, number> = {};
  let cacheMem: number | undefined;
  let peerOrigin: string | undefined;
  let accel: { defaultsite?: string; noVhost?: boolean } | undefined;
  const acls = new Map<string, AclDef>(BUILTIN_ACLS.map((a) => [a.name, { ...a, values: [...a.values] }]));
  const builtins = new Set(BUILTIN_ACLS.map((a) => a.name));

  for (const l of readSquidLines(path)) {
    const a = l.args;
    switch (l.name) {
      case 'acl': {
        const [name, rawType, ...rest] = a;
        if (!name || !rawType) bad(l, 'expected: acl NAME TYPE VALUE...');
        const type = rawType as AclType;
        if (!ACL_TYPES.includes(type)) {
          // Squid refuses an unknown ACL type; cuttle names the ones it has.
          bad(l, `ACL type "${rawType}" is not supported (supported: ${ACL_TYPES.join(', ')})`);
        }
        const flags = rest.filter((x) => /^-[a-z]$/.test(x));
        const values = aclValues(
          l,
          rest.filter((x) => !/^-[a-z]$/.test(x)),
        );
        if (values.length === 0 && type !== 'proxy_auth') bad(l, `ACL ${name} has no values`);
        validateAclValues(l, type, values);
        const prev = acls.get(name);
        if (prev && builtins.has(name) && prev.type !== type) {
          bad(l, `ACL ${name} is built in as type ${prev.type}`);
        }
        if (prev && prev.type !== type) bad(l, `ACL ${name} was defined earlier with type ${prev.type}`);
        if (prev && builtins.has(name)) {
          // Squid warns and ignores a redefinition of a built-in with its usual values (stock files carry them).
          builtins.delete(name);
          prev.values = [];
        }
        if (prev) prev.values.push(...values);
        else acls.set(name, { name, type, ignoreCase: flags.includes('-i'), values });
        break;
      }
      case 'http_access': {
        const [action, ...names] = a;
        if (action !== 'allow' && action !== 'deny') bad(l, `expected allow or deny, got "${action ?? ''}"`);
        if (names.length === 0) bad(l, 'expected at least one ACL name');
        for (const n of names)
          if (!acls.has(n.replace(/^!/, ''))) bad(l, `ACL "${n.replace(/^!/, '')}" is not defined`);
        settings.httpAccess.push({ allow: action === 'allow', acls: names, where: where(l) });
        break;
      }
      case 'via':
        if (a[0] !== 'on' && a[0] !== 'off') bad(l, 'expected on or off');
        settings.via = a[0] === 'on';
        break;
      case 'forwarded_for': {
        const mode = FORWARDED_FOR_MODES.find((m) => m === a[0]);
        if (!mode) bad(l, `expected one of ${FORWARDED_FOR_MODES.join(', ')}`);
        settings.forwardedFor = mode as ForwardedForMode;
        break;
      }
      case 'request_header_access':
      case 'reply_header_access': {
        const [header, action, ...names] = a;
        if (!header || (action !== 'allow' && action !== 'deny') || names.length === 0)
          bad(l, 'expected: HEADER allow|deny ACL...');
        for (const n of names)
          if (!acls.has(n.replace(/^!/, ''))) bad(l, `ACL "${n.replace(/^!/, '')}" is not defined`);
        const list =
          l.name === 'request_header_access' ? settings.requestHeaderAccess : settings.replyHeaderAccess;
        list.push({ header, allow: action === 'allow', acls: names });
        break;
      }
      case 'request_header_replace': {
        const [header, ...value] = a;
        if (!header || value.length === 0) bad(l, 'expected: HEADER VALUE');
        settings.requestHeaderReplace[header] = value.join(' ');
        break;
      }
      case 'refresh_pattern': {
        const ignoreCase = a[0] === '-i';
        const [regex, min, percent, max, ...opts] = ignoreCase ? a.slice(1) : a;
        if (!regex || !/^\d+$/.test(min ?? '') || !/^\d+%$/.test(percent ?? '') || !/^\d+$/.test(max ?? ''))
          bad(l, 'expected: refresh_pattern [-i] REGEX MIN PERCENT% MAX [options]');
        try {
          new RegExp(regex);
        } catch {
          bad(l, `"${regex}" is not a valid regular expression`);
        }
        const known = [
          'override-expire',
          'override-lastmod',
          'ignore-reload',
          'reload-into-ims',
          'ignore-no-store',
          'ignore-private',
          'refresh-ims',
        ];
        const options: string[] = [];
        let maxStale: number | undefined;
        for (const o of opts) {
          if (o.startsWith('max-stale=') && /^\d+$/.test(o.slice(10))) maxStale = Number(o.slice(10));
          else if (known.includes(o)) options.push(o);
          else settings.ignored.push(`refresh_pattern option ${o} (${where(l)})`);
        }
        settings.refreshPatterns.push({
          regex,
          ignoreCase,
          min: Number(min) * 60,
          percent: Number(percent?.slice(0, -1)),
          max: Number(max) * 60,
          options,
          maxStale,
        });
        break;
      }
      case 'cachemgr_passwd': {
        const [password, ...actions] = a;
        if (!password || actions.length === 0)
          bad(l, 'expected: cachemgr_passwd PASSWORD|none|disable ACTION...');
        for (const action of actions) settings.managerPasswords[action] = password;
        break;
      }
      case 'deny_info': {
        const [answer, ...names] = a;
        if (!answer || names.length === 0) bad(l, 'expected: deny_info ERR_NAME|URL ACL...');
        if (!/^ERR_[A-Z_]+$/.test(answer) && !/^(\d{3}:)?https?:\/\//.test(answer))
          bad(l, `"${answer}" is neither an ERR_ name nor an http(s) URL`);
        for (const n of names) {
          if (!acls.has(n)) bad(l, `ACL "${n}" is not defined`);
          settings.denyInfo[n] = answer;
        }
        break;
      }
      case 'auth_param': {
        // auth_param basic program HELPER FILE | realm TEXT | credentialsttl N UNIT | children … (unused)
        const [scheme, key, ...rest] = a;
        if (scheme !== 'basic') {
          ignore(settings, l);
          break;
        }
        settings.auth ??= { passwdFile: '', realm: 'Squid proxy-caching web server', ttlMs: 7_200_000 };
        const auth = settings.auth;
        if (key === 'program') {
          const file = rest[rest.length - 1];
          if (rest.length < 2 || !file?.startsWith('/'))
            bad(l, 'expected: auth_param basic program HELPER /path/to/htpasswd (the file is read directly)');
          auth.passwdFile = file;
        } else if (key === 'realm') auth.realm = rest.join(' ');
        else if (key === 'credentialsttl') auth.ttlMs = duration({ ...l, args: rest });
        else settings.ignored.push(`auth_param basic ${key} (${where(l)})`);
        break;
      }
      case 'http_port':
      case 'https_port': {
        const [addr, ...opts] = a;
        const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d+)$/.exec(addr ?? '');
        if (!m) bad(l, `expected [address:]port, got "${addr ?? ''}"`);
        const port = Number(m?.[2]);
        if (port > 65535) bad(l, `port ${port} is out of range`);
        // Without an address Squid listens on every interface; http_access decides who is served.
        const host = m?.[1] ? m[1].replace(/^\[|\]$/g, '') : '0.0.0.0';
        const tls: { cert?: string; key?: string } = {};
        for (const o of opts) {
          if (o === 'accel') accel ??= {};
          else if (o.startsWith('defaultsite=')) {
            accel ??= {};
            accel.defaultsite = o.slice('defaultsite='.length);
          } else if (o === 'vhost' || o === 'no-vhost') {
            accel ??= {};
            accel.noVhost = o === 'no-vhost';
          } else if (l.name === 'https_port' && (o.startsWith('cert=') || o.startsWith('tls-cert='))) {
            tls.cert = resolve(dirname(path), o.slice(o.indexOf('=') + 1));
          } else if (l.name === 'https_port' && (o.startsWith('key=') || o.startsWith('tls-key='))) {
            tls.key = resolve(dirname(path), o.slice(o.indexOf('=') + 1));
          } else settings.ignored.push(`${l.name} option ${o} (${where(l)})`);
        }
        if (l.name === 'http_port') {
          d.port = port;
          d.host = host;
          break;
        }
        // cuttle listens on one address: an https_port's applies when no http_port names one.
        d.host ??= host;
        // https_port: TLS termination for accel mode, as cuttle does it (the SSL-bump forms are not).
        if (!opts.includes('accel')) bad(l, 'only accel mode is supported (cuttle does not intercept TLS)');
        if (!tls.cert) bad(l, 'needs cert=FILE (and key=FILE when the key is not in it)');
        d.httpsPort = port;
        d.tls = { certificates: [{ cert: tls.cert as string, key: tls.key ?? (tls.cert as string) }] };
        break;
      }
      case 'cache_peer': {
        // cache_peer HOSTNAME TYPE HTTP-PORT ICP-PORT [options] (cf.data.pre). An originserver peer is the
        // accel origin; parent and sibling peers join the routing stage (src/fleet).
        const [host, type, httpPort, icpPort, ...opts] = a;
        if (!host || !type || !httpPort || !/^\d+$/.test(httpPort) || !/^\d+$/.test(icpPort ?? ''))
          bad(l, 'expected: cache_peer HOSTNAME TYPE HTTP-PORT ICP-PORT [options]');
        if (Number(httpPort) < 1 || Number(httpPort) > 65535) bad(l, `port ${httpPort} is out of range`);
        if (opts.includes('originserver')) {
          const tls = opts.includes('tls') || opts.includes('ssl');
          peerOrigin = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${httpPort}`;
          break;
        }
        if (type !== 'parent' && type !== 'sibling')
          bad(l, `type "${type}" is not supported (parent, sibling, or an originserver peer)`);
        const p = cachePeer(l, host, type as PeerType, Number(httpPort), opts, settings);
        if (peers.some((q) => q.name === p.name))
          bad(l, `a peer named "${p.name}" is defined twice (give each a distinct name=)`);
        peers.push(p);
        break;
      }
      case 'cache_peer_access': {
        const [name, action, ...names] = a;
        if (!name || (action !== 'allow' && action !== 'deny') || names.length === 0)
          bad(l, 'expected: cache_peer_access PEER-NAME allow|deny ACL...');
        if (!peers.some((p) => p.name === name)) bad(l, `no cache_peer named "${name}" before this line`);
        settings.routing.peerAccess[name as string] ??= [];
        settings.routing.peerAccess[name as string].push(accessRule(l, action as string, names, acls));
        break;
      }
      case 'always_direct':
      case 'never_direct': {
        const [action, ...names] = a;
        if ((action !== 'allow' && action !== 'deny') || names.length === 0)
          bad(l, 'expected: allow|deny ACL...');
        const list =
          l.name === 'always_direct' ? settings.routing.alwaysDirect : settings.routing.neverDirect;
        list.push(accessRule(l, action as string, names, acls));
        break;
      }
      case 'prefer_direct':
      case 'nonhierarchical_direct': {
        if (a[0] !== 'on' && a[0] !== 'off') bad(l, 'expected on or off');
        if (l.name === 'prefer_direct') settings.routing.preferDirect = a[0] === 'on';
        else settings.routing.nonhierarchicalDirect = a[0] === 'on';
        break;
      }
      case 'cache_dir': {
        // cache_dir TYPE PATH MBYTES L1 L2: the store is LMDB whatever the type.
        const [, dir, mb] = a;
        if (!dir || !mb || !/^\d+$/.test(mb)) bad(l, 'expected: cache_dir TYPE PATH MBYTES ...');
        d.cacheDir = dir;
        d.cacheSize = Number(mb) * 1024 ** 2;
        break;
      }
      case 'minimum_object_size':
        d.minObjectSize = size(l, a[0], a[1], 'KB');
        break;
      case 'cache_mem':
        // Without a cache_dir Squid is a memory-only cache of cache_mem bytes; cuttle's store is one memory
        // map either way, so cache_mem sizes it when no cache_dir does.
        cacheMem = size(l, a[0], a[1], 'MB');
        break;
      case 'maximum_object_size':
        d.maxObjectSize = size(l, a[0], a[1], 'KB');
        break;
      case 'request_header_max_size':
        d.maxHeaderSize = size(l, a[0], a[1], 'KB');
        break;
      case 'workers': {
        if (!/^\d+$/.test(a[0] ?? '') || Number(a[0]) < 1) bad(l, 'expected a positive number');
        d.workers = Number(a[0]);
        break;
      }
      case 'visible_hostname':
        if (!a[0]) bad(l, 'expected a host name');
        d.visibleHostname = a[0];
        break;
      case 'access_log': {
        // access_log [module:]path [format] [acl ...]; the stdio: module is the plain file, `none` turns it off.
        const [target, format = 'squid'] = a;
        if (!target) bad(l, 'expected a path or none');
        if (target === 'none') {
          d.accessLog = null;
          break;
        }
        const m = /^(?:(stdio|daemon):)?(\/.*)$/.exec(target);
        if (!m) bad(l, `expected stdio:/path, daemon:/path or /path, got "${target}"`);
        if (!LOG_FORMATS.includes(format as LogFormat))
          bad(l, `log format "${format}" is not supported (${LOG_FORMATS.join(', ')})`);
        if (a.length > 2) settings.ignored.push(`access_log ACLs (${where(l)})`);
        d.accessLog = m?.[2];
        d.accessLogFormat = format as SquidDerived['accessLogFormat'];
        break;
      }
      case 'pid_filename':
        if (!a[0]) bad(l, 'expected a path or none');
        d.pidFile = a[0];
        break;
      case 'logfile_rotate':
        if (!/^\d+$/.test(a[0] ?? '')) bad(l, 'expected a number');
        d.logfileRotate = Number(a[0]);
        break;
      case 'connect_timeout':
        timeouts.connect = duration(l);
        break;
      case 'read_timeout':
        timeouts.read = duration(l);
        break;
      case 'request_timeout':
        timeouts.clientHeaders = duration(l);
        break;
      case 'client_idle_pconn_timeout':
        timeouts.clientIdle = duration(l);
        break;
      case 'shutdown_lifetime':
        timeouts.shutdown = duration(l);
        break;
      case 'max_stale':
        d.maxStale = duration(l);
        break;
      default:
        ignore(settings, l);
    }
  }
  if (accel) {
    // vhost (Squid's default in accel mode): the Host header names the site, defaultsite when it is missing;
    // no-vhost: every request is for defaultsite.
    settings.accelSite = accel.defaultsite ?? null;
    settings.accelVhost = !accel.noVhost;
    const origin = peerOrigin ?? (accel.defaultsite ? `http://${accel.defaultsite}` : undefined);
    if (!origin)
      throw new ConfigError(`${path}: http_port accel needs cache_peer ... originserver or defaultsite=`);
    d.origin = origin;
  }
  // https_port alone: HTTPS is the only listener (a plain port of 0 means none, config.ts plainListener).
  if (d.httpsPort !== undefined && d.port === undefined) d.port = 0;
  if (Object.keys(timeouts).length) d.timeouts = timeouts;
  if (d.cacheSize === undefined && cacheMem !== undefined) d.cacheSize = cacheMem;
  if (settings.auth && !settings.auth.passwdFile)
    throw new ConfigError(`${path}: auth_param basic needs a program line naming the password file`);
  if ([...acls.values()].some((a) => a.type === 'proxy_auth') && !settings.auth)
    throw new ConfigError(`${path}: proxy_auth ACLs need auth_param basic program … FILE`);
  settings.acls = [...acls.values()];
  if (peers.length > 0) d.peers = peers;
  return d;
}

/** An allow|deny line over defined ACLs (http_access's shape, for the routing directives). */
function accessRule(l: SquidLine, action: string, names: string[], acls: Map<string, AclDef>): AccessRule {
  for (const n of names)
    if (!acls.has(n.replace(/^!/, ''))) bad(l, `ACL "${n.replace(/^!/, '')}" is not defined`);
  return { allow: action === 'allow', acls: names, where: where(l) };
}

/** cache_peer options cuttle applies; the others (ICP, digests, TLS to peers, …) are listed as ignored. */
const IGNORED_PEER_OPTION = /^[a-z-]+(=.*)?$/;

function cachePeer(
  l: SquidLine,
  host: string,
  type: PeerType,
  port: number,
  opts: string[],
  settings: SquidSettings,
): PeerConfig {
  const p = peerDefaults(host.replace(/^\[|\]$/g, ''), port, host);
  p.type = type;
  const positive = (o: string, v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < 1) bad(l, `${o}: expected a whole number of 1 or more`);
    return Number(v);
  };
  for (const o of opts) {
    const eq = o.indexOf('=');
    const [k, v] = eq < 0 ? [o, ''] : [o.slice(0, eq), o.slice(eq + 1)];
    switch (k) {
      case 'carp':
        p.carp = true;
        break;
      case 'default':
        p.default = true;
        break;
      case 'no-query':
        p.noQuery = true;
        break;
      case 'proxy-only':
        p.proxyOnly = true;
        break;
      case 'weight':
        p.weight = positive(k, v);
        break;
      case 'name':
        if (!/^[A-Za-z0-9._:-]+$/.test(v)) bad(l, `name=: "${v}" is not a valid peer name`);
        p.name = v;
        break;
      case 'login':
        // Only PASS is applied: credentials written in squid.conf (login=user:pass) are not sent.
        if (v === 'PASS') p.loginPass = true;
        else settings.ignored.push(`cache_peer option login=${v === '' ? '' : '…'} (${where(l)})`);
        break;
      case 'connect-timeout':
        p.connectTimeout = duration({ ...l, args: [v] });
        break;
      case 'connect-fail-limit':
        p.connectFailLimit = positive(k, v);
        break;
      case 'monitorurl':
        if (!/^https?:\/\//.test(v)) bad(l, `monitorurl=: expected an http(s) URL, got "${v}"`);
        p.monitorUrl = v;
        break;
      case 'monitorinterval':
        p.monitorInterval = positive(k, v) * 1000;
        break;
      default:
        if (!IGNORED_PEER_OPTION.test(o)) bad(l, `"${o}" is not a cache_peer option`);
        settings.ignored.push(`cache_peer option ${o} (${where(l)})`);
    }
  }
  if (type === 'sibling' && p.carp) bad(l, 'carp is for parents only');
  return p;
}

function validateAclValues(l: SquidLine, type: AclType, values: string[]): void {
  for (const v of values) {
    switch (type) {
      case 'port':
        if (!/^\d+(-\d+)?$/.test(v)) bad(l, `"${v}" is not a port or port range`);
        break;
      case 'url_regex':
      case 'urlpath_regex':
      case 'browser':
        try {
          new RegExp(v);
        } catch {
          bad(l, `"${v}" is not a valid regular expression`);
        }
        break;
      case 'src':
      case 'dst':
        if (parseAddressSpec(v) === null) bad(l, `"${v}" is not an address, CIDR, address/netmask or range`);
        break;
      case 'time':
        if (!/^[SMTWHFAD]+$/.test(v) && !/^\d{1,2}:\d{2}-\d{1,2}:\d{2}$/.test(v))
          bad(l, `"${v}" is not a day list (SMTWHFA) or hh:mm-hh:mm`);
        break;
      default:
        break;
    }
  }
}
