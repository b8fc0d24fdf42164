import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type https from 'node:https';
import type { Socket } from 'node:net';
import { finished, type Readable } from 'node:stream';
import { abortError, MirrorError } from '../errors';
import { redactUrl } from './errors';
import { releaseReadBuffer } from './read-buffers';

/**
 * A small HTTP/1.1 client on node:http with keep-alive pools: streamed bodies both ways and three
 * timeouts (connect, response headers once the request is sent, and silence on the socket). Chosen
 * over undici after `npm run bench`: undici's load and first-request parser compilation cost about
 * 0.6 CPU-seconds and 50 MB per process, more than a whole copy of a small image. Blob downloads go
 * through pooled-get.ts instead, which reads into reused memory.
 */

export interface HttpTimeouts {
  connectMs: number;
  headersMs: number;
  /** Longest silence on the socket while a body goes up or comes down. */
  bodyMs: number;
}

export interface HttpResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
}

export type ResponseBody = Readable & { dump(): Promise<void>; text(): Promise<string> };

/** Error codes of the timeouts, for transportError to tell them from other network errors. */
export const TIMEOUT = {
  connect: 'CONNECT_TIMEOUT',
  headers: 'HEADERS_TIMEOUT',
  body: 'BODY_TIMEOUT',
} as const;

export function timeoutError(code: string, ms: number): Error {
  return Object.assign(new Error(`no progress for ${ms} ms`), { code });
}

// node:https (and TLS with it) loads on the first https:// request: a copy between local registries
// starts ~7 ms sooner without it.
const httpsModule = (): typeof https => process.getBuiltinModule('node:https');

let agents: { http?: http.Agent; https?: https.Agent } | undefined;
function pool(protocol: string): http.Agent {
  agents ??= {};
  const options = { keepAlive: true, maxSockets: 32 };
  if (protocol === 'https:') {
    agents.https ??= new (httpsModule().Agent)(options);
    return agents.https;
  }
  agents.http ??= new http.Agent(options);
  return agents.http;
}

/** Closes pooled connections so a command-line process can exit at once. */
export function closePools(): void {
  agents?.http?.destroy();
  agents?.https?.destroy();
  agents = undefined;
}

/** What dump() reads of a body before it gives up on the connection instead (an endless body). */
const MAX_DUMP_BYTES = 64 * 1024;

/** Adds dump() and text() to a response body (node:http's, or pooled-get's). */
export function withHelpers(res: Readable): ResponseBody {
  const body = res as unknown as ResponseBody;
  body.dump = () =>
    new Promise<void>((resolve) => {
      // Read to the end even when nothing is left (a HEAD): only then does the socket go back to the
      // pool. A body longer than a few error pages is not worth that: the connection goes instead.
      if (res.readableEnded || res.destroyed) return resolve();
      let left = MAX_DUMP_BYTES;
      res.on('data', (chunk: Buffer) => {
        left -= chunk.length;
        if (left < 0) res.destroy();
      });
      res.once('end', resolve);
      res.once('close', resolve);
      res.once('error', () => resolve());
      res.resume();
    });
  body.text = async () => {
    const parts: Buffer[] = [];
    for await (const part of res) parts.push(part as Buffer);
    return Buffer.concat(parts).toString('utf8');
  };
  return body;
}

export interface HttpRequestOptions {
  method: string;
  headers: Record<string, string>;
  body?: Buffer | Readable;
  timeouts: HttpTimeouts;
  /** Aborts the request, or its response body once it arrived: the socket is destroyed. */
  signal?: AbortSignal;
  /** Names the request in the error of an abort; `METHOD url` when absent. */
  label?: string;
}

/**
 * True when whoever reads `body` is behind: its buffer is full, so the socket stopped reading, and
 * silence on it is theirs, not the server's (a copy's download waits on a slow upload this way).
 * A buffer with room means the socket is reading, and silence is the server's.
 */
export function consumerBehind(body: Readable): boolean {
  return body.readableLength >= body.readableHighWaterMark;
}

export function httpRequest(url: URL, options: HttpRequestOptions): Promise<HttpResponse> {
  const { method, headers, body, timeouts, signal } = options;
  const label = options.label ?? `${method} ${redactUrl(url)}`;
  if (signal?.aborted) return Promise.reject(abortError(signal, label));
  return new Promise<HttpResponse>((resolve, reject) => {
    const transport = url.protocol === 'https:' ? httpsModule() : http;
    let headersTimer: NodeJS.Timeout | undefined;
    let connectTimer: NodeJS.Timeout | undefined;
    let socket: Socket | undefined;
    let response: IncomingMessage | undefined;
    let sent = false;
    const onAbort = (): void => {
      const err = abortError(signal!, label);
      response?.destroy(err);
      req.destroy(err);
    };
    // Silence on the socket is blamed on the side that is idle. While the body goes up: only when
    // the server leaves bytes of ours untaken (a body whose own source is slow is for that source's
    // timers to judge). Once it is sent: the headers timer. While the answer comes down: only while
    // its reader waits for bytes (a download held up by a slow upload is not the server's fault).
    const onIdle = (): void => {
      if (response) {
        if (!consumerBehind(response)) {
          response.destroy(timeoutError(TIMEOUT.body, timeouts.bodyMs));
          return;
        }
      } else if (!sent && (req.writableLength > 0 || req.writableNeedDrain)) {
        req.destroy(timeoutError(TIMEOUT.body, timeouts.bodyMs));
        return;
      }
      socket?.setTimeout(timeouts.bodyMs); // not theirs to blame: look again later
    };
    /**
     * The exchange is over: the socket goes back to the pool (on the next tick), where the next
     * request sets its own timers. Once only: a later 'close' must not touch a socket reused since.
     */
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      clearTimeout(headersTimer);
      clearTimeout(connectTimer);
      signal?.removeEventListener('abort', onAbort);
      socket?.removeListener('timeout', onIdle);
      socket?.setTimeout(0);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const req = transport.request(url, { method, headers, agent: pool(url.protocol) }, (res) => {
      clearTimeout(headersTimer);
      response = res;
      res.once('end', release);
      res.once('close', release);
      resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: withHelpers(res) });
    });
    req.on('error', (err) => {
      release();
      reject(err);
    });
    req.once('socket', (s) => {
      socket = s;
      s.setTimeout(timeouts.bodyMs);
      s.on('timeout', onIdle);
      if (s.connecting) {
        connectTimer = setTimeout(
          () => req.destroy(timeoutError(TIMEOUT.connect, timeouts.connectMs)),
          timeouts.connectMs,
        );
        s.once('connect', () => clearTimeout(connectTimer));
      }
    });
    // A large upload may take far longer than headersMs in all: this timer starts once it is sent.
    req.once('finish', () => {
      sent = true;
      if (response) return;
      headersTimer = setTimeout(
        () => req.destroy(timeoutError(TIMEOUT.headers, timeouts.headersMs)),
        timeouts.headersMs,
      );
    });
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      // finished() also reports an error the body met before this point (a download that broke while
      // the upload was being set up), which an 'error' listener added now would never hear.
      finished(body, (err) => {
        if (err) req.destroy(err);
      });
      pump(body, req);
    }
  });
}

/**
 * Streams `body` into the request like pipe(), but writes what arrives in one tick as one writev
 * (the socket is corked until the next tick) and checks backpressure per batch rather than per
 * chunk. `npm run bench`: about 6% less CPU per copy than pipe() after Buffer.concat, and no copy.
 */
function pump(body: Readable, req: http.ClientRequest): void {
  let corked = false;
  const uncork = (): void => {
    corked = false;
    req.uncork();
    if (req.writableNeedDrain) body.pause();
  };
  body.on('data', (chunk: Buffer) => {
    if (!corked) {
      corked = true;
      req.cork();
      process.nextTick(uncork);
    }
    // Download memory goes back to its pool once the socket has taken the bytes (read-buffers.ts).
    req.write(chunk, () => releaseReadBuffer(chunk));
  });
  req.on('drain', () => body.resume());
  // A request that failed takes no more bytes; whoever opened the body destroys it.
  req.once('close', () => body.pause());
  body.once('end', () => req.end());
}

/**
 * Reads a body as text, at most `limit` bytes of it: at the limit the body is destroyed (and its
 * connection with it) rather than read on, so an endless body costs no more than `limit`. A body
 * that breaks off is still worth what arrived; an abort is not swallowed.
 */
export async function readLimited(
  body: Readable,
  limit: number,
): Promise<{ text: string; complete: boolean }> {
  const parts: Buffer[] = [];
  let size = 0;
  let complete = true;
  try {
    for await (const part of body) {
      const chunk = part as Buffer;
      if (size + chunk.length > limit) {
        parts.push(chunk.subarray(0, limit - size));
        complete = false;
        break; // ends the iteration, which destroys the body
      }
      parts.push(chunk);
      size += chunk.length;
    }
  } catch (err) {
    if (err instanceof MirrorError) throw err; // an abort
    complete = false;
  }
  return { text: Buffer.concat(parts).toString('utf8'), complete };
}
