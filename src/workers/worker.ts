/**
 * Entry point of a cluster worker: one node:http server; the primary hands it accepted connections.
 */
import cluster from 'node:cluster';
import type { Config } from '../config/config.js';
import { createLogger } from '../shared/logger.js';
import type { PrimaryMessage, WorkerMessage } from '../shared/messages.js';
import { silenceCommitError } from '../store/lmdb/layout.js';
import { createProxy } from './server.js';

const config = JSON.parse(process.env.CUTTLE_CONFIG ?? '{}') as Config;
const log = createLogger(config.logLevel, { role: 'worker', worker: cluster.worker?.id });
const send = (m: WorkerMessage) => process.send?.(m);

process.on('uncaughtException', (err) => {
  log.fatal({ err }, 'uncaught exception: worker exits and the primary replaces it');
  process.exit(70);
});
process.on('unhandledRejection', (err) => {
  // lmdb-js rejects every write of a failed commit, including ones it creates internally; a full disk must
  // cost the cache entry, never the worker (the store logs the failure once a minute).
  if (err && typeof err === 'object' && 'commitError' in err) {
    silenceCommitError(err);
    return;
  }
  log.fatal({ err }, 'unhandled rejection: worker exits and the primary replaces it');
  process.exit(70);
});
// A terminal's ^C reaches the whole process group; the primary alone decides how workers stop.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1'] as const) process.on(sig, () => {});

const proxy = createProxy(config, log);
let stopping = false;
async function stop(deadlineMs: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await proxy.shutdown(deadlineMs);
  process.exit(0);
}

process.on('message', (m: PrimaryMessage) => {
  if (m.type === 'shutdown') void stop(m.deadlineMs);
  else if (m.type === 'reopen-logs') proxy.reopenLogs();
  else if (m.type === 'stats-request') send({ type: 'stats', id: m.id, stats: proxy.stats() });
  else if (m.type === 'mgr-reply') proxy.clusterStats(m.id, m.stats);
});
// The primary is gone (even by kill -9): nobody hands us connections any more, so drain and go.
process.on('disconnect', () => void stop(config.timeouts.shutdown));

proxy.server.on('error', (err: NodeJS.ErrnoException) => {
  send({
    type: 'listen-error',
    message: `cannot listen on ${config.host}:${config.port}: ${err.code ?? err.message}`,
  });
  process.exit(1);
});
proxy.server.listen({ host: config.host, port: config.port });
