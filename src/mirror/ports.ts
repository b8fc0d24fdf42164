import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ECRClient } from '@aws-sdk/client-ecr';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SQSClient } from '@aws-sdk/client-sqs';
import { STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { assumeRoleCredentials } from '../aws/assume-role';
import { type DeadLetter, DeadLetterQueue } from '../aws/dead-letter';
import { DestinationRepositories, type RepositoryTarget } from '../aws/destination-repositories';
import { DynamoDbStatusStore } from '../aws/dynamodb-status-store';
import { ecrCredentials } from '../aws/ecr-auth';
import { Notifier } from '../aws/notifier';
import type { Destination, MirrorConfig } from '../config/config';
import { ecrHost } from '../core/ecr-host';
import { openRegistry, type RegistryAccess } from '../registry/open';
import type { RegistryClient } from '../registry/registry';
import type { MirrorRecord } from '../status/schema';
import type { StatusStore } from '../status/store';

/** Where outcomes are announced (EventBridge when deployed). Returns how many were not accepted. */
export interface ResultPublisher {
  publish(records: readonly MirrorRecord[]): Promise<number>;
}

/** Where a message that retrying cannot help goes, with its reason (the dead-letter queue when deployed). */
export interface DeadLetterSink {
  send(letter: DeadLetter): Promise<void>;
}

/** Destination repositories: made sure of before a copy, and images deleted for deletion sync. */
export interface RepositoryManager {
  ensure(target: RepositoryTarget): Promise<'exists' | 'created'>;
  deleteImage(
    target: Omit<RepositoryTarget, 'settings' | 'create'>,
    image: { tag?: string; digest?: string },
  ): Promise<void>;
}

export interface DestinationClients {
  /** `222222222222/eu-west-1`, for messages. */
  label: string;
  host: string;
  registry: RegistryClient;
  ecr: ECRClient;
  /** The assumed role's credentials: resolved first, so a refused AssumeRole fails clearly and early. */
  credentials: AwsCredentialIdentityProvider;
}

/** Everything a mirror job talks to, built once per Lambda container from the validated configuration. */
export interface MirrorRuntime {
  config: MirrorConfig;
  store: StatusStore;
  repositories: RepositoryManager;
  notifier: ResultPublisher | undefined;
  deadLetters: DeadLetterSink | undefined;
  sourceHost: string;
  source: RegistryClient;
  destination(d: Destination): DestinationClients;
}

/**
 * Builds the clients. SDK clients get a region and credentials only, never an endpoint: the SDK
 * honours `AWS_ENDPOINT_URL_<SERVICE>` by itself, which is how local runs and tests redirect them.
 */
export interface RuntimeOptions {
  /** Shows in the destination accounts' CloudTrail. */
  sessionName?: string;
  /** Registry retries and timeouts (tests shorten them). */
  registry?: Pick<RegistryAccess, 'retry' | 'timeouts'>;
}

export function createRuntime(config: MirrorConfig, options: RuntimeOptions = {}): MirrorRuntime {
  const region = config.sourceRegion;
  const sessionName = options.sessionName ?? 'ecr-mirror';
  const access = { endpoints: config.registryEndpoints, ...options.registry };
  const sts = new STSClient({ region });
  const sourceHost = ecrHost(config.sourceAccountId, region);
  const destinations = new Map<string, DestinationClients>();

  return {
    config,
    store: new DynamoDbStatusStore(config.statusTable, config.historyTtlDays, new DynamoDBClient({ region })),
    repositories: new DestinationRepositories(),
    notifier: config.publishEvents
      ? new Notifier(new EventBridgeClient({ region }), config.eventBusName)
      : undefined,
    deadLetters: config.deadLetterQueueUrl
      ? new DeadLetterQueue(new SQSClient({ region }), config.deadLetterQueueUrl)
      : undefined,
    sourceHost,
    // The function's own role reads the source account.
    source: openRegistry(sourceHost, access),
    destination(d) {
      let clients = destinations.get(d.id);
      if (!clients) {
        const credentials = assumeRoleCredentials({
          sts,
          roleArn: d.roleArn,
          externalId: d.externalId,
          sessionName,
        });
        const ecr = new ECRClient({ region: d.region, credentials });
        const host = ecrHost(d.accountId, d.region);
        clients = {
          label: `${d.accountId}/${d.region}`,
          host,
          ecr,
          credentials,
          registry: openRegistry(host, {
            ...access,
            ecrCredentialProvider: (h) =>
              ecrCredentials(h, { clientFactory: () => ecr, awsCredentials: credentials }),
          }),
        };
        destinations.set(d.id, clients);
      }
      return clients;
    },
  };
}
