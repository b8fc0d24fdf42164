import type { Readable } from 'node:stream';
import { MirrorError, throwIfAborted, untilAborted } from '../errors';
import { basicAuthorization, type CredentialProvider, parseChallenges, type TokenResponse } from './auth';
import { errorFromResponse, parseRetryAfter, RegistryError, redactUrl } from './errors';
import { closePools, type HttpResponse, httpRequest, type ResponseBody, readLimited, TIMEOUT } from './http';
import { actionClass, type Pacing, registryPacing } from './pacing';
import { closeIdleDownloads, pooledGet } from './pooled-get';
import { DEFAULT_RETRY, type RetryPolicy, withRetry } from './retry';

export type BlobHttp = 'pooled' | 'node';

/** The environment variable that puts blob GETs back on node:http (see TransportOptions.blobHttp). */
export const BLOB_HTTP_ENV = 'ECR_MIRROR_BLOB_HTTP';

function blobHttp(given: BlobHttp | undefined): BlobHttp {
  const value = given ?? process.env[BLOB_HTTP_ENV] ?? 'pooled';
  if (value !== 'pooled' && value !== 'node') {
    throw new MirrorError(
      'INVALID_CONFIG',
      `${BLOB_HTTP_ENV} must be "pooled" (the default) or "node", not ${JSON.stringify(value)}`,
    );
  }
  return value;
}

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** What a request touches, for the per-registry request counts in copy summaries and benchmarks. */
export type RequestKind = 'manifest' | 'blob' | 'upload' | 'referrers' | 'token' | 'other';

export interface Timeouts {
  connectMs: number;
  /** Until the response headers arrive. */
  headersMs: number;
  /** Longest silence between two chunks of a body. */
  bodyMs: number;
  /**
   * Longest a request may take in all, redirects and its answer's body included: manifests, tokens,
   * tag lists, HEADs, upload sessions. Idle timers alone let an answer at 1 byte a second run forever.
   */
  requestMs: number;
  /**
   * A blob transfer (download, upload, or one chunk of it) may take blobBaseMs plus the time its size
   * takes at blobMinBytesPerSecond. A floor on the average rate, not a fixed limit: a 50 GB layer
   * gets weeks, and what bounds it in practice is the caller's deadline (`--timeout`, the Lambda's).
   */
  blobBaseMs: number;
  blobMinBytesPerSecond: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  connectMs: 10_000,
  headersMs: 60_000,
  bodyMs: 60_000,
  requestMs: 120_000,
  blobBaseMs: 300_000,
  blobMinBytesPerSecond: 32 * 1024,
};
const MAX_REDIRECTS = 10;
const MAX_ERROR_BODY = 64 * 1024;
const TOKEN_REFRESH_MARGIN_MS = 15_000;
/** Seconds a token is kept at least, whatever its `expires_in` says (the token spec's default). */
const MIN_TOKEN_LIFETIME_S = 60;

export interface TransportOptions {
  /** `https://host` or, for `--insecure` and mapped endpoints, `http://127.0.0.1:5000`. */
  baseUrl: string;
  credentials: CredentialProvider;
  /** ECR always wants Basic: skip the 401 round trip when we already know. */
  preemptiveBasic?: boolean;
  retry?: RetryPolicy;
  timeouts?: Partial<Timeouts>;
  userAgent?: string;
  /** Adaptive pacing per host and action class; the process's shared one by default. */
  pacing?: Pacing;
  /**
   * How blob GETs are read: `pooled` (pooled-get.ts, the default) or `node` (node:http, as every other
   * request). Defaults to the environment's ECR_MIRROR_BLOB_HTTP: the way back should the hand-written
   * HTTP/1.1 reader ever misread a registry.
   */
  blobHttp?: BlobHttp;
}

export interface RegistryRequest {
  method: HttpMethod;
  /** A path below the base URL, or an absolute URL (upload locations). */
  url: string;
  /** Repository the request acts on: the token scope (empty for the catalog, whose scope is in `scopes`). */
  repository: string;
  /** More access the token must grant (`repository:<name>:pull`): a mount reads where it mounts from. */
  scopes?: readonly string[];
  push?: boolean;
  headers?: Record<string, string>;
  /** A Buffer can be sent again; a stream cannot, so a request with one is never retried here. */
  body?: Buffer | Readable;
  /** Not retried even with a Buffer body: a chunk PATCH applied twice would corrupt the upload. */
  once?: boolean;
  /** A GET whose body is read into reused memory (pooled-get.ts): blob downloads. */
  pooledBody?: boolean;
  /** Statuses that mean success; anything else becomes a RegistryError. */
  expect: readonly number[];
  /** Bytes of blob the request moves (download, upload, chunk): its deadline grows with them. */
  size?: number;
  kind: RequestKind;
  /** For messages: "GET manifest team/app:1.0". */
  what: string;
  /** Aborts the request (its response body too, once it arrived) and the waits between retries. */
  signal?: AbortSignal;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
  /** The URL that answered, after redirects. */
  url: URL;
}

export function header(res: Pick<RegistryResponse, 'headers'>, name: string): string | undefined {
  const value = res.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

type AuthState =
  | { scheme: 'unknown' }
  | { scheme: 'basic' }
  | { scheme: 'bearer'; realm: string; service?: string };

interface Token {
  value: string;
  expiresAt: number;
}

/**
 * HTTP for one registry: authentication (Basic, or the Bearer token handshake), redirects followed
 * by hand so that `Authorization` never leaves the registry's origin, timeouts, retries with backoff
 * for requests that can be replayed, and typed errors that never carry a credential.
 */
export class Transport {
  readonly base: URL;
  readonly counts: Record<RequestKind, number> = {
    manifest: 0,
    blob: 0,
    upload: 0,
    referrers: 0,
    token: 0,
    other: 0,
  };
  private readonly retry: RetryPolicy;
  private readonly timeouts: Timeouts;
  private readonly pooledBlobs: boolean;
  private readonly userAgent: string;
  private auth: AuthState;
  private readonly tokens = new Map<string, Token>();
  private readonly pendingTokens = new Map<string, Promise<Token>>();

  constructor(private readonly options: TransportOptions) {
    this.pooledBlobs = blobHttp(options.blobHttp) === 'pooled';
    this.base = new URL(options.baseUrl);
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.userAgent = options.userAgent ?? 'ecr-mirror';
    this.auth = options.preemptiveBasic ? { scheme: 'basic' } : { scheme: 'unknown' };
  }

  get retryPolicy(): RetryPolicy {
    return this.retry;
  }

  /** Sends a request; replayable ones are retried on 408, 429, 5xx, timeouts and dropped connections. */
  async send(req: RegistryRequest): Promise<RegistryResponse> {
    const replayable = !req.once && (req.body === undefined || Buffer.isBuffer(req.body));
    if (!replayable) return this.sendOnce(req);
    return withRetry(this.retry, () => this.sendOnce(req), undefined, req.signal);
  }

  /**
   * One attempt, under its own deadline (requestMs, or the blob's): the deadline aborts whatever is in
   * flight then, the answer's body too while it is read; it ends when the body does.
   */
  private async sendOnce(req: RegistryRequest): Promise<RegistryResponse> {
    const deadline = new Deadline(this.deadlineMs(req), req.signal);
    try {
      const res = await this.exchange({ ...req, signal: deadline.signal });
      if (res.body.destroyed || res.body.readableEnded) deadline.clear();
      else res.body.once('close', deadline.clear);
      return res;
    } catch (err) {
      deadline.clear();
      throw err;
    }
  }

  private deadlineMs(req: RegistryRequest): number {
    const t = this.timeouts;
    if (req.size === undefined) return t.requestMs;
    return t.blobBaseMs + Math.ceil((req.size * 1000) / t.blobMinBytesPerSecond);
  }

  private async exchange(req: RegistryRequest): Promise<RegistryResponse> {
    const scope = [
      ...(req.repository !== '' ? [`repository:${req.repository}:${req.push ? 'pull,push' : 'pull'}`] : []),
      ...(req.scopes ?? []),
    ].join(' ');
    const streaming = req.body !== undefined && !Buffer.isBuffer(req.body);
    let url = new URL(req.url, this.base);
    let method = req.method;
    let body = req.body;
    let challenged = false;

    for (let hop = 0; hop <= MAX_REDIRECTS; ) {
      throwIfAborted(req.signal, req.what);
      const toRegistry = url.origin === this.base.origin;
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
      if (toRegistry) {
        // Tokens and credentials are shared by concurrent requests: one caller's abort stops its wait only.
        const authorization = await untilAborted(
          this.authorization(scope),
          req.signal,
          `${req.what}: authenticating`,
        );
        if (authorization) headers.authorization = authorization;
      } else {
        // Another host (ECR sends blob GETs to S3): the registry's credentials stay behind.
        delete headers.authorization;
      }

      const res = await this.dispatch(req, method, url, headers, body);

      if (res.status === 401 && toRegistry && !challenged && !streaming) {
        await res.body.dump();
        challenged = true;
        const challenge = this.handleChallenge(header(res, 'www-authenticate'), scope, req);
        if (await untilAborted(challenge, req.signal, `${req.what}: authenticating`)) continue;
        throw new RegistryError(
          'UNAUTHORIZED',
          `${req.what}: HTTP 401 (credentials were refused or are missing)`,
          {
            status: 401,
          },
        );
      }

      if (REDIRECTS.has(res.status) && !req.expect.includes(res.status)) {
        const location = header(res, 'location');
        await res.body.dump();
        if (!location) {
          throw new RegistryError('REGISTRY_ERROR', `${req.what}: redirect without a Location`, {
            status: res.status,
          });
        }
        if (streaming) {
          throw new RegistryError('REGISTRY_ERROR', `${req.what}: the registry redirected an upload`, {
            status: res.status,
          });
        }
        try {
          url = new URL(location, url);
        } catch (err) {
          throw new RegistryError('REGISTRY_ERROR', `${req.what}: redirect to a Location that is not a URL`, {
            status: res.status,
            cause: err,
          });
        }
        if (url.protocol !== 'http:' && url.protocol !== 'https:') {
          throw new RegistryError(
            'REGISTRY_ERROR',
            `${req.what}: redirect to ${url.protocol} refused (only http: and https: are followed)`,
            { status: res.status },
          );
        }
        if (res.status === 303) {
          method = 'GET';
          body = undefined;
        }
        hop++;
        continue;
      }

      if (req.expect.includes(res.status)) return res;

      const { text } = await readLimited(res.body, MAX_ERROR_BODY);
      throw errorFromResponse(
        req.what,
        res.status,
        method === 'HEAD' ? '' : text,
        header(res, 'retry-after'),
      );
    }
    throw new MirrorError('TOO_MANY_REDIRECTS', `${req.what}: more than ${MAX_REDIRECTS} redirects`);
  }

  private async dispatch(
    req: RegistryRequest,
    method: HttpMethod,
    url: URL,
    headers: Record<string, string>,
    body: Buffer | Readable | undefined,
  ): Promise<RegistryResponse> {
    const label = `${req.what} (${redactUrl(url)})`;
    const signal = req.signal;
    // Every request waits for its turn at its host and action class, and tells the pace how it went.
    const pace = (this.options.pacing ?? registryPacing).pace(url.host, actionClass(method, req.kind));
    const sentAt = await pace.acquire(signal);
    this.counts[req.kind]++;
    try {
      const res =
        req.pooledBody && method === 'GET' && this.pooledBlobs
          ? await pooledGet(url, { headers, timeouts: this.timeouts, label, ...(signal && { signal }) })
          : await httpRequest(url, {
              method,
              headers,
              ...(body !== undefined && { body }),
              timeouts: this.timeouts,
              label,
              ...(signal && { signal }),
            });
      pace.settle(sentAt, res.statusCode, parseRetryAfter(header({ headers: res.headers }, 'retry-after')));
      return { status: res.statusCode, headers: res.headers, body: res.body, url };
    } catch (err) {
      throw transportError(label, err);
    }
  }

  private async authorization(scope: string): Promise<string | undefined> {
    const auth = this.auth;
    if (auth.scheme === 'basic') {
      const creds = await this.options.credentials();
      return creds ? basicAuthorization(creds) : undefined;
    }
    if (auth.scheme === 'bearer') {
      const token = this.tokens.get(scope);
      if (token && token.expiresAt - Date.now() > TOKEN_REFRESH_MARGIN_MS) return `Bearer ${token.value}`;
      return `Bearer ${(await this.fetchToken(auth, scope)).value}`;
    }
    return undefined;
  }

  /** Learns from a 401 how the registry wants us to authenticate; true when trying again can help. */
  private async handleChallenge(
    value: string | undefined,
    scope: string,
    req: RegistryRequest,
  ): Promise<boolean> {
    const challenges = parseChallenges(value ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer?.params.realm) {
      this.auth = {
        scheme: 'bearer',
        realm: bearer.params.realm,
        ...(bearer.params.service !== undefined && { service: bearer.params.service }),
      };
      // A refused or missing token is fetched anew; the caller retries once, so a second refusal is final.
      this.tokens.delete(scope);
      await this.fetchToken(this.auth, scope);
      return true;
    }
    if (challenges.some((c) => c.scheme === 'basic') || challenges.length === 0) {
      // We sent credentials and they were refused: once, their source may have newer ones (rotation).
      if (this.auth.scheme === 'basic') return (await this.options.credentials.refresh?.()) === true;
      const creds = await this.options.credentials();
      if (!creds) {
        throw new RegistryError(
          'UNAUTHORIZED',
          `${req.what}: the registry wants credentials and none were given`,
          {
            status: 401,
          },
        );
      }
      this.auth = { scheme: 'basic' };
      return true;
    }
    return false;
  }

  private fetchToken(auth: Extract<AuthState, { scheme: 'bearer' }>, scope: string): Promise<Token> {
    const pending = this.pendingTokens.get(scope);
    if (pending) return pending;
    // Not retried here: send() retries the whole request, token included; retrying at both levels
    // made attempts² token requests against an auth server that is down.
    const promise = this.requestToken(auth, scope)
      .catch(async (err: unknown) => {
        // The token server refused our credentials: once, their source may have newer ones (rotation).
        const refused = err instanceof RegistryError && err.code === 'UNAUTHORIZED';
        if (!refused || (await this.options.credentials.refresh?.()) !== true) throw err;
        return this.requestToken(auth, scope);
      })
      .finally(() => this.pendingTokens.delete(scope));
    this.pendingTokens.set(scope, promise);
    return promise;
  }

  private async requestToken(auth: Extract<AuthState, { scheme: 'bearer' }>, scope: string): Promise<Token> {
    let url: URL;
    try {
      url = new URL(auth.realm);
    } catch (err) {
      throw new RegistryError('UNAUTHORIZED', `the registry's token realm is not a URL`, { cause: err });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new RegistryError(
        'UNAUTHORIZED',
        `the registry's token realm ${redactUrl(url)} is not http: or https:`,
        {},
      );
    }
    if (auth.service) url.searchParams.set('service', auth.service);
    // One `scope` parameter per grant, as the token spec has it (a mount asks for two repositories);
    // none for a request about no resource (`GET /v2/`: a login token).
    for (const one of scope.split(' ')) if (one !== '') url.searchParams.append('scope', one);
    const headers: Record<string, string> = { 'user-agent': this.userAgent };
    const creds = await this.options.credentials();
    if (creds && url.protocol === 'http:' && this.base.protocol === 'https:') {
      // The registry itself is reached over TLS: its credentials do not go anywhere in clear text.
      throw new RegistryError(
        'UNAUTHORIZED',
        `the registry ${this.base.host} (https) sends for tokens to ${redactUrl(url)}, plain http: refusing to send credentials there`,
        {},
      );
    }
    if (creds) headers.authorization = basicAuthorization(creds);
    this.counts.token++;
    const deadline = new Deadline(this.timeouts.requestMs);
    try {
      return await this.readToken(url, headers, scope, creds?.username, deadline);
    } finally {
      deadline.clear();
    }
  }

  private async readToken(
    url: URL,
    headers: Record<string, string>,
    scope: string,
    username: string | undefined,
    deadline: Deadline,
  ): Promise<Token> {
    let res: HttpResponse;
    try {
      // Several requests may wait on this token: it has a deadline of its own, not one caller's signal.
      res = await httpRequest(url, {
        method: 'GET',
        headers,
        timeouts: this.timeouts,
        signal: deadline.signal,
        label: `token request (${redactUrl(url)})`,
      });
    } catch (err) {
      throw transportError(`token request (${redactUrl(url)})`, err);
    }
    const { text, complete } = await readLimited(res.body, MAX_ERROR_BODY);
    if (res.statusCode !== 200) {
      // Name the auth server and the user: a refusal there is otherwise hard to tell from the registry's.
      const who = username !== undefined ? ` as ${username}` : ' anonymously';
      throw errorFromResponse(
        `token request for ${scope} at ${redactUrl(url)}${who}`,
        res.statusCode,
        text,
        header({ headers: res.headers }, 'retry-after'),
      );
    }
    if (!complete) {
      throw new RegistryError(
        'UNAUTHORIZED',
        `token request for ${scope} at ${redactUrl(url)}: the answer broke off or is over ${MAX_ERROR_BODY} bytes`,
        { status: res.statusCode },
      );
    }
    let parsed: TokenResponse;
    try {
      parsed = JSON.parse(text) as TokenResponse;
    } catch (err) {
      throw new RegistryError('UNAUTHORIZED', `token request for ${scope}: the answer is not JSON`, {
        cause: err,
      });
    }
    const value = parsed.token ?? parsed.access_token;
    if (!value)
      throw new RegistryError('UNAUTHORIZED', `token request for ${scope}: no token in the answer`, {});
    // The token spec's default, and its floor: "a token should never be returned with less than 60
    // seconds to live". Shorter lives would mean a token request for nearly every request.
    const lifetime = Math.max(MIN_TOKEN_LIFETIME_S, Number(parsed.expires_in) || MIN_TOKEN_LIFETIME_S);
    const token = { value, expiresAt: Date.now() + lifetime * 1000 };
    this.tokens.set(scope, token);
    return token;
  }
}

const TIMEOUT_CODES = new Set<string>([...Object.values(TIMEOUT), 'ETIMEDOUT']);

/** Translates HTTP and socket errors into retryable MirrorErrors. */
export function transportError(what: string, err: unknown): MirrorError {
  if (err instanceof MirrorError) return err;
  const code = (err as { code?: string }).code ?? '';
  if (TIMEOUT_CODES.has(code)) {
    return new MirrorError('TIMEOUT', `${what}: timed out (${code})`, { retryable: true, cause: err });
  }
  let message = err instanceof Error ? err.message : String(err);
  if (/wrong version number|WRONG_VERSION_NUMBER/i.test(message)) {
    // OpenSSL's words for "the other side does not speak TLS": a plain-HTTP registry.
    message =
      'TLS handshake failed: the registry answers in plain HTTP (use --insecure, or an http:// endpoint)';
  }
  return new MirrorError('NETWORK', `${what}: ${code ? `${code} ` : ''}${message}`, {
    retryable: true,
    cause: err,
  });
}

/**
 * The deadline of one attempt: aborts its signal with a TimeoutError after `ms`, or with the reason
 * of `parent` when that aborts first. clear() ends both (the attempt is over).
 */
class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly onParent = (): void => this.controller.abort(this.parent!.reason);

  constructor(
    ms: number,
    private readonly parent?: AbortSignal,
  ) {
    this.timer = setTimeout(() => {
      const reason = new DOMException(`no complete answer within ${seconds(ms)}`, 'TimeoutError');
      this.controller.abort(reason);
    }, ms);
    this.timer.unref();
    if (parent?.aborted) this.onParent();
    else parent?.addEventListener('abort', this.onParent, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  readonly clear = (): void => {
    clearTimeout(this.timer);
    this.parent?.removeEventListener('abort', this.onParent);
  };
}

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`;

/** Closes pooled connections so a command-line process can exit at once. */
export async function closeConnections(): Promise<void> {
  closePools();
  closeIdleDownloads();
}
