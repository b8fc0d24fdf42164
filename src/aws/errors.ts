import { type ErrorCode, MirrorError } from '../errors';

const RETRYABLE =
  /Throttl|TooManyRequests|RequestLimitExceeded|ServiceUnavailable|InternalServer|InternalFailure|TimeoutError|RequestTimeout|ECONNRESET|ProvisionedThroughputExceeded|NetworkingError/;

/** Translates an AWS SDK exception at the adapter edge: the name decides the code and whether to retry. */
export function awsError(what: string, err: unknown, code: ErrorCode = 'AWS_ERROR'): MirrorError {
  if (err instanceof MirrorError) return err;
  const name = (err as { name?: string }).name ?? 'Error';
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const message = err instanceof Error ? err.message : String(err);
  const denied = /AccessDenied|UnauthorizedOperation|NotAuthorized|InvalidClientTokenId/.test(name);
  return new MirrorError(denied ? 'DENIED' : code, `${what}: ${name}: ${message}`, {
    retryable: RETRYABLE.test(name) || (status !== undefined && status >= 500),
    cause: err,
  });
}
