import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { ResyncSummary } from '../resync/plan';
import type { ResyncLog } from '../resync/resync';
import { TTL_ATTRIBUTE } from '../status/schema';
import { awsError } from './errors';

/** Resync summaries live in the status table under their own partition, expiring like attempt history. */
export const RESYNC_PARTITION = 'RESYNC';

const sortKey = (startedAt: string, runId: string): string => `${startedAt}#${runId}`;

/**
 * A run's summary, saved when it pauses and when it ends, and read back by the invocation that
 * continues it: the continuation itself carries only tokens. Newest runs sort first.
 */
export class DynamoResyncLog implements ResyncLog {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly tableName: string,
    private readonly ttlDays: number,
    private readonly now: () => number = Date.now,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async save(summary: ResyncSummary): Promise<void> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: RESYNC_PARTITION,
            sk: sortKey(summary.startedAt, summary.runId),
            ...summary,
            [TTL_ATTRIBUTE]: Math.floor(this.now() / 1000) + this.ttlDays * 86_400,
          },
        }),
      );
    } catch (err) {
      throw awsError(`record resync summary in ${this.tableName}`, err);
    }
  }

  async load(runId: string, startedAt: string): Promise<ResyncSummary | undefined> {
    try {
      const out = await this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { pk: RESYNC_PARTITION, sk: sortKey(startedAt, runId) },
          ConsistentRead: true,
        }),
      );
      if (!out.Item) return undefined;
      const { pk: _pk, sk: _sk, [TTL_ATTRIBUTE]: _ttl, ...summary } = out.Item;
      return summary as ResyncSummary;
    } catch (err) {
      throw awsError(`read resync summary from ${this.tableName}`, err);
    }
  }
}
