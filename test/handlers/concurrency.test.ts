import { DescribeRepositoriesCommand, ECRClient } from '@aws-sdk/client-ecr';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { ChangeMessageVisibilityCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { STSClient } from '@aws-sdk/client-sts';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { loadConfig } from '../../src/config/config';
import { createMirrorHandler } from '../../src/mirror/handler';
import type { MirrorRuntime } from '../../src/mirror/ports';
import type { MirrorRecord } from '../../src/status/schema';
import { mirrorRuntime } from '../../src/wiring/mirror';
import { context, sampleEvent, sqsEvent, sqsRecord } from '../fixtures/lambda';
import { mockAssumeRole, mockEcrToken } from '../support/aws-mocks';
import { getManifest, pushImage } from '../support/content';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, type TestRegistry } from '../support/registry';

/**
 * The mirror Lambda as production runs it: several invocations at once on the same tag, and
 * invocations that meet their deadline. Real registries (B behind a fault proxy), dynalite.
 */

const SOURCE = '111111111111.dkr.ecr.us-east-1.amazonaws.com';
const DEST_B = '222222222222.dkr.ecr.eu-west-1.amazonaws.com';
const TABLE = 'ecr-mirror-concurrency-test';
const DLQ = 'https://sqs.us-east-1.amazonaws.com/111111111111/ecr-mirror-dlq';
const QUEUE = 'https://sqs.us-east-1.amazonaws.com/111111111111/ecr-mirror';

const ecr = mockClient(ECRClient);
const sts = mockClient(STSClient);
const events = mockClient(EventBridgeClient);
const sqs = mockClient(SQSClient);

let a: TestRegistry;
let b: TestRegistry;
let proxy: FaultProxy;
let dynamo: LocalDynamo;

beforeAll(async () => {
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
  proxy = await startFaultProxy(b);
  dynamo = await startStatusTable(TABLE);
  process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamo.endpoint;
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
});
afterAll(async () => {
  delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
  await proxy?.close();
  await Promise.all([a?.stop(), b?.stop(), dynamo?.stop()]);
});
beforeEach(() => {
  for (const m of [ecr, sts, events, sqs]) m.reset();
  proxy.clearFaults();
  mockEcrToken(ecr);
  ecr.on(DescribeRepositoriesCommand).resolves({ repositories: [{ repositoryName: 'x' }] });
  mockAssumeRole(sts);
  events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [] });
  sqs.on(SendMessageCommand).resolves({ MessageId: 'dlq-1' });
  sqs.on(ChangeMessageVisibilityCommand).resolves({});
});

/** One Lambda container: its own runtime (clients, caches), as two concurrent invocations have. */
function container(env: Record<string, string> = {}): MirrorRuntime {
  const config = loadConfig({
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION: 'us-east-1',
    DESTINATIONS: JSON.stringify([
      {
        id: 'b',
        accountId: '222222222222',
        region: 'eu-west-1',
        roleArn: 'arn:aws:iam::222222222222:role/ecr-mirror-destination',
        externalId: 'external-b',
      },
    ]),
    STATUS_TABLE: TABLE,
    DEAD_LETTER_QUEUE_URL: DLQ,
    MIRROR_QUEUE_URL: QUEUE,
    MAX_RECEIVES: '3',
    REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: a.url, [DEST_B]: proxy.url }),
    ...env,
  });
  return mirrorRuntime(config, {
    registry: {
      retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50, maxElapsedMs: 2_000 },
      timeouts: { connectMs: 1_000, headersMs: 20_000, bodyMs: 20_000 },
    },
  });
}

function pushEvent(repository: string, tag: string, digest: string, time: string, id: string) {
  const e = sampleEvent('push');
  e.id = id;
  e.time = time;
  Object.assign(e.detail, { 'repository-name': repository, 'image-tag': tag, 'image-digest': digest });
  return e;
}

/** Every completion event published so far, as the records they carry. */
function published(): (MirrorRecord & { detailType: string })[] {
  return events
    .commandCalls(PutEventsCommand)
    .flatMap((call) => call.args[0].input.Entries ?? [])
    .map((e) => ({ ...(JSON.parse(e.Detail!) as MirrorRecord), detailType: e.DetailType! }));
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('two workers race on one tag, the older one slowed mid-upload: B, the status record and the events all agree with A', async () => {
  // Worker 1 mirrors v1 as first pushed: a big layer, whose upload to B the proxy holds up.
  const old = await pushImage(a, 'race/api', 'v1', { layers: [1_500_000] });
  const bigLayer = old.layers[0]!.digest;
  proxy.fault({
    method: 'PUT',
    path: new RegExp(`/v2/race/api/blobs/uploads/.*digest=${encodeURIComponent(bigLayer)}`),
    times: 1,
    action: { type: 'delay', ms: 3_000 },
  });
  const t1 = new Date(Date.now() - 5_000).toISOString();
  const worker1 = createMirrorHandler(container())(
    sqsEvent(sqsRecord(pushEvent('race/api', 'v1', old.manifest.digest, t1, 'evt-first-push'))),
    context,
  );
  await until(() => proxy.seen('PUT', new RegExp(encodeURIComponent(bigLayer))).length > 0, 'the big upload');

  // Meanwhile v1 is pushed again, and worker 2 mirrors the new image completely.
  const current = await pushImage(a, 'race/api', 'v1', { layers: [4_000] });
  const worker2 = await createMirrorHandler(container())(
    sqsEvent(
      sqsRecord(
        pushEvent('race/api', 'v1', current.manifest.digest, new Date().toISOString(), 'evt-second-push'),
      ),
    ),
    context,
  );
  expect(worker2.batchItemFailures).toEqual([]);
  expect((await getManifest(b, 'race/api', 'v1')).digest).toBe(current.manifest.digest);

  // Worker 1 finishes its upload last.
  expect((await worker1).batchItemFailures).toEqual([]);
  const inA = (await getManifest(a, 'race/api', 'v1')).digest;
  expect(inA).toBe(current.manifest.digest);
  // B's tag was not moved back.
  expect((await getManifest(b, 'race/api', 'v1')).digest).toBe(inA);
  // The status record names the digest B's tag holds.
  const record = await container().store.get({
    sourceRepository: 'race/api',
    reference: 'v1',
    destinationId: 'b',
  });
  expect(record).toMatchObject({
    status: 'succeeded',
    eventId: 'evt-second-push',
    sourceDigest: inA,
    destinationDigest: inA,
  });
  // No event announces the old digest at the destination.
  const mirrored = published().filter((r) => r.detailType === 'Image Mirrored' && r.reference === 'v1');
  expect(mirrored.length).toBeGreaterThan(0);
  for (const r of mirrored) expect(r.destinationDigest).toBe(inA);
  expect(published().filter((r) => r.destinationDigest === old.manifest.digest)).toEqual([]);
}, 60_000);

/** A Lambda context with little time left, as at the end of a 15-minute invocation. */
const endingContext = (ms: number): Context => {
  const end = Date.now() + ms;
  return { ...context, getRemainingTimeInMillis: () => Math.max(0, end - Date.now()) };
};

test('the deadline fires mid-copy: requests aborted, siblings never started, failed/TIMEOUT, retried after a backoff, dead-lettered on the last receive', async () => {
  const img = await pushImage(a, 'slow/api', 'v1', { layers: [40_000, 41_000, 42_000] });
  // B takes every blob upload and never answers.
  proxy.fault({ method: 'PUT', path: /^\/v2\/slow\/api\/blobs\/uploads\//, action: { type: 'stall' } });
  const rt = container({ BLOB_CONCURRENCY: '1' });
  const handler = createMirrorHandler(rt);
  const event = pushEvent('slow/api', 'v1', img.manifest.digest, new Date().toISOString(), 'evt-slow');
  const key = { sourceRepository: 'slow/api', reference: 'v1', destinationId: 'b' };

  const first = sqsRecord(event, 1);
  const started = Date.now();
  const res = await handler(sqsEvent(first), endingContext(4_000));
  // The record's deadline is its remaining time less a margin: it answers before Lambda's timeout.
  expect(Date.now() - started).toBeLessThan(4_000);
  expect(res.batchItemFailures).toEqual([{ itemIdentifier: first.messageId }]);
  expect(await rt.store.get(key)).toMatchObject({ status: 'failed', lastErrorCode: 'TIMEOUT' });
  // Retried after 30 s, not after the queue's 90-minute visibility timeout.
  expect(sqs.commandCalls(ChangeMessageVisibilityCommand).map((c) => c.args[0].input)).toEqual([
    { QueueUrl: QUEUE, ReceiptHandle: first.receiptHandle, VisibilityTimeout: 30 },
  ]);
  // One upload was in flight (aborted); its siblings were never started, and nothing came after.
  const uploads = () => proxy.seen('PUT', /^\/v2\/slow\/api\/blobs\/uploads\//).length;
  expect(uploads()).toBe(1);
  expect(proxy.seen('PUT', /^\/v2\/slow\/api\/manifests\//)).toEqual([]);
  const seen = proxy.requests.length;
  await new Promise((r) => setTimeout(r, 300));
  expect(proxy.requests.length).toBe(seen);

  // The last receive: dead-lettered at once with its reason.
  const last = sqsRecord(event, 3);
  expect((await handler(sqsEvent(last), endingContext(4_000))).batchItemFailures).toEqual([]);
  const letter = sqs.commandCalls(SendMessageCommand)[0]!.args[0].input;
  expect(letter.MessageAttributes?.errorCode?.StringValue).toBe('TIMEOUT');
  expect(letter.MessageAttributes?.reason?.StringValue).toMatch(/^b: .*slow\/api/);
  expect(await rt.store.get(key)).toMatchObject({ status: 'failed', lastErrorCode: 'TIMEOUT', attempts: 2 });
  expect((await getManifest(b, 'slow/api', 'v1')).status).toBe(404);
}, 60_000);

test('a result that loses to a newer one checks the destination: the standing record is corrected to the digest B holds', async () => {
  const rt = container();
  const handler = createMirrorHandler(rt);
  const first = await pushImage(a, 'settle/api', 'v1', { layers: [2_000] });
  await handler(
    sqsEvent(
      sqsRecord(pushEvent('settle/api', 'v1', first.manifest.digest, new Date().toISOString(), 'evt-newest')),
    ),
    context,
  );
  // Something wrote B's tag since (a later copy of a source tag that moved again, say).
  const later = await pushImage(b, 'settle/api', 'v1', { layers: [2_100] });
  events.resetHistory();
  // An older event arrives late: its result loses, and the destination is checked.
  const stale = pushEvent(
    'settle/api',
    'v1',
    first.manifest.digest,
    new Date(Date.now() - 60_000).toISOString(),
    'evt-old',
  );
  expect((await handler(sqsEvent(sqsRecord(stale)), context)).batchItemFailures).toEqual([]);
  const record = await rt.store.get({ sourceRepository: 'settle/api', reference: 'v1', destinationId: 'b' });
  expect(record).toMatchObject({
    eventId: 'evt-newest',
    destinationDigest: later.manifest.digest,
    lastErrorCode: 'CORRECTED',
  });
  // The corrected record is what is announced, and nothing names the digest B no longer holds.
  expect(published().map((r) => [r.detailType, r.destinationDigest])).toEqual([
    [expect.any(String), later.manifest.digest],
  ]);
});
