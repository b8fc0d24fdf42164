/**
 * One error family for the whole project. Callers branch on `code` and `retryable`,
 * never on message text; the message is for people and never carries a credential.
 */
export type ErrorCode =
  // references and input
  | 'INVALID_REFERENCE'
  | 'INVALID_ARGUMENT'
  | 'INVALID_CONFIG'
  | 'INVALID_EVENT'
  // content
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'MANIFEST_TOO_LARGE'
  | 'MANIFEST_INVALID'
  | 'UNSUPPORTED_MEDIA_TYPE'
  // registry answers
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'NOT_FOUND'
  | 'TOO_MANY_REQUESTS'
  | 'TAG_IMMUTABLE'
  | 'UPLOAD_REFUSED'
  | 'REGISTRY_ERROR'
  // transport
  | 'TIMEOUT'
  | 'NETWORK'
  | 'TOO_MANY_REDIRECTS'
  // a cap on work a registry can make us do (referrers, nested indexes, pages)
  | 'LIMIT_EXCEEDED'
  // AWS control plane
  | 'AWS_ERROR'
  // cancelled by the caller (Ctrl-C), or a part of a copy stopped because another part failed
  | 'CANCELLED'
  // a bug: an error that is none of the above (a TypeError, say); retrying the same code will not help
  | 'INTERNAL';

export interface MirrorErrorOptions {
  retryable?: boolean;
  cause?: unknown;
}

export class MirrorError extends Error {
  override name = 'MirrorError';
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: MirrorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/**
 * A setting that is missing or wrong. `setting` names it as the user wrote it, down to the field
 * (`DESTINATIONS[1].roleArn`), so the message and the logs point at the one thing to change.
 */
export class ConfigError extends MirrorError {
  override name = 'ConfigError';
  readonly setting: string;

  constructor(setting: string, reason: string) {
    super('INVALID_CONFIG', `${setting}: ${reason}`);
    this.setting = setting;
  }
}

/** The image to copy is not (or no longer) at the source: for a mirror, nothing is left to do. */
export class SourceNotFoundError extends MirrorError {
  override name = 'SourceNotFoundError';

  constructor(reference: string) {
    super('NOT_FOUND', `source image ${reference} does not exist`);
  }
}

/** True when retrying the same operation can reasonably succeed. */
export function isRetryable(err: unknown): boolean {
  return err instanceof MirrorError && err.retryable;
}

/** A short, single-line description of any thrown value, for logs and exit messages. */
export function describeError(err: unknown): string {
  if (err instanceof MirrorError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** True for the reason of a deadline: `AbortSignal.timeout()`'s, or a DOMException named TimeoutError. */
export function isTimeoutReason(reason: unknown): boolean {
  return (reason as { name?: unknown } | undefined)?.name === 'TimeoutError';
}

/**
 * What an aborted operation rejects with: TIMEOUT (retryable: a later attempt with more time can
 * succeed) when the signal's reason is a deadline, else CANCELLED. `what` names the operation.
 */
export function abortError(signal: AbortSignal, what: string): MirrorError {
  const reason: unknown = signal.reason;
  if (reason instanceof MirrorError && (reason.code === 'TIMEOUT' || reason.code === 'CANCELLED')) {
    return new MirrorError(reason.code, `${what}: ${reason.message}`, {
      retryable: reason.retryable,
      cause: reason,
    });
  }
  // DOMException (AbortSignal.timeout's reason) is no Error subclass on every Node.js: read its message.
  const message = (reason as { message?: unknown } | undefined)?.message;
  const said = typeof message === 'string' ? message : typeof reason === 'string' ? reason : '';
  if (isTimeoutReason(reason)) {
    return new MirrorError('TIMEOUT', `${what}: ${said || 'the deadline passed'}`, {
      retryable: true,
      cause: reason,
    });
  }
  return new MirrorError('CANCELLED', `${what}: cancelled${said ? ` (${said})` : ''}`, { cause: reason });
}

/** Throws abortError when `signal` is aborted: a check before starting work. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}

/**
 * `promise`, or abortError as soon as `signal` aborts: for work shared with other callers (a token
 * fetch several requests wait on), which one caller's abort must not cancel for all.
 */
export function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  what: string,
): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortError(signal, what));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal, what));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
