import { type ErrorCode, MirrorError } from '../errors';

/** An error answered by a registry (or met on the way to one), with what the caller branches on. */
export class RegistryError extends MirrorError {
  override name = 'RegistryError';
  /** HTTP status, when the registry answered. */
  readonly status?: number;
  /** The OCI distribution error code from the body (`MANIFEST_UNKNOWN`, `DENIED`, ...). */
  readonly ociCode?: string;
  /** Milliseconds the registry asked us to wait (`Retry-After`). */
  readonly retryAfterMs?: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: {
      retryable?: boolean;
      cause?: unknown;
      status?: number;
      ociCode?: string;
      retryAfterMs?: number;
    },
  ) {
    super(code, message, options);
    if (options.status !== undefined) this.status = options.status;
    if (options.ociCode !== undefined) this.ociCode = options.ociCode;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/** Statuses worth another try, as in go-containerregistry's transport.Error.Temporary(). */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

/** A URL fit for a message: no credentials, no query (presigned S3 URLs carry signatures there). */
export function redactUrl(url: string | URL): string {
  try {
    const u = new URL(url.toString());
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

interface OciErrorBody {
  errors?: { code?: string; message?: string; detail?: unknown }[];
}

/** Turns a non-success registry answer into a RegistryError with the OCI code and a short reason. */
export function errorFromResponse(
  what: string,
  status: number,
  bodyText: string,
  retryAfter: string | undefined,
): RegistryError {
  let ociCode: string | undefined;
  let reason: string | undefined;
  try {
    const body = JSON.parse(bodyText) as OciErrorBody;
    const first = body.errors?.[0];
    if (first) {
      ociCode = first.code;
      reason = first.message ?? '';
    }
  } catch {
    // not JSON: the text itself is the reason
  }
  // Auth servers answer JSON of their own (`{"details":"incorrect username or password"}`): keep its text.
  reason ??= bodyText.replace(/\s+/g, ' ').trim().slice(0, 200);
  const retryAfterMs = parseRetryAfter(retryAfter);
  const detail = `${what}: HTTP ${status}${ociCode ? ` ${ociCode}` : ''}${reason ? ` (${reason})` : ''}`;

  let code: ErrorCode = 'REGISTRY_ERROR';
  if (status === 401) code = 'UNAUTHORIZED';
  else if (status === 403 || ociCode === 'DENIED') code = 'DENIED';
  else if (status === 404 || /_UNKNOWN$/.test(ociCode ?? '')) code = 'NOT_FOUND';
  else if (status === 429 || ociCode === 'TOOMANYREQUESTS') code = 'TOO_MANY_REQUESTS';
  else if (ociCode === 'TAG_INVALID' && /immutable/i.test(reason)) code = 'TAG_IMMUTABLE';
  else if (status === 413) code = 'MANIFEST_TOO_LARGE';
  else if (ociCode === 'DIGEST_INVALID') code = 'DIGEST_MISMATCH';

  return new RegistryError(code, detail, {
    retryable: isRetryableStatus(status) || ociCode === 'TOOMANYREQUESTS',
    status,
    ...(ociCode !== undefined && { ociCode }),
    ...(retryAfterMs !== undefined && { retryAfterMs }),
  });
}
