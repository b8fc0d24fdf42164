import { type ErrorCode, MirrorError } from '../errors';

const RETRYABLE =
  /Throttl|TooManyRequests|RequestLimitExceeded|ServiceUnavailable|InternalServer|InternalFailure|TimeoutError|RequestTimeout|ECONNRESET|ProvisionedThroughputExceeded|NetworkingError/;

/** Whether an AWS SDK exception is worth another try: throttling, timeouts, server faults. */
export function isRetryableAwsError(err: unknown): boolean {
  const e = err as { name?: string; $fault?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  // ECR's own server error is `ServerException`, which no name pattern catches: the fault says it.
  return RETRYABLE.test(e.name ?? '') || e.$fault === 'server' || (status !== undefined && status >= 500);
}

/** SDK exception names of an access refusal. */
export const DENIED_NAMES = /AccessDenied|UnauthorizedOperation|NotAuthorized|InvalidClientTokenId/;

/** Translates an AWS SDK exception at the adapter edge: the name decides the code and whether to retry. */
export function awsError(what: string, err: unknown, code: ErrorCode = 'AWS_ERROR'): MirrorError {
  if (err instanceof MirrorError) return err;
  const name = (err as { name?: string }).name ?? 'Error';
  const message = err instanceof Error ? err.message : String(err);
  const denied = DENIED_NAMES.test(name);
  return new MirrorError(denied ? 'DENIED' : code, `${what}: ${name}: ${message}`, {
    retryable: isRetryableAwsError(err),
    cause: err,
  });
}
