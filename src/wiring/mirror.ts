import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DeadLetterQueue } from '../aws/dead-letter';
import { DynamoDbStatusStore } from '../aws/dynamodb-status-store';
import { Notifier } from '../aws/notifier';
import { QueueRedelivery } from '../aws/redelivery';
import type { MirrorConfig } from '../config/config';
import { BlobLedger } from '../copy/blob-ledger';
import { ecrHost } from '../core/ecr-host';
import type { MirrorRuntime } from '../mirror/ports';
import { type AwsOptions, awsDestinations, registryAccess } from './destinations';
import { openAwsRegistry } from './registries';

/** The mirror Lambda's runtime on AWS: status table, events, dead letters, retry delays, registries. */
export function mirrorRuntime(config: MirrorConfig, options: AwsOptions = {}): MirrorRuntime {
  // The stack's table, queues and bus are in the function's region; the source registry in its own.
  const region = config.functionRegion;
  const sqs = new SQSClient({ region });
  const sourceHost = ecrHost(config.sourceAccountId, config.sourceRegion);
  return {
    config,
    store: new DynamoDbStatusStore(config.statusTable, config.historyTtlDays, new DynamoDBClient({ region })),
    notifier: config.publishEvents
      ? new Notifier(new EventBridgeClient({ region }), config.eventBusName)
      : undefined,
    deadLetters: config.deadLetterQueueUrl ? new DeadLetterQueue(sqs, config.deadLetterQueueUrl) : undefined,
    redelivery: config.mirrorQueueUrl ? new QueueRedelivery(sqs, config.mirrorQueueUrl) : undefined,
    sourceHost,
    // The function's own role reads the source account.
    source: openAwsRegistry(sourceHost, registryAccess(config, options)),
    destination: awsDestinations(config, options),
    // One per container: the records of a batch, and later batches while the function is warm.
    blobs: new BlobLedger(),
  };
}
