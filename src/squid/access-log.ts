/**
 * access.log as Squid writes it, so its analysers (calamaris, sarg, lightsquid) and operators' habits keep
 * working. Formats (squid-cache/squid src/cf.data.pre, logformat):
 *   squid     %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
 *   common    %>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh
 *   combined  common's fields, then "%{Referer}>h" "%{User-Agent}>h" %Ss:%Sh
 * Every worker appends whole lines to the one file (O_APPEND, one write per buffer of whole lines), so
 * lines from several workers never tear or interleave.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import sonicBoom, { type SonicBoom as SonicBoomClass } from 'sonic-boom';

// sonic-boom is CommonJS: its constructor is the default export, which its types describe as a namespace.
const SonicBoom = sonicBoom as unknown as typeof SonicBoomClass;

import { CACHE_NAME, MEM_HIT } from '../cache/cache.js';
import { plainAddress } from '../http/forwarding.js';
import type { StatsCounter } from '../stats/counters.js';

export type LogFormat = 'squid' | 'common' | 'combined';

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
  /** HIER_DIRECT or HIER_NONE, and the server it went to ('-' for none). */
  hierarchy: 'HIER_DIRECT' | 'HIER_NONE';
  server: string;
  contentType: string | null;
  httpVersion: string;
  referer: string | null;
  userAgent: string | null;
}

/**
 * Squid's result code from what the response says of itself: its Cache-Status (RFC 9211) as cuttle writes
 * it, and X-Squid-Error for answers cuttle made itself.
 */
export function squidResult(o: {
  method: string;
  status: number;
  cacheStatus: string | null;
  squidError: string | null;
  /** The client sent If-None-Match (for a 304 answered from the cache). */
  clientEtag: boolean;
  aborted: boolean;
  timedOut: boolean;
  /** Served from a body kept in the entry record: Squid's memory hit. */
  memory?: boolean;
}): string {
  const cs = o.cacheStatus ?? '';
  let code: string;
  if (o.method === 'CONNECT' && o.status === 200) code = 'TCP_TUNNEL';
  else if (/stored body missing/.test(cs)) code = 'TCP_SWAPFAIL_MISS';
  else if (o.squidError === 'ERR_ACCESS_DENIED' || o.squidError === 'ERR_CACHE_ACCESS_DENIED')
    code = 'TCP_DENIED';
  else if (/;\s*hit/.test(cs)) {
    if (o.status === 304) code = o.clientEtag ? 'TCP_INM_HIT' : 'TCP_IMS_HIT';
    else if (o.status >= 400) code = 'TCP_NEGATIVE_HIT';
    else code = o.memory ? 'TCP_MEM_HIT' : 'TCP_HIT';
  } else if (/fwd=stale/.test(cs)) {
    if (/stale-if-error/.test(cs)) code = 'TCP_REFRESH_FAIL_OLD';
    else if (/fwd-status=304/.test(cs)) code = 'TCP_REFRESH_UNMODIFIED';
    else code = 'TCP_REFRESH_MODIFIED';
  } else if (/fwd=request/.test(cs)) code = 'TCP_CLIENT_REFRESH_MISS';
  else if (cs || o.squidError === null || o.status >= 500) code = 'TCP_MISS';
  else code = 'NONE';
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

/** Where a request went, filled in as the proxy learns it. */
export interface RequestWhere {
  url: string;
  /** The upstream host, or '-' while none. */
  server: string;
  /** The authenticated user (%un). */
  user: string | null;
}

/** How cuttle's own Cache-Status marks a hit (cache.ts writes `cuttle; hit…`), and its own error answers. */
const HIT_MARK = `\r\nCache-Status: ${CACHE_NAME}; hit`;
const ERROR_MARK = '\r\nX-Squid-Error: ';
const CACHE_STATUS = /\r\ncache-status: *([^\r]*)/i;
const SQUID_ERROR = /\r\nx-squid-error: *([^\r ]*)/i;
const CONTENT_TYPE = /\r\ncontent-type: *([^\r;]*)/i;

/** The head cuttle wrote (whichever path wrote it), as node:http serialised it. */
const sentHead = (res: ServerResponse) => (res as unknown as { _header?: string | null })._header ?? '';
const headField = (head: string, re: RegExp) => re.exec(head)?.[1].trim() ?? null;

/** Builds a record for each request and tunnel as it ends: the counters always, access.log when kept. */
export class AccessRecorder {
  constructor(
    private readonly out: AccessLog | null,
    private readonly stats: StatsCounter,
  ) {}

  track(req: IncomingMessage, res: ServerResponse): RequestWhere {
    const started = Date.now();
    const socket = req.socket;
    const bytesBefore = socket.bytesWritten;
    const where: RequestWhere = { url: req.url ?? '-', server: '-', user: null };
    res.once('close', () => {
      // Two substring scans of the head, not a parse: this runs for every request.
      const end = Date.now();
      const head = sentHead(res);
      const hit = head.includes(HIT_MARK);
      const failed = !hit && head.includes(ERROR_MARK);
      const direct = !hit && !failed && where.server !== '-';
      const bytes = socket.bytesWritten - bytesBefore;
      this.stats.record(hit, direct, failed, bytes, end - started, socket.remoteAddress);
      if (!this.out) return;
      const squidError = headField(head, SQUID_ERROR);
      this.out.write({
        end,
        elapsed: end - started,
        client: plainAddress(socket.remoteAddress),
        result: squidResult({
          method: req.method ?? '-',
          status: res.statusCode,
          cacheStatus: headField(head, CACHE_STATUS),
          squidError,
          clientEtag: req.headers['if-none-match'] !== undefined,
          aborted: !res.writableFinished,
          memory: (res as unknown as Record<symbol, boolean>)[MEM_HIT] === true,
          timedOut:
            squidError === 'ERR_READ_TIMEOUT' ||
            (res.statusCode === 504 && squidError === 'ERR_CONNECT_FAIL'),
        }),
        status: res.statusCode,
        bytes,
        method: req.method ?? '-',
        url: where.url,
        user: where.user,
        hierarchy: direct ? 'HIER_DIRECT' : 'HIER_NONE',
        server: direct ? where.server : '-',
        contentType: headField(head, CONTENT_TYPE),
        httpVersion: req.httpVersion,
        referer: req.headers.referer ?? null,
        userAgent: req.headers['user-agent'] ?? null,
      });
    });
    return where;
  }

  /** A CONNECT, once it ended: refused with `status`, or a tunnel that carried `bytes` to the client. */
  tunnel(req: IncomingMessage, started: number, client: Socket, status: number, server: string | null): void {
    const end = Date.now();
    this.stats.record(
      false,
      server !== null,
      status !== 200,
      client.bytesWritten,
      end - started,
      req.socket.remoteAddress,
    );
    this.out?.write({
      end,
      elapsed: end - started,
      client: plainAddress(req.socket.remoteAddress),
      result: status === 200 ? 'TCP_TUNNEL' : status === 403 ? 'TCP_DENIED' : 'NONE',
      status,
      bytes: client.bytesWritten,
      method: 'CONNECT',
      url: req.url ?? '-',
      user: null,
      hierarchy: server ? 'HIER_DIRECT' : 'HIER_NONE',
      server: server ?? '-',
      contentType: null,
      httpVersion: req.httpVersion,
      referer: null,
      userAgent: req.headers['user-agent'] ?? null,
    });
  }
}
