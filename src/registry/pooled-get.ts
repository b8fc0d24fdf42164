import net from 'node:net';
import { Readable } from 'node:stream';
import type tls from 'node:tls';
import { type HttpResponse, type HttpTimeouts, TIMEOUT, timeoutError, withHelpers } from './http';
import { ReadBuffers } from './read-buffers';

/**
 * A GET over HTTP/1.1 whose body arrives in reused memory (read-buffers.ts), for blob downloads.
 *
 * node:http cannot read into memory of ours: its parser copies every body chunk, after the socket
 * read into a fresh allocation. This is the small part of HTTP a blob download needs: one request
 * per connection (`Connection: close`), a status line and headers, and a body framed by
 * Content-Length, by chunked transfer coding, or by the end of the connection. Everything else
 * (manifests, uploads, tokens) stays on node:http. A connection per download costs a TCP (and TLS)
 * handshake per blob, small next to a layer's bytes; keep-alive here would need the stale-socket
 * retry logic that node:http's agent has. `npm run bench`: a third less CPU per copy (README).
 */

/** Response headers larger than this are refused (node:http's default limit). */
const MAX_HEADER_BYTES = 16 * 1024;

export function pooledGet(
  url: URL,
  options: { headers: Record<string, string>; timeouts: HttpTimeouts },
): Promise<HttpResponse> {
  const { headers, timeouts } = options;
  return new Promise<HttpResponse>((resolve, reject) => {
    let request: string;
    try {
      request = requestHead(url, headers);
    } catch (err) {
      reject(err);
      return;
    }
    const buffers = new ReadBuffers();
    const parser = new ResponseParser();
    let body: PooledBody | undefined;
    let settled = false;
    let headersTimer: NodeJS.Timeout | undefined;

    let failed = false;
    const fail = (err: Error): void => {
      failed = true;
      clearTimeout(headersTimer);
      socket.destroy();
      if (!settled) {
        settled = true;
        reject(err);
      } else body?.fail(err);
    };

    const onread = {
      buffer: () => buffers.next(),
      callback: (n: number): boolean => {
        let result: ParseResult;
        try {
          result = parser.feed(buffers.filled(n));
        } catch (err) {
          fail(err as Error);
          return false;
        }
        if (result.head && !settled) {
          clearTimeout(headersTimer);
          settled = true;
          body = new PooledBody(socket);
          resolve({ statusCode: result.head.status, headers: result.head.headers, body: withHelpers(body) });
        }
        let more = true;
        for (const view of result.body) more = body!.push(buffers.retain(view)) && more;
        if (result.error) {
          fail(result.error);
          return false;
        }
        if (result.done) {
          body!.push(null);
          socket.destroy();
          return false;
        }
        return more;
      },
    };

    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    // TLS sockets take `onread` too (net.Socket's option); @types/node lists it for net only.
    const tlsOptions: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host,
      port,
      ...(net.isIP(host) === 0 && { servername: host }),
      ALPNProtocols: ['http/1.1'],
      onread,
    };
    const socket: net.Socket =
      url.protocol === 'https:' ? tlsModule().connect(tlsOptions) : net.connect({ host, port, onread });

    const connectTimer = setTimeout(
      () => fail(timeoutError(TIMEOUT.connect, timeouts.connectMs)),
      timeouts.connectMs,
    );
    socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer);
      headersTimer = setTimeout(
        () => fail(timeoutError(TIMEOUT.headers, timeouts.headersMs)),
        timeouts.headersMs,
      );
    });
    socket.setTimeout(timeouts.bodyMs, () => fail(timeoutError(TIMEOUT.body, timeouts.bodyMs)));
    socket.on('error', (err) => {
      clearTimeout(connectTimer);
      fail(err);
    });
    socket.on('close', (hadError) => {
      clearTimeout(connectTimer);
      clearTimeout(headersTimer);
      buffers.close();
      if (parser.complete || failed) return;
      // The connection ended first: the end of the body, when nothing framed it; else a break.
      if (parser.endsWithConnection && !hadError) {
        parser.complete = true;
        body?.push(null);
        return;
      }
      fail(
        Object.assign(new Error('aborted: the connection closed before the response was complete'), {
          code: 'ECONNRESET',
        }),
      );
    });
    socket.resume();
    socket.write(request);
  });
}

// TLS loads on the first https:// download, as node:https does in http.ts.
const tlsModule = (): typeof tls => process.getBuiltinModule('node:tls');

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
  return `${head}connection: close\r\n\r\n`;
}

/** The body of a pooled GET: views of read memory, handed back with `releaseReadBuffer`. */
class PooledBody extends Readable {
  /** An error that came before anyone listened for one (see fail). */
  private early: Error | undefined;

  constructor(private readonly socket: net.Socket) {
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
    else {
      this.early = err;
      this.socket.destroy();
    }
  }

  override _read(): void {
    if (!this.socket.destroyed) this.socket.resume();
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    this.socket.destroy();
    done(err);
  }
}

interface ResponseHead {
  status: number;
  headers: Record<string, string>;
}

interface ParseResult {
  /** Set once, when the final (non-1xx) response head is complete. */
  head?: ResponseHead;
  /** Body bytes in this input, as views of it (chunk framing removed). */
  body: Buffer[];
  /** A framing error after the head: the body fails once the bytes before it are passed on. */
  error?: Error;
  /** The body is complete. */
  done: boolean;
}

type BodyState =
  | { kind: 'length'; left: number }
  | { kind: 'chunked'; step: 'size' | 'data' | 'data-crlf' | 'trailer'; left: number; line: string }
  | { kind: 'until-close' };

/** HTTP/1.1 response framing (RFC 9112), fed with what the socket reads. */
export class ResponseParser {
  complete = false;
  private headText = '';
  private body: BodyState | undefined;

  /** True when only the end of the connection can end the body. */
  get endsWithConnection(): boolean {
    return this.body?.kind === 'until-close';
  }

  feed(input: Buffer): ParseResult {
    const result: ParseResult = { body: [], done: false };
    let rest = input;
    while (!this.body && rest.length > 0) {
      rest = this.readHead(rest, result);
    }
    if (this.body && rest.length > 0 && !this.complete) {
      try {
        this.readBody(rest, result);
      } catch (err) {
        result.error = err as Error;
      }
    }
    if (this.body && this.body.kind === 'length' && this.body.left === 0) this.complete = true;
    result.done = this.complete;
    return result;
  }

  private readHead(input: Buffer, result: ParseResult): Buffer {
    // Headers are ASCII; latin1 keeps one character per byte, so offsets carry over to the buffer.
    const start = this.headText.length;
    this.headText += input.toString('latin1');
    const end = this.headText.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.headText.length > MAX_HEADER_BYTES) throw parseError('response headers are too large');
      return input.subarray(input.length);
    }
    const text = this.headText.slice(0, end);
    const rest = input.subarray(end + 4 - start);
    this.headText = '';
    const head = parseHead(text);
    if (head.status < 200) return rest; // 100 Continue, 103 Early Hints: the real answer follows
    result.head = head;
    this.body = framing(head);
    if (this.body.kind === 'length' && this.body.left === 0) this.complete = true;
    return rest;
  }

  private readBody(input: Buffer, result: ParseResult): void {
    const state = this.body!;
    if (state.kind === 'until-close') {
      result.body.push(input);
      return;
    }
    if (state.kind === 'length') {
      const take = Math.min(state.left, input.length);
      if (take > 0) result.body.push(input.subarray(0, take));
      state.left -= take;
      return;
    }
    let i = 0;
    while (i < input.length && !this.complete) {
      if (state.step === 'data') {
        const take = Math.min(state.left, input.length - i);
        result.body.push(input.subarray(i, i + take));
        state.left -= take;
        i += take;
        if (state.left === 0) state.step = 'data-crlf';
        continue;
      }
      // Size lines, the CRLF after each chunk and the trailer section are short: read them as text.
      const nl = input.indexOf(10, i);
      const piece = input.toString('latin1', i, nl < 0 ? input.length : nl + 1);
      i = nl < 0 ? input.length : nl + 1;
      state.line += piece;
      if (state.line.length > MAX_HEADER_BYTES) throw parseError('chunk framing line is too long');
      if (nl < 0) continue;
      const line = state.line.replace(/\r?\n$/, '');
      state.line = '';
      if (state.step === 'data-crlf') {
        if (line !== '') throw parseError('chunk data longer than its size');
        state.step = 'size';
      } else if (state.step === 'size') {
        const size = /^([0-9a-fA-F]{1,15})[ \t]*(;.*)?$/.exec(line);
        if (!size) throw parseError(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
        state.left = Number.parseInt(size[1]!, 16);
        state.step = state.left === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        this.complete = true; // the blank line after the (ignored) trailer fields
      }
    }
  }
}

function parseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!status)
    throw parseError(`not an HTTP/1.1 status line: ${JSON.stringify((lines[0] ?? '').slice(0, 40))}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw parseError(`bad header line ${JSON.stringify(line.slice(0, 40))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { status: Number(status[1]), headers };
}

function framing(head: ResponseHead): BodyState {
  if (head.status === 204 || head.status === 304) return { kind: 'length', left: 0 };
  const coding = head.headers['transfer-encoding'];
  if (coding !== undefined) {
    if (/(^|,)\s*chunked\s*$/i.test(coding)) return { kind: 'chunked', step: 'size', left: 0, line: '' };
    return { kind: 'until-close' };
  }
  const length = head.headers['content-length'];
  if (length === undefined) return { kind: 'until-close' };
  if (!/^\d{1,15}$/.test(length))
    throw parseError(`bad Content-Length ${JSON.stringify(length.slice(0, 40))}`);
  return { kind: 'length', left: Number(length) };
}

function parseError(message: string): Error {
  return Object.assign(new Error(`malformed HTTP response: ${message}`), { code: 'HPE_INVALID_RESPONSE' });
}
