/**
 * Entry point of a cluster worker: one node:http server; the primary hands it accepted connections.
 */
import cluster from 'node:cluster';
import type { AddressInfo, Server } from 'node:net';
import { type Config, plainListener } from '../config/config.js';
import { createLogger } from '../shared/logger.js';
import type { PrimaryMessage, WorkerMessage } from '../shared/messages.js';
import { isCommitFailure, silenceCommitError } from '../store/lmdb/layout.js';
import type { TlsMaterial } from '../tls/certificates.js';
import { createProxy } from './server.js';

const config = JSON.parse(process.env.CUTTLE_CONFIG ?? '{}') as Config;
const log = createLogger(config.logLevel, { role: 'worker', worker: cluster.worker?.id }, config.logFormat);
const send = (m: WorkerMessage) => process.send?.(m);

/** Dies of `err`, telling the primary first so its crash line names the error. */
function die(err: unknown): void {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const exit = () => process.exit(70);
  // The message is sent asynchronously: exit once it is out, or soon if the channel is gone.
  setTimeout(exit, 200).unref();
  if (!process.connected) return exit();
  process.send?.({ type: 'fatal', message } satisfies WorkerMessage, exit);
}

process.on('uncaughtException', (err) => {
  log.fatal({ err }, 'uncaught exception: worker exits and the primary replaces it');
  die(err);
});
process.on('unhandledRejection', (err) => {
  // lmdb-js rejects every write of a failed commit, including ones it creates internally; a full disk must
  // cost the cache entry, never the worker (the store logs the failure once a minute).
  if (err && typeof err === 'object' && 'commitError' in err) {
    silenceCommitError(err);
    return;
  }
  if (isCommitFailure(err)) return;
  log.fatal({ err }, 'unhandled rejection: worker exits and the primary replaces it');
  die(err);
});
// A terminal's ^C reaches the whole process group; the primary alone decides how workers stop.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1'] as const) process.on(sig, () => {});

// With an HTTPS port the primary sends the certificates first (the PEM text, read and checked once there).
const tls =
  config.httpsPort === null
    ? undefined
    : await new Promise<TlsMaterial>((resolve) => {
        const first = (m: PrimaryMessage) => {
          if (m.type !== 'tls') return;
          process.off('message', first);
          resolve(m.material);
        };
        process.on('message', first);
        send({ type: 'tls-request' });
      });
const proxy = createProxy(config, log, { tls });
let stopping = false;
async function stop(deadlineMs: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await proxy.shutdown(deadlineMs);
  // The last counts since the last scrape, so a reload loses none of them (the primary keeps them).
  const report = await proxy.metricsReport()?.catch(() => null);
  if (report && process.connected)
    await new Promise<void>((r) => {
      setTimeout(r, 500).unref();
      process.send?.({ type: 'metrics', id: 0, report } satisfies WorkerMessage, () => r());
    });
  process.exit(0);
}

process.on('message', (m: PrimaryMessage) => {
  if (m.type === 'shutdown') void stop(m.deadlineMs);
  else if (m.type === 'reopen-logs') proxy.reopenLogs();
  else if (m.type === 'tls') proxy.updateTls(m.material);
  else if (m.type === 'stats-request') send({ type: 'stats', id: m.id, stats: proxy.stats() });
  else if (m.type === 'mgr-reply') proxy.clusterStats(m.id, m.stats);
  else if (m.type === 'page-reply') proxy.clusterStats(m.id, m);
  else if (m.type === 'metrics-request')
    void proxy.metricsReport()?.then((report) => send({ type: 'metrics', id: m.id, report }));
});
// The primary is gone (even by kill -9): nobody hands us connections any more, so drain and go.
process.on('disconnect', () => void stop(config.timeouts.shutdown));

/** Listens, and resolves with the address once it does. */
/** The accept queue's depth asked for (Varnish's listen_depth is 1024; the kernel caps it at somaxconn). */
const LISTEN_BACKLOG = 4096;

function listen(server: Server, port: number): Promise<{ address: string; port: number }> {
  server.on('error', (err: NodeJS.ErrnoException) => {
    send({
      type: 'listen-error',
      message: `cannot listen on ${config.host}:${port}: ${err.code ?? err.message}`,
    });
    process.exit(1);
  });
  return new Promise((resolve) =>
    // A thousand clients connecting at once must not overflow the accept queue (Node defaults to 511; a
    // dropped SYN is retried after a second): as deep as the kernel allows (somaxconn caps it).
    server.listen({ host: config.host, port, backlog: LISTEN_BACKLOG }, () => {
      const a = server.address() as AddressInfo;
      resolve({ address: a.address, port: a.port });
    }),
  );
}
// Beside HTTPS or h2c, port 0 means no plain listener.
const [plain, https, h2c] = await Promise.all([
  plainListener(config) ? listen(proxy.listener, config.port) : undefined,
  proxy.secure && config.httpsPort !== null ? listen(proxy.secure, config.httpsPort) : undefined,
  proxy.cleartext && config.h2cPort !== null ? listen(proxy.cleartext, config.h2cPort) : undefined,
]);
send({ type: 'listening', listeners: { plain, https, h2c } });
