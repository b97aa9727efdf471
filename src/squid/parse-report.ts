/**
 * What the primary says about a squid.conf: `squid -k parse`'s report, and the directives it read but does
 * not apply (listed once at start, as Squid warns of unknown ones).
 */
import type { Config } from '../config/config.js';

export function parseReport(config: Config): string {
  const sq = config.squid;
  const mode = config.origin ? `reverse proxy for ${config.origin}` : 'forward proxy';
  const lines = [
    `${sq?.file}: OK. ${mode} on ${config.host}:${config.port}${config.httpsPort === null ? '' : ` (HTTPS on ${config.httpsPort})`}, ${config.workers} workers, cache ${config.cacheDir} ` +
      `(${Math.round(config.cacheSize / 1024 ** 2)} MB), ${sq?.acls.length} ACLs, ${sq?.httpAccess.length} http_access lines`,
    ...(config.peers.length === 0
      ? []
      : [
          `cache peers: ${config.peers
            .map(
              (p) =>
                `${p.name} (${p.self ? 'this member' : p.type}${p.carp ? ', carp' : ''}${p.weight === 1 ? '' : `, weight=${p.weight}`})`,
            )
            .join(', ')}`,
        ]),
    ...ignoredDirectives(config).map((i) => `ignored: ${i}`),
  ];
  return `${lines.join('\n')}\n`;
}

export function ignoredDirectives(config: Config): string[] {
  return config.squid?.ignored ?? [];
}
