import { describeError } from '../errors';
import { emit, logger } from '../observability';
import { parseEvent } from './event';
import { asMirrorError, mirrorAction } from './mirror-action';
import type { MirrorRuntime } from './ports';
import { publish, report } from './report';

/** One queue message, as the mirror needs it (an SQS record, without the SQS types). */
export interface QueueMessage {
  messageId: string;
  receiptHandle: string;
  body: string;
  /** 1 on the first receive. */
  receiveCount: number;
}

/**
 * Thrown to have the message delivered again (the batch processor reports it in
 * `batchItemFailures`). Everything else a message can come to is handled here and answered done.
 */
export class RetryLater extends Error {
  override name = 'RetryLater';
}

/** When a retried message comes back, by receive: soon after a blip, later after repeated failures. */
export const RETRY_BACKOFF_SECONDS = [30, 120, 600] as const;

export function retryDelaySeconds(receiveCount: number): number {
  return RETRY_BACKOFF_SECONDS[Math.min(receiveCount, RETRY_BACKOFF_SECONDS.length) - 1]!;
}

export interface MessageOptions {
  /** Aborts the message's work at its deadline. */
  signal?: AbortSignal;
}

/**
 * Handles one message to its end: mirrored, skipped, ignored, or failed and recorded with its reason;
 * then done, retried (RetryLater, with a backoff), or dead-lettered with the reason when retrying
 * cannot help or this was the last receive.
 */
export async function processMessage(
  message: QueueMessage,
  rt: MirrorRuntime,
  options: MessageOptions = {},
): Promise<void> {
  const lastReceive = message.receiveCount >= rt.config.maxReceives;
  let eventId: string | undefined;
  try {
    const parsed = parseEvent(message.body);
    eventId = parsed.kind === 'action' ? parsed.action.eventId : parsed.eventId;
    if (parsed.kind === 'ignored') {
      logger.info('event ignored', { eventId, reason: parsed.reason });
      emit('EventsIgnored', 1);
      return;
    }
    if (parsed.kind === 'malformed') {
      logger.error('malformed event', { eventId, messageId: message.messageId, reason: parsed.reason });
      emit('EventsMalformed', 1);
      await recordMalformed(message, rt, parsed.reason, parsed.eventId, parsed.repository);
      return deadLetter(message, rt, 'INVALID_EVENT', parsed.reason, eventId);
    }

    const { action } = parsed;
    const result = await mirrorAction(action, rt, options);
    if (result.kind !== 'done') {
      logger.info(result.kind === 'own-output' ? 'own output ignored' : 'event filtered', {
        eventId,
        repository: action.repository,
        reason: result.reason,
      });
      if (result.kind === 'own-output') emit('OwnOutputIgnored', 1);
      else emit('EventsIgnored', 1);
      return;
    }
    for (const outcome of result.outcomes) report(outcome);
    await publish(rt, result.outcomes);

    const failed = result.outcomes.filter((o) => o.record.status === 'failed');
    if (failed.length === 0) return;
    const reason = failed.map((o) => `${o.destination.id}: ${o.record.lastErrorMessage}`).join('; ');
    if (failed.some((o) => o.error?.retryable) && !lastReceive) return retry(message, rt, reason);
    return deadLetter(message, rt, failed[0]!.record.lastErrorCode ?? 'FAILED', reason, eventId);
  } catch (err) {
    if (err instanceof RetryLater) throw err;
    // Something the status table or a queue refused, or a bug.
    const error = asMirrorError(err);
    logger.error('message not handled', {
      messageId: message.messageId,
      eventId,
      error: describeError(error),
    });
    if (error.retryable && !lastReceive) return retry(message, rt, describeError(error));
    return deadLetter(message, rt, error.code, error.message, eventId);
  }
}

/**
 * A malformed event's failure record. Its key cannot come from the event (a repository-name with
 * "#", or longer than a table key may be, is exactly what is wrong), so it is filed under the
 * repository only when that is a valid name, and under the message id: `status --failed` lists it.
 */
async function recordMalformed(
  message: QueueMessage,
  rt: MirrorRuntime,
  reason: string,
  eventId: string | undefined,
  repository: string | undefined,
): Promise<void> {
  const now = new Date().toISOString();
  await rt.store.finish({
    sourceRepository: repository ?? '(malformed)',
    reference: `message-${message.messageId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128)}`,
    destinationId: '-',
    destinationRepository: '-',
    status: 'failed',
    lastErrorCode: 'INVALID_EVENT',
    lastErrorMessage: reason,
    eventId: eventId ?? message.messageId,
    eventTime: now,
    startedAt: now,
    bytes: 0,
    blobsCopied: 0,
    blobsSkipped: 0,
    durationMs: 0,
  });
}

/** Asks for the message again after the backoff for its receive count, then reports it for retry. */
async function retry(message: QueueMessage, rt: MirrorRuntime, reason: string): Promise<never> {
  const seconds = retryDelaySeconds(message.receiveCount);
  try {
    await rt.redelivery?.retryIn(message.receiptHandle, seconds);
  } catch (err) {
    // It comes back after the queue's visibility timeout instead: later, but not lost.
    logger.warn('retry delay not set', { messageId: message.messageId, error: describeError(err) });
  }
  logger.info('message retried', { messageId: message.messageId, inSeconds: seconds, reason });
  throw new RetryLater(reason);
}

async function deadLetter(
  message: QueueMessage,
  rt: MirrorRuntime,
  code: string,
  reason: string,
  eventId?: string,
): Promise<void> {
  if (!rt.deadLetters) {
    // Without DEAD_LETTER_QUEUE_URL the queue's redrive policy moves it after the last receive.
    throw new RetryLater(reason);
  }
  await rt.deadLetters.send({ body: message.body, code, reason, ...(eventId && { eventId }) });
  logger.warn('message dead-lettered', { messageId: message.messageId, eventId, errorCode: code, reason });
  emit('MessagesDeadLettered', 1);
}
