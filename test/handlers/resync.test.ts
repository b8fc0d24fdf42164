import { DescribeImagesCommand, DescribeRepositoriesCommand, ECRClient } from '@aws-sdk/client-ecr';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { formatResync, invokeResync } from '../../src/cli/resync';
import { loadConfig } from '../../src/config/config';
import { parseEvent } from '../../src/mirror/event';
import { PERMISSIONS } from '../../src/permissions';
import { createResyncHandler } from '../../src/resync/handler';
import { parseResyncInput, type ResyncInput, type ResyncResult } from '../../src/resync/wire';
import { resyncServices } from '../../src/wiring/resync';
import { context as baseContext } from '../fixtures/lambda';
import { mockAssumeRole, mockEcrToken } from '../support/aws-mocks';
import { pushImage } from '../support/content';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { startRegistry, type TestRegistry } from '../support/registry';

const SOURCE = '111111111111.dkr.ecr.us-east-1.amazonaws.com';
const DEST_B = '222222222222.dkr.ecr.eu-west-1.amazonaws.com';
const DEST_C = '333333333333.dkr.ecr.eu-central-1.amazonaws.com';
const TABLE = 'resync-test';
const QUEUE = 'https://sqs.us-east-1.amazonaws.com/111111111111/ecr-mirror-queue';
const digest = (c: string) => `sha256:${c.repeat(64)}`;

const ecr = mockClient(ECRClient);
const sts = mockClient(STSClient);
const sqs = mockClient(SQSClient);
const lambda = mockClient(LambdaClient);

let b: TestRegistry;
let c: TestRegistry;
let dynamo: LocalDynamo;
let inSyncDigest: string;
let otherDigest: string;

beforeAll(async () => {
  [b, c] = await Promise.all([startRegistry(), startRegistry()]);
  dynamo = await startStatusTable(TABLE);
  // Destination b already holds team/a:v1 at the source's digest, and team/a:v2 at another one.
  inSyncDigest = (await pushImage(b, 'team/a', 'v1', { layers: [1_000] })).manifest.digest;
  otherDigest = (await pushImage(b, 'team/a', 'v2', { layers: [1_000] })).manifest.digest;
});
afterAll(async () => {
  await Promise.all([b?.stop(), c?.stop(), dynamo?.stop()]);
});

beforeEach(() => {
  for (const m of [ecr, sts, sqs, lambda]) m.reset();
  mockEcrToken(ecr);
  // Two pages of repositories; team/a has two pages of images.
  ecr.on(DescribeRepositoriesCommand, { nextToken: undefined } as never).resolves({
    repositories: [{ repositoryName: 'team/a' }, { repositoryName: 'other/x' }],
    nextToken: 'repos-2',
  });
  ecr
    .on(DescribeRepositoriesCommand, { nextToken: 'repos-2' })
    .resolves({ repositories: [{ repositoryName: 'team/b' }] });
  ecr.on(DescribeImagesCommand, { repositoryName: 'team/a', nextToken: undefined } as never).resolves({
    imageDetails: [
      { imageDigest: inSyncDigest, imageTags: ['v1'] },
      { imageDigest: digest('2'), imageTags: ['v2', 'v2-dev'] },
    ],
    nextToken: 'images-2',
  });
  ecr.on(DescribeImagesCommand, { repositoryName: 'team/a', nextToken: 'images-2' }).resolves({
    imageDetails: [{ imageDigest: digest('3'), imageTags: ['v3'] }],
  });
  ecr.on(DescribeImagesCommand, { repositoryName: 'team/b' }).resolves({
    imageDetails: [{ imageDigest: digest('4'), imageTags: ['v1'] }],
  });
  ecr
    .on(DescribeImagesCommand, { repositoryName: 'other/x' })
    .rejects(new Error('other/x must be filtered out'));
  mockAssumeRole(sts);
  sqs.on(SendMessageBatchCommand).callsFake((input) => ({
    Successful: input.Entries.map((e: { Id: string }) => ({
      Id: e.Id,
      MessageId: `m-${e.Id}`,
      MD5OfMessageBody: '',
    })),
  }));
  lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
});

function services() {
  const config = loadConfig({
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION: 'us-east-1',
    DESTINATIONS: JSON.stringify(
      [
        ['b', '222222222222', 'eu-west-1'],
        ['c', '333333333333', 'eu-central-1'],
      ].map(([id, accountId, region]) => ({
        id,
        accountId,
        region,
        roleArn: `arn:aws:iam::${accountId}:role/ecr-mirror-destination`,
        externalId: 'x-id',
      })),
    ),
    STATUS_TABLE: TABLE,
    MIRROR_QUEUE_URL: QUEUE,
    REPOSITORY_INCLUDE: 'team/*',
    TAG_EXCLUDE: '*-dev',
    RESYNC_API_RATE: '100',
    REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: 'http://127.0.0.1:9', [DEST_B]: b.url, [DEST_C]: c.url }),
  });
  return resyncServices(config, {
    clients: {
      ecr: new ECRClient({ region: 'us-east-1' }),
      sqs: new SQSClient({ region: 'us-east-1' }),
      lambda: new LambdaClient({ region: 'us-east-1' }),
      dynamodb: dynamo.client,
    },
  });
}

/** A context whose time runs short once this many image pages have been listed in total. */
function contextRunningOutAfter(pages: number): Context {
  return {
    ...baseContext,
    getRemainingTimeInMillis: () =>
      ecr.commandCalls(DescribeImagesCommand).length >= pages ? 10_000 : 600_000,
  };
}

test('a dry run reports what is missing or different per destination and changes nothing', async () => {
  const handler = createResyncHandler(services());
  const result = (await handler({ dryRun: true }, baseContext)) as ResyncResult;
  expect(result.summary).toMatchObject({
    dryRun: true,
    complete: true,
    repositories: 2,
    checked: 4, // team/a v1 v2 v3, team/b v1 (v2-dev filtered)
    inSync: 0,
    enqueued: 0,
    destinations: {
      b: { checked: 4, inSync: 1, missing: 2, different: 1, enqueued: 0 },
      c: { checked: 4, inSync: 0, missing: 4, different: 0, enqueued: 0 },
    },
    errorCount: 0,
    errors: [],
  });
  const diff = result.differences
    .map((d) => `${d.repository}:${d.tag}->${d.destinationId}:${d.reason}`)
    .sort();
  expect(diff).toEqual([
    'team/a:v1->c:missing',
    'team/a:v2->b:different',
    'team/a:v2->c:missing',
    'team/a:v3->b:missing',
    'team/a:v3->c:missing',
    'team/b:v1->b:missing',
    'team/b:v1->c:missing',
  ]);
  expect(result.differences.find((d) => d.tag === 'v2' && d.destinationId === 'b')?.destinationDigest).toBe(
    otherDigest,
  );
  expect(sqs.commandCalls(SendMessageBatchCommand)).toHaveLength(0);
  expect(formatResync(result.summary, result.differences)).toContain('team/a:v2 -> b:team/a  has');
});

test('its destination sessions may only read: AssumeRole carries a session policy of its reads', async () => {
  const handler = createResyncHandler(services());
  await handler({ dryRun: true }, baseContext);
  const calls = sts.commandCalls(AssumeRoleCommand);
  expect(calls.length).toBeGreaterThan(0);
  // What the resync does at a destination (src/permissions.ts): a token, manifest HEADs, tag lists.
  const reads = PERMISSIONS.resync.filter((p) => p.caller === 'destination').map((p) => p.action);
  expect(reads.sort()).toEqual(['ecr:BatchGetImage', 'ecr:GetAuthorizationToken', 'ecr:ListImages']);
  for (const call of calls) {
    const policy = JSON.parse(call.args[0].input.Policy ?? 'null');
    expect(policy).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: reads, Resource: '*' }],
    });
  }
});

test('a run enqueues one job per image, for the destinations that need it, on the mirror path', async () => {
  const result = (await createResyncHandler(services())({}, baseContext)) as ResyncResult;
  expect(result.summary).toMatchObject({
    complete: true,
    enqueued: 4,
    destinations: { b: { enqueued: 3 }, c: { enqueued: 4 } },
  });
  const bodies = sqs
    .commandCalls(SendMessageBatchCommand)
    .flatMap((call) => call.args[0].input.Entries!.map((e) => e.MessageBody!));
  expect(sqs.commandCalls(SendMessageBatchCommand)[0]!.args[0].input.QueueUrl).toBe(QUEUE);
  const jobs = bodies.map((body) => {
    const parsed = parseEvent(body);
    if (parsed.kind !== 'action') throw new Error(`not an action: ${body}`);
    return `${parsed.action.repository}:${parsed.action.tag}@${parsed.action.digest?.slice(7, 8)}->${parsed.action.destinations?.join('+')}`;
  });
  expect(jobs.sort()).toEqual([
    `team/a:v1@${inSyncDigest.slice(7, 8)}->c`,
    'team/a:v2@2->b+c',
    'team/a:v3@3->b+c',
    'team/b:v1@4->b+c',
  ]);
  // The summary is recorded in the status table.
  const doc = DynamoDBDocumentClient.from(dynamo.client);
  const items = await doc.send(
    new QueryCommand({
      TableName: TABLE,
      KeyConditionExpression: 'pk = :p',
      ExpressionAttributeValues: { ':p': 'RESYNC' },
    }),
  );
  expect(items.Items?.some((i) => i.runId === result.summary.runId && i.enqueued === 4)).toBe(true);
});

test('out of time: it continues from its pagination tokens in a new invocation, and the totals add up', async () => {
  const handler = createResyncHandler(services());
  // Enough time for the first page of team/a's images, then too little.
  const first = (await handler({}, contextRunningOutAfter(1))) as ResyncResult;
  expect(first.summary.complete).toBe(false);
  expect(first.continuation).toMatchObject({ repositoryIndex: 0, imagesToken: 'images-2' });
  const invoke = lambda.commandCalls(InvokeCommand)[0]!.args[0].input;
  expect(invoke).toMatchObject({ FunctionName: baseContext.invokedFunctionArn, InvocationType: 'Event' });
  const payload = JSON.parse(Buffer.from(invoke.Payload as Uint8Array).toString()) as ResyncInput;

  const second = (await handler(payload, baseContext)) as ResyncResult;
  expect(second.summary).toMatchObject({
    complete: true,
    invocations: 2,
    checked: 4,
    repositories: 2,
    enqueued: 4,
  });
  expect(second.summary.runId).toBe(first.summary.runId);
  // team/a's first image page was not listed again.
  const firstPages = ecr
    .commandCalls(DescribeImagesCommand)
    .filter((call) => call.args[0].input.repositoryName === 'team/a' && !call.args[0].input.nextToken);
  expect(firstPages).toHaveLength(1);
});

test('the resync command calls again with the continuation until the run is complete', async () => {
  const handler = createResyncHandler(services());
  const contexts = [contextRunningOutAfter(1), baseContext];
  lambda.on(InvokeCommand).callsFake(async (input) => {
    const payload = JSON.parse(Buffer.from(input.Payload).toString());
    const result = await handler(payload, contexts.shift() ?? baseContext);
    return { StatusCode: 200, Payload: Buffer.from(JSON.stringify(result)) as never };
  });
  const progress: number[] = [];
  const { summary, differences } = await invokeResync(
    new LambdaClient({ region: 'us-east-1' }),
    'ecr-mirror-dev-resync',
    { dryRun: true },
    (s) => progress.push(s.checked),
  );
  expect(progress).toEqual([2, 4]);
  expect(summary).toMatchObject({ complete: true, checked: 4, invocations: 2 });
  expect(differences).toHaveLength(7);
  const calls = lambda
    .commandCalls(InvokeCommand)
    .map((call) => JSON.parse(Buffer.from(call.args[0].input.Payload as Uint8Array).toString()));
  expect(calls.every((p) => p.continueInBackground === false)).toBe(true);

  lambda.on(InvokeCommand).resolves({
    StatusCode: 200,
    FunctionError: 'Unhandled',
    // The SDK wraps payloads in a blob adapter; a plain buffer carries the same bytes.
    Payload: Buffer.from('{"errorMessage":"boom"}') as never,
  });
  await expect(invokeResync(new LambdaClient({ region: 'us-east-1' }), 'f', {})).rejects.toThrow(
    'f failed: boom',
  );
});

test('bad input is refused with a clear reason', () => {
  expect(() => parseResyncInput({ dryRun: 'yes' })).toThrow(/resync input dryRun/);
  expect(parseResyncInput({ version: '0', 'detail-type': 'Scheduled Event' })).toEqual({});
});
