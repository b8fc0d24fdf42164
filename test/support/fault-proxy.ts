import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { TestRegistry } from './registry';

/**
 * A reverse proxy in front of a real TestRegistry. It forwards everything (headers, Authorization,
 * streamed bodies both ways; the Host header too, so the registry's upload Locations name the proxy)
 * and injects the faults a test installs: error answers, connections that break mid-body, corrupted
 * bytes, redirects to another origin, stalls and rewritten statuses. It records every request.
 */

export interface SeenRequest {
  method: string;
  /** Path and query, as received. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Date.now() on arrival. */
  at: number;
  /** Status sent back; undefined when never answered (a stall). */
  status?: number;
  /** The action of the fault rule that handled it, if one did. */
  fault?: FaultAction['type'];
  /** Date.now() when its connection closed or its answer was complete, whichever came first. */
  endedAt?: number;
  /** The client closed the connection before the answer was complete. */
  aborted?: boolean;
}

export type FaultAction =
  /** Answers without asking the registry (after reading the request body); an object body goes as JSON. */
  | { type: 'status'; status: number; headers?: Record<string, string>; body?: unknown }
  /** As `status`, with the answer made for each request by `answer`. */
  | { type: 'answer'; answer: (req: SeenRequest) => Answer }
  /** Sends the registry's headers and `afterBytes` bytes of its body, then resets the connection (RST). */
  | { type: 'reset'; afterBytes: number }
  /** As reset, but a clean close (FIN): the body ends short of its Content-Length. */
  | { type: 'truncate'; afterBytes: number }
  /** Flips the byte at `at` (default: the middle) of the registry's body; the length stays. */
  | { type: 'corrupt'; at?: number }
  /** 307 to the redirect target: another listener, on another port and so another origin. */
  | { type: 'redirect' }
  /** Reads the request and never answers. */
  | { type: 'stall' }
  /** Forwards after `ms` milliseconds (a registry slow to answer). */
  | { type: 'delay'; ms: number }
  /**
   * Forwards, and changes the status when the registry answered `from`; with `body`, the body too
   * (an object as JSON): the registry did the work, the client hears otherwise.
   */
  | { type: 'rewriteStatus'; from: number; to: number; body?: unknown }
  /** Forwards, with the registry's body sent at `bytesPerSecond` (in ten pieces a second). */
  | { type: 'throttle'; bytesPerSecond: number }
  /** Forwards, reading the request's body at `bytesPerSecond` (a registry slow to take an upload). */
  | { type: 'throttleUpload'; bytesPerSecond: number }
  /** Sends the registry's headers and `afterBytes` bytes of its body, then nothing, connection open. */
  | { type: 'stallBody'; afterBytes: number }
  /**
   * Answers `status` (without asking the registry) with a body that never ends: sent as fast as it
   * is read, or at `bytesPerSecond` (in ten pieces a second).
   */
  | { type: 'endless'; status: number; headers?: Record<string, string>; bytesPerSecond?: number };

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  /** A string goes as it is, anything else as JSON. */
  body?: unknown;
}

export interface FaultRule {
  method: string;
  /** Tested against the path and query. */
  path: RegExp;
  /** How many times it fires; unlimited when absent. */
  times?: number;
  when?: (req: SeenRequest) => boolean;
  action: FaultAction;
}

export interface InstalledFault {
  readonly rule: FaultRule;
  /** How many times it has fired. */
  fired: number;
}

export interface FaultProxy {
  /** `127.0.0.1:<port>`, for image references and openRegistry. */
  host: string;
  url: string;
  /** Every request the proxy received, in order of arrival. */
  requests: SeenRequest[];
  /** Every request the redirect target received. */
  redirected: SeenRequest[];
  /** The first installed rule that matches a request (and has not fired `times` times) handles it. */
  fault(rule: FaultRule): InstalledFault;
  clearFaults(): void;
  /** Requests with this method and, if given, a path matching the pattern. */
  seen(method: string, path?: RegExp): SeenRequest[];
  /** Waits (up to 5 s) until each of `requests` has ended: answered, or its connection closed. */
  ended(requests: readonly SeenRequest[]): Promise<void>;
  close(): Promise<void>;
}

export const ociError = (code: string, message: string): object => ({ errors: [{ code, message }] });

export async function startFaultProxy(upstream: TestRegistry): Promise<FaultProxy> {
  const agent = new Agent({ keepAlive: true });
  const faults: InstalledFault[] = [];
  const requests: SeenRequest[] = [];
  const redirected: SeenRequest[] = [];

  const record = (req: IncomingMessage, into: SeenRequest[]): SeenRequest => {
    const seen = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, at: Date.now() };
    into.push(seen);
    return seen;
  };

  /** Streams the request to the registry and hands over its answer; a failure drops the client. */
  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    options: { path: string; headers: IncomingHttpHeaders },
    onResponse: (upRes: IncomingMessage) => void,
    uploadBytesPerSecond?: number,
  ): void => {
    const up = httpRequest(
      { host: '127.0.0.1', port: upstream.port, method: req.method, agent, ...options },
      onResponse,
    );
    up.on('error', () => res.destroy());
    // A client that gives up mid-body (an aborted upload) aborts the request to the registry too.
    req.on('error', () => up.destroy());
    if (uploadBytesPerSecond === undefined) req.pipe(up);
    else paced(req, up, uploadBytesPerSecond).catch(() => up.destroy());
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    req.on('error', () => undefined); // a client that went away: `res` records it
    const seen = record(req, requests);
    const installed = faults.find(
      ({ rule, fired }) =>
        (rule.times === undefined || fired < rule.times) &&
        rule.method === seen.method &&
        rule.path.test(seen.path) &&
        (rule.when?.(seen) ?? true),
    );
    const action = installed?.rule.action;
    if (installed && action) {
      installed.fired++;
      seen.fault = action.type;
    }
    const answer = (status: number, headers: IncomingHttpHeaders | Record<string, string>): void => {
      seen.status = status;
      res.writeHead(status, headers);
    };
    res.once('finish', () => {
      seen.endedAt ??= Date.now();
    });
    res.once('close', () => {
      if (seen.endedAt !== undefined) return;
      seen.endedAt = Date.now();
      seen.aborted = true;
    });

    if (action?.type === 'stall') {
      req.resume();
      return;
    }
    if (action?.type === 'endless') {
      req.resume();
      answer(action.status, { 'content-type': 'text/plain', ...action.headers });
      const rate = action.bytesPerSecond;
      const filler = Buffer.alloc(rate === undefined ? 64 * 1024 : Math.max(1, Math.floor(rate / 10)), 'x');
      const more = (): void => {
        if (rate !== undefined) {
          if (!res.destroyed && res.write(filler)) setTimeout(more, 100);
          return;
        }
        while (!res.destroyed && res.write(filler));
        if (!res.destroyed) res.once('drain', more);
      };
      more();
      return;
    }
    if (action?.type === 'status' || action?.type === 'redirect' || action?.type === 'answer') {
      // The request body is read first, so the client gets the answer rather than a broken pipe.
      req.resume();
      req.on('end', () => {
        if (action.type === 'redirect') {
          // A presigned-looking query, as S3 URLs carry: error messages must not repeat it.
          const location = new URL(seen.path, redirectUrl);
          location.searchParams.set('X-Amz-Signature', 'presigned');
          answer(307, { location: location.href, 'content-length': '0' });
          res.end();
          return;
        }
        const made: Answer = action.type === 'answer' ? action.answer(seen) : action;
        const body =
          made.body === undefined || typeof made.body === 'string'
            ? (made.body ?? '')
            : JSON.stringify(made.body);
        answer(made.status, {
          ...(made.body !== undefined && { 'content-type': 'application/json' }),
          'content-length': String(Buffer.byteLength(body)),
          ...made.headers,
        });
        res.end(body);
      });
      return;
    }

    const onAnswer = (upRes: IncomingMessage): void => {
      const status = upRes.statusCode ?? 502;
      const rewrite = action?.type === 'rewriteStatus' && status === action.from;
      if (rewrite && action.body !== undefined) {
        upRes.resume();
        const body = typeof action.body === 'string' ? action.body : JSON.stringify(action.body);
        answer(action.to, {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
        });
        res.end(body);
        return;
      }
      answer(rewrite ? action.to : status, upRes.headers);
      if (action?.type === 'throttle') {
        paced(upRes, res, action.bytesPerSecond).catch(() => res.destroy());
        return;
      }
      if (action?.type === 'stallBody') {
        stallAfter(upRes, res, action.afterBytes).catch(() => res.destroy());
        return;
      }
      const cutAt = action?.type === 'reset' || action?.type === 'truncate' ? action.afterBytes : undefined;
      const declared = Number(upRes.headers['content-length'] ?? 0);
      const flipAt = action?.type === 'corrupt' ? (action.at ?? Math.floor(declared / 2)) : undefined;
      let sent = 0;
      let cut = false;
      upRes.on('data', (data: Buffer) => {
        if (cut) return;
        let chunk = data;
        if (flipAt !== undefined && flipAt >= sent && flipAt < sent + chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[flipAt - sent] = (chunk[flipAt - sent] ?? 0) ^ 0xff;
        }
        if (cutAt !== undefined && sent + chunk.length >= cutAt) {
          cut = true;
          upRes.destroy();
          const socket = res.socket as Socket;
          res.write(chunk.subarray(0, cutAt - sent), () => {
            // From inside the write callback resetAndDestroy() often goes out as a FIN: a tick later.
            if (action?.type === 'reset') setTimeout(() => socket.resetAndDestroy(), 0);
            else socket.end();
          });
          return;
        }
        sent += chunk.length;
        if (!res.write(chunk)) {
          upRes.pause();
          res.once('drain', () => upRes.resume());
        }
      });
      // A destroyed response can still emit 'end' when its last chunk was the one cut.
      upRes.on('end', () => cut || res.end());
      upRes.on('error', () => cut || res.destroy());
    };
    const uploadRate = action?.type === 'throttleUpload' ? action.bytesPerSecond : undefined;
    const send = (): void =>
      forward(req, res, { path: seen.path, headers: req.headers }, onAnswer, uploadRate);
    if (action?.type === 'delay') setTimeout(send, action.ms);
    else send();
  };

  /** The redirect target: records what it received, then serves the blob with the registry's credentials. */
  const handleRedirected = (req: IncomingMessage, res: ServerResponse): void => {
    const seen = record(req, redirected);
    const path = new URL(seen.path, redirectUrl).pathname;
    const headers: IncomingHttpHeaders = { authorization: upstream.authorization };
    if (req.headers.accept) headers.accept = req.headers.accept;
    forward(req, res, { path, headers }, (upRes) => {
      seen.status = upRes.statusCode ?? 502;
      res.writeHead(seen.status, upRes.headers);
      upRes.pipe(res);
    });
  };

  const proxy = await listen(handle);
  const target = await listen(handleRedirected);
  const redirectUrl = `http://127.0.0.1:${target.port}`;

  return {
    host: `127.0.0.1:${proxy.port}`,
    url: `http://127.0.0.1:${proxy.port}`,
    requests,
    redirected,
    fault(rule) {
      const installed: InstalledFault = { rule, fired: 0 };
      faults.push(installed);
      return installed;
    },
    clearFaults() {
      faults.length = 0;
    },
    seen(method, path) {
      return requests.filter((r) => r.method === method && (path === undefined || path.test(r.path)));
    },
    async ended(list) {
      for (let i = 0; i < 100 && list.some((r) => r.endedAt === undefined); i++) await pause(50);
    },
    async close() {
      await Promise.all([proxy.close(), target.close()]);
      agent.destroy();
    },
  };
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Passes `from` on to `to` at `bytesPerSecond`, in pieces of at most a tenth of that. */
async function paced(from: IncomingMessage, to: Writable, bytesPerSecond: number): Promise<void> {
  const step = Math.max(1, Math.floor(bytesPerSecond / 10));
  for await (const data of from) {
    const chunk = data as Buffer;
    for (let at = 0; at < chunk.length; at += step) {
      if (to.destroyed) return; // the other side went away: the loop's end drops `from` too
      const piece = chunk.subarray(at, at + step);
      to.write(piece);
      await pause((piece.length * 1000) / bytesPerSecond);
    }
  }
  to.end();
}

/** Sends `afterBytes` of `upRes`'s body, then nothing: the connection stays open until the client goes. */
async function stallAfter(upRes: IncomingMessage, res: ServerResponse, afterBytes: number): Promise<void> {
  let sent = 0;
  for await (const data of upRes) {
    const chunk = data as Buffer;
    const take = Math.min(chunk.length, afterBytes - sent);
    if (take > 0) res.write(chunk.subarray(0, take));
    sent += take;
    if (sent >= afterBytes) break;
  }
}

/** An HTTP server on loopback whose close() also ends open connections, stalled ones included. */
async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
