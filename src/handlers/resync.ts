import { randomUUID } from 'node:crypto';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
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
import { logger, metrics } from '../observability';
import { type ResyncInput, type ResyncResult, runResync } from '../resync/resync';
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

export interface ResyncServices {
  runtime: MirrorRuntime;
  ecr: ECRClient;
  sqs: SQSClient;
  lambda: LambdaClient;
  dynamodb: DynamoDBClient;
}

export function createResyncHandler(getServices: () => ResyncServices) {
  const run = async (event: unknown, context: Context): Promise<ResyncResult> => {
    const input = parseResyncInput(event);
    const { runtime, ecr, sqs, lambda, dynamodb } = getServices();
    const { config } = runtime;
    if (!input.dryRun && !config.mirrorQueueUrl) {
      throw new MirrorError(
        'INVALID_CONFIG',
        'MIRROR_QUEUE_URL: is required for a resync that enqueues jobs',
      );
    }
    const pace = createPacer(config.resyncApiRate);
    const queue = config.mirrorQueueUrl
      ? new JobQueue(sqs, config.mirrorQueueUrl, config.sourceAccountId, config.sourceRegion)
      : undefined;
    const result = await runResync(input, {
      config,
      inventory: new EcrInventory(ecr, pace),
      destinationRegistry: (d) => runtime.destination(d).registry,
      ...(queue && { enqueue: (jobs) => queue.send(jobs, pace) }),
      remainingMs: () => context.getRemainingTimeInMillis(),
      continueInBackground: async (next) => {
        try {
          await lambda.send(
            new InvokeCommand({
              FunctionName: context.invokedFunctionArn,
              InvocationType: 'Event',
              Payload: Buffer.from(JSON.stringify(next)),
            }),
          );
        } catch (err) {
          throw awsError('continue the resync in a new invocation', err);
        }
        logger.info('resync continues in a new invocation', { runId: next.continuation?.summary.runId });
      },
      record: (summary) => recordResync(dynamodb, config.statusTable, summary, config.historyTtlDays),
      newRunId: randomUUID,
      now: () => new Date(),
    });
    const s = result.summary;
    logger.info(s.complete ? 'resync finished' : 'resync paused', { summary: s });
    metrics.addMetric('ResyncChecked', MetricUnit.Count, s.checked);
    metrics.addMetric('ResyncEnqueued', MetricUnit.Count, s.enqueued);
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
    services = {
      runtime: createRuntime(config, {
        sessionName: `ecr-mirror-resync-${process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'local'}`,
      }),
      ecr: new ECRClient({ region }),
      sqs: new SQSClient({ region }),
      lambda: new LambdaClient({ region }),
      dynamodb: new DynamoDBClient({ region }),
    };
  }
  return services;
});
