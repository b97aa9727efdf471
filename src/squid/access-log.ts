/**
 * access.log as Squid writes it, so its analysers (calamaris, sarg, lightsquid) and operators' habits keep
 * working. Formats (squid-cache/squid src/cf.data.pre, logformat):
 *   squid     %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
 *   common    %>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh
 *   combined  common's fields, then "%{Referer}>h" "%{User-Agent}>h" %Ss:%Sh
 * Every worker appends whole lines to the one file (O_APPEND, one write per buffer of whole lines), so
 * lines from several workers never tear or interleave.
 */

import sonicBoom, { type SonicBoom as SonicBoomClass } from 'sonic-boom';
import type { HierarchyCode } from '../fleet/select.js';

// sonic-boom is CommonJS: its constructor is the default export, which its types describe as a namespace.
const SonicBoom = sonicBoom as unknown as typeof SonicBoomClass;

import { fieldValue, type RawHeaders } from '../http/fields.js';
import { plainAddress } from '../http/forwarding.js';
import type { FinishObserver, Outcome, Transaction } from '../workers/transaction.js';
import type { LogFormat } from './log-formats.js';

export interface AccessRecord {
  /** Completion time, ms since the epoch. */
  end: number;
  /** Service time, ms. */
  elapsed: number;
  client: string;
  /** Squid's result code, e.g. TCP_MISS or TCP_HIT_ABORTED. */
  result: string;
  status: number;
  /** Bytes sent to the client, header section included. */
  bytes: number;
  method: string;
  url: string;
  user: string | null;
  /**
   * Squid's hierarchy code (HIER_DIRECT, CARP, FIRSTUP_PARENT, DEFAULT_PARENT, …, HIER_NONE) and the
   * server it went to ('-' for none): the origin's host, or the peer's.
   */
  hierarchy: HierarchyCode;
  server: string;
  contentType: string | null;
  httpVersion: string;
  referer: string | null;
  userAgent: string | null;
}

/**
 * Squid's result code, from the transaction's outcome and the error cuttle answered with, if any.
 */
export function squidResult(o: {
  method: string;
  status: number;
  outcome: Outcome;
  /** The cache stage took part (a Cache-Status member was made). */
  cached: boolean;
  squidError: string | null;
  /** The client sent If-None-Match (for a 304 answered from the cache). */
  clientEtag: boolean;
  aborted: boolean;
  timedOut: boolean;
  /** Served from a body kept in the entry record: Squid's memory hit. */
  memory?: boolean;
  /** Answered by another request's fetch (collapsed forwarding). */
  collapsed?: boolean;
}): string {
  let code: string;
  const denied = o.squidError === 'ERR_ACCESS_DENIED' || o.squidError === 'ERR_CACHE_ACCESS_DENIED';
  switch (o.outcome) {
    case 'tunnel':
      code = o.status === 200 ? 'TCP_TUNNEL' : denied ? 'TCP_DENIED' : 'NONE';
      break;
    case 'swapfail':
      code = 'TCP_SWAPFAIL_MISS';
      break;
    case 'hit':
      if (o.status === 304) code = o.clientEtag ? 'TCP_INM_HIT' : 'TCP_IMS_HIT';
      else if (o.status >= 400) code = 'TCP_NEGATIVE_HIT';
      else code = o.memory ? 'TCP_MEM_HIT' : 'TCP_HIT';
      break;
    case 'refresh-fail-old':
      code = 'TCP_REFRESH_FAIL_OLD';
      break;
    case 'refresh-unmodified':
      code = 'TCP_REFRESH_UNMODIFIED';
      break;
    case 'refresh-modified':
      code = 'TCP_REFRESH_MODIFIED';
      break;
    case 'client-refresh':
      code = 'TCP_CLIENT_REFRESH_MISS';
      break;
    default:
      if (denied) code = 'TCP_DENIED';
      else if (o.cached || o.outcome !== 'none' || o.squidError === null || o.status >= 500)
        code = 'TCP_MISS';
      else code = 'NONE';
  }
  // Squid's LogTags::c_str: a collapsed request's tag has _CF after its protocol (TCP_CF_HIT, TCP_CF_MISS).
  if (o.collapsed && code.startsWith('TCP_')) code = `TCP_CF_${code.slice(4)}`;
  if (o.timedOut) return `${code}_TIMEDOUT`;
  if (o.aborted) return `${code}_ABORTED`;
  return code;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** %tl: local time as in Apache's common log format, e.g. 24/Nov/2026:10:44:49 +0000. */
function localTime(ms: number): string {
  const d = new Date(ms);
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const abs = Math.abs(off);
  return `${pad(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
}

/** Squid quotes nothing in the native format; a field is never empty and never holds a space or newline. */
const field = (s: string | null) => (s ? s.replace(/[\s\p{Cc}]+/gu, '%20') : '-');
const quoted = (s: string | null) =>
  s ? s.replace(/["\\\p{Cc}]/gu, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`) : '-';

export function formatRecord(r: AccessRecord, format: LogFormat): string {
  if (format === 'squid') {
    const ts = `${Math.floor(r.end / 1000)}.${pad(r.end % 1000, 3)}`;
    return `${ts} ${String(r.elapsed).padStart(6)} ${r.client} ${r.result}/${pad(r.status, 3)} ${r.bytes} ${r.method} ${field(r.url)} ${field(r.user)} ${r.hierarchy}/${r.server} ${field(r.contentType)}\n`;
  }
  const common = `${r.client} - ${field(r.user)} [${localTime(r.end)}] "${r.method} ${field(r.url)} HTTP/${r.httpVersion}" ${r.status} ${r.bytes}`;
  const tags = `${r.result}:${r.hierarchy}`;
  if (format === 'common') return `${common} ${tags}\n`;
  return `${common} "${quoted(r.referer)}" "${quoted(r.userAgent)}" ${tags}\n`;
}

export interface AccessLog {
  write(r: AccessRecord): void;
  /** After rotation (SIGUSR1 in the primary): reopen the path, which now names a new file. */
  reopen(): void;
  close(): Promise<void>;
}

export function openAccessLog(path: string, format: LogFormat): AccessLog {
  // Buffered: a write(2) carries up to 64 KiB of whole lines, flushed at the latest 200 ms later.
  // sonic-boom keeps whole writes together in buffers of at most maxWrite bytes, one write(2) each.
  // On standard output (a pipe shared by every worker) a write(2) is atomic only up to PIPE_BUF (4 KiB).
  const toStdout = path === '-';
  const out = new SonicBoom({
    dest: toStdout ? 1 : path,
    append: true,
    mkdir: !toStdout,
    minLength: toStdout ? 2048 : 32 * 1024,
    maxWrite: toStdout ? 4096 : 64 * 1024,
    sync: false,
  });
  const timer = setInterval(() => out.flush(), 200);
  timer.unref();
  out.on('error', () => {
    // A full disk or a removed directory must not take the worker down; lines are lost until it recovers.
  });
  return {
    write: (r) => out.write(formatRecord(r, format)),
    // Lines buffered before the rotation belong to the renamed file, which the old descriptor still names.
    reopen: () => {
      if (toStdout) return;
      try {
        out.flushSync();
      } catch {
        // Not open yet: nothing is buffered for the old file.
      }
      out.reopen();
    },
    close: () =>
      new Promise((resolve) => {
        clearInterval(timer);
        out.once('close', () => resolve());
        out.end();
      }),
  };
}

/** Squid's result code of a finished transaction, from its record (the access log's and the metrics' label). */
export function transactionResult(txn: Transaction, complete: boolean): string {
  const squidError = txn.error?.squidError.split(' ')[0] ?? null;
  return squidResult({
    method: txn.method,
    status: txn.status,
    outcome: txn.outcome,
    cached: txn.cache !== null,
    squidError,
    // Only a 304 asks, so a hit does not make node build the request's header object.
    clientEtag: txn.status === 304 && txn.req.headers['if-none-match'] !== undefined,
    aborted: !complete,
    memory: txn.memory,
    collapsed: txn.collapsed,
    timedOut: squidError === 'ERR_READ_TIMEOUT' || (txn.status === 504 && squidError === 'ERR_CONNECT_FAIL'),
  });
}

/** Writes one access.log line per finished transaction, rendered from its record. */
export function accessLogObserver(out: AccessLog): FinishObserver {
  return (txn, end, bytes, complete) => {
    const req = txn.req;
    const went = txn.forwarded && txn.outcome !== 'hit' && txn.error === null;
    // The routing stage names where it went (a peer, or direct); without peers it is always direct.
    const hier = went ? (txn.hier ?? { code: 'HIER_DIRECT', server: txn.route?.server ?? '-' }) : null;
    out.write({
      end,
      elapsed: end - txn.started,
      client: plainAddress(txn.socket.remoteAddress),
      result: transactionResult(txn, complete),
      status: txn.status,
      bytes,
      method: txn.method,
      url: txn.url,
      user: txn.user,
      hierarchy: hier?.code ?? 'HIER_NONE',
      server: hier?.server ?? '-',
      contentType: contentType(txn.fields),
      httpVersion: req.httpVersion,
      referer: req.headers.referer ?? null,
      userAgent: req.headers['user-agent'] ?? null,
    });
  };
}

/** %mt: the media type of the response sent, without parameters. */
function contentType(fields: RawHeaders | null): string | null {
  const v = fields === null ? undefined : fieldValue(fields, 'content-type');
  return v === undefined ? null : v.split(';')[0].trim() || null;
}
