import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ECRClient } from '@aws-sdk/client-ecr';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import { EcrInventory } from '../aws/ecr-inventory';
import { awsError } from '../aws/errors';
import { JobQueue } from '../aws/job-queue';
import { DynamoResyncLog } from '../aws/resync-log';
import type { MirrorConfig } from '../config/config';
import { destinationSessionPolicy } from '../permissions';
import type { ResyncServices } from '../resync/handler';
import { resyncPayload } from '../resync/wire';
import { createPacer } from '../util/pacer';
import { type AwsOptions, awsDestinations } from './destinations';

export interface ResyncClients {
  ecr: ECRClient;
  sqs: SQSClient;
  lambda: LambdaClient;
  dynamodb: DynamoDBClient;
}

/**
 * The resync Lambda's services on AWS: the ECR inventory paced to RESYNC_API_RATE, the mirror queue,
 * self-invocation to continue, summaries in the status table, and the destinations' registries.
 */
export function resyncServices(
  config: MirrorConfig,
  options: AwsOptions & { clients?: ResyncClients } = {},
): ResyncServices {
  // The source inventory is read in the source region; the stack's queue, table and the function
  // itself are in the function's region.
  const region = config.functionRegion;
  const clients = options.clients ?? {
    ecr: new ECRClient({ region: config.sourceRegion }),
    sqs: new SQSClient({ region }),
    lambda: new LambdaClient({ region }),
    dynamodb: new DynamoDBClient({ region }),
  };
  const queue = config.mirrorQueueUrl
    ? new JobQueue(clients.sqs, config.mirrorQueueUrl, config.sourceAccountId, config.sourceRegion)
    : undefined;
  // The resync assumes the mirror's destination roles, which may push: its sessions may only read.
  const destination = awsDestinations(config, {
    ...options,
    sessionPolicy: destinationSessionPolicy('resync'),
  });
  return {
    config,
    inventory: new EcrInventory(clients.ecr, createPacer(config.resyncApiRate)),
    destinationRegistry: (d) => destination(d).registry,
    ...(queue && { enqueue: (jobs) => queue.send(jobs) }),
    continueInBackground: async (next, functionArn) => {
      try {
        await clients.lambda.send(
          new InvokeCommand({
            FunctionName: functionArn,
            InvocationType: 'Event',
            Payload: resyncPayload(next),
          }),
        );
      } catch (err) {
        throw awsError('continue the resync in a new invocation', err);
      }
    },
    log: new DynamoResyncLog(clients.dynamodb, config.statusTable, config.historyTtlDays),
  };
}
