import { randomUUID } from 'node:crypto';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { MirrorConfig } from '../config/config';
import { MirrorError } from '../errors';
import { countRetries, emit, logger, metrics } from '../observability';
import { type ResyncDeps, runResync } from './resync';
import { parseResyncInput, type ResyncInput, type ResyncResult } from './wire';

/** What a resync talks to: AWS when deployed (src/wiring/resync.ts), loopback stand-ins in the local run. */
export interface ResyncServices {
  config: MirrorConfig;
  inventory: ResyncDeps['inventory'];
  destinationRegistry: ResyncDeps['destinationRegistry'];
  /** Puts jobs on the mirror queue; without it only dry runs are possible. */
  enqueue?: ResyncDeps['enqueue'];
  /** Starts a fresh invocation of this function with the continuation. */
  continueInBackground?: (input: ResyncInput, functionArn: string) => Promise<void>;
  log?: ResyncDeps['log'];
}

/** The resync Lambda: a schedule's `{}`, the CLI's options, or a continuation of a paused run. */
export function createResyncHandler(services: ResyncServices) {
  const run = async (event: unknown, context: Context): Promise<ResyncResult> => {
    const input = parseResyncInput(event);
    const { enqueue, continueInBackground, log } = services;
    const retries = countRetries();
    if (!input.dryRun && !enqueue) {
      throw new MirrorError(
        'INVALID_CONFIG',
        'MIRROR_QUEUE_URL: is required for a resync that enqueues jobs',
      );
    }
    const result = await runResync(input, {
      config: services.config,
      inventory: services.inventory,
      destinationRegistry: services.destinationRegistry,
      ...(enqueue && { enqueue }),
      remainingMs: () => context.getRemainingTimeInMillis(),
      ...(continueInBackground && {
        continueInBackground: async (next: ResyncInput) => {
          await continueInBackground(next, context.invokedFunctionArn);
          logger.info('resync continues in a new invocation', { runId: next.continuation?.runId });
        },
      }),
      ...(log && { log }),
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
    emit('ResyncErrors', s.errorCount);
    return result;
  };
  return middy(run)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics));
}
