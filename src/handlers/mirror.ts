import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { loadConfig } from '../config/config';
import { describeError } from '../errors';
import { parseEvent } from '../mirror/event';
import { type DestinationOutcome, mirrorAction } from '../mirror/mirror-action';
import { createRuntime, type MirrorRuntime } from '../mirror/runtime';
import { countRetries, emit, logger, metrics } from '../observability';
import { createLimiter } from '../util/limit';

/** Queue messages handled at once within a batch; each may copy to several destinations. */
const RECORD_CONCURRENCY = 4;

type Verdict = 'done' | 'retry';

/**
 * The mirror Lambda: SQS batches of ECR `Image Action` events. Each message ends one of three ways:
 * done (mirrored, skipped, ignored, or dead-lettered with its reason), or retry (reported in
 * `batchItemFailures`, so SQS delivers it again after the visibility timeout).
 */
export function createMirrorHandler(getRuntime: () => MirrorRuntime) {
  const limit = createLimiter(RECORD_CONCURRENCY);
  const run = async (event: SQSEvent, _context: Context): Promise<SQSBatchResponse> => {
    const rt = getRuntime();
    const retries = countRetries();
    const verdicts = await Promise.all(event.Records.map((r) => limit(() => handleRecord(r, rt))));
    retries();
    emit('MessagesRetried', verdicts.filter((v) => v === 'retry').length);
    return {
      batchItemFailures: event.Records.filter((_, i) => verdicts[i] === 'retry').map((r) => ({
        itemIdentifier: r.messageId,
      })),
    };
  };
  return middy(run)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics, { captureColdStartMetric: true }));
}

async function handleRecord(record: SQSRecord, rt: MirrorRuntime): Promise<Verdict> {
  const receives = Number(record.attributes?.ApproximateReceiveCount ?? '1');
  const lastReceive = receives >= rt.config.maxReceives;
  try {
    const parsed = parseEvent(record.body);
    if (parsed.kind === 'ignored') {
      logger.info('event ignored', { eventId: parsed.eventId, reason: parsed.reason });
      emit('EventsIgnored', 1);
      return 'done';
    }
    if (parsed.kind === 'malformed') {
      logger.error('malformed event', {
        eventId: parsed.eventId,
        messageId: record.messageId,
        reason: parsed.reason,
      });
      emit('EventsMalformed', 1);
      const now = new Date().toISOString();
      await rt.store.finish({
        sourceRepository: parsed.repository ?? '(malformed)',
        reference: `message-${record.messageId}`,
        destinationId: '-',
        destinationRepository: '-',
        status: 'failed',
        lastErrorCode: 'INVALID_EVENT',
        lastErrorMessage: parsed.reason,
        eventId: parsed.eventId ?? record.messageId,
        eventTime: now,
        startedAt: now,
        bytes: 0,
        blobsCopied: 0,
        blobsSkipped: 0,
        durationMs: 0,
      });
      return deadLetter(record, rt, 'INVALID_EVENT', parsed.reason, parsed.eventId);
    }

    const { action } = parsed;
    const result = await mirrorAction(action, rt);
    if (result.kind === 'filtered') {
      logger.info('event filtered', {
        eventId: action.eventId,
        repository: action.repository,
        reason: result.reason,
      });
      emit('EventsIgnored', 1);
      return 'done';
    }
    for (const outcome of result.outcomes) report(outcome);
    await publish(rt, result.outcomes);

    const failed = result.outcomes.filter((o) => o.record.status === 'failed');
    if (failed.length === 0) return 'done';
    const first = failed[0]!;
    const reason = failed.map((o) => `${o.destination.id}: ${o.record.lastErrorMessage}`).join('; ');
    if (failed.some((o) => o.error?.retryable) && !lastReceive) return 'retry';
    return deadLetter(record, rt, first.record.lastErrorCode ?? 'FAILED', reason, action.eventId);
  } catch (err) {
    // Something the status table or a queue refused: let SQS deliver it again.
    logger.error('message not handled', { messageId: record.messageId, error: describeError(err) });
    if (!lastReceive) return 'retry';
    return deadLetter(record, rt, 'UNHANDLED', describeError(err));
  }
}

function report(o: DestinationOutcome): void {
  const r = o.record;
  const fields = {
    eventId: r.eventId,
    repository: r.sourceRepository,
    tag: r.tag,
    digest: r.sourceDigest,
    destination: o.destination.id,
    destinationRepository: r.destinationRepository,
    status: r.status,
    bytes: r.bytes,
    blobsCopied: r.blobsCopied,
    blobsSkipped: r.blobsSkipped,
    durationMs: r.durationMs,
    superseded: !o.written,
  };
  if (r.status === 'failed' || r.status === 'conflict') {
    logger.error('image not mirrored', {
      ...fields,
      errorCode: r.lastErrorCode,
      error: r.lastErrorMessage,
      retryable: o.error?.retryable,
    });
    emit('ImagesFailed', 1);
    return;
  }
  logger.info(r.status === 'deleted' ? 'image deleted' : 'image mirrored', fields);
  if (r.status === 'succeeded') {
    emit('ImagesMirrored', 1);
    emit('BytesCopied', r.bytes);
  } else if (r.status === 'skipped') {
    emit('ImagesSkipped', 1);
  }
  if (r.status === 'succeeded' || r.status === 'skipped') {
    // From the push to the image being in place at the destination.
    emit('MirrorLatency', Math.max(0, Date.now() - Date.parse(r.eventTime)));
  }
}

async function publish(rt: MirrorRuntime, outcomes: DestinationOutcome[]): Promise<void> {
  if (!rt.notifier) return;
  try {
    const failed = await rt.notifier.publish(outcomes.map((o) => o.record));
    if (failed > 0) logger.warn('some completion events were not published', { failed });
  } catch (err) {
    logger.warn('completion events not published', { error: describeError(err) });
  }
}

async function deadLetter(
  record: SQSRecord,
  rt: MirrorRuntime,
  code: string,
  reason: string,
  eventId?: string,
): Promise<Verdict> {
  if (!rt.deadLetters) {
    // Without DEAD_LETTER_QUEUE_URL the queue's redrive policy moves it after the last receive.
    return 'retry';
  }
  await rt.deadLetters.send({ body: record.body, code, reason, ...(eventId && { eventId }) });
  logger.warn('message dead-lettered', { messageId: record.messageId, eventId, errorCode: code, reason });
  emit('MessagesDeadLettered', 1);
  return 'done';
}

let runtime: MirrorRuntime | undefined;

/** Configuration is read and validated once per container, at the first event. */
export const handler = createMirrorHandler(() => {
  runtime ??= createRuntime(loadConfig(), {
    sessionName: `ecr-mirror-${process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'local'}`,
  });
  return runtime;
});
