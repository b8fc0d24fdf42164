import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  UpdateTimeToLiveCommand,
  type UpdateTimeToLiveCommandInput,
} from '@aws-sdk/client-dynamodb';
import { MirrorError } from '../errors';
import { STATUS_INDEX, TABLE_KEYS, TTL_ATTRIBUTE } from '../status/schema';
import { translateError } from './dynamodb-status-store';

/** The table as CreateTable takes it; serverless.yml must declare the same (a test compares them). */
export function tableDefinition(tableName: string): CreateTableCommandInput {
  const string = (name: string) => ({ AttributeName: name, AttributeType: 'S' as const });
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      string(TABLE_KEYS.partition),
      string(TABLE_KEYS.sort),
      string(STATUS_INDEX.partition),
      string(STATUS_INDEX.sort),
    ],
    KeySchema: [
      { AttributeName: TABLE_KEYS.partition, KeyType: 'HASH' },
      { AttributeName: TABLE_KEYS.sort, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: STATUS_INDEX.name,
        KeySchema: [
          { AttributeName: STATUS_INDEX.partition, KeyType: 'HASH' },
          { AttributeName: STATUS_INDEX.sort, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}

/** History expiry, which CreateTable cannot set. */
export function timeToLiveDefinition(tableName: string): UpdateTimeToLiveCommandInput {
  return { TableName: tableName, TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true } };
}

/**
 * Creates the table, waits until it and its index are active, and enables TTL. Local emulators
 * without TTL (dynalite) answer `ttl: 'unsupported'` instead of failing.
 */
export async function createStatusTable(
  client: DynamoDBClient,
  tableName: string,
  timeoutMs = 120_000,
): Promise<{ ttl: 'enabled' | 'unsupported' }> {
  const send = <T>(operation: string, run: () => Promise<T>) =>
    run().catch((err: unknown) => {
      throw translateError(err, operation, tableName);
    });
  await send('CreateTable', () => client.send(new CreateTableCommand(tableDefinition(tableName))));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { Table } = await send('DescribeTable', () =>
      client.send(new DescribeTableCommand({ TableName: tableName })),
    );
    const indexes = Table?.GlobalSecondaryIndexes ?? [];
    if (Table?.TableStatus === 'ACTIVE' && indexes.every((i) => i.IndexStatus === 'ACTIVE')) break;
    if (Date.now() > deadline) {
      throw new MirrorError('AWS_ERROR', `table ${tableName} was not active after ${timeoutMs} ms`, {
        retryable: true,
      });
    }
    await sleep(500);
  }
  try {
    await client.send(new UpdateTimeToLiveCommand(timeToLiveDefinition(tableName)));
    return { ttl: 'enabled' };
  } catch (err) {
    if ((err as Error).name === 'UnknownOperationException') return { ttl: 'unsupported' };
    throw translateError(err, 'UpdateTimeToLive', tableName);
  }
}
