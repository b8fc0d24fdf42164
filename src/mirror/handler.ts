import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { countRetries, emit, logger, metrics } from '../observability';
import { createLimiter } from '../util/limit';
import { processMessage } from './message';
import type { MirrorRuntime } from './ports';

/** Messages worked on at once within a batch; each may copy to several destinations. */
const RECORD_CONCURRENCY = 4;
/**
 * Time kept back from the invocation's end: a record cut off at its deadline still writes its
 * `failed`/`TIMEOUT` status, sets its retry delay and answers, before Lambda stops the function.
 * A quarter of what is left when that is shorter (short test deadlines).
 */
export const DEADLINE_MARGIN_MS = 30_000;

/** The deadline of a batch's records: the invocation's remaining time, less the margin. */
export function recordDeadlineMs(context: Pick<Context, 'getRemainingTimeInMillis'>): number {
  const remaining = context.getRemainingTimeInMillis();
  return Math.max(0, Math.floor(remaining - Math.min(DEADLINE_MARGIN_MS, remaining / 4)));
}

/**
 * The mirror Lambda: SQS batches of ECR `Image Action` events. Powertools' batch processor isolates
 * the records by construction: whatever one record throws becomes its own `batchItemFailures` entry,
 * and nothing else fails with it. Each record runs under one AbortSignal that fires at its deadline.
 */
export function createMirrorHandler(runtime: MirrorRuntime) {
  const processor = new BatchProcessor(EventType.SQS);
  const limit = createLimiter(RECORD_CONCURRENCY);
  const run = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    const signal = AbortSignal.timeout(recordDeadlineMs(context));
    const handleRecord = (record: SQSRecord) =>
      limit(() =>
        processMessage(
          {
            messageId: record.messageId,
            receiptHandle: record.receiptHandle,
            body: record.body,
            receiveCount: Number(record.attributes?.ApproximateReceiveCount ?? '1'),
          },
          runtime,
          { signal },
        ),
      );
    const retries = countRetries();
    // A batch whose every record asks for a retry is answered like any other, not thrown.
    const response = await processPartialResponse(event, handleRecord, processor, {
      context,
      throwOnFullBatchFailure: false,
    });
    retries();
    emit('MessagesRetried', response.batchItemFailures.length);
    return response;
  };
  return middy(run)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics, { captureColdStartMetric: true }));
}
