/**
 * A worker's TLS contexts: one per certificate, chosen per connection by the client's server name (SNI),
 * and replaced in place when the primary sends new certificates (SIGHUP), so open connections keep the
 * context they started with and new handshakes get the new one.
 */
import type { SecureContext } from 'node:tls';
import { createSecureContext } from 'node:tls';
import type { TlsMaterial } from './certificates.js';
import { certificateFor } from './sni.js';

/** TLS 1.2 and 1.3 only, with Node's default ciphers. */
export const TLS_VERSIONS = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' } as const;

export class TlsContexts {
  private contexts: SecureContext[] = [];
  private names: string[][] = [];
  private fallback = 0;

  constructor(material: TlsMaterial) {
    this.update(material);
  }

  /** The default certificate's PEM, for the server's own options (clients without SNI). */
  defaultPem(): { cert: string; key: string } {
    return this.material.certificates[this.fallback];
  }

  private material!: TlsMaterial;

  update(material: TlsMaterial): void {
    this.contexts = material.certificates.map((c) =>
      createSecureContext({ cert: c.cert, key: c.key, ...TLS_VERSIONS }),
    );
    this.names = material.certificates.map((c) => c.names);
    this.fallback = material.defaultIndex;
    this.material = material;
  }

  /** tls.Server's SNICallback. */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    cb(null, this.contexts[certificateFor(servername, this.names, this.fallback)]);
  };
}
