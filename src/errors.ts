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
  // AWS control plane
  | 'AWS_ERROR'
  // a part of a copy stopped because another part failed
  | 'CANCELLED';

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
