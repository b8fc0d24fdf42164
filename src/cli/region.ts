import { MirrorError } from '../errors';

/** The region for the AWS-backed commands: the option, else the usual environment variables. */
export function cliRegion(option: string | undefined): { region?: string } {
  const region = option ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  return region ? { region } : {};
}

/** The SDK's words for no region, or an empty or malformed one (`AWS_REGION=`). */
const NO_REGION = /Region is missing|Region not accepted/;

/**
 * Runs an AWS-backed command; the SDK's bare "Region is missing" gets what to do about it, whether it
 * comes wrapped in a MirrorError (a call) or as the SDK's own error (reading the client's region).
 */
export async function withRegionHint<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof Error && NO_REGION.test(err.message)) {
      const code = err instanceof MirrorError ? err.code : 'AWS_ERROR';
      throw new MirrorError(code, `${err.message} (set --region or AWS_REGION)`, {
        retryable: err instanceof MirrorError ? err.retryable : false,
        cause: err,
      });
    }
    throw err;
  }
}
