import type { ECRClient, GetAuthorizationTokenCommandOutput } from '@aws-sdk/client-ecr';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { parseEcrHost } from '../core/ecr-host';
import { MirrorError } from '../errors';
import type { CredentialProvider, Credentials } from '../registry/auth';
import { DENIED_NAMES, isRetryableAwsError } from './errors';

export interface EcrAuthOptions {
  /** AWS credentials to ask with; the default chain when absent (or an assumed role's, for Account B). */
  awsCredentials?: AwsCredentialIdentityProvider;
  /**
   * Builds the ECR client; tests and endpoint overrides come in here, and a client that signs with
   * access keys from a secret (src/aws/secret-ecr-client.ts).
   */
  clientFactory?: (region: string) => EcrSender;
  now?: () => number;
  /**
   * When the registry refuses a token, ask for a new one and try once more (the provider gets a
   * `refresh`): for keys from a secret that may have been rotated. Off by default: a refusal is final.
   */
  renewWhenRefused?: boolean;
}

interface Cached {
  creds: Credentials;
  /** When to ask again: half the validity window, as amazon-ecr-credential-helper does. */
  refreshAt: number;
  expiresAt: number;
}

/** A token stays usable until this close to its expiry; a failed refresh falls back to it until then. */
const EXPIRY_MARGIN_MS = 5 * 60_000;

/**
 * Registry credentials for an ECR host from `GetAuthorizationToken`: a 12-hour token split into
 * user `AWS` and a password on the first colon. Cached and refreshed at half its life, so that a long
 * copy never meets an expired one; concurrent callers share one request.
 */
/** What GetAuthorizationToken is sent with: an ECR client, or something that sends like one. */
export type EcrSender = Pick<ECRClient, 'send'>;

export function ecrCredentials(host: string, options: EcrAuthOptions = {}): CredentialProvider {
  const registry = parseEcrHost(host);
  if (!registry) throw new MirrorError('INVALID_ARGUMENT', `${host} is not an ECR registry host`);
  const now = options.now ?? Date.now;
  let client: EcrSender | undefined = options.clientFactory?.(registry.region);
  let cached: Cached | undefined;
  let pending: Promise<Cached> | undefined;

  const fetchToken = async (): Promise<Cached> => {
    let out: GetAuthorizationTokenCommandOutput;
    try {
      // Loaded on first use: `ecr-mirror copy` between other registries never pays for the SDK.
      const sdk = await import('@aws-sdk/client-ecr');
      client ??= new sdk.ECRClient({
        region: registry.region,
        ...(options.awsCredentials && { credentials: options.awsCredentials }),
        ...(registry.fips && { useFipsEndpoint: true }),
      });
      out = await client.send(new sdk.GetAuthorizationTokenCommand({}));
    } catch (err) {
      const name = (err as { name?: string }).name ?? 'Error';
      const message = (err as Error).message;
      if (DENIED_NAMES.test(name)) {
        // A refusal is DENIED, as every other refused AWS call: the status record then names the
        // action and the resource (src/doctor/denied.ts) and points at `ecr-mirror doctor`.
        throw new MirrorError(
          'DENIED',
          `ecr:GetAuthorizationToken on resource: * refused in ${registry.region}: ${name}: ${message}`,
          { retryable: false, cause: err },
        );
      }
      const hint =
        name === 'CredentialsProviderError'
          ? ' (ECR hosts need AWS credentials: environment variables, a profile (AWS_PROFILE) or a role)'
          : '';
      throw new MirrorError(
        'AWS_ERROR',
        `ECR GetAuthorizationToken in ${registry.region} failed: ${name}: ${message}${hint}`,
        { retryable: isRetryableAwsError(err), cause: err },
      );
    }
    const data = out.authorizationData?.[0];
    const decoded = data?.authorizationToken
      ? Buffer.from(data.authorizationToken, 'base64').toString('utf8')
      : '';
    const colon = decoded.indexOf(':');
    if (colon <= 0) {
      throw new MirrorError(
        'AWS_ERROR',
        `ECR GetAuthorizationToken in ${registry.region} returned no usable token`,
      );
    }
    const issued = now();
    let expires = data?.expiresAt?.getTime() ?? issued + 12 * 3600_000;
    // A token got with assumed-role credentials is refreshed before they lapse (role chaining: 1 hour).
    const identity = options.awsCredentials ? await options.awsCredentials() : undefined;
    const identityExpiry = identity?.expiration?.getTime();
    if (identityExpiry !== undefined) expires = Math.min(expires, identityExpiry);
    return {
      creds: { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) },
      refreshAt: issued + (expires - issued) / 2,
      expiresAt: expires,
    };
  };

  const provider: CredentialProvider = async () => {
    if (cached && now() < cached.refreshAt) return cached.creds;
    pending ??= fetchToken().finally(() => {
      pending = undefined;
    });
    try {
      cached = await pending;
    } catch (err) {
      // The half-life refresh failed (throttling, say): the current token is still good for a while.
      if (cached && now() < cached.expiresAt - EXPIRY_MARGIN_MS) {
        cached = { ...cached, refreshAt: now() + 60_000 };
        return cached.creds;
      }
      throw err;
    }
    return cached.creds;
  };
  if (options.renewWhenRefused) {
    // The registry refused the token: the next call asks ECR for a new one.
    provider.refresh = async () => {
      cached = undefined;
      return true;
    };
  }
  return provider;
}
