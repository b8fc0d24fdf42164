import net from 'node:net';
import { Readable } from 'node:stream';
import type tls from 'node:tls';
import { abortError } from '../errors';
import { redactUrl } from './errors';
import {
  consumerBehind,
  type HttpResponse,
  type HttpTimeouts,
  TIMEOUT,
  timeoutError,
  withHelpers,
} from './http';
import { type ParseResult, ResponseParser } from './http1-response';
import { ReadBuffers } from './read-buffers';

/**
 * A GET over HTTP/1.1 whose body arrives in reused memory (read-buffers.ts), for blob downloads.
 *
 * node:http cannot read into memory of ours: its parser copies every body chunk, after the socket
 * read into a fresh allocation. This is the small part of HTTP a blob download needs: GET, the
 * response framing of http1-response.ts, and keep-alive connections per origin, so that blob after
 * blob (and ECR's redirect, then S3) does not pay a TCP and TLS handshake each. Everything else
 * (manifests, uploads, tokens) stays on node:http. `npm run bench`: a third less CPU per copy.
 */

/** An idle connection is closed after this long; servers keep theirs for 5 s or more. */
const IDLE_MS = 4_000;
/** Idle connections kept per origin (a copy has 6 downloads in flight by default). */
const MAX_IDLE_PER_ORIGIN = 8;
/** Errors that, on a connection used before and before any answer, mean the server had closed it. */
const STALE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

const idle = new Map<string, Connection[]>();

export function pooledGet(
  url: URL,
  options: { headers: Record<string, string>; timeouts: HttpTimeouts; signal?: AbortSignal; label?: string },
): Promise<HttpResponse> {
  const { signal } = options;
  const label = options.label ?? `GET ${redactUrl(url)}`;
  let request: string;
  try {
    if (signal?.aborted) throw abortError(signal, label);
    request = requestHead(url, options.headers);
  } catch (err) {
    return Promise.reject(err);
  }
  const reused = takeIdle(url.origin);
  const attempt = (conn: Connection) =>
    new Promise<HttpResponse>((resolve, reject) =>
      new Exchange(conn, options.timeouts, resolve, reject, label, signal).start(request),
    );
  if (!reused) return attempt(new Connection(url));
  // A kept connection the server has just closed fails before any answer: GET again on a new one.
  return attempt(reused).catch((err: unknown) => {
    if (!(err instanceof StaleConnection)) throw err;
    return attempt(new Connection(url));
  });
}

/** Closes the idle download connections (a command-line process exits without waiting for them). */
export function closeIdleDownloads(): void {
  for (const list of idle.values()) for (const conn of list) conn.socket.destroy();
  idle.clear();
}

function takeIdle(origin: string): Connection | undefined {
  const list = idle.get(origin);
  let conn = list?.pop();
  while (conn?.socket.destroyed) conn = list?.pop();
  return conn;
}

function park(conn: Connection): void {
  const list = idle.get(conn.origin) ?? [];
  if (list.length >= MAX_IDLE_PER_ORIGIN) {
    conn.socket.destroy();
    return;
  }
  list.push(conn);
  idle.set(conn.origin, list);
  conn.socket.setTimeout(IDLE_MS);
  // Idle, it must not keep a process alive; it keeps reading, to notice when the server closes it.
  conn.socket.unref();
  conn.socket.resume();
}

function forget(conn: Connection): void {
  const list = idle.get(conn.origin);
  const at = list?.indexOf(conn) ?? -1;
  if (list && at >= 0) list.splice(at, 1);
}

class StaleConnection extends Error {}

// TLS loads on the first https:// download, as node:https does in http.ts.
const tlsModule = (): typeof tls => process.getBuiltinModule('node:tls');

/** One connection: its socket, its read memory, and the exchange reading from it, if any. */
class Connection {
  readonly origin: string;
  readonly socket: net.Socket;
  readonly buffers = new ReadBuffers();
  exchange: Exchange | undefined;
  /** Connected (and, for https, past the TLS handshake). */
  ready = false;
  /** Has carried a response before. */
  used = false;

  constructor(url: URL) {
    this.origin = url.origin;
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    const onread = { buffer: () => this.buffers.next(), callback: (n: number) => this.read(n) };
    const secure = url.protocol === 'https:';
    // TLS sockets take `onread` too (net.Socket's option); @types/node lists it for net only.
    const tlsOptions: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host,
      port,
      ...(net.isIP(host) === 0 && { servername: host }),
      ALPNProtocols: ['http/1.1'],
      onread,
    };
    const socket = secure ? tlsModule().connect(tlsOptions) : net.connect({ host, port, onread });
    this.socket = socket;
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      this.ready = true;
      this.exchange?.connected();
    });
    socket.on('timeout', () => (this.exchange ? this.exchange.silent() : socket.destroy()));
    socket.on('error', (err) => this.exchange?.fail(err));
    socket.on('close', (hadError) => {
      this.buffers.close();
      forget(this);
      this.exchange?.closed(hadError);
    });
  }

  private read(n: number): boolean {
    const bytes = this.buffers.filled(n);
    if (this.exchange) return this.exchange.read(bytes);
    this.socket.destroy(); // bytes nobody asked for: the connection is out of step
    return false;
  }
}

/** One request and its response on a connection. */
class Exchange {
  private readonly parser = new ResponseParser();
  private body: PooledBody | undefined;
  private settled = false;
  private done = false;
  private answered = false;
  private connectTimer: NodeJS.Timeout | undefined;
  private headersTimer: NodeJS.Timeout | undefined;
  private readonly onAbort = (): void => this.fail(abortError(this.signal!, this.label));

  constructor(
    private readonly conn: Connection,
    private readonly timeouts: HttpTimeouts,
    private readonly resolve: (res: HttpResponse) => void,
    private readonly reject: (err: unknown) => void,
    private readonly label: string,
    private readonly signal: AbortSignal | undefined,
  ) {}

  start(request: string): void {
    const { conn } = this;
    conn.exchange = this;
    if (this.signal?.aborted) {
      this.onAbort();
      return;
    }
    this.signal?.addEventListener('abort', this.onAbort, { once: true });
    conn.socket.ref();
    conn.socket.setTimeout(this.timeouts.bodyMs);
    conn.socket.resume();
    if (conn.ready) this.connected();
    else {
      this.connectTimer = setTimeout(
        () => this.fail(timeoutError(TIMEOUT.connect, this.timeouts.connectMs)),
        this.timeouts.connectMs,
      );
    }
    conn.socket.write(request);
  }

  connected(): void {
    clearTimeout(this.connectTimer);
    this.headersTimer = setTimeout(
      () => this.fail(timeoutError(TIMEOUT.headers, this.timeouts.headersMs)),
      this.timeouts.headersMs,
    );
  }

  /** The socket has been silent for bodyMs: the server's fault, unless our reader is the one behind. */
  silent(): void {
    if (this.body && consumerBehind(this.body)) {
      this.conn.socket.setTimeout(this.timeouts.bodyMs); // look again later
      return;
    }
    this.fail(timeoutError(TIMEOUT.body, this.timeouts.bodyMs));
  }

  /** Socket memory just read; returns false to pause reading. */
  read(bytes: Buffer): boolean {
    this.answered = true;
    let result: ParseResult;
    try {
      result = this.parser.feed(bytes);
    } catch (err) {
      this.fail(err as Error);
      return false;
    }
    if (result.head && !this.settled) {
      clearTimeout(this.headersTimer);
      this.settled = true;
      this.body = new PooledBody(this);
      const { status, headers } = result.head;
      this.resolve({ statusCode: status, headers, body: withHelpers(this.body) });
    }
    let more = true;
    for (const view of result.body) more = this.body!.push(this.conn.buffers.retain(view)) && more;
    if (result.error) {
      this.fail(result.error);
      return false;
    }
    if (result.done) {
      this.finish();
      return true;
    }
    return more;
  }

  /** The consumer wants more: read on, if this exchange still owns the connection. */
  resume(): void {
    if (this.conn.exchange === this && !this.conn.socket.destroyed) this.conn.socket.resume();
  }

  /** The consumer gave up on the body: a connection with unread response left cannot be reused. */
  abort(): void {
    if (this.conn.exchange === this) this.conn.socket.destroy();
  }

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.detach();
    this.conn.socket.destroy();
    if (!this.settled) {
      this.settled = true;
      const code = (err as { code?: string }).code ?? '';
      this.reject(this.conn.used && !this.answered && STALE_CODES.has(code) ? new StaleConnection() : err);
    } else this.body?.fail(err);
  }

  closed(hadError: boolean): void {
    if (this.done) return;
    // The connection ended first: the end of the body when nothing framed it; else a break.
    if (this.parser.endsWithConnection && !hadError) {
      this.parser.complete = true;
      this.finish();
      return;
    }
    this.fail(
      Object.assign(new Error('aborted: the connection closed before the response was complete'), {
        code: 'ECONNRESET',
      }),
    );
  }

  private finish(): void {
    this.done = true;
    this.detach();
    this.body!.push(null);
    if (this.parser.reusable && !this.conn.socket.destroyed) {
      this.conn.used = true;
      park(this.conn);
    } else this.conn.socket.destroy();
  }

  private detach(): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.headersTimer);
    this.signal?.removeEventListener('abort', this.onAbort);
    if (this.conn.exchange === this) this.conn.exchange = undefined;
  }
}

function requestHead(url: URL, headers: Record<string, string>): string {
  let head = `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    // node:http refuses these too: a line break in a value would start a header of its own.
    if (/[\r\n\0]/.test(value) || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw Object.assign(new TypeError(`invalid character in header ${JSON.stringify(name)}`), {
        code: 'ERR_INVALID_CHAR',
      });
    }
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}

/** The body of a pooled GET: views of read memory, handed back with `releaseReadBuffer`. */
class PooledBody extends Readable {
  /** An error that came before anyone listened for one (see fail). */
  private early: Error | undefined;

  constructor(private readonly exchange: Exchange) {
    super({ highWaterMark: 256 * 1024 });
    this.on('newListener', (event) => {
      if (event !== 'error' || !this.early) return;
      const err = this.early;
      this.early = undefined;
      process.nextTick(() => this.destroy(err));
    });
  }

  /**
   * Fails the body. The caller gets the response a few promise steps after it resolves; an error in
   * between (a reset right after the headers) waits for the first 'error' listener rather than
   * being thrown unhandled. node:http drops such an error; here the consumer still sees it.
   */
  fail(err: Error): void {
    if (this.destroyed) return;
    if (this.listenerCount('error') > 0) this.destroy(err);
    else this.early = err;
  }

  override _read(): void {
    this.exchange.resume();
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    this.exchange.abort();
    done(err);
  }
}
