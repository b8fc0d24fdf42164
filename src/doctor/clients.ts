import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ECRClient } from '@aws-sdk/client-ecr';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KMSClient } from '@aws-sdk/client-kms';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import { STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity } from '@smithy/types';

/**
 * The SDK clients of one doctor run, made on demand and destroyed at the end. Like everywhere else,
 * a region and credentials only, never an endpoint: `AWS_ENDPOINT_URL_<SERVICE>` redirects them.
 * Without a region the SDK's own chain decides (AWS_REGION, the profile).
 */
export class DoctorClients {
  private readonly made: { destroy(): void }[] = [];

  /** `requestTimeoutMs`: how long a silent service is waited for (tests shorten it). */
  constructor(private readonly timeouts: { connectMs?: number; requestTimeoutMs?: number } = {}) {}

  private make<T extends { destroy(): void }>(client: T): T {
    this.made.push(client);
    return client;
  }

  private options(region?: string, credentials?: AwsCredentialIdentity) {
    // Two attempts, and deadlines: a doctor reports a failing or silent service, it does not wait it out.
    return {
      maxAttempts: 2,
      requestHandler: {
        connectionTimeout: this.timeouts.connectMs ?? 5_000,
        requestTimeout: this.timeouts.requestTimeoutMs ?? 30_000,
        throwOnRequestTimeout: true,
      },
      ...(region && { region }),
      ...(credentials && { credentials }),
    };
  }

  sts(region?: string, credentials?: AwsCredentialIdentity): STSClient {
    return this.make(new STSClient(this.options(region, credentials)));
  }
  ecr(region: string, credentials?: AwsCredentialIdentity): ECRClient {
    return this.make(new ECRClient(this.options(region, credentials)));
  }
  kms(region: string, credentials?: AwsCredentialIdentity): KMSClient {
    return this.make(new KMSClient(this.options(region, credentials)));
  }
  secretsManager(region: string): SecretsManagerClient {
    return this.make(new SecretsManagerClient(this.options(region)));
  }
  events(region?: string): EventBridgeClient {
    return this.make(new EventBridgeClient(this.options(region)));
  }
  sqs(region?: string): SQSClient {
    return this.make(new SQSClient(this.options(region)));
  }
  dynamodb(region?: string): DynamoDBClient {
    return this.make(new DynamoDBClient(this.options(region)));
  }
  lambda(region?: string): LambdaClient {
    return this.make(new LambdaClient(this.options(region)));
  }

  destroy(): void {
    for (const client of this.made.splice(0)) client.destroy();
  }
}
