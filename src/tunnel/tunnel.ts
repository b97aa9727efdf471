/**
 * tunnel: CONNECT (RFC 9110 §9.3.6). Bytes are relayed both ways until each side has closed. A tunnel is
 * a transaction like any request: access checks it, and the finish hooks log and count it.
 */
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Access } from '../access/access.js';
import type { Config } from '../config/config.js';
import { invalidRequest, type ProxyError, rawErrorResponse, upstreamError } from '../http/errors.js';
import { parseAuthority } from '../http/target.js';
import type { Logger } from '../shared/logger.js';
import type { Finish } from '../workers/finish.js';
import { Transaction } from '../workers/transaction.js';

export interface TunnelDeps {
  config: Config;
  log: Logger;
  via: string;
  access: Access;
  finish: Finish;
}

export class Tunnels {
  readonly open = new Set<Duplex>();

  constructor(private readonly deps: TunnelDeps) {}

  handle = (req: IncomingMessage, client: Duplex, head: Buffer): void => {
    const { config, log, finish } = this.deps;
    const txn = new Transaction(req);
    txn.outcome = 'tunnel';
    client.on('error', () => client.destroy());
    const fail = (err: ProxyError) => {
      log.debug(
        { client: req.socket.remoteAddress, target: req.url, status: err.status, error: err.squidError },
        err.message,
      );
      txn.error = err;
      txn.status = err.status;
      if (client.writable) client.end(rawErrorResponse(err, this.deps.via));
      else client.destroy();
      // After the write, so the logged size counts the error response.
      finish.done(txn, true);
    };
    const auth = parseAuthority(req.url ?? '');
    if (typeof auth === 'string') return fail(invalidRequest(`CONNECT target: ${auth}`));
    const denied = this.deps.access.connect(txn, auth.host, auth.port);
    if (denied) return fail(denied);

    const host = auth.host.startsWith('[') ? auth.host.slice(1, -1) : auth.host;
    const where = `${auth.host}:${auth.port}`;
    txn.route = { origin: where, path: '', host: where, server: host };
    const upstream: Socket = connect({ host, port: auth.port, allowHalfOpen: true, noDelay: true });
    this.open.add(client);
    const connectTimer = setTimeout(
      () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
      config.timeouts.connect,
    );
    let established = false;
    upstream.once('connect', () => {
      clearTimeout(connectTimer);
      established = true;
      txn.forwarded = true;
      txn.status = 200;
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      if (head.length) upstream.write(head);
      // pipe() ends the other side when one side ends, which is how a half-close travels through.
      upstream.pipe(client);
      client.pipe(upstream);
      const idle = () => {
        log.debug({ target: where }, 'tunnel idle timeout');
        upstream.destroy();
        client.destroy();
      };
      upstream.setTimeout(config.timeouts.tunnelIdle, idle);
      (client as Socket).setTimeout?.(config.timeouts.tunnelIdle, idle);
    });
    upstream.on('error', (err: Error & { code?: string }) => {
      clearTimeout(connectTimer);
      if (!established) fail(upstreamError(err, where));
      else client.destroy();
    });
    upstream.on('close', () => {
      clearTimeout(connectTimer);
      if (established && !client.writableEnded) client.destroy();
    });
    client.on('close', () => {
      if (established) finish.done(txn, true);
      this.open.delete(client);
      upstream.destroy();
    });
  };

  destroyAll(): void {
    for (const c of this.open) c.destroy();
  }
}
