import { MirrorError } from '../errors';

/** The region for the AWS-backed commands: the option, else the usual environment variables. */
export function cliRegion(option: string | undefined): { region?: string } {
  const region = option ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  return region ? { region } : {};
}

/** Runs an AWS-backed command; the SDK's bare "Region is missing" gets what to do about it. */
export async function withRegionHint<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof MirrorError && /Region is missing/.test(err.message)) {
      throw new MirrorError(err.code, `${err.message} (set --region or AWS_REGION)`, {
        retryable: err.retryable,
        cause: err,
      });
    }
    throw err;
  }
}
