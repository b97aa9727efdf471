/**
 * access: who may use the proxy, and where CONNECT may go (Squid's http_access with its stock rules:
 * `allow localhost`, `allow localnet`, `deny CONNECT !SSL_ports`, `deny all`).
 */
import type { IncomingMessage } from 'node:http';
import { clientMatcher } from '../shared/client-rules.js';
import type { Config } from '../shared/config.js';
import { accessDenied, type ProxyError } from './errors.js';
import { plainAddress } from './http-semantics.js';

export interface Access {
  client(req: IncomingMessage): ProxyError | null;
  connect(req: IncomingMessage, port: number): ProxyError | null;
}

export function createAccess(config: Config): Access {
  const allowed = clientMatcher(config.allow);
  const ports = new Set(config.connectPorts);
  const client = (req: IncomingMessage) => {
    const address = req.socket.remoteAddress;
    return allowed(address)
      ? null
      : accessDenied(`client ${plainAddress(address)} is not allowed to use this proxy`);
  };
  return {
    client,
    connect: (req, port) =>
      client(req) ??
      (ports.has(port)
        ? null
        : accessDenied(`CONNECT to port ${port} is not allowed (allowed: ${[...ports].join(', ')})`)),
  };
}
