import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SQSRecord } from 'aws-lambda';
import { DynamoDbStatusStore } from '../aws/dynamodb-status-store';
import { DynamoResyncLog } from '../aws/resync-log';
import type { MirrorConfig } from '../config/config';
import { BlobLedger } from '../copy/blob-ledger';
import { ecrHost } from '../core/ecr-host';
import { LOCAL_PASSWORD, LOCAL_USER } from '../local/registry-server';
import type { DeadLetter, DestinationClients, MirrorRuntime } from '../mirror/ports';
import { openRegistry } from '../registry/open';
import type { ResyncServices } from '../resync/handler';
import { jobEvent } from '../resync/wire';
import type { MirrorRecord } from '../status/schema';
import { registryInventory } from '../sync/inventory';

/**
 * The mirror's runtime with loopback stand-ins at the AWS edges, for `npm start`: real registries
 * behind ECR hostnames (REGISTRY_ENDPOINTS), dynalite for the status table, and in-memory lists
 * where EventBridge, the dead-letter queue and the mirror queue would be. Handlers and the copy run
 * exactly as deployed.
 */
export interface LocalRun {
  runtime: MirrorRuntime;
  resync: ResyncServices;
  published: MirrorRecord[];
  deadLetters: DeadLetter[];
  /** Jobs the resync enqueued, as SQS records for the mirror handler. */
  queue: SQSRecord[];
}

export function createLocalRun(config: MirrorConfig, dynamodb: DynamoDBClient): LocalRun {
  const credentials = { username: LOCAL_USER, password: LOCAL_PASSWORD };
  const access = { endpoints: config.registryEndpoints, credentials };
  const sourceHost = ecrHost(config.sourceAccountId, config.sourceRegion);
  const source = openRegistry(sourceHost, access);
  const published: MirrorRecord[] = [];
  const deadLetters: DeadLetter[] = [];
  const queue: SQSRecord[] = [];
  const destinations = new Map<string, DestinationClients>();

  const runtime: MirrorRuntime = {
    config,
    store: new DynamoDbStatusStore(config.statusTable, config.historyTtlDays, dynamodb),
    notifier: {
      publish: async (records) => {
        published.push(...records);
        return 0;
      },
    },
    deadLetters: { send: async (letter) => void deadLetters.push(letter) },
    // No queue here to delay a retry: a retried message is only reported in batchItemFailures.
    redelivery: undefined,
    sourceHost,
    source,
    blobs: new BlobLedger(),
    destination(d) {
      let clients = destinations.get(d.id);
      if (!clients) {
        const host = d.host;
        const registry = openRegistry(host, access);
        clients = {
          label: d.accountId !== undefined ? `${d.accountId}/${d.region}` : host,
          host,
          registry,
          // Local registries create repositories on the first push, and delete through the registry API.
          repositories: {
            ensure: async () => 'exists',
            forget: () => undefined,
            deleteImage: async (repository, image) => {
              const found = await registry.headManifest(repository, image.tag ?? image.digest!);
              if (found) await registry.deleteManifest(repository, found.digest);
            },
          },
          connect: async () => undefined,
        };
        destinations.set(d.id, clients);
      }
      return clients;
    },
  };

  let seq = 0;
  const resync: ResyncServices = {
    config,
    destinationRegistry: (d) => runtime.destination(d).registry,
    log: new DynamoResyncLog(dynamodb, config.statusTable, config.historyTtlDays),
    inventory: registryInventory(source),
    enqueue: async (jobs) => {
      for (const job of jobs) {
        seq++;
        queue.push(sqsRecord(`local-${seq}`, jobEvent(job, config.sourceAccountId, config.sourceRegion)));
      }
      return jobs.length;
    },
  };
  return { runtime, resync, published, deadLetters, queue };
}

/** An SQS record as the Lambda event source delivers it (the local run and the tests build them). */
export function sqsRecord(messageId: string, body: string, receiveCount = 1): SQSRecord {
  const now = String(Date.now());
  return {
    messageId,
    receiptHandle: messageId,
    body,
    attributes: {
      ApproximateReceiveCount: String(receiveCount),
      SentTimestamp: now,
      SenderId: 'local',
      ApproximateFirstReceiveTimestamp: now,
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:111111111111:ecr-mirror-local-mirror',
    awsRegion: 'us-east-1',
  };
}
