import { DescribeImagesCommand, DescribeRepositoriesCommand, ECRClient } from '@aws-sdk/client-ecr';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { STSClient } from '@aws-sdk/client-sts';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { loadConfig } from '../../src/config/config';
import { createResyncHandler } from '../../src/resync/handler';
import type { ResyncInput, ResyncResult } from '../../src/resync/wire';
import { resyncServices } from '../../src/wiring/resync';
import { context as baseContext } from '../fixtures/lambda';
import { mockAssumeRole, mockEcrToken } from '../support/aws-mocks';
import { pushImage } from '../support/content';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { startRegistry, type TestRegistry } from '../support/registry';

const PAGES = 100;
const PER_PAGE = 1_000;
const PAGES_PER_INVOCATION = 30;
const DEST = '222222222222.dkr.ecr.eu-west-1.amazonaws.com';

const ecr = mockClient(ECRClient);
const sts = mockClient(STSClient);
const sqs = mockClient(SQSClient);
const lambda = mockClient(LambdaClient);

let b: TestRegistry;
let dynamo: LocalDynamo;
const held: Record<string, string> = {};

beforeAll(async () => {
  b = await startRegistry();
  dynamo = await startStatusTable('scale');
  // The destination already holds three of the 100,000 tags at the source's digests.
  for (const tag of ['t-0', 't-50000', 't-99999'])
    held[tag] = (await pushImage(b, 'big/app', tag, { layers: [100] })).manifest.digest;
});
afterAll(async () => {
  await Promise.all([b?.stop(), dynamo?.stop()]);
});

const digestOf = (n: number): string => held[`t-${n}`] ?? `sha256:${n.toString(16).padStart(64, '0')}`;

test('100,000 images in pages of 1,000: several invocations, each within its time, totals exact', async () => {
  mockEcrToken(ecr);
  ecr.on(DescribeRepositoriesCommand).resolves({ repositories: [{ repositoryName: 'big/app' }] });
  ecr.on(DescribeImagesCommand).callsFake((input: { nextToken?: string }) => {
    const page = Number(input.nextToken ?? '0');
    return {
      imageDetails: Array.from({ length: PER_PAGE }, (_, i) => {
        const n = page * PER_PAGE + i;
        return { imageDigest: digestOf(n), imageTags: [`t-${n}`] };
      }),
      ...(page + 1 < PAGES && { nextToken: String(page + 1) }),
    };
  });
  mockAssumeRole(sts);
  let enqueued = 0;
  sqs.on(SendMessageBatchCommand).callsFake((input: { Entries: { Id: string }[] }) => {
    enqueued += input.Entries.length;
    return {
      Successful: input.Entries.map((e) => ({ Id: e.Id, MessageId: e.Id, MD5OfMessageBody: '' })),
      Failed: [],
    };
  });
  const continuations: ResyncInput[] = [];
  lambda.on(InvokeCommand).callsFake((input: { Payload: Uint8Array }) => {
    continuations.push(JSON.parse(Buffer.from(input.Payload).toString()));
    return { StatusCode: 202 };
  });

  const config = loadConfig({
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION: 'us-east-1',
    DESTINATIONS: JSON.stringify([
      {
        id: 'b',
        accountId: '222222222222',
        region: 'eu-west-1',
        roleArn: 'arn:aws:iam::222222222222:role/r',
        externalId: 'x-id',
      },
    ]),
    STATUS_TABLE: 'scale',
    MIRROR_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/111111111111/q',
    RESYNC_API_RATE: '100',
    REGISTRY_ENDPOINTS: JSON.stringify({ [DEST]: b.url }),
  });
  const services = resyncServices(config, {
    clients: {
      ecr: new ECRClient({ region: 'us-east-1' }),
      sqs: new SQSClient({ region: 'us-east-1' }),
      lambda: new LambdaClient({ region: 'us-east-1' }),
      dynamodb: dynamo.client,
    },
  });
  const handler = createResyncHandler(services);
  // Each invocation has time for 30 pages of images, then its clock runs short.
  const invocation = (): Context => {
    const start = ecr.commandCalls(DescribeImagesCommand).length;
    return {
      ...baseContext,
      getRemainingTimeInMillis: () =>
        ecr.commandCalls(DescribeImagesCommand).length - start >= PAGES_PER_INVOCATION ? 30_000 : 600_000,
    };
  };

  let result = (await handler({}, invocation())) as ResyncResult;
  while (!result.summary.complete) {
    const next = continuations.shift();
    expect(next?.continuation).toBeDefined();
    result = (await handler(next, invocation())) as ResyncResult;
  }

  expect(result.summary).toMatchObject({
    complete: true,
    invocations: Math.ceil(PAGES / PAGES_PER_INVOCATION),
    repositories: 1,
    checked: PAGES * PER_PAGE,
    inSync: 3,
    enqueued: PAGES * PER_PAGE - 3,
    destinations: { b: { checked: 100_000, inSync: 3, missing: 99_997, different: 0, enqueued: 99_997 } },
    errorCount: 0,
    errors: [],
  });
  expect(enqueued).toBe(99_997);
  // Every page listed once, however many invocations it took.
  expect(ecr.commandCalls(DescribeImagesCommand)).toHaveLength(PAGES);
  // Differences are returned in part (counts stay exact); each page's jobs went out in batches of ten.
  expect(result.differences.length).toBeLessThanOrEqual(1_000);
  expect(sqs.commandCalls(SendMessageBatchCommand)).toHaveLength(PAGES * Math.ceil(PER_PAGE / 10));
}, 120_000);
