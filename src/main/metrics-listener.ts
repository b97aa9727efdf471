/**
 * --metrics-port: a listener of the primary's own for /metrics (and stats.json and the dashboard), as
 * exporters have, so Prometheus can scrape without going through the proxy port. It answers the client
 * addresses the proxy serves (--allow: localhost and localnet by default), nothing else.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clientMatcher } from '../access/client-rules.js';
import type { Config } from '../config/config.js';
import type { PrimaryPage } from '../shared/messages.js';
import { DASHBOARD_HTML } from '../stats/dashboard-page.js';

const PAGES: Record<string, PrimaryPage | 'dashboard'> = {
  '/metrics': 'metrics',
  '/stats.json': 'stats.json',
  '/dashboard': 'dashboard',
};

export function startMetricsListener(
  config: Config,
  port: number,
  page: (p: PrimaryPage) => Promise<{ status: number; contentType: string; body: string }>,
): Promise<{ server: Server; port: number }> {
  const allowed = clientMatcher(config.allow);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0].replace(/^\/cuttle-internal(?=\/)/, '');
    const send = (status: number, contentType: string, body: string) => {
      res.writeHead(status, {
        'Content-Type': contentType,
        'Content-Length': Buffer.byteLength(body),
        'Cache-Control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (!allowed(req.socket.remoteAddress)) return send(403, 'text/plain', 'access denied\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'GET only\n');
    const p = PAGES[path];
    if (p === undefined)
      return send(404, 'text/plain', 'not found: try /metrics, /stats.json or /dashboard\n');
    if (p === 'dashboard') return send(200, 'text/html; charset=utf-8', DASHBOARD_HTML);
    page(p)
      .then((r) => send(r.status, r.contentType, r.body))
      .catch((err: Error) => send(500, 'text/plain', `${err.message}\n`));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: config.host, port }, () => {
      server.off('error', reject);
      server.unref();
      resolve({ server, port: (server.address() as AddressInfo).port });
    });
  });
}
