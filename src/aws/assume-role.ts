import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { awsError } from './errors';

/** Refresh this long before expiry: role-chained sessions last an hour and copies can be long. */
const REFRESH_MARGIN_MS = 5 * 60_000;

export interface AssumeRoleOptions {
  sts: STSClient;
  roleArn: string;
  externalId: string;
  /** Shows in the destination's CloudTrail, so it names the mirror. */
  sessionName: string;
  durationSeconds?: number;
  /** A session policy (JSON): the session may do only what both it and the role allow. */
  policy?: string;
  now?: () => number;
}

/**
 * Credentials of a destination account's role, from STS AssumeRole with the external id; cached and
 * renewed before they expire, also in the middle of a long copy (the SDK and our ECR token cache
 * call this provider again).
 */
export function assumeRoleCredentials(options: AssumeRoleOptions): AwsCredentialIdentityProvider {
  const now = options.now ?? Date.now;
  let cached: AwsCredentialIdentity | undefined;
  let pending: Promise<AwsCredentialIdentity> | undefined;

  const assume = async (): Promise<AwsCredentialIdentity> => {
    try {
      const out = await options.sts.send(
        new AssumeRoleCommand({
          RoleArn: options.roleArn,
          ExternalId: options.externalId,
          RoleSessionName: options.sessionName.slice(0, 64),
          DurationSeconds: options.durationSeconds ?? 3600,
          ...(options.policy && { Policy: options.policy }),
        }),
      );
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error('AssumeRole returned no credentials');
      return {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        ...(c.SessionToken && { sessionToken: c.SessionToken }),
        ...(c.Expiration && { expiration: c.Expiration }),
      };
    } catch (err) {
      throw awsError(`assume role ${options.roleArn}`, err);
    }
  };

  return async () => {
    const expiry = cached?.expiration?.getTime() ?? Number.POSITIVE_INFINITY;
    if (cached && expiry - now() > REFRESH_MARGIN_MS) return cached;
    pending ??= assume().finally(() => {
      pending = undefined;
    });
    cached = await pending;
    return cached;
  };
}
