import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { ResyncSummary } from '../resync/plan';
import { TTL_ATTRIBUTE } from '../status/schema';
import { awsError } from './errors';

/** Resync summaries live in the status table under their own partition, expiring like attempt history. */
export const RESYNC_PARTITION = 'RESYNC';

export async function recordResync(
  client: DynamoDBClient,
  tableName: string,
  summary: ResyncSummary,
  ttlDays: number,
): Promise<void> {
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  try {
    await doc.send(
      new PutCommand({
        TableName: tableName,
        Item: {
          pk: RESYNC_PARTITION,
          sk: `${summary.startedAt}#${summary.runId}`,
          ...summary,
          [TTL_ATTRIBUTE]: Math.floor(Date.now() / 1000) + ttlDays * 86_400,
        },
      }),
    );
  } catch (err) {
    throw awsError(`record resync summary in ${tableName}`, err);
  }
}
