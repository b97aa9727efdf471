/**
 * `cuttle`: parses the configuration, then runs the primary process.
 */
import cluster from 'node:cluster';
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, helpText, loadConfig } from '../config/config.js';
import { createLogger, defaultLogFormat } from '../shared/logger.js';
import { VERSION } from '../shared/version.js';
import { ignoredDirectives, parseReport } from '../squid/parse-report.js';
import { type CacheEnv, prepareCacheEnv } from '../store/lmdb/layout.js';
import { loadTlsMaterial, newTicketKeys, type TlsMaterial } from '../tls/certificates.js';
import { rotateFiles } from './log-rotate.js';
import { startMetricsListener } from './metrics-listener.js';
import { removePidFile, signalInstance, writePidFile } from './pid-file.js';
import { Supervisor } from './supervisor.js';
import { Sweeper } from './sweeper.js';

const argv = process.argv.slice(2);

function die(message: string, code: number): never {
  process.stderr.write(`cuttle: ${message}\n`);
  process.exit(code);
}

let request: ReturnType<typeof loadConfig>;
try {
  request = loadConfig(argv);
} catch (err) {
  if (err instanceof ConfigError) die(err.message, 2);
  throw err;
}
if (request.help) {
  process.stdout.write(`${helpText()}\n`);
  process.exit(0);
}
if (request.version) {
  process.stdout.write(`cuttle ${VERSION}\n`);
  process.exit(0);
}

const config = request.config;
let current = config;
if (request.command && request.command !== 'parse') {
  if (!config.pidFile) die(`-k ${request.command}: pid_filename is none, so there is no instance to find`, 1);
  const r = signalInstance(config.pidFile, request.command);
  (r.code ? process.stderr : process.stdout).write(`cuttle: ${r.message}\n`);
  process.exit(r.code);
}
if (request.command === 'parse') {
  // As `squid -k parse`: the file was read and checked; report what applies and stop.
  process.stdout.write(parseReport(config));
  process.exit(0);
}
// Made once: every worker, and every worker after a reload, resumes the sessions the others started.
const ticketKeys = newTicketKeys();
let tls: TlsMaterial | null = null;
if (config.httpsPort !== null) {
  try {
    tls = loadTlsMaterial(config, ticketKeys);
  } catch (err) {
    die((err as Error).message, 2);
  }
}
if (config.originCa) {
  try {
    if (!readFileSync(config.originCa, 'utf8').includes('-----BEGIN CERTIFICATE-----'))
      die(`--origin-ca ${config.originCa}: no PEM certificate in it`, 2);
  } catch (err) {
    die(`cannot read the --origin-ca file ${config.originCa}: ${(err as NodeJS.ErrnoException).code}`, 2);
  }
}
try {
  mkdirSync(config.cacheDir, { recursive: true });
} catch (err) {
  die(`cannot create cache dir ${config.cacheDir}: ${(err as NodeJS.ErrnoException).code}`, 2);
}
let cacheEnv: CacheEnv;
try {
  cacheEnv = prepareCacheEnv(config.cacheDir, config.cacheSize);
} catch (err) {
  die(`cannot open the cache in ${config.cacheDir}: ${(err as Error).message}`, 2);
}

// Resolved once here, so the workers (whose stderr is the primary's) log the same way.
config.logFormat ??= defaultLogFormat();
const log = createLogger(config.logLevel, { role: 'primary' }, config.logFormat);
for (const i of ignoredDirectives(config)) log.warn(`ignored: ${i}`);
if (config.originInsecure)
  log.warn(
    { origin: config.origin },
    '--origin-insecure: the origin certificate is not verified; for tests only, never in production',
  );
cluster.schedulingPolicy = cluster.SCHED_RR;
cluster.setupPrimary({ exec: fileURLToPath(new URL('../workers/worker.js', import.meta.url)), args: [] });

let started = false;
const supervisor = new Supervisor(config, log, (message) => {
  // A listen failure is the same in every worker: report it once and give up.
  if (!started) die(message, 1);
  log.error(message);
});

if (tls) supervisor.setTls(tls);

const sweeper = new Sweeper(config, log, (r) => supervisor.metrics?.swept(r));

async function shutdown(signal: string): Promise<void> {
  log.info({ signal }, 'graceful stop: no new connections, finishing in-flight requests');
  await supervisor.stop();
  await sweeper.stop();
  await cacheEnv.root.close().catch(() => {});
  log.info('stopped');
  process.exit(0);
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGHUP', () => {
  let next: typeof config;
  try {
    next = loadConfig(argv).config;
  } catch (err) {
    log.error(
      { err: (err as Error).message },
      'reload refused: the new configuration is invalid; keeping the old one',
    );
    return;
  }
  next.logFormat ??= current.logFormat;
  const changed = changedSettings(current, next);
  if (next.httpsPort !== null && current.httpsPort !== null) {
    try {
      tls = loadTlsMaterial(next, ticketKeys);
      supervisor.setTls(tls);
      log.info({ certificates: tls.certificates.length }, 'reload: certificates re-read');
    } catch (err) {
      log.error(
        { err: (err as Error).message },
        'reload: certificate not loaded; keeping the old certificates',
      );
    }
    // Nothing else changed: the workers swapped certificates in place, and every connection stays open.
    if (changed.length === 0) return;
  }
  log.info({ changed }, 'reload: replacing workers one at a time');
  current = next;
  sweeper.setConfig(next);
  void supervisor.reload(next);
});
// SIGUSR1 is Squid's `-k rotate` (without a listener Node would open its inspector on it).
process.on('SIGUSR1', () => {
  const { accessLog, logfileRotate } = current;
  if (!accessLog || accessLog === '-') return log.info('SIGUSR1: no access log file to rotate');
  try {
    rotateFiles(accessLog, logfileRotate);
  } catch (err) {
    log.error({ err: (err as Error).message }, 'access log rotation failed; reopening in place');
  }
  supervisor.broadcast({ type: 'reopen-logs' });
  log.info({ accessLog, keep: logfileRotate }, 'access log rotated');
});

try {
  await supervisor.start();
} catch (err) {
  die((err as Error).message, 1);
}
if (config.metricsPort !== null) {
  try {
    const m = await startMetricsListener(config, config.metricsPort, (p) => supervisor.page(p));
    log.info({ metricsPort: m.port }, 'metrics listening');
  } catch (err) {
    die(
      `cannot listen on ${config.host}:${config.metricsPort} for metrics: ${(err as NodeJS.ErrnoException).code}`,
      1,
    );
  }
}
started = true;
sweeper.start();
if (config.pidFile) {
  try {
    writePidFile(config.pidFile);
    process.once('exit', () => removePidFile(config.pidFile as string));
  } catch (err) {
    log.error(
      { pidFile: config.pidFile, err: (err as Error).message },
      'cannot write the pid file; cuttle -k will not find this instance',
    );
  }
}
const addr = supervisor.address;
const https = supervisor.httpsAddress;
const h2c = supervisor.h2cAddress;
const mode = config.origin ? `reverse proxy for ${config.origin}` : 'forward proxy';
const where = [
  ...(addr ? [`${addr.address}:${addr.port}`] : []),
  ...(https ? [`https://${https.address}:${https.port}`] : []),
  ...(h2c ? [`h2c://${h2c.address}:${h2c.port}`] : []),
].join(' and ');
process.stdout.write(`cuttle ${VERSION} listening on ${where} (${mode}, ${config.workers} workers)\n`);

/** The settings a reload changes, for its log line (the reload's "what changed"). */
function changedSettings(before: typeof config, after: typeof config): string[] {
  return (Object.keys(after) as Array<keyof typeof config>).filter(
    (k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]),
  );
}
