import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ECRClient } from '@aws-sdk/client-ecr';
import type { SQSRecord } from 'aws-lambda';
import type { DeadLetter } from '../aws/dead-letter';
import { DynamoDbStatusStore } from '../aws/dynamodb-status-store';
import { JobQueue } from '../aws/job-queue';
import type { MirrorConfig } from '../config/config';
import { ecrHost } from '../core/ecr-host';
import type { ResyncServices } from '../handlers/resync';
import type { MirrorRuntime } from '../mirror/runtime';
import type { HttpRegistry } from '../registry/http-registry';
import { openRegistry } from '../registry/open';
import type { MirrorRecord } from '../status/schema';
import { LOCAL_PASSWORD, LOCAL_USER } from './registry-server';

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
  const destinations = new Map<string, ReturnType<MirrorRuntime['destination']>>();

  const runtime: MirrorRuntime = {
    config,
    store: new DynamoDbStatusStore(config.statusTable, config.historyTtlDays, dynamodb),
    // Local registries create repositories on the first push.
    repositories: {
      ensure: async () => 'exists',
      deleteImage: async (target, image) => {
        const registry = runtime.destination(
          config.destinations.find((d) => target.label.startsWith(d.accountId))!,
        ).registry;
        const found = await registry.headManifest(target.repository, image.tag ?? image.digest!);
        if (found) await registry.deleteManifest(target.repository, found.digest);
      },
    },
    notifier: {
      publish: async (records) => {
        published.push(...records);
        return 0;
      },
    },
    deadLetters: { send: async (letter) => void deadLetters.push(letter) },
    sourceHost,
    source,
    destination(d) {
      let clients = destinations.get(d.id);
      if (!clients) {
        const host = ecrHost(d.accountId, d.region);
        clients = {
          label: `${d.accountId}/${d.region}`,
          host,
          registry: openRegistry(host, access),
          // Never called locally: repositories and credentials are the stand-ins above and below.
          ecr: new ECRClient({ region: d.region }),
          credentials: async () => ({ accessKeyId: 'local', secretAccessKey: 'local' }),
        };
        destinations.set(d.id, clients);
      }
      return clients;
    },
  };

  let seq = 0;
  const resync: ResyncServices = {
    runtime,
    inventory: {
      repositories: (next) => source.catalogPage(next),
      images: (repository) => registryImages(source, repository),
    },
    enqueue: async (jobs) => {
      for (const job of jobs) {
        seq++;
        queue.push(
          sqsRecord(
            `local-${seq}`,
            JSON.stringify(JobQueue.event(job, config.sourceAccountId, config.sourceRegion)),
          ),
        );
      }
      return jobs.length;
    },
  };
  return { runtime, resync, published, deadLetters, queue };
}

/** A local registry's tagged images, grouped by digest as ECR's DescribeImages would answer. */
async function registryImages(
  registry: HttpRegistry,
  repository: string,
): Promise<{ images: { digest: string; tags: string[] }[] }> {
  const byDigest = new Map<string, string[]>();
  for (const tag of await registry.listTags(repository)) {
    const head = await registry.headManifest(repository, tag);
    if (head) byDigest.set(head.digest, [...(byDigest.get(head.digest) ?? []), tag]);
  }
  return { images: [...byDigest].map(([digest, tags]) => ({ digest, tags })) };
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
