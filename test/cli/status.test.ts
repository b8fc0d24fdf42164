import { DynamoDbStatusStore } from '../../src/aws/dynamodb-status-store';
import { parseTarget, queryStatus } from '../../src/cli/status';
import { renderTable, summaryLine } from '../../src/cli/status-table';
import type { FinalStatus, FinishWrite } from '../../src/status/store';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { ensureBuilt, runBuilt } from '../support/run-built';

const TABLE = 'status-cli-test';
const NOW = Date.parse('2026-11-27T12:00:00.000Z');
const DIGEST = `sha256:${'d'.repeat(64)}`;

let dynamo: LocalDynamo;
let store: DynamoDbStatusStore;

function record(
  repo: string,
  ref: string,
  dest: string,
  status: FinalStatus,
  minutesAgo: number,
  extra: Partial<FinishWrite> = {},
) {
  const at = new Date(NOW - minutesAgo * 60_000).toISOString();
  const write: FinishWrite = {
    sourceRepository: repo,
    reference: ref,
    destinationId: dest,
    destinationRepository: repo,
    status,
    tag: ref,
    sourceDigest: DIGEST,
    destinationDigest: DIGEST,
    bytes: 1_500_000,
    blobsCopied: 3,
    blobsSkipped: 1,
    durationMs: 900,
    eventId: `evt-${repo}-${ref}-${dest}`,
    eventTime: at,
    startedAt: at,
    updatedAt: at,
    ...extra,
  };
  return store.finish(write);
}

beforeAll(async () => {
  ensureBuilt('dist/cli.js');
  dynamo = await startStatusTable(TABLE);
  store = new DynamoDbStatusStore(TABLE, 30, dynamo.client);
  await record('team/api', 'v1', 'prod-eu', 'succeeded', 5);
  await record('team/api', 'v1', 'prod-us', 'failed', 4, {
    lastErrorCode: 'NETWORK',
    lastErrorMessage: 'PUT manifest team/api:v1: ECONNRESET',
    bytes: 0,
  });
  await record('team/api', 'v10', 'prod-eu', 'skipped', 3, { blobsCopied: 0, blobsMounted: 2, bytes: 0 });
  await record('team/web', 'latest', 'prod-eu', 'conflict', 30, {
    lastErrorCode: 'TAG_IMMUTABLE',
    lastErrorMessage: 'tag is immutable',
  });
  await record('team/web', 'old', 'prod-eu', 'failed', 60 * 24 * 3, {
    lastErrorCode: 'DENIED',
    lastErrorMessage: 'denied',
  });
});
afterAll(async () => {
  await dynamo?.stop();
});

test('parseTarget', () => {
  expect(parseTarget('team/api')).toEqual({ repository: 'team/api' });
  expect(parseTarget('team/api:v1')).toEqual({ repository: 'team/api', reference: 'v1' });
  expect(parseTarget(`team/api@${DIGEST}`)).toEqual({ repository: 'team/api', reference: DIGEST });
});

test('by repository and tag: exact tag, newest first', async () => {
  const rows = await queryStatus(store, 'team/api:v1', {}, NOW);
  expect(rows.map((r) => [r.destinationId, r.status])).toEqual([
    ['prod-us', 'failed'],
    ['prod-eu', 'succeeded'],
  ]);
  expect((await queryStatus(store, 'team/api', {}, NOW)).map((r) => r.reference)).toEqual([
    'v10',
    'v1',
    'v1',
  ]);
  expect(await queryStatus(store, 'team/api', { destination: 'prod-us' }, NOW)).toHaveLength(1);
});

test('--failed covers failures and conflicts within --since, through the status index', async () => {
  const day = await queryStatus(store, undefined, { failed: true, since: '24h' }, NOW);
  expect(day.map((r) => [r.sourceRepository, r.status])).toEqual([
    ['team/api', 'failed'],
    ['team/web', 'conflict'],
  ]);
  const week = await queryStatus(store, undefined, { failed: true, since: '7d' }, NOW);
  expect(week).toHaveLength(3);
  const everything = await queryStatus(store, undefined, {}, NOW);
  expect(everything.map((r) => r.status)).toEqual(['skipped', 'failed', 'succeeded', 'conflict']);
  await expect(queryStatus(store, undefined, { since: 'yesterday' }, NOW)).rejects.toThrow(
    /--since must be a duration/,
  );
  await expect(queryStatus(store, undefined, { status: 'lost' }, NOW)).rejects.toThrow(
    /--status must be one of/,
  );
});

test('table and summary line', async () => {
  const rows = await queryStatus(store, 'team/api', {}, NOW);
  const plain = renderTable(rows, false);
  expect(plain.split('\n')[0]).toMatch(
    /^UPDATED +STATUS +REPOSITORY +TAG\/DIGEST +DESTINATION +DIGEST +SIZE +BLOBS +TRIES +ERROR$/,
  );
  // Blobs uploaded/mounted/already there.
  expect(plain).toMatch(/ v10 .* 0\/2\/1 /);
  expect(plain).toMatch(/ v1 .*prod-eu .* 3\/0\/1 /);
  expect(plain).toContain('NETWORK: PUT manifest team/api:v1: ECONNRESET');
  expect(plain).toContain('1.5 MB');
  expect(plain).not.toContain('\x1b[');
  expect(renderTable(rows, true)).toContain('\x1b[31mfailed');
  expect(summaryLine(rows)).toBe('3 records: 1 skipped, 1 failed, 1 succeeded');
});

const run = (args: string[]) =>
  runBuilt('dist/cli.js', args, {
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
  });

test('the status command reads the table (SDK endpoint from AWS_ENDPOINT_URL_DYNAMODB)', async () => {
  const text = await run(['status', 'team/api:v1', '--table', TABLE]);
  expect(text.stderr).toBe('');
  expect(text.code).toBe(0);
  expect(text.stdout).toMatch(/prod-us +\w+ +1\.5 MB|failed/);
  expect(text.stdout.trim().split('\n').pop()).toBe('2 records: 1 failed, 1 succeeded');
  const json = await run(['status', 'team/api', '--json', '--table', TABLE]);
  const records = JSON.parse(json.stdout);
  expect(records).toHaveLength(3);
  expect(records.find((r: { reference: string }) => r.reference === 'v10')).toMatchObject({
    blobsCopied: 0,
    blobsMounted: 2,
    blobsSkipped: 1,
  });
  expect(text.stdout).toMatch(/ BLOBS /);
  const missing = await run(['status', '--table', 'no-such-table']);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/^ecr-mirror: AWS_ERROR: .*no-such-table/);
});

describe('stored text from a registry is escaped in text and table output, exact in JSON (defect 3)', () => {
  const FORGED =
    'refused\n2026-11-27 11:59:00  succeeded  team/evil  v1  prod-eu  dddddddddddd  1.5 MB  1\x1b[32m\x1b]0;owned\x07';

  beforeAll(async () => {
    await record('team/evil', 'v1', 'prod-eu', 'failed', 2, {
      lastErrorCode: 'REGISTRY_ERROR',
      lastErrorMessage: FORGED,
      bytes: 0,
    });
  });

  test('renderTable: one line per record, nothing a terminal acts on', async () => {
    const rows = await queryStatus(store, 'team/evil', {}, NOW);
    expect(rows).toHaveLength(1);
    const table = renderTable(rows, false);
    expect(table.split('\n')).toHaveLength(2);
    for (const c of ['\x07', '\x1b']) expect(table).not.toContain(c);
    expect(table).toContain('REGISTRY_ERROR: refused\\n2026-11-27 11:59:00');
    // Colour on: only our own colour codes, around the status.
    expect(renderTable(rows, true).split('\x1b').length - 1).toBe(2);
  });

  test('the status command: text escaped on one line a record, JSON exact', async () => {
    const text = await run(['status', 'team/evil', '--table', TABLE]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines).toHaveLength(3); // header, the record, the summary line
    for (const c of ['\x07', '\x1b']) expect(text.stdout).not.toContain(c);
    expect(lines[2]).toBe('1 record: 1 failed');
    const json = await run(['status', 'team/evil', '--json', '--table', TABLE]);
    expect(JSON.parse(json.stdout)[0].lastErrorMessage).toBe(FORGED);
  });
});
