import { type ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import { TEST_TOKEN } from './registry';

/** ECR tokens that are the test registries' Basic credentials, so the real registries accept them. */
export function mockEcrToken(ecr: AwsClientStub<ECRClient>): void {
  ecr.on(GetAuthorizationTokenCommand).resolves({
    authorizationData: [
      {
        authorizationToken: TEST_TOKEN,
        expiresAt: new Date(Date.now() + 12 * 3600_000),
      },
    ],
  });
}

/** AssumeRole answers with one-hour credentials (the secret is given, to look for it in logs). */
export function mockAssumeRole(
  sts: AwsClientStub<STSClient>,
  secretAccessKey = 'S',
  sessionToken = 'T',
): void {
  sts.on(AssumeRoleCommand).resolves({
    Credentials: {
      AccessKeyId: 'ASIAASSUMED',
      SecretAccessKey: secretAccessKey,
      SessionToken: sessionToken,
      Expiration: new Date(Date.now() + 3600_000),
    },
  });
}
