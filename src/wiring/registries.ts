import type { ECRClient } from '@aws-sdk/client-ecr';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { ecrCredentials } from '../aws/ecr-auth';
import type { HttpRegistry } from '../registry/http-registry';
import { openRegistry, type RegistryAccess } from '../registry/open';

export interface AwsRegistryAccess extends RegistryAccess {
  /** The AWS identity that asks ECR for registry tokens; the default chain when absent. */
  awsCredentials?: AwsCredentialIdentityProvider;
  /** The ECR client to ask with (an assumed role's, for a destination). */
  ecr?: ECRClient;
}

/**
 * Opens a registry, ECR hosts with GetAuthorizationToken credentials: the one place where the
 * registry layer meets AWS, for the Lambdas, the CLI and the local run alike. Loads no SDK until an
 * ECR token is first needed, so `ecr-mirror copy` between other registries never pays for it.
 */
export function openAwsRegistry(host: string, access: AwsRegistryAccess = {}): HttpRegistry {
  const { awsCredentials, ecr, ...rest } = access;
  return openRegistry(host, {
    ecrCredentialProvider: (h) =>
      ecrCredentials(h, {
        ...(awsCredentials && { awsCredentials }),
        ...(ecr && { clientFactory: () => ecr }),
      }),
    ...rest,
  });
}
