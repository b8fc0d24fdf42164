import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoDbStatusStore, type DynamoDbStatusStoreOptions } from '../../src/aws/dynamodb-status-store';
import { createStatusTable, tableDefinition } from '../../src/aws/status-table';
import { MirrorError } from '../../src/errors';
import { currentSortKey, type MirrorRecord, partitionKey, type RecordKey } from '../../src/status/schema';
import type { BeginWrite, FinishWrite } from '../../src/status/store';

// dynalite ships no types; it is an http.Server with a DynamoDB API behind it.
const dynalite = require('dynalite') as (options: { createTableMs: number }) => Server;

const TTL_DAYS = 30;
const TABLE = 'mirror-status';
let server: Server;
let client: DynamoDBClient;
let store: DynamoDbStatusStore;

function listen(s: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(s.address() as AddressInfo).port}`));
  });
}

function clientFor(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 1,
  });
}

function storeOn(table: string, options?: DynamoDbStatusStoreOptions): DynamoDbStatusStore {
  return new DynamoDbStatusStore(table, TTL_DAYS, client, options);
}

beforeAll(async () => {
  server = dynalite({ createTableMs: 0 });
  client = clientFor(await listen(server));
  await createStatusTable(client, TABLE);
  store = storeOn(TABLE);
});

afterAll(async () => {
  client?.destroy();
  await new Promise((resolve) => server?.close(resolve));
});

const at = (seconds: number): string => new Date(Date.UTC(2024, 4, 1, 10, 0, seconds)).toISOString();

function key(sourceRepository: string, reference = 'v1', destinationId = 'prod'): RecordKey {
  return { sourceRepository, reference, destinationId };
}

function started(k: RecordKey, eventSecond: number, startSecond: number): BeginWrite {
  return {
    ...k,
    tag: k.reference.startsWith('sha256:') ? undefined : k.reference,
    destinationRepository: `mirror/${k.sourceRepository}`,
    sourceDigest: `sha256:${'a'.repeat(64)}`,
    bytes: 0,
    blobsCopied: 0,
    blobsSkipped: 0,
    durationMs: 0,
    eventId: `event-${eventSecond}`,
    eventTime: at(eventSecond),
    startedAt: at(startSecond),
    updatedAt: at(startSecond),
  };
}

function finished(
  k: RecordKey,
  eventSecond: number,
  startSecond: number,
  extra: Partial<FinishWrite> = {},
): FinishWrite {
  return {
    ...started(k, eventSecond, startSecond),
    status: 'succeeded',
    destinationDigest: `sha256:${'a'.repeat(64)}`,
    bytes: 1234,
    blobsCopied: 3,
    blobsMounted: 2,
    blobsSkipped: 1,
    durationMs: 250,
    updatedAt: at(startSecond + 1),
    ...extra,
  };
}

describe('DynamoDbStatusStore writes', () => {
  test('begin then finish round-trips every field and clears an earlier error', async () => {
    const k = key('team/round-trip');
    await store.finish(
      finished(k, 1, 2, { status: 'failed', lastErrorCode: 'DENIED', lastErrorMessage: 'no' }),
    );

    expect(await store.begin(started(k, 1, 10))).toMatchObject({ written: true });
    expect(await store.get(k)).toMatchObject({ status: 'in_progress', attempts: 2, startedAt: at(10) });

    const result = await store.finish(finished(k, 1, 10));
    const expected: MirrorRecord = {
      sourceRepository: 'team/round-trip',
      reference: 'v1',
      destinationId: 'prod',
      status: 'succeeded',
      tag: 'v1',
      destinationRepository: 'mirror/team/round-trip',
      sourceDigest: `sha256:${'a'.repeat(64)}`,
      destinationDigest: `sha256:${'a'.repeat(64)}`,
      bytes: 1234,
      blobsCopied: 3,
      blobsMounted: 2,
      blobsSkipped: 1,
      durationMs: 250,
      attempts: 2,
      eventId: 'event-1',
      eventTime: at(1),
      startedAt: at(10),
      updatedAt: at(11),
    };
    expect(result).toEqual({ written: true, record: expected });
    // Exactly these fields: no lastError left over, no key or index attributes leaking out.
    expect(await store.get(k)).toEqual(expected);
    expect(await store.get(key('team/round-trip', 'v2'))).toBeUndefined();
  });

  test('an item written before blobsMounted existed reads as 0 mounted, and a write without it stores 0', async () => {
    const k = key('team/older-item');
    const { blobsMounted: _, ...withoutMounted } = finished(k, 1, 2);
    await store.finish(withoutMounted);
    expect(await store.get(k)).toMatchObject({ blobsMounted: 0, blobsCopied: 3 });
    // As an older version of the mirror left it: the attribute absent.
    await DynamoDBDocumentClient.from(client).send(
      new UpdateCommand({
        TableName: TABLE,
        Key: { pk: partitionKey(k.sourceRepository), sk: currentSortKey(k) },
        UpdateExpression: 'REMOVE blobsMounted',
      }),
    );
    expect(await store.get(k)).toMatchObject({ blobsMounted: 0 });
    expect((await store.history(k))[0]).toMatchObject({ blobsMounted: 0 });
  });

  test('attempts counts attempts: begin+finish once, finish alone once, repeats not at all', async () => {
    const k = key('team/attempts');
    await store.begin(started(k, 1, 1));
    expect((await store.finish(finished(k, 1, 1))).record?.attempts).toBe(1);

    expect((await store.begin(started(k, 1, 5))).record?.attempts).toBe(2);
    // A repeated begin of the attempt in progress is written (the caller goes on) but not counted.
    expect(await store.begin(started(k, 1, 5))).toMatchObject({ written: true, record: { attempts: 2 } });
    expect((await store.finish(finished(k, 1, 5))).record?.attempts).toBe(2);
    // A retried finish is idempotent; a begin of an attempt already finished is refused.
    expect((await store.finish(finished(k, 1, 5))).record?.attempts).toBe(2);
    expect(await store.begin(started(k, 1, 5))).toEqual({ written: false });

    expect((await store.finish(finished(k, 1, 9, { status: 'skipped' }))).record?.attempts).toBe(3);
    expect(await store.get(k)).toMatchObject({ status: 'skipped', attempts: 3 });
  });

  test('an older event never overwrites a newer result', async () => {
    const k = key('team/out-of-order');
    expect((await store.finish(finished(k, 20, 21))).written).toBe(true);

    expect(await store.finish(finished(k, 10, 30, { status: 'failed' }))).toEqual({ written: false });
    expect(await store.begin(started(k, 10, 31))).toEqual({ written: false });
    expect(await store.get(k)).toMatchObject({ eventId: 'event-20', status: 'succeeded', attempts: 1 });

    expect((await store.finish(finished(k, 25, 26, { status: 'deleted' }))).written).toBe(true);
    expect(await store.get(k)).toMatchObject({ eventId: 'event-25', status: 'deleted', attempts: 2 });
  });

  test('for the same event, an earlier attempt finishing late never overwrites a later attempt', async () => {
    const k = key('team/same-event');
    await store.begin(started(k, 1, 10)); // A
    await store.begin(started(k, 1, 20)); // B, e.g. a redelivery
    expect(await store.finish(finished(k, 1, 10, { status: 'failed' }))).toEqual({ written: false });
    expect((await store.finish(finished(k, 1, 20, { status: 'conflict' }))).written).toBe(true);
    expect(await store.finish(finished(k, 1, 10))).toEqual({ written: false });
    expect(await store.get(k)).toMatchObject({ status: 'conflict', startedAt: at(20), attempts: 2 });
  });

  test('times compare after normalising, whatever ISO form they come in', async () => {
    const k = key('team/time-forms');
    await store.finish({ ...finished(k, 0, 0), eventTime: '2024-05-01T10:00:00.500Z' });
    // EventBridge's second-precision form is older, though "…00Z" > "…00.500Z" as raw strings.
    const older = { ...finished(k, 0, 5, { status: 'failed' as const }), eventTime: '2024-05-01T10:00:00Z' };
    expect(await store.finish(older)).toEqual({ written: false });
    expect(await store.get(k)).toMatchObject({ status: 'succeeded', eventTime: '2024-05-01T10:00:00.500Z' });
  });

  test('bad input is refused before any write', async () => {
    const k = key('team/bad-input');
    const inProgress = { ...finished(k, 1, 1), status: 'in_progress' } as unknown as FinishWrite;
    await expect(store.finish(inProgress)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.finish({ ...finished(k, 1, 1), eventTime: 'yesterday' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('eventTime'),
    });
    await expect(store.begin(started(key('team/bad-input', 'a#b'), 1, 1))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(await store.get(k)).toBeUndefined();
  });
});

describe('DynamoDbStatusStore history', () => {
  test('every finish appends an entry, superseded ones too, newest first and expiring', async () => {
    const k = key('team/history');
    const before = Math.floor(Date.now() / 1000);
    await store.begin(started(k, 5, 5));
    await store.finish(finished(k, 5, 5));
    await store.finish(finished(k, 1, 8, { status: 'failed', lastErrorCode: 'DENIED' })); // superseded
    await store.finish(finished(k, 6, 10, { status: 'skipped' }));
    await store.finish(finished(key('team/history', 'v10'), 6, 11)); // another tag, same prefix
    const after = Math.floor(Date.now() / 1000);

    const entries = await store.history(k);
    expect(entries.map((e) => [e.status, e.written, e.attempts, e.updatedAt])).toEqual([
      ['skipped', true, 2, at(11)],
      ['failed', false, undefined, at(9)],
      ['succeeded', true, 1, at(6)],
    ]);
    expect(entries[1]).toMatchObject({ eventId: 'event-1', lastErrorCode: 'DENIED' });
    for (const e of entries) {
      expect(e.expiresAt).toBeGreaterThanOrEqual(before + TTL_DAYS * 86_400);
      expect(e.expiresAt).toBeLessThanOrEqual(after + TTL_DAYS * 86_400);
    }
    expect((await store.history(k, 2)).map((e) => e.updatedAt)).toEqual([at(11), at(9)]);
    expect(await storeOn(TABLE, { pageSize: 1 }).history(k, 2)).toEqual(entries.slice(0, 2));
  });

  test('expiry follows the clock and the configured days', async () => {
    const now = Date.UTC(2030, 0, 1);
    const k = key('team/history-clock');
    await new DynamoDbStatusStore(TABLE, 7, client, { now: () => now }).finish(finished(k, 1, 1));
    expect((await store.history(k))[0]?.expiresAt).toBe(now / 1000 + 7 * 86_400);
  });
});

describe('DynamoDbStatusStore queryRepository', () => {
  const repo = 'team/query';
  beforeAll(async () => {
    for (const [reference, destination] of [
      ['v1', 'prod'],
      ['v1', 'dr'],
      ['v10', 'prod'],
      ['v1.1', 'prod'],
      [`sha256:${'b'.repeat(64)}`, 'prod'],
    ] as const) {
      await store.finish(finished(key(repo, reference, destination), 1, 1));
    }
    await store.finish(finished(key(`${repo}-other`, 'v1'), 1, 1));
  });

  test('without a reference: every current item of the repository, no history', async () => {
    const all = await store.queryRepository(repo);
    expect(all.map((r) => `${r.reference}@${r.destinationId}`).sort()).toEqual(
      ['v1@dr', 'v1@prod', 'v1.1@prod', 'v10@prod', `sha256:${'b'.repeat(64)}@prod`].sort(),
    );
    expect(all.every((r) => r.sourceRepository === repo && r.attempts === 1)).toBe(true);
  });

  test('with a reference: exactly that reference, never one it is a prefix of', async () => {
    const v1 = await store.queryRepository(repo, 'v1');
    expect(v1.map((r) => `${r.reference}@${r.destinationId}`).sort()).toEqual(['v1@dr', 'v1@prod']);
    expect(await store.queryRepository(repo, 'v2')).toEqual([]);
  });

  test('follows pages to the end', async () => {
    const paged = storeOn(TABLE, { pageSize: 2 });
    expect(await paged.queryRepository(repo)).toEqual(await store.queryRepository(repo));
    expect(await paged.queryRepository(repo)).toHaveLength(5);
  });
});

describe('DynamoDbStatusStore queryByStatus', () => {
  const table = 'mirror-status-by-status';
  let byStatus: DynamoDbStatusStore;
  beforeAll(async () => {
    await createStatusTable(client, table);
    byStatus = new DynamoDbStatusStore(table, TTL_DAYS, client);
    const failed = (ref: string, dest: string, second: number) =>
      byStatus.finish(finished(key('team/a', ref, dest), 1, second, { status: 'failed' }));
    await failed('v1', 'prod', 10);
    await failed('v2', 'dr', 20);
    await failed('v3', 'prod', 30);
    await failed('v4', 'dr', 40);
    await failed('v5', 'prod', 50);
    // v1 then succeeds: its failure stays in history only.
    await byStatus.finish(finished(key('team/a', 'v1', 'prod'), 1, 60));
    await byStatus.begin(started(key('team/b', 'v1', 'prod'), 1, 70));
  });

  const refs = (records: MirrorRecord[]) => records.map((r) => r.reference);

  test('newest first, current items only', async () => {
    expect(refs(await byStatus.queryByStatus('failed'))).toEqual(['v5', 'v4', 'v3', 'v2']);
    expect(refs(await byStatus.queryByStatus('succeeded'))).toEqual(['v1']);
    expect(await byStatus.queryByStatus('in_progress')).toMatchObject([{ sourceRepository: 'team/b' }]);
    expect(await byStatus.queryByStatus('conflict')).toEqual([]);
  });

  test('since, destination and limit', async () => {
    expect(refs(await byStatus.queryByStatus('failed', { since: new Date(at(31)) }))).toEqual([
      'v5',
      'v4',
      'v3',
    ]);
    expect(refs(await byStatus.queryByStatus('failed', { since: new Date(at(42)) }))).toEqual(['v5']);
    expect(refs(await byStatus.queryByStatus('failed', { destinationId: 'dr' }))).toEqual(['v4', 'v2']);
    expect(refs(await byStatus.queryByStatus('failed', { limit: 3 }))).toEqual(['v5', 'v4', 'v3']);
  });

  test('a filtered, limited query reads page after page until it has enough', async () => {
    const paged = new DynamoDbStatusStore(table, TTL_DAYS, client, { pageSize: 1 });
    expect(refs(await paged.queryByStatus('failed', { destinationId: 'prod', limit: 1 }))).toEqual(['v5']);
    expect(refs(await paged.queryByStatus('failed', { destinationId: 'dr', limit: 2 }))).toEqual([
      'v4',
      'v2',
    ]);
    expect(refs(await paged.queryByStatus('failed', { destinationId: 'dr' }))).toEqual(['v4', 'v2']);
    await expect(paged.queryByStatus('failed', { limit: 0 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });
});

describe('the table', () => {
  test('is created as tableDefinition says, TTL reported unsupported by dynalite', async () => {
    const name = 'mirror-status-definition';
    expect(await createStatusTable(client, name)).toEqual({ ttl: 'unsupported' });
    const { Table } = await client.send(new DescribeTableCommand({ TableName: name }));
    const wanted = tableDefinition(name);
    expect(Table?.KeySchema).toEqual(wanted.KeySchema);
    expect(Table?.GlobalSecondaryIndexes?.[0]).toMatchObject(wanted.GlobalSecondaryIndexes![0]!);
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
  });
});

describe('SDK failures', () => {
  test('a missing table becomes a non-retryable AWS_ERROR naming the table', async () => {
    const missing = storeOn('no-such-table');
    const err = await missing.finish(finished(key('team/x'), 1, 1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MirrorError);
    expect(err).toMatchObject({ code: 'AWS_ERROR', retryable: false });
    expect((err as Error).message).toMatch(
      /^DynamoDB UpdateItem on table no-such-table failed \(does the table exist .*\): ResourceNotFoundException: /,
    );
    expect((err as Error).cause).toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(missing.queryByStatus('failed')).rejects.toMatchObject({
      code: 'AWS_ERROR',
      retryable: false,
    });
  });

  test.each([
    [400, 'ProvisionedThroughputExceededException', true],
    [400, 'ThrottlingException', true],
    [500, 'InternalServerError', true],
    [502, 'UnnamedGatewayFault', true],
    [400, 'ValidationException', false],
  ])('HTTP %i %s becomes AWS_ERROR with retryable %s', async (status, type, retryable) => {
    const fake = createServer((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message: 'refused' }));
    });
    const fakeClient = clientFor(await listen(fake));
    try {
      const s = new DynamoDbStatusStore(TABLE, TTL_DAYS, fakeClient);
      const err = await s.get(key('team/x')).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'AWS_ERROR', retryable });
      expect((err as Error).message).toContain(`GetItem on table ${TABLE} failed: ${type}: refused`);
    } finally {
      fakeClient.destroy();
      await new Promise((resolve) => fake.close(resolve));
    }
  });
});
