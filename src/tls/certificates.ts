/**
 * The HTTPS listener's certificates, read by the primary: at start (a bad one stops cuttle with one line)
 * and on SIGHUP (a bad one keeps the certificates in use, logged in one line). Each is checked by building
 * a TLS context from it, which fails for a PEM that does not parse or a key that does not match. The
 * workers receive the PEM text over IPC, so every worker serves the same certificates however the files
 * change meanwhile, together with the session ticket keys, made once here so a session resumed on any
 * worker decrypts its ticket.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Config } from '../config/config.js';
import { normalServerName } from './sni.js';

export interface TlsCertificateMaterial {
  cert: string;
  key: string;
  /** The names SNI picks it for (lower case; `*.domain` for a wildcard). */
  names: string[];
}

/** What a worker needs to terminate TLS: certificates, the default's index, and the shared ticket keys. */
export interface TlsMaterial {
  certificates: TlsCertificateMaterial[];
  defaultIndex: number;
  /** 48 bytes, base64: node's session ticket keys (name, HMAC and AES keys), the same in every worker. */
  ticketKeys: string;
}

/** Session ticket keys for every worker (tls.Server#setTicketKeys takes 48 bytes). */
export function newTicketKeys(): string {
  return randomBytes(48).toString('base64');
}

/** Reads and checks every configured certificate. Throws an Error whose message is one line. */
export function loadTlsMaterial(config: Config, ticketKeys: string): TlsMaterial {
  const list = config.tls.certificates;
  const certificates = list.map((c): TlsCertificateMaterial => {
    const cert = readPem(c.cert, 'certificate');
    const key = readPem(c.key, 'key');
    try {
      createSecureContext({ cert, key });
    } catch (err) {
      throw new Error(`${c.cert} with ${c.key}: ${oneLine(err)}`);
    }
    return { cert, key, names: c.servernames ?? certificateNames(cert, c.cert) };
  });
  const unnamed = list.findIndex((c) => c.servernames === undefined);
  return { certificates, defaultIndex: unnamed === -1 ? 0 : unnamed, ticketKeys };
}

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read the ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? oneLine(err)}`,
    );
  }
}

/** The DNS names of a certificate's subjectAltName (RFC 6125 §6.4.4: CN only when it has none). */
function certificateNames(pem: string, file: string): string[] {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pem);
  } catch (err) {
    throw new Error(`${file}: not a certificate: ${oneLine(err)}`);
  }
  const san = x509.subjectAltName;
  if (san) {
    const names = san
      .split(', ')
      .filter((e) => e.startsWith('DNS:'))
      .map((e) => normalServerName(e.slice(4)));
    if (names.length > 0) return names;
  }
  const cn = /^CN=(.+)$/m.exec(x509.subject)?.[1];
  return cn ? [normalServerName(cn)] : [];
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}
