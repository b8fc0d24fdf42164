import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { MirrorRecord, MirrorStatus } from '../status/schema';

export const EVENT_SOURCE = 'ecr-mirror';

const DETAIL_TYPES: Record<MirrorStatus, string | undefined> = {
  in_progress: undefined,
  succeeded: 'Image Mirrored',
  skipped: 'Image Mirror Skipped',
  failed: 'Image Mirror Failed',
  conflict: 'Image Mirror Conflict',
  deleted: 'Image Mirror Deleted',
};

/** Publishes each outcome to EventBridge so users can route notifications (Slack, tickets, pagers). */
export class Notifier {
  constructor(
    private readonly client: EventBridgeClient,
    private readonly eventBusName: string,
  ) {}

  /** Returns the entries that failed; publishing is best effort and never fails the mirror itself. */
  async publish(records: readonly MirrorRecord[]): Promise<number> {
    const entries = records.flatMap((r) => {
      const detailType = DETAIL_TYPES[r.status];
      return detailType
        ? [
            {
              Source: EVENT_SOURCE,
              DetailType: detailType,
              EventBusName: this.eventBusName,
              Detail: JSON.stringify(r),
            },
          ]
        : [];
    });
    let failed = 0;
    // PutEvents takes at most 10 entries a call.
    for (let i = 0; i < entries.length; i += 10) {
      const out = await this.client.send(new PutEventsCommand({ Entries: entries.slice(i, i + 10) }));
      failed += out.FailedEntryCount ?? 0;
    }
    return failed;
  }
}
