import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { MirrorError } from '../errors';
import {
  currentSortKey,
  historyPrefix,
  historySortKey,
  MIRROR_STATUSES,
  type MirrorRecord,
  type MirrorStatus,
  partitionKey,
  type RecordKey,
  referencePrefix,
  STATUS_INDEX,
  TABLE_KEYS,
  TTL_ATTRIBUTE,
} from '../status/schema';
import {
  type BeginWrite,
  type FinishWrite,
  type HistoryEntry,
  type StatusQuery,
  type StatusStore,
  type StatusWrite,
  toIsoTime,
  type WriteResult,
} from '../status/store';
import { awsError } from './errors';

type Fields = Omit<MirrorRecord, 'attempts'>;
type Item = Record<string, unknown>;

/** Every stored field, so a new MirrorRecord field fails to compile here until it is stored too. */
const FIELDS: Record<keyof Fields, 'required' | 'optional'> = {
  sourceRepository: 'required',
  reference: 'required',
  destinationId: 'required',
  status: 'required',
  tag: 'optional',
  destinationRepository: 'required',
  sourceDigest: 'optional',
  destinationDigest: 'optional',
  bytes: 'required',
  blobsCopied: 'required',
  blobsMounted: 'required',
  blobsSkipped: 'required',
  durationMs: 'required',
  lastErrorCode: 'optional',
  lastErrorMessage: 'optional',
  eventId: 'required',
  eventTime: 'required',
  startedAt: 'required',
  updatedAt: 'required',
};
const FIELD_NAMES = Object.keys(FIELDS) as (keyof Fields)[];

export interface DynamoDbStatusStoreOptions {
  /** Epoch milliseconds; for `updatedAt` when absent and for history expiry. */
  now?: () => number;
  /** Items asked for per Query page; bounds the read capacity a single call uses. */
  pageSize?: number;
}

/** Placeholders for expressions, registered as used: DynamoDB refuses unused ones. */
class Expression {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, unknown> = {};
  name(attribute: string): string {
    this.names[`#${attribute}`] = attribute;
    return `#${attribute}`;
  }
  value(key: string, value: unknown): string {
    this.values[`:${key}`] = value;
    return `:${key}`;
  }
}

/**
 * The status store on one DynamoDB table (see `schema.ts`). Writes are conditional so that a slower
 * worker never overwrites a newer result; SDK failures leave here as MirrorError (`AWS_ERROR`, or
 * `DENIED` for an access refusal, through `awsError`).
 */
export class DynamoDbStatusStore implements StatusStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly now: () => number;
  private readonly pageSize: number | undefined;

  constructor(
    private readonly tableName: string,
    private readonly historyTtlDays: number,
    client: DynamoDBClient = new DynamoDBClient({}),
    options: DynamoDbStatusStoreOptions = {},
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.now = options.now ?? Date.now;
    this.pageSize = options.pageSize;
  }

  async begin(record: BeginWrite): Promise<WriteResult> {
    const fields = this.normalise(record, 'in_progress');
    // The usual case is a new attempt; a repeated begin of the same attempt is the fallback.
    return (await this.update(fields, 'newer')) ?? (await this.update(fields, 'same')) ?? { written: false };
  }

  async finish(record: FinishWrite): Promise<WriteResult> {
    const status = record.status as MirrorStatus; // callers from plain JSON may pass anything
    if (status === 'in_progress' || !MIRROR_STATUSES.includes(status)) {
      throw new MirrorError('INVALID_ARGUMENT', `finish needs a final status, got "${status}"`);
    }
    const fields = this.normalise(record, status);
    // The usual case is overwriting this attempt's own begin, which must not count again.
    const result = (await this.update(fields, 'same')) ??
      (await this.update(fields, 'newer')) ?? { written: false };
    const expiresAt = Math.floor(this.now() / 1000) + this.historyTtlDays * 86_400;
    const item: Item = {
      [TABLE_KEYS.partition]: partitionKey(fields.sourceRepository),
      [TABLE_KEYS.sort]: historySortKey(fields, fields.updatedAt, fields.eventId),
      ...fields,
      attempts: result.record?.attempts,
      written: result.written,
      [TTL_ATTRIBUTE]: expiresAt,
    };
    await this.call('PutItem', () =>
      this.doc.send(new PutCommand({ TableName: this.tableName, Item: item })),
    );
    return result;
  }

  async get(key: RecordKey): Promise<MirrorRecord | undefined> {
    checkKey(key);
    const out = await this.call('GetItem', () =>
      this.doc.send(new GetCommand({ TableName: this.tableName, Key: itemKey(key), ConsistentRead: true })),
    );
    return out.Item && toRecord(out.Item);
  }

  async queryRepository(repository: string, reference?: string): Promise<MirrorRecord[]> {
    if (reference !== undefined) checkPart('reference', reference);
    const items = await this.query({
      KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
      ExpressionAttributeNames: { '#pk': TABLE_KEYS.partition, '#sk': TABLE_KEYS.sort },
      ExpressionAttributeValues: {
        ':pk': partitionKey(checkPart('repository', repository)),
        ':prefix': reference === undefined ? 'REF#' : referencePrefix(reference),
      },
    });
    return items.map(toRecord);
  }

  async queryByStatus(status: MirrorStatus, query: StatusQuery = {}): Promise<MirrorRecord[]> {
    if (!MIRROR_STATUSES.includes(status)) {
      throw new MirrorError('INVALID_ARGUMENT', `unknown status "${status}"`);
    }
    const e = new Expression();
    let keyCondition = `${e.name(STATUS_INDEX.partition)} = ${e.value('status', status)}`;
    if (query.since) {
      keyCondition += ` AND ${e.name(STATUS_INDEX.sort)} >= ${e.value('since', toIsoTime(query.since, 'since'))}`;
    }
    const filter =
      query.destinationId === undefined
        ? undefined
        : `${e.name('destinationId')} = ${e.value('destinationId', query.destinationId)}`;
    const items = await this.query(
      {
        IndexName: STATUS_INDEX.name,
        KeyConditionExpression: keyCondition,
        FilterExpression: filter,
        ExpressionAttributeNames: e.names,
        ExpressionAttributeValues: e.values,
        ScanIndexForward: false,
      },
      query.limit,
    );
    return items.map(toRecord);
  }

  async history(key: RecordKey, limit?: number): Promise<HistoryEntry[]> {
    checkKey(key);
    const items = await this.query(
      {
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
        ExpressionAttributeNames: { '#pk': TABLE_KEYS.partition, '#sk': TABLE_KEYS.sort },
        ExpressionAttributeValues: {
          ':pk': partitionKey(key.sourceRepository),
          ':prefix': historyPrefix(key),
        },
        ScanIndexForward: false,
      },
      limit,
    );
    return items.map(toHistory);
  }

  /** Picks the known fields, forces the status and normalises the times so they compare as strings. */
  private normalise(record: Omit<StatusWrite, 'status'>, status: MirrorStatus): Fields {
    checkKey(record);
    const fields: Item = {};
    for (const name of FIELD_NAMES) {
      const value = (record as Item)[name];
      if (value !== undefined) fields[name] = value;
    }
    return {
      ...(fields as unknown as Fields),
      blobsMounted: record.blobsMounted ?? 0,
      status,
      eventTime: toIsoTime(record.eventTime, 'eventTime'),
      startedAt: toIsoTime(record.startedAt, 'startedAt'),
      updatedAt: toIsoTime(record.updatedAt ?? new Date(this.now()), 'updatedAt'),
    };
  }

  /**
   * One conditional write of the current item. `same`: the item is this very attempt (its begin, or
   * a retried finish), so it is overwritten without counting; for `in_progress` only while that
   * attempt is still in progress. `newer`: the item is absent or older, and is not this attempt; the
   * write counts one attempt. Answers undefined when the condition fails.
   */
  private async update(fields: Fields, mode: 'same' | 'newer'): Promise<WriteResult | undefined> {
    const e = new Expression();
    const set = FIELD_NAMES.filter((n) => fields[n] !== undefined).map(
      (n) => `${e.name(n)} = ${e.value(n, fields[n])}`,
    );
    set.push(`${e.name(STATUS_INDEX.partition)} = ${e.value('status', fields.status)}`);
    set.push(`${e.name(STATUS_INDEX.sort)} = ${e.value('updatedAt', fields.updatedAt)}`);
    const remove = FIELD_NAMES.filter((n) => FIELDS[n] === 'optional' && fields[n] === undefined).map((n) =>
      e.name(n),
    );
    let expression = `SET ${set.join(', ')}`;
    if (remove.length > 0) expression += ` REMOVE ${remove.join(', ')}`;

    const [eventId, eventTime, startedAt] = [e.name('eventId'), e.name('eventTime'), e.name('startedAt')];
    const sameAttempt = `${eventId} = :eventId AND ${eventTime} = :eventTime AND ${startedAt} = :startedAt`;
    let condition: string;
    if (mode === 'same') {
      condition = sameAttempt;
      if (fields.status === 'in_progress') condition += ` AND ${e.name('status')} = :status`;
    } else {
      expression += ` ADD ${e.name('attempts')} ${e.value('one', 1)}`;
      condition =
        `(attribute_not_exists(${e.name(TABLE_KEYS.partition)}) OR ${eventTime} < :eventTime` +
        ` OR (${eventTime} = :eventTime AND ${startedAt} <= :startedAt)) AND NOT (${sameAttempt})`;
    }
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: itemKey(fields),
          UpdateExpression: expression,
          ConditionExpression: condition,
          ExpressionAttributeNames: e.names,
          ExpressionAttributeValues: e.values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { written: true, record: out.Attributes && toRecord(out.Attributes) };
    } catch (err) {
      if ((err as Error).name === 'ConditionalCheckFailedException') return undefined;
      throw translateError(err, 'UpdateItem', this.tableName);
    }
  }

  /** Follows LastEvaluatedKey until done, or until `limit` items (after any filter) are in hand. */
  private async query(input: Omit<QueryCommandInput, 'TableName'>, limit?: number): Promise<Item[]> {
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
      throw new MirrorError('INVALID_ARGUMENT', `limit must be a positive whole number, got ${limit}`);
    }
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      // Without a filter every item read is returned, so read no more than still needed.
      const remaining = input.FilterExpression || limit === undefined ? undefined : limit - items.length;
      const pageLimit = Math.min(this.pageSize ?? Infinity, remaining ?? Infinity);
      const out = await this.call('Query', () =>
        this.doc.send(
          new QueryCommand({
            ...input,
            TableName: this.tableName,
            ExclusiveStartKey: start,
            Limit: Number.isFinite(pageLimit) ? pageLimit : undefined,
          }),
        ),
      );
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start && (limit === undefined || items.length < limit));
    return limit === undefined ? items : items.slice(0, limit);
  }

  private async call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw translateError(err, operation, this.tableName);
    }
  }
}

/** The adapter's error edge, through the project's one AWS translator, with a hint for a missing table. */
export function translateError(err: unknown, operation: string, tableName: string): MirrorError {
  const missing = (err as { name?: string }).name === 'ResourceNotFoundException';
  const hint = missing ? ' (does the table exist in this account and region?)' : '';
  return awsError(`DynamoDB ${operation} on table ${tableName} failed${hint}`, err);
}

function checkPart(what: string, value: string): string {
  if (value === '' || value.includes('#')) {
    throw new MirrorError('INVALID_ARGUMENT', `${what} "${value}" must be non-empty and without "#"`);
  }
  return value;
}

function checkKey(key: RecordKey): void {
  checkPart('sourceRepository', key.sourceRepository);
  checkPart('reference', key.reference);
  checkPart('destinationId', key.destinationId);
}

function itemKey(key: RecordKey): Item {
  return {
    [TABLE_KEYS.partition]: partitionKey(key.sourceRepository),
    [TABLE_KEYS.sort]: currentSortKey(key),
  };
}

function pick(item: Item, names: readonly string[]): Item {
  const out: Item = {};
  for (const name of names) if (item[name] !== undefined) out[name] = item[name];
  return out;
}

/** Items written before `blobsMounted` existed read as 0 mounted. */
const withMounted = <T extends { blobsMounted?: number }>(value: T): T => ({
  ...value,
  blobsMounted: value.blobsMounted ?? 0,
});

function toRecord(item: Item): MirrorRecord {
  return withMounted(pick(item, [...FIELD_NAMES, 'attempts']) as unknown as MirrorRecord);
}

function toHistory(item: Item): HistoryEntry {
  return withMounted(
    pick(item, [...FIELD_NAMES, 'attempts', 'written', TTL_ATTRIBUTE]) as unknown as HistoryEntry,
  );
}
