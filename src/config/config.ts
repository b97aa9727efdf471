import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isValidClientRule } from '../access/client-rules.js';
import { SET_COOKIE_POLICIES, type SetCookiePolicy } from '../cache/policy.js';
import { markSelf, type PeerConfig, peerDefaults, peerFromUrl } from '../fleet/peers.js';
import type { ForwardedForMode } from '../http/forwarding.js';
import { parseSquidConf, type SquidSettings } from '../squid/conf.js';
import { LOG_FORMATS, type LogFormat } from '../squid/log-formats.js';
import { ConfigError } from './config-error.js';
import { parseDuration, parseSize } from './units.js';

export { ConfigError };

export interface Timeouts {
  /** Upstream TCP connect (Squid's connect_timeout). */
  connect: number;
  /** Upstream: from request sent to response headers received. */
  response: number;
  /** Upstream: longest silence while a response body streams (Squid's read_timeout). */
  read: number;
  /** Client: time to send the whole request header section; defeats slowloris (Squid's request_timeout). */
  clientHeaders: number;
  /** Client: idle persistent connection between requests (Squid's client_idle_pconn_timeout). */
  clientIdle: number;
  /** CONNECT tunnel with no bytes either way. */
  tunnelIdle: number;
  /** Graceful stop: how long in-flight work may take before connections are cut (Squid's shutdown_lifetime). */
  shutdown: number;
}

/** One certificate of the HTTPS listener: PEM files, and the server names (SNI) it answers for. */
export interface TlsCertificate {
  cert: string;
  key: string;
  /**
   * Names (`www.example.com`, `*.example.com`) this certificate is chosen for; when absent, the DNS names of
   * its subjectAltName. The first certificate without servernames (or else the first) is the default.
   */
  servernames?: string[];
}

export interface Config {
  /** The plain HTTP listener; with an HTTPS port, 0 means none (HTTPS alone). */
  port: number;
  host: string;
  workers: number;
  cacheDir: string;
  /** Reverse-proxy (edge) mode when set: every origin-form request goes here. */
  origin: string | null;
  /** CA certificates (PEM file) an https origin's certificate is verified against, instead of Node's. */
  originCa: string | null;
  /** Accept any certificate from an https origin (tests only; a warning at start). */
  originInsecure: boolean;
  /** TLS termination (reverse mode): the HTTPS listener, HTTP/1.1 and HTTP/2 on one port; null for none. */
  httpsPort: number | null;
  tls: { certificates: TlsCertificate[] };
  /** Reverse mode: cleartext HTTP/2 with prior knowledge (h2c) on this port; null for none. */
  h2cPort: number | null;
  /** HTTP/2: concurrent streams a client may open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  h2MaxStreams: number;
  /** HTTP/2: streams a client may reset per second before its connection gets GOAWAY (rapid reset). */
  h2MaxResets: number;
  configFile: string | null;
  logLevel: string;
  /** Operational log on stderr: pino JSON lines, or pino-pretty for a terminal; null until the CLI resolves it. */
  logFormat: LogFormatName | null;
  /** Prometheus metrics and the dashboard (off: no prom-client in the workers and nothing fed at finish). */
  metrics: boolean;
  /** A separate listener in the primary for /metrics, as exporters have; null for none. */
  metricsPort: number | null;
  /**
   * Plain HTTP/1.x: `lean` answers hits on Node's llhttp binding in a raw net server and hands the rest to
   * node:http (workers/lean.ts); `node` is node:http alone. Lean falls back to node where the binding is missing.
   */
  frontEnd: 'lean' | 'node';
  /** Client address rules: `localhost`, `localnet`, `all`, an address or a CIDR. */
  allow: string[];
  /** Ports CONNECT may reach (Squid's SSL_ports). */
  connectPorts: number[];
  /** Our name in `Via` and error pages (Squid's visible_hostname). */
  visibleHostname: string;
  /** Request line plus header section, in bytes (Squid's request_header_max_size). */
  maxHeaderSize: number;
  maxUrlLength: number;
  /** Bound on the whole cache, bytes. */
  cacheSize: number;
  /** Largest object stored, bytes. */
  maxObjectSize: number;
  /** Smallest object stored, bytes (Squid's minimum_object_size), when its length is known up front. */
  minObjectSize: number;
  /** Store an object on its Nth request within the window (nginx's proxy_cache_min_uses). */
  cacheMinUses: number;
  cacheMinUsesWindow: number;
  /** Request fields that join the cache key, as if every response listed them in Vary (lower-case). */
  cacheKeyHeaders: string[];
  /**
   * How long a URL whose response could not be stored is fetched without collapsing (Varnish's
   * hit-for-miss), so the next wave of requests for it does not queue behind one fetch; ms, 0 = never.
   */
  hitForMiss: number;
  /**
   * How stale a stored response may be served when its revalidation cannot reach the origin (RFC 9111
   * §4.2.4; Squid's max_stale, which refresh_pattern max-stale overrides per URL); ms.
   */
  maxStale: number;
  /**
   * Responses that set cookies (RFC 9111 §3.1, §7.3): `store`, `strip` or `pass` (policy.ts). Unset, it is
   * resolved here: `store` for an edge in front of its own origin (--origin, no squid.conf), else Squid's
   * `strip`.
   */
  setCookie: SetCookiePolicy;
  /** Pass Surrogate-Key and Cache-Tag on to clients; by default they are the cache's and removed. */
  keepTagHeaders: boolean;
  /** RFC 9111 §4.2.2 heuristic freshness: fraction of the time since Last-Modified, capped. */
  heuristicFraction: number;
  heuristicMax: number;
  /** How often the primary's sweeper enforces the size bound. */
  sweepInterval: number;
  timeouts: Timeouts;
  /** Where the primary writes its PID for `cuttle -k` (Squid's pid_filename); default <cacheDir>/cuttle.pid. */
  pidFile: string | null;
  /** access.log path (Squid's access_log), or null for none. */
  accessLog: string | null;
  accessLogFormat: LogFormat;
  /** How many rotated access logs SIGUSR1 keeps (.0 … .N-1); 0 only reopens, for logrotate. */
  logfileRotate: number;
  /** From --squid-conf: Squid's ACLs and http_access rules, which then replace `allow`/`connectPorts`. */
  squid: SquidSettings | null;
  // Resolved here once from a squid.conf, or their defaults, so the core reads no `squid` setting itself:
  /** Our own Via entry on what we forward and send (Squid's `via`). */
  via: boolean;
  /** X-Forwarded-For on forwarded requests (Squid's `forwarded_for`). */
  forwardedFor: ForwardedForMode;
  /** Reverse mode: the site's name (accel defaultsite), and whether the Host field names it instead (vhost). */
  accelSite: string | null;
  accelVhost: boolean;
  /** cachemgr_passwd: a password (or none, disable) per cache manager report. */
  managerPasswords: Record<string, string>;
  /**
   * Cache peers (squid.conf cache_peer, `peers` in the JSON config, --peer URL): the routing stage
   * (src/fleet). The entry that is this member is marked `self` once, here.
   */
  peers: PeerConfig[];
  /** Reverse-mode fleet: keep a copy of what a peer (the URL's owner) answered (--peer-cache-copy). */
  peerCacheCopy: boolean;
}

/** Whether the plain HTTP listener runs: always when it is the only one; beside others, unless port is 0. */
export function plainListener(c: Pick<Config, 'port' | 'httpsPort' | 'h2cPort'>): boolean {
  return (c.httpsPort === null && c.h2cPort === null) || c.port !== 0;
}

/** Settings derived from others, never given directly. */
const DERIVED = new Set(['configFile', 'via', 'forwardedFor', 'accelSite', 'accelVhost', 'managerPasswords']);

export type LogFormatName = 'json' | 'pretty';
const LOG_FORMAT_NAMES: LogFormatName[] = ['json', 'pretty'];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const DEFAULTS: Config = {
  port: 3128,
  host: '127.0.0.1',
  workers: availableParallelism(),
  cacheDir: './.cuttle-cache',
  origin: null,
  originCa: null,
  originInsecure: false,
  httpsPort: null,
  tls: { certificates: [] },
  h2cPort: null,
  h2MaxStreams: 100,
  h2MaxResets: 200,
  configFile: null,
  logLevel: 'info',
  logFormat: null,
  metrics: true,
  metricsPort: null,
  frontEnd: 'lean',
  allow: ['localhost', 'localnet'],
  connectPorts: [443],
  visibleHostname: hostname() || 'cuttle',
  maxHeaderSize: 64 * 1024,
  maxUrlLength: 8192,
  cacheSize: 1024 ** 3,
  maxObjectSize: 64 * 1024 ** 2,
  minObjectSize: 0,
  cacheMinUses: 1,
  cacheMinUsesWindow: 600_000,
  cacheKeyHeaders: [],
  hitForMiss: 120_000,
  maxStale: 7 * 86_400_000,
  setCookie: 'strip',
  keepTagHeaders: false,
  heuristicFraction: 0.1,
  heuristicMax: 86_400_000,
  sweepInterval: 5000,
  timeouts: {
    connect: 30_000,
    response: 60_000,
    read: 900_000,
    clientHeaders: 30_000,
    clientIdle: 120_000,
    tunnelIdle: 900_000,
    shutdown: 30_000,
  },
  pidFile: null,
  accessLog: null,
  accessLogFormat: 'squid',
  logfileRotate: 10,
  squid: null,
  via: true,
  forwardedFor: 'on',
  accelSite: null,
  accelVhost: false,
  managerPasswords: {},
  peers: [],
  peerCacheCopy: false,
};

/** Every flag, in the order `--help` shows them. */
export const FLAGS = {
  port: { type: 'string', short: 'p', help: 'port to listen on (default 3128; 0 picks a free one)' },
  host: { type: 'string', help: 'address to listen on (default 127.0.0.1)' },
  workers: { type: 'string', short: 'w', help: 'worker processes (default: available parallelism)' },
  'cache-dir': { type: 'string', help: 'cache directory, created if missing (default ./.cuttle-cache)' },
  'cache-size': { type: 'string', help: 'bound on the whole cache, e.g. 512m, 4g (default 1g)' },
  'max-object-size': { type: 'string', help: 'largest object stored (default 64m)' },
  'cache-min-uses': {
    type: 'string',
    help: 'store an object on its Nth request within the window (default 1)',
  },
  'cache-min-uses-window': { type: 'string', help: 'window for --cache-min-uses, e.g. 10m (default 10m)' },
  'cache-key-headers': {
    type: 'string',
    multiple: true,
    help: 'request fields that join the cache key, as if every response listed them in Vary, e.g. X-Forwarded-Host; repeat or comma-separate (default none)',
  },
  'set-cookie': {
    type: 'string',
    help: 'responses that set cookies: store (kept and served, for explicitly cacheable ones), strip (stored without the cookie, as Squid) or pass (never stored) (default: store with --origin, else strip)',
  },
  'keep-tag-headers': {
    type: 'boolean',
    help: 'pass Surrogate-Key and Cache-Tag response fields on to clients (by default they are removed)',
  },
  'hit-for-miss': {
    type: 'string',
    help: 'how long a URL whose response was not storable is fetched without waiting for other fetches of it (default 2m; 0 = never)',
  },
  origin: {
    type: 'string',
    help: 'reverse-proxy (edge) mode: send origin-form requests to this http(s) URL',
  },
  'origin-ca': {
    type: 'string',
    help: "PEM file of the CA certificates an https origin is verified against (default: Node's CA list)",
  },
  'origin-insecure': {
    type: 'boolean',
    help: 'do not verify an https origin certificate (for tests only; logs a warning)',
  },
  'https-port': {
    type: 'string',
    help: 'reverse mode: also listen for HTTPS (HTTP/1.1 and HTTP/2) on this port; with --port 0, HTTPS alone',
  },
  'tls-cert': { type: 'string', help: 'PEM certificate (chain) for --https-port; the default certificate' },
  'tls-key': { type: 'string', help: 'PEM private key of --tls-cert' },
  'h2c-port': {
    type: 'string',
    help: 'reverse mode: also listen for cleartext HTTP/2 with prior knowledge (h2c) on this port',
  },
  'h2-max-streams': {
    type: 'string',
    help: 'HTTP/2: concurrent streams per client connection (default 100)',
  },
  'h2-max-resets': {
    type: 'string',
    help: 'HTTP/2: stream resets per second a client may send before its connection is closed (default 200)',
  },
  config: { type: 'string', short: 'c', help: 'JSON config file (flags override it)' },
  'squid-conf': {
    type: 'string',
    help: 'a squid.conf to run with: http_port, acl, http_access, cache_dir, ... (README: Migrating from Squid)',
  },
  command: {
    type: 'string',
    short: 'k',
    help: 'as squid -k: parse (check the config and exit), or check, reconfigure, rotate, shutdown, interrupt (signal the running instance through its pid file)',
  },
  allow: {
    type: 'string',
    multiple: true,
    help: 'client addresses to serve: localhost, localnet, all, an IP or a CIDR; repeat or comma-separate (default localhost,localnet)',
  },
  'access-log': {
    type: 'string',
    help: "write Squid's access.log (native format) to this file, or - for standard output; SIGUSR1 rotates it",
  },
  'log-level': { type: 'string', help: `log level: ${LOG_LEVELS.join(', ')} (default info)` },
  'log-format': {
    type: 'string',
    help: 'operational log on stderr: json (pino lines) or pretty (default pretty on a terminal, json otherwise)',
  },
  metrics: {
    type: 'string',
    help: 'on or off: Prometheus metrics at /cuttle-internal/metrics and the dashboard (default on)',
  },
  'metrics-port': {
    type: 'string',
    help: 'also serve /metrics, stats.json and the dashboard on this port, from the primary (default: none)',
  },
  'front-end': {
    type: 'string',
    help: 'plain HTTP/1.x front end: lean (hits answered on llhttp directly, the rest by node:http) or node (node:http alone); default lean, or $CUTTLE_FRONT_END',
  },
  peer: {
    type: 'string',
    multiple: true,
    help: 'a member of a cache fleet, http://host:port; repeat for each, this member included (it recognises itself by its port and a local address): requests are routed by cache key with CARP to the owner',
  },
  'peer-cache-copy': {
    type: 'boolean',
    help: 'reverse-mode fleet: also store here what the owning member answered (default: only the owner stores)',
  },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
  version: { type: 'boolean', short: 'v', help: 'print the version' },
} as const;

export interface CliRequest {
  help: boolean;
  version: boolean;
  /** `-k parse`: check the configuration and report, without starting. */
  command: 'parse' | 'check' | 'reconfigure' | 'rotate' | 'shutdown' | 'interrupt' | null;
  config: Config;
}

/** Flags, then the config file, then defaults. Throws ConfigError with a one-line message. */
export function loadConfig(argv: string[]): CliRequest {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (values.help || values.version) {
    return { help: Boolean(values.help), version: Boolean(values.version), command: null, config: DEFAULTS };
  }
  const command = values.command as string | undefined;
  const COMMANDS = ['parse', 'check', 'reconfigure', 'rotate', 'shutdown', 'interrupt'];
  if (command !== undefined && !COMMANDS.includes(command))
    throw new ConfigError(`-k ${command}: not supported (supported: ${COMMANDS.join(', ')})`);
  const squidConf = values['squid-conf'] as string | undefined;
  if (command === 'parse' && !squidConf) throw new ConfigError('-k parse needs --squid-conf FILE');
  const fromSquid: Record<string, unknown> = squidConf ? { ...parseSquidConf(squidConf) } : {};
  const configFile = values.config as string | undefined;
  const fromFile = configFile ? readConfigFile(configFile) : {};
  if ('squid' in fromFile)
    throw new ConfigError(`config ${configFile}: squid: unknown setting (use --squid-conf)`);
  const fromFlags: Record<string, unknown> = {
    port: values.port,
    host: values.host,
    workers: values.workers,
    cacheDir: values['cache-dir'],
    cacheSize: values['cache-size'],
    maxObjectSize: values['max-object-size'],
    cacheMinUses: values['cache-min-uses'],
    cacheMinUsesWindow: values['cache-min-uses-window'],
    cacheKeyHeaders: (values['cache-key-headers'] as string[] | undefined)?.flatMap((v) => v.split(',')),
    hitForMiss: values['hit-for-miss'],
    setCookie: values['set-cookie'],
    keepTagHeaders: values['keep-tag-headers'],
    origin: values.origin,
    originCa: values['origin-ca'],
    originInsecure: values['origin-insecure'],
    httpsPort: values['https-port'],
    h2cPort: values['h2c-port'],
    h2MaxStreams: values['h2-max-streams'],
    h2MaxResets: values['h2-max-resets'],
    logLevel: values['log-level'],
    logFormat: values['log-format'],
    frontEnd: values['front-end'] ?? process.env.CUTTLE_FRONT_END,
    metrics:
      values.metrics === undefined
        ? undefined
        : values.metrics === 'on'
          ? true
          : values.metrics === 'off'
            ? false
            : values.metrics,
    metricsPort: values['metrics-port'],
    accessLog: values['access-log'],
    allow: (values.allow as string[] | undefined)?.flatMap((v) => v.split(',')),
    peers: (values.peer as string[] | undefined)?.map((u) => {
      try {
        return peerFromUrl(u);
      } catch (err) {
        throw new ConfigError(`flag: --peer: ${(err as Error).message}`);
      }
    }),
    peerCacheCopy: values['peer-cache-copy'],
  };
  const merged: Record<string, unknown> = { ...fromSquid, ...fromFile };
  for (const [k, v] of Object.entries(fromFlags)) if (v !== undefined) merged[k] = v;
  const flagCert = flagCertificate(
    values['tls-cert'] as string | undefined,
    values['tls-key'] as string | undefined,
  );
  if (flagCert) merged.tls = withDefaultCertificate(merged.tls, flagCert);
  const config = validate(
    merged,
    configFile ? `config ${configFile}` : squidConf ? `squid.conf ${squidConf}` : 'flag',
  );
  config.configFile = configFile ? resolve(configFile) : null;
  return { help: false, version: false, command: (command ?? null) as CliRequest['command'], config };
}

/** --tls-cert and --tls-key come as a pair. */
function flagCertificate(cert: string | undefined, key: string | undefined): TlsCertificate | null {
  if (cert === undefined && key === undefined) return null;
  if (cert === undefined || key === undefined)
    throw new ConfigError('flag: --tls-cert and --tls-key go together');
  return { cert, key };
}

/** The flags' certificate becomes the default, ahead of those of the config file (and squid.conf). */
function withDefaultCertificate(tls: unknown, cert: TlsCertificate): unknown {
  if (tls === undefined || tls === null) return { certificates: [cert] };
  if (typeof tls !== 'object' || Array.isArray(tls)) return tls; // validate() names the fault
  const list = (tls as { certificates?: unknown }).certificates;
  return { ...tls, certificates: [cert, ...(Array.isArray(list) ? list : [])] };
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(`config file ${file} must hold a JSON object`);
  }
  return data as Record<string, unknown>;
}

function fail(where: string, key: string, why: string): never {
  throw new ConfigError(`${where}: ${key}: ${why}`);
}

function integer(where: string, key: string, v: unknown, min: number, max: number): number {
  const n =
    typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    fail(where, key, `expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

function converted<T>(where: string, key: string, v: unknown, fn: (x: string | number) => T): T {
  try {
    return fn(v as string | number);
  } catch (err) {
    return fail(where, key, (err as Error).message);
  }
}

function validate(input: Record<string, unknown>, where: string): Config {
  const known = new Set(Object.keys(DEFAULTS));
  for (const k of Object.keys(input)) if (!known.has(k) || DERIVED.has(k)) fail(where, k, 'unknown setting');
  const c: Config = structuredClone(DEFAULTS);
  const v = input;
  if (v.port !== undefined) c.port = integer(where, 'port', v.port, 0, 65535);
  if (v.host !== undefined) {
    if (typeof v.host !== 'string' || !v.host) fail(where, 'host', 'expected an address');
    c.host = v.host;
  }
  if (v.workers !== undefined) c.workers = integer(where, 'workers', v.workers, 1, 256);
  if (v.cacheDir !== undefined) {
    if (typeof v.cacheDir !== 'string' || !v.cacheDir) fail(where, 'cacheDir', 'expected a directory');
    c.cacheDir = v.cacheDir;
  }
  c.cacheDir = resolve(c.cacheDir);
  if (v.origin !== undefined && v.origin !== null) c.origin = validOrigin(where, v.origin);
  if (v.originCa !== undefined && v.originCa !== null) {
    if (typeof v.originCa !== 'string' || !v.originCa) fail(where, 'originCa', 'expected a PEM file');
    c.originCa = resolve(v.originCa);
  }
  if (v.originInsecure !== undefined) {
    if (typeof v.originInsecure !== 'boolean') fail(where, 'originInsecure', 'expected true or false');
    c.originInsecure = v.originInsecure;
  }
  if ((c.originCa !== null || c.originInsecure) && (c.origin === null || !c.origin.startsWith('https:')))
    fail(where, c.originCa !== null ? 'originCa' : 'originInsecure', 'applies to an https:// origin only');
  if (v.httpsPort !== undefined && v.httpsPort !== null)
    c.httpsPort = integer(where, 'httpsPort', v.httpsPort, 0, 65535);
  if (v.tls !== undefined && v.tls !== null) c.tls = validTls(where, v.tls);
  if (v.h2cPort !== undefined && v.h2cPort !== null)
    c.h2cPort = integer(where, 'h2cPort', v.h2cPort, 0, 65535);
  if (v.h2MaxStreams !== undefined)
    c.h2MaxStreams = integer(where, 'h2MaxStreams', v.h2MaxStreams, 1, 10_000);
  if (v.h2MaxResets !== undefined) c.h2MaxResets = integer(where, 'h2MaxResets', v.h2MaxResets, 1, 1_000_000);
  if (v.logLevel !== undefined) {
    if (typeof v.logLevel !== 'string' || !LOG_LEVELS.includes(v.logLevel)) {
      fail(where, 'logLevel', `expected one of ${LOG_LEVELS.join(', ')}`);
    }
    c.logLevel = v.logLevel;
  }
  if (v.logFormat !== undefined && v.logFormat !== null) {
    if (!LOG_FORMAT_NAMES.includes(v.logFormat as LogFormatName))
      fail(where, 'logFormat', `expected one of ${LOG_FORMAT_NAMES.join(', ')}`);
    c.logFormat = v.logFormat as LogFormatName;
  }
  if (v.metrics !== undefined) {
    if (typeof v.metrics !== 'boolean')
      fail(where, 'metrics', 'expected on or off (true or false in a config file)');
    c.metrics = v.metrics;
  }
  if (v.frontEnd !== undefined) {
    if (v.frontEnd !== 'lean' && v.frontEnd !== 'node') fail(where, 'frontEnd', 'expected lean or node');
    c.frontEnd = v.frontEnd;
  }
  if (v.metricsPort !== undefined && v.metricsPort !== null)
    c.metricsPort = integer(where, 'metricsPort', v.metricsPort, 0, 65535);
  if (c.metricsPort !== null && !c.metrics) fail(where, 'metricsPort', 'needs metrics on');
  if (v.allow !== undefined) {
    if (!Array.isArray(v.allow) || v.allow.length === 0) fail(where, 'allow', 'expected a list of rules');
    c.allow = v.allow.map((r) => String(r).trim());
    for (const r of c.allow)
      if (!isValidClientRule(r))
        fail(where, 'allow', `"${r}" is not localhost, localnet, all, an IP or a CIDR`);
  }
  if (v.connectPorts !== undefined) {
    if (!Array.isArray(v.connectPorts)) fail(where, 'connectPorts', 'expected a list of ports');
    c.connectPorts = v.connectPorts.map((p) => integer(where, 'connectPorts', p, 1, 65535));
  }
  if (v.visibleHostname !== undefined) {
    if (typeof v.visibleHostname !== 'string' || !/^[A-Za-z0-9._-]+$/.test(v.visibleHostname)) {
      fail(where, 'visibleHostname', 'expected a host name');
    }
    c.visibleHostname = v.visibleHostname;
  }
  if (v.maxHeaderSize !== undefined)
    c.maxHeaderSize = converted(where, 'maxHeaderSize', v.maxHeaderSize, parseSize);
  if (v.maxUrlLength !== undefined)
    c.maxUrlLength = converted(where, 'maxUrlLength', v.maxUrlLength, parseSize);
  if (v.cacheSize !== undefined) c.cacheSize = converted(where, 'cacheSize', v.cacheSize, parseSize);
  if (v.maxObjectSize !== undefined)
    c.maxObjectSize = converted(where, 'maxObjectSize', v.maxObjectSize, parseSize);
  if (v.minObjectSize !== undefined)
    c.minObjectSize = converted(where, 'minObjectSize', v.minObjectSize, parseSize);
  if (v.cacheMinUses !== undefined)
    c.cacheMinUses = integer(where, 'cacheMinUses', v.cacheMinUses, 1, 1_000_000);
  if (v.cacheMinUsesWindow !== undefined) {
    c.cacheMinUsesWindow = converted(where, 'cacheMinUsesWindow', v.cacheMinUsesWindow, parseDuration);
  }
  if (v.cacheKeyHeaders !== undefined) {
    if (!Array.isArray(v.cacheKeyHeaders)) fail(where, 'cacheKeyHeaders', 'expected a list of field names');
    const names = v.cacheKeyHeaders.map((n) => String(n).trim().toLowerCase()).filter(Boolean);
    // RFC 9110 §5.1: a field name is a token.
    for (const n of names)
      if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(n)) fail(where, 'cacheKeyHeaders', `"${n}" is not a field name`);
    c.cacheKeyHeaders = [...new Set(names)].sort();
  }
  if (v.hitForMiss !== undefined) c.hitForMiss = converted(where, 'hitForMiss', v.hitForMiss, parseDuration);
  if (v.maxStale !== undefined) c.maxStale = converted(where, 'maxStale', v.maxStale, parseDuration);
  if (v.keepTagHeaders !== undefined) {
    if (typeof v.keepTagHeaders !== 'boolean') fail(where, 'keepTagHeaders', 'expected true or false');
    c.keepTagHeaders = v.keepTagHeaders;
  }
  if (v.setCookie !== undefined) {
    if (!SET_COOKIE_POLICIES.includes(v.setCookie as SetCookiePolicy))
      fail(where, 'setCookie', `expected one of ${SET_COOKIE_POLICIES.join(', ')}`);
    c.setCookie = v.setCookie as SetCookiePolicy;
  } else c.setCookie = c.origin !== null && v.squid === undefined ? 'store' : 'strip';
  if (v.heuristicFraction !== undefined) {
    const f = Number(v.heuristicFraction);
    if (!(f >= 0 && f <= 1)) fail(where, 'heuristicFraction', 'expected a number from 0 to 1');
    c.heuristicFraction = f;
  }
  if (v.heuristicMax !== undefined)
    c.heuristicMax = converted(where, 'heuristicMax', v.heuristicMax, parseDuration);
  if (v.sweepInterval !== undefined)
    c.sweepInterval = converted(where, 'sweepInterval', v.sweepInterval, parseDuration);
  if (v.squid !== undefined) {
    const sq = v.squid as SquidSettings;
    c.squid = sq;
    c.via = sq.via;
    c.forwardedFor = sq.forwardedFor;
    c.accelSite = sq.accelSite;
    c.accelVhost = sq.accelVhost;
    c.managerPasswords = sq.managerPasswords;
  }
  c.pidFile =
    v.pidFile === 'none'
      ? null
      : typeof v.pidFile === 'string' && v.pidFile
        ? resolve(v.pidFile)
        : resolve(c.cacheDir, 'cuttle.pid');
  if (v.accessLog !== undefined && v.accessLog !== null) {
    if (typeof v.accessLog !== 'string' || !v.accessLog)
      fail(where, 'accessLog', 'expected a file path or null');
    // `-` is standard output, for containers and journald.
    c.accessLog = v.accessLog === '-' ? '-' : resolve(v.accessLog);
  }
  if (v.accessLogFormat !== undefined) {
    if (!LOG_FORMATS.includes(v.accessLogFormat as LogFormat))
      fail(where, 'accessLogFormat', `expected one of ${LOG_FORMATS.join(', ')}`);
    c.accessLogFormat = v.accessLogFormat as Config['accessLogFormat'];
  }
  if (v.logfileRotate !== undefined)
    c.logfileRotate = integer(where, 'logfileRotate', v.logfileRotate, 0, 1000);
  if (c.httpsPort !== null) {
    // TLS termination is the edge's: a forward proxy takes HTTPS through CONNECT and never holds its keys.
    if (c.origin === null)
      fail(where, 'httpsPort', 'needs an origin (--origin): HTTPS is terminated in reverse mode');
    if (c.tls.certificates.length === 0)
      fail(where, 'httpsPort', 'needs a certificate: --tls-cert FILE --tls-key FILE, or tls.certificates');
    if (c.port === c.httpsPort && c.port !== 0) fail(where, 'httpsPort', 'must differ from port');
  } else if (c.tls.certificates.length > 0)
    fail(where, 'tls', 'certificates need an HTTPS port (--https-port)');
  if (v.peers !== undefined) c.peers = validPeers(where, v.peers);
  if (v.peerCacheCopy !== undefined) {
    if (typeof v.peerCacheCopy !== 'boolean') fail(where, 'peerCacheCopy', 'expected true or false');
    c.peerCacheCopy = v.peerCacheCopy;
  }
  c.peers = markSelf(c.peers, c.port, c.host);
  if (v.timeouts !== undefined) {
    if (!v.timeouts || typeof v.timeouts !== 'object') fail(where, 'timeouts', 'expected an object');
    for (const [k, t] of Object.entries(v.timeouts as Record<string, unknown>)) {
      if (!(k in c.timeouts)) fail(where, `timeouts.${k}`, 'unknown timeout');
      c.timeouts[k as keyof Timeouts] = converted(where, `timeouts.${k}`, t, parseDuration);
    }
  }
  return c;
}

function validTls(where: string, v: unknown): Config['tls'] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, 'tls', 'expected an object');
  for (const k of Object.keys(v)) if (k !== 'certificates') fail(where, `tls.${k}`, 'unknown setting');
  const list = (v as { certificates?: unknown }).certificates ?? [];
  if (!Array.isArray(list)) fail(where, 'tls.certificates', 'expected a list of {cert, key, servernames?}');
  const certificates = list.map((e, i): TlsCertificate => {
    const at = `tls.certificates[${i}]`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) fail(where, at, 'expected {cert, key}');
    const o = e as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (!['cert', 'key', 'servernames'].includes(k)) fail(where, `${at}.${k}`, 'unknown setting');
    if (typeof o.cert !== 'string' || !o.cert) fail(where, `${at}.cert`, 'expected a PEM file');
    if (typeof o.key !== 'string' || !o.key) fail(where, `${at}.key`, 'expected a PEM file');
    const out: TlsCertificate = { cert: resolve(o.cert), key: resolve(o.key) };
    if (o.servernames !== undefined) {
      if (!Array.isArray(o.servernames) || o.servernames.length === 0)
        fail(where, `${at}.servernames`, 'expected a list of host names');
      out.servernames = o.servernames.map((n) => {
        const name = String(n).trim().toLowerCase();
        if (!/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(name))
          fail(where, `${at}.servernames`, `"${n}" is not a host name or *.domain`);
        return name;
      });
    }
    return out;
  });
  return { certificates };
}

const PEER_KEYS = new Set(Object.keys(peerDefaults('', 0, '')));

/**
 * `peers`: [{host, port, type?, carp?, weight?, name?, ...}] as PeerConfig names them; the name defaults
 * to host:port, as --peer names a member, so members on one host differ.
 */
function validPeers(where: string, v: unknown): PeerConfig[] {
  if (!Array.isArray(v)) fail(where, 'peers', 'expected a list of {host, port, type, carp, weight}');
  const out = v.map((e, i): PeerConfig => {
    const at = `peers[${i}]`;
    if (typeof e !== 'object' || e === null || Array.isArray(e))
      fail(where, at, 'expected {host, port, ...}');
    const o = e as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!PEER_KEYS.has(k)) fail(where, `${at}.${k}`, 'unknown setting');
    if (typeof o.host !== 'string' || !o.host) fail(where, `${at}.host`, 'expected a host name or address');
    const port = integer(where, `${at}.port`, o.port, 1, 65535);
    const host = o.host.replace(/^\[|\]$/g, '');
    const p = peerDefaults(host, port, `${host.includes(':') ? `[${host}]` : host}:${port}`);
    if (o.type !== undefined) {
      if (o.type !== 'parent' && o.type !== 'sibling')
        fail(where, `${at}.type`, 'expected parent or sibling');
      p.type = o.type;
    }
    if (o.name !== undefined) {
      if (typeof o.name !== 'string' || !/^[A-Za-z0-9._:[\]-]+$/.test(o.name))
        fail(where, `${at}.name`, 'expected a peer name');
      p.name = o.name;
    }
    for (const k of ['carp', 'default', 'noQuery', 'proxyOnly', 'loginPass', 'self'] as const) {
      if (o[k] === undefined) continue;
      if (typeof o[k] !== 'boolean') fail(where, `${at}.${k}`, 'expected true or false');
      p[k] = o[k];
    }
    if (o.weight !== undefined) p.weight = integer(where, `${at}.weight`, o.weight, 1, 1_000_000);
    if (o.connectFailLimit !== undefined)
      p.connectFailLimit = integer(where, `${at}.connectFailLimit`, o.connectFailLimit, 1, 1_000_000);
    if (o.connectTimeout !== undefined && o.connectTimeout !== null)
      p.connectTimeout = converted(where, `${at}.connectTimeout`, o.connectTimeout, parseDuration);
    if (o.monitorInterval !== undefined)
      p.monitorInterval = converted(where, `${at}.monitorInterval`, o.monitorInterval, parseDuration);
    if (o.monitorUrl !== undefined && o.monitorUrl !== null) {
      if (typeof o.monitorUrl !== 'string' || !/^https?:\/\//.test(o.monitorUrl))
        fail(where, `${at}.monitorUrl`, 'expected an http(s) URL');
      p.monitorUrl = o.monitorUrl;
    }
    if (p.carp && p.type !== 'parent') fail(where, `${at}.carp`, 'is for parents only');
    return p;
  });
  const names = new Set<string>();
  for (const p of out) {
    if (names.has(p.name))
      fail(where, 'peers', `two peers are named "${p.name}" (give each a distinct name)`);
    names.add(p.name);
  }
  if (out.filter((p) => p.self).length > 1) fail(where, 'peers', 'only one peer can be self');
  return out;
}

function validOrigin(where: string, v: unknown): string {
  let url: URL;
  try {
    url = new URL(String(v));
  } catch {
    return fail(where, 'origin', `"${v}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    fail(where, 'origin', 'must be an http:// or https:// URL');
  if (url.pathname !== '/' || url.search || url.username)
    fail(where, 'origin', 'must be scheme://host[:port] only');
  return url.origin;
}

export function helpText(): string {
  const lines = [
    'Usage: cuttle [options]',
    '',
    'A caching HTTP proxy: forward proxy by default, edge cache with --origin (HTTPS and HTTP/2 with --https-port).',
    '',
    'Options:',
  ];
  for (const [name, f] of Object.entries(FLAGS)) {
    const short = 'short' in f ? `-${f.short}, ` : '    ';
    const arg =
      f.type === 'string'
        ? ` ${['config', 'squid-conf', 'tls-cert', 'tls-key', 'origin-ca'].includes(name) ? 'FILE' : 'VALUE'}`
        : '';
    lines.push(`  ${short}--${name}${arg}`.padEnd(30) + f.help);
  }
  lines.push('', 'Sizes accept k, m and g; durations ms, s, m and h. See README.md for the config file.');
  return lines.join('\n');
}
