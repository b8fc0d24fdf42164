import { randomUUID } from 'node:crypto';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ECRClient } from '@aws-sdk/client-ecr';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { EcrInventory } from '../aws/ecr-inventory';
import { awsError } from '../aws/errors';
import { JobQueue } from '../aws/job-queue';
import { recordResync } from '../aws/resync-log';
import { loadConfig } from '../config/config';
import { MirrorError } from '../errors';
import { createRuntime, type MirrorRuntime } from '../mirror/runtime';
import { countRetries, emit, logger, metrics } from '../observability';
import type { MirrorJob, ResyncSummary } from '../resync/plan';
import { type ResyncDeps, type ResyncInput, type ResyncResult, runResync } from '../resync/resync';
import { createPacer } from '../util/pacer';

const inputSchema = z.object({
  repositories: z.array(z.string().min(1)).optional(),
  tags: z.array(z.string().min(1)).optional(),
  destinations: z.array(z.string().min(1)).optional(),
  dryRun: z.boolean().optional(),
  continueInBackground: z.boolean().optional(),
  // Written by a previous invocation of this function; passed back as it was.
  continuation: z
    .custom<NonNullable<ResyncInput['continuation']>>((v) => typeof v === 'object' && v !== null)
    .optional(),
});

/** Reads the invocation payload: `{}` from the schedule, options from `ecr-mirror resync`. */
export function parseResyncInput(event: unknown): ResyncInput {
  // A scheduled rule may deliver its own envelope; only our fields matter.
  const result = inputSchema.safeParse(event ?? {});
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new MirrorError(
      'INVALID_ARGUMENT',
      `resync input ${issue.path.join('.') || ''}: ${issue.message}`.trim(),
    );
  }
  return result.data as ResyncInput;
}

/** What a resync talks to: AWS when deployed, loopback stand-ins in the local run. */
export interface ResyncServices {
  runtime: MirrorRuntime;
  inventory: ResyncDeps['inventory'];
  /** Puts jobs on the mirror queue; without it only dry runs are possible. */
  enqueue?: (jobs: MirrorJob[]) => Promise<number>;
  /** Starts a fresh invocation with the continuation. */
  continueInBackground?: (input: ResyncInput, context: Context) => Promise<void>;
  record?: (summary: ResyncSummary) => Promise<void>;
}

export interface AwsClients {
  ecr: ECRClient;
  sqs: SQSClient;
  lambda: LambdaClient;
  dynamodb: DynamoDBClient;
}

/** The deployed wiring: ECR inventory paced to RESYNC_API_RATE, the mirror queue, self-invocation, summary in the table. */
export function awsResyncServices(runtime: MirrorRuntime, clients: AwsClients): ResyncServices {
  const { config } = runtime;
  const pace = createPacer(config.resyncApiRate);
  const queue = config.mirrorQueueUrl
    ? new JobQueue(clients.sqs, config.mirrorQueueUrl, config.sourceAccountId, config.sourceRegion)
    : undefined;
  return {
    runtime,
    inventory: new EcrInventory(clients.ecr, pace),
    ...(queue && { enqueue: (jobs: MirrorJob[]) => queue.send(jobs) }),
    continueInBackground: async (next, context) => {
      try {
        await clients.lambda.send(
          new InvokeCommand({
            FunctionName: context.invokedFunctionArn,
            InvocationType: 'Event',
            Payload: Buffer.from(JSON.stringify(next)),
          }),
        );
      } catch (err) {
        throw awsError('continue the resync in a new invocation', err);
      }
    },
    record: (summary) => recordResync(clients.dynamodb, config.statusTable, summary, config.historyTtlDays),
  };
}

export function createResyncHandler(getServices: () => ResyncServices) {
  const run = async (event: unknown, context: Context): Promise<ResyncResult> => {
    const input = parseResyncInput(event);
    const retries = countRetries();
    const services = getServices();
    const { runtime, enqueue, continueInBackground, record } = services;
    if (!input.dryRun && !enqueue) {
      throw new MirrorError(
        'INVALID_CONFIG',
        'MIRROR_QUEUE_URL: is required for a resync that enqueues jobs',
      );
    }
    const result = await runResync(input, {
      config: runtime.config,
      inventory: services.inventory,
      destinationRegistry: (d) => runtime.destination(d).registry,
      ...(enqueue && { enqueue }),
      remainingMs: () => context.getRemainingTimeInMillis(),
      ...(continueInBackground && {
        continueInBackground: async (next: ResyncInput) => {
          await continueInBackground(next, context);
          logger.info('resync continues in a new invocation', { runId: next.continuation?.summary.runId });
        },
      }),
      ...(record && { record }),
      newRunId: randomUUID,
      now: () => new Date(),
    });
    const s = result.summary;
    logger.info(s.complete ? 'resync finished' : 'resync paused', { summary: s });
    retries();
    // Per invocation: a run that continues in a new invocation counts once, when it finishes.
    if (s.complete) emit('ResyncRuns', 1);
    emit('ResyncChecked', s.checked);
    emit('ResyncEnqueued', s.enqueued);
    emit('ResyncErrors', s.errors.length);
    return result;
  };
  return middy(run)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics));
}

let services: ResyncServices | undefined;

export const handler = createResyncHandler(() => {
  if (!services) {
    const config = loadConfig();
    const region = config.sourceRegion;
    const runtime = createRuntime(config, {
      sessionName: `ecr-mirror-resync-${process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'local'}`,
    });
    services = awsResyncServices(runtime, {
      ecr: new ECRClient({ region }),
      sqs: new SQSClient({ region }),
      lambda: new LambdaClient({ region }),
      dynamodb: new DynamoDBClient({ region }),
    });
  }
  return services;
});
