/**
 * tunnel: CONNECT (RFC 9110 §9.3.6). Bytes are relayed both ways until each side has closed.
 */
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Config } from '../config/config.js';
import { invalidRequest, type ProxyError, rawErrorResponse, upstreamError } from '../http/errors.js';
import { parseAuthority } from '../http/target.js';
import type { Logger } from '../shared/logger.js';
import type { AccessRecorder } from '../squid/access-log.js';

export interface TunnelDeps {
  config: Config;
  log: Logger;
  via: string;
  /** Returns why the client may not tunnel there, or null. */
  check: (req: IncomingMessage, host: string, port: number) => ProxyError | null;
  recorder: AccessRecorder | null;
}

export class Tunnels {
  readonly open = new Set<Duplex>();

  constructor(private readonly deps: TunnelDeps) {}

  handle = (req: IncomingMessage, client: Duplex, head: Buffer): void => {
    const { config, log } = this.deps;
    client.on('error', () => client.destroy());
    const started = Date.now();
    const fail = (err: ProxyError) => {
      log.info(
        { client: req.socket.remoteAddress, target: req.url, status: err.status, error: err.squidError },
        err.message,
      );
      if (client.writable) client.end(rawErrorResponse(err, this.deps.via));
      else client.destroy();
      // After the write, so the logged size counts the error response.
      this.deps.recorder?.tunnel(req, started, client as Socket, err.status, null);
    };
    const auth = parseAuthority(req.url ?? '');
    if (typeof auth === 'string') return fail(invalidRequest(`CONNECT target: ${auth}`));
    const denied = this.deps.check(req, auth.host, auth.port);
    if (denied) return fail(denied);

    const host = auth.host.startsWith('[') ? auth.host.slice(1, -1) : auth.host;
    const where = `${auth.host}:${auth.port}`;
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
      if (established) this.deps.recorder?.tunnel(req, started, client as Socket, 200, host);
      this.open.delete(client);
      upstream.destroy();
    });
  };

  destroyAll(): void {
    for (const c of this.open) c.destroy();
  }
}
