import { describeError } from '../errors';
import { emit, logger } from '../observability';
import type { DestinationOutcome } from './mirror-action';
import type { MirrorRuntime } from './ports';

/** One log line and the metrics for a destination's outcome. */
export function report(o: DestinationOutcome): void {
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
    blobsMounted: r.blobsMounted,
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

/** Completion events, best effort: a refused PutEvents is logged and never fails the mirror. */
export async function publish(rt: MirrorRuntime, outcomes: DestinationOutcome[]): Promise<void> {
  if (!rt.notifier) return;
  try {
    const announced = outcomes.filter((o) => o.announce).map((o) => o.record);
    if (announced.length === 0) return;
    const failed = await rt.notifier.publish(announced);
    if (failed > 0) logger.warn('some completion events were not published', { failed });
  } catch (err) {
    logger.warn('completion events not published', { error: describeError(err) });
  }
}
