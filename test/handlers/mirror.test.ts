import {
  BatchDeleteImageCommand,
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  ECRClient,
} from '@aws-sdk/client-ecr';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { loadConfig } from '../../src/config/config';
import { MediaType } from '../../src/core/media-types';
import { fallbackTag } from '../../src/core/referrers';
import { createMirrorHandler } from '../../src/mirror/handler';
import type { MirrorRuntime } from '../../src/mirror/ports';
import { jobEvent } from '../../src/resync/wire';
import { mirrorRuntime } from '../../src/wiring/mirror';
import { context, sampleEvent, sqsEvent, sqsRecord } from '../fixtures/lambda';
import { mockAssumeRole, mockEcrToken } from '../support/aws-mocks';
import { getManifest, pushBlob, pushImage, pushIndex, pushManifest } from '../support/content';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { ociError, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_PASSWORD, TEST_USER, type TestRegistry } from '../support/registry';

const SOURCE = '111111111111.dkr.ecr.us-east-1.amazonaws.com';
const DEST_B = '222222222222.dkr.ecr.eu-west-1.amazonaws.com';
const DEST_C = '333333333333.dkr.ecr.eu-central-1.amazonaws.com';
const TABLE = 'ecr-mirror-status-test';
const DLQ = 'https://sqs.us-east-1.amazonaws.com/111111111111/ecr-mirror-dlq';
const SECRET_KEY = 'assumed-secret-access-key-value';

const ecr = mockClient(ECRClient);
const sts = mockClient(STSClient);
const events = mockClient(EventBridgeClient);
const sqs = mockClient(SQSClient);

let a: TestRegistry;
let b: TestRegistry;
let c: TestRegistry;
let dynamo: LocalDynamo;
let logs: string[] = [];
const realStdout = process.stdout.write.bind(process.stdout);

beforeAll(async () => {
  [a, b, c] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
  dynamo = await startStatusTable(TABLE);
  process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamo.endpoint;
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
});
afterAll(async () => {
  delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
  await Promise.all([a?.stop(), b?.stop(), c?.stop(), dynamo?.stop()]);
});

beforeEach(() => {
  for (const m of [ecr, sts, events, sqs]) m.reset();
  // The mocked ECR token is the test registries' Basic credentials, so the real registries accept it.
  mockEcrToken(ecr);
  ecr.on(DescribeRepositoriesCommand).resolves({ repositories: [{ repositoryName: 'x' }] });
  mockAssumeRole(sts, SECRET_KEY, 'assumed-session-token');
  events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [] });
  sqs.on(SendMessageCommand).resolves({ MessageId: 'dlq-1' });
  logs = [];
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    logs.push(chunk.toString());
    return (realStdout as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
});
afterEach(() => {
  process.stdout.write = realStdout;
  // No credential in any log line: registry password, its Basic form, the ECR token, assumed keys.
  const all = logs.join('');
  for (const secret of [
    TEST_PASSWORD,
    Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64'),
    SECRET_KEY,
    'assumed-session-token',
  ]) {
    expect(all).not.toContain(secret);
  }
});

const destination = (id: string, account: string, region: string, extra: Record<string, unknown> = {}) => ({
  id,
  accountId: account,
  region,
  roleArn: `arn:aws:iam::${account}:role/ecr-mirror-destination`,
  externalId: `external-${id}`,
  ...extra,
});

function runtime(env: Record<string, string> = {}, endpoints: Record<string, string> = {}): MirrorRuntime {
  const config = loadConfig({
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION: 'us-east-1',
    DESTINATIONS: JSON.stringify([destination('b', '222222222222', 'eu-west-1')]),
    STATUS_TABLE: TABLE,
    DEAD_LETTER_QUEUE_URL: DLQ,
    MAX_RECEIVES: '3',
    REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: a.url, [DEST_B]: b.url, [DEST_C]: c.url, ...endpoints }),
    ...env,
  });
  return mirrorRuntime(config, {
    registry: {
      retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50, maxElapsedMs: 2_000 },
      timeouts: { connectMs: 1_000, headersMs: 5_000, bodyMs: 5_000 },
    },
  });
}

function pushEvent(
  repository: string,
  tag: string,
  digest: string,
  time = new Date().toISOString(),
  id?: string,
) {
  const e = sampleEvent('push');
  e.id = id ?? `evt-${repository}-${tag}-${Math.random().toString(36).slice(2)}`;
  e.time = time;
  Object.assign(e.detail, { 'repository-name': repository, 'image-tag': tag, 'image-digest': digest });
  return e;
}

test('a push lands byte-identical with a succeeded record and a completion event', async () => {
  const rt = runtime();
  const img = await pushImage(a, 'team/api', 'v1', { layers: [30_000, 10_000] });
  const res = await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(pushEvent('team/api', 'v1', img.manifest.digest))),
    context,
  );
  expect(res.batchItemFailures).toEqual([]);
  const got = await getManifest(b, 'team/api', 'v1');
  expect(got.digest).toBe(img.manifest.digest);
  expect(got.bytes.equals(img.bytes)).toBe(true);

  const record = await rt.store.get({ sourceRepository: 'team/api', reference: 'v1', destinationId: 'b' });
  expect(record).toMatchObject({
    status: 'succeeded',
    sourceDigest: img.manifest.digest,
    destinationDigest: img.manifest.digest,
    destinationRepository: 'team/api',
    blobsCopied: 3,
    attempts: 1,
  });
  expect(record!.bytes).toBeGreaterThan(40_000);
  const assume = sts.commandCalls(AssumeRoleCommand)[0]!.args[0].input;
  expect(assume).toMatchObject({
    RoleArn: 'arn:aws:iam::222222222222:role/ecr-mirror-destination',
    ExternalId: 'external-b',
  });
  expect(assume.RoleSessionName).toMatch(/^ecr-mirror/);
  const published = events.commandCalls(PutEventsCommand)[0]!.args[0].input.Entries!;
  expect(published).toHaveLength(1);
  expect(published[0]).toMatchObject({ Source: 'ecr-mirror', DetailType: 'Image Mirrored' });
  expect(JSON.parse(published[0]!.Detail!)).toMatchObject({
    sourceRepository: 'team/api',
    status: 'succeeded',
  });
  // The structured log line names the event, repository, tag, digest and destination.
  const line = logs.map((l) => JSON.parse(l)).find((l) => l.message === 'image mirrored');
  expect(line).toMatchObject({
    repository: 'team/api',
    tag: 'v1',
    digest: img.manifest.digest,
    destination: 'b',
    status: 'succeeded',
  });
});

test('several destinations, renamed by prefix and template; filters leave the rest', async () => {
  const rt = runtime({
    DESTINATIONS: JSON.stringify([
      destination('b', '222222222222', 'eu-west-1', { repository: { addPrefix: 'mirror/' } }),
      destination('c', '333333333333', 'eu-central-1', { repository: { template: 'copies/{name}' } }),
    ]),
    REPOSITORY_INCLUDE: 'apps/*',
    TAG_EXCLUDE: '*-dev',
  });
  const handler = createMirrorHandler(rt);
  const img = await pushImage(a, 'apps/web', 'v2', { layers: [5_000] });
  const dev = await pushImage(a, 'apps/web', 'v2-dev', { layers: [5_000] });
  const other = await pushImage(a, 'tools/ci', 'v2', { layers: [5_000] });
  const res = await handler(
    sqsEvent(
      sqsRecord(pushEvent('apps/web', 'v2', img.manifest.digest)),
      sqsRecord(pushEvent('apps/web', 'v2-dev', dev.manifest.digest)),
      sqsRecord(pushEvent('tools/ci', 'v2', other.manifest.digest)),
    ),
    context,
  );
  expect(res.batchItemFailures).toEqual([]);
  expect((await getManifest(b, 'mirror/apps/web', 'v2')).digest).toBe(img.manifest.digest);
  expect((await getManifest(c, 'copies/web', 'v2')).digest).toBe(img.manifest.digest);
  expect((await getManifest(b, 'mirror/apps/web', 'v2-dev')).status).toBe(404);
  expect((await getManifest(b, 'mirror/tools/ci', 'v2')).status).toBe(404);
  expect(await rt.store.queryRepository('apps/web')).toHaveLength(2);
  expect(
    sts
      .commandCalls(AssumeRoleCommand)
      .map((call) => call.args[0].input.ExternalId)
      .sort(),
  ).toEqual(['external-b', 'external-c']);
});

test('a resync job takes the push path, only to the destinations it names', async () => {
  const rt = runtime({
    DESTINATIONS: JSON.stringify([
      destination('b', '222222222222', 'eu-west-1'),
      destination('c', '333333333333', 'eu-central-1'),
    ]),
  });
  const img = await pushImage(a, 'healed', 'v1', { layers: [2_000] });
  const job = jobEvent(
    { repository: 'healed', tag: 'v1', digest: img.manifest.digest, destinations: ['c'] },
    '111111111111',
    'us-east-1',
  );
  const res = await createMirrorHandler(rt)(sqsEvent(sqsRecord(job)), context);
  expect(res.batchItemFailures).toEqual([]);
  expect((await getManifest(c, 'healed', 'v1')).digest).toBe(img.manifest.digest);
  expect((await getManifest(b, 'healed', 'v1')).status).toBe(404);
  expect((await rt.store.queryRepository('healed')).map((r) => r.destinationId)).toEqual(['c']);
});

test('a multi-arch push: children by digest with no tag, then the index with its tag', async () => {
  const rt = runtime();
  const handler = createMirrorHandler(rt);
  const amd = await pushImage(a, 'multi', undefined, {
    layers: [4_000],
    platform: { architecture: 'amd64', os: 'linux' },
  });
  const arm = await pushImage(a, 'multi', undefined, {
    layers: [4_000],
    platform: { architecture: 'arm64', os: 'linux' },
  });
  const index = await pushIndex(a, 'multi', 'v1', [
    { descriptor: amd.manifest },
    { descriptor: arm.manifest },
  ]);
  const child = sampleEvent('push-multiarch-child');
  child.detail['repository-name'] = 'multi';
  child.detail['image-digest'] = amd.manifest.digest;
  const res = await handler(sqsEvent(sqsRecord(child)), context);
  expect(res.batchItemFailures).toEqual([]);
  expect((await getManifest(b, 'multi', amd.manifest.digest)).status).toBe(200);
  expect(
    await rt.store.get({ sourceRepository: 'multi', reference: amd.manifest.digest, destinationId: 'b' }),
  ).toMatchObject({
    status: 'succeeded',
  });
  await handler(sqsEvent(sqsRecord(pushEvent('multi', 'v1', index.descriptor.digest))), context);
  expect((await getManifest(b, 'multi', 'v1')).digest).toBe(index.descriptor.digest);
});

test('missing destination repositories are created with the configured settings, or the failure says so', async () => {
  const settings = {
    tagMutability: 'IMMUTABLE',
    scanOnPush: true,
    encryption: { type: 'KMS', kmsKey: 'arn:aws:kms:eu-west-1:222222222222:key/abc' },
    tags: { team: 'platform' },
  };
  const rt = runtime({ REPOSITORY_SETTINGS: JSON.stringify(settings) });
  ecr
    .on(DescribeRepositoriesCommand)
    .rejects(Object.assign(new Error('no such repository'), { name: 'RepositoryNotFoundException' }));
  ecr.on(CreateRepositoryCommand).resolves({});
  const img = await pushImage(a, 'fresh/repo', 'v1', { layers: [1_000] });
  await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(pushEvent('fresh/repo', 'v1', img.manifest.digest))),
    context,
  );
  expect(ecr.commandCalls(CreateRepositoryCommand)[0]!.args[0].input).toEqual({
    repositoryName: 'fresh/repo',
    imageTagMutability: 'IMMUTABLE',
    imageScanningConfiguration: { scanOnPush: true },
    encryptionConfiguration: { encryptionType: 'KMS', kmsKey: 'arn:aws:kms:eu-west-1:222222222222:key/abc' },
    tags: [{ Key: 'team', Value: 'platform' }],
  });
  expect((await getManifest(b, 'fresh/repo', 'v1')).digest).toBe(img.manifest.digest);

  const off = runtime({ CREATE_REPOSITORIES: 'false' });
  const res = await createMirrorHandler(off)(
    sqsEvent(sqsRecord(pushEvent('fresh/other', 'v1', img.manifest.digest))),
    context,
  );
  expect(res.batchItemFailures).toEqual([]); // not retryable: dead-lettered with its reason instead
  const record = await off.store.get({
    sourceRepository: 'fresh/other',
    reference: 'v1',
    destinationId: 'b',
  });
  expect(record).toMatchObject({ status: 'failed', lastErrorCode: 'NOT_FOUND' });
  expect(record!.lastErrorMessage).toMatch(
    /fresh\/other in 222222222222\/eu-west-1 does not exist.*CREATE_REPOSITORIES/,
  );
  const letter = sqs.commandCalls(SendMessageCommand)[0]!.args[0].input;
  expect(letter.QueueUrl).toBe(DLQ);
  expect(letter.MessageAttributes?.errorCode?.StringValue).toBe('NOT_FOUND');
});

test('events delivered in reverse order and twice: the tag never moves back, duplicates are no-ops', async () => {
  const rt = runtime();
  const handler = createMirrorHandler(rt);
  const older = await pushImage(a, 'ordered', 'v1', { layers: [2_000] });
  const t1 = new Date(Date.now() - 60_000).toISOString();
  const newer = await pushImage(a, 'ordered', 'v1', { layers: [3_000] });
  const t2 = new Date().toISOString();
  const e1 = pushEvent('ordered', 'v1', older.manifest.digest, t1, 'evt-older');
  const e2 = pushEvent('ordered', 'v1', newer.manifest.digest, t2, 'evt-newer');

  await handler(sqsEvent(sqsRecord(e2)), context);
  await handler(sqsEvent(sqsRecord(e1)), context); // late, older
  await handler(sqsEvent(sqsRecord(e2)), context); // duplicate
  expect((await getManifest(b, 'ordered', 'v1')).digest).toBe(newer.manifest.digest);
  const record = await rt.store.get({ sourceRepository: 'ordered', reference: 'v1', destinationId: 'b' });
  expect(record).toMatchObject({ eventId: 'evt-newer', sourceDigest: newer.manifest.digest });
  // The duplicate found everything in place: nothing sent.
  expect(record).toMatchObject({ status: 'skipped', blobsCopied: 0, bytes: 0 });
  const history = await rt.store.history({
    sourceRepository: 'ordered',
    reference: 'v1',
    destinationId: 'b',
  });
  expect(history).toHaveLength(3);
  // The late, older event was recorded as superseded without touching any registry.
  expect(history.find((h) => h.eventId === 'evt-older')).toMatchObject({ written: false, status: 'skipped' });
});

test('an immutable destination tag: same digest is done, another digest is a conflict, not retried', async () => {
  // ECR's answer to a PUT over an existing immutable tag, from a proxy in front of the real registry B.
  const proxy = await startFaultProxy(b);
  try {
    const rt = runtime({}, { [DEST_B]: proxy.url });
    const handler = createMirrorHandler(rt);
    const first = await pushImage(a, 'locked', 'v1', { layers: [1_000] });
    await handler(sqsEvent(sqsRecord(pushEvent('locked', 'v1', first.manifest.digest))), context);
    // From now on the tag exists, and the destination refuses to move it, as ECR does.
    proxy.fault({
      method: 'PUT',
      path: /^\/v2\/locked\/manifests\/(?!sha256:)[^/]+$/,
      action: {
        type: 'status',
        status: 400,
        body: ociError(
          'TAG_INVALID',
          "The image tag 'v1' already exists in the 'locked' repository and cannot be overwritten because the tag is immutable.",
        ),
      },
    });
    // The same digest again: done after one look at the destination.
    const again = await handler(
      sqsEvent(sqsRecord(pushEvent('locked', 'v1', first.manifest.digest))),
      context,
    );
    expect(again.batchItemFailures).toEqual([]);
    const key = { sourceRepository: 'locked', reference: 'v1', destinationId: 'b' };
    expect(await rt.store.get(key)).toMatchObject({ status: 'skipped' });

    const moved = await pushImage(a, 'locked', 'v1', { layers: [1_100] });
    const res = await handler(sqsEvent(sqsRecord(pushEvent('locked', 'v1', moved.manifest.digest))), context);
    expect(res.batchItemFailures).toEqual([]);
    expect(await rt.store.get(key)).toMatchObject({
      status: 'conflict',
      lastErrorCode: 'TAG_IMMUTABLE',
      sourceDigest: moved.manifest.digest,
      destinationDigest: first.manifest.digest,
    });
    expect((await getManifest(b, 'locked', 'v1')).digest).toBe(first.manifest.digest);
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(0);
    const types = events
      .commandCalls(PutEventsCommand)
      .flatMap((c) => c.args[0].input.Entries!.map((e) => e.DetailType));
    expect(types).toEqual(['Image Mirrored', 'Image Mirror Skipped', 'Image Mirror Conflict']);
  } finally {
    await proxy.close();
  }
});

test('a malformed event is recorded as a failure with its reason and dead-lettered, not retried', async () => {
  const rt = runtime();
  const res = await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(sampleEvent('malformed')), sqsRecord('{not json')),
    context,
  );
  expect(res.batchItemFailures).toEqual([]);
  const letters = sqs.commandCalls(SendMessageCommand).map((call) => call.args[0].input);
  expect(letters).toHaveLength(2);
  expect(letters.map((l) => l.MessageAttributes?.errorCode?.StringValue)).toEqual([
    'INVALID_EVENT',
    'INVALID_EVENT',
  ]);
  const reasons = letters.map((l) => l.MessageAttributes?.reason?.StringValue);
  expect(reasons).toEqual(
    expect.arrayContaining([
      expect.stringMatching(/repository-name is not a repository name .*: "Team\/API"/),
    ]),
  );
  const failed = await rt.store.queryByStatus('failed');
  expect(
    failed.some((r) => r.lastErrorCode === 'INVALID_EVENT' && /not JSON/.test(r.lastErrorMessage ?? '')),
  ).toBe(true);
});

test('other action types and detail-types are ignored', async () => {
  const rt = runtime();
  const scan = { ...sampleEvent('push'), 'detail-type': 'ECR Image Scan' };
  const archive = sampleEvent('push');
  archive.detail['action-type'] = 'UPDATE_STORAGE_CLASS';
  const res = await createMirrorHandler(rt)(sqsEvent(sqsRecord(scan), sqsRecord(archive)), context);
  expect(res.batchItemFailures).toEqual([]);
  expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(0);
  expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(0);
});

test('a destination that is down: batch failure, then the dead-letter queue on the last receive', async () => {
  // Nothing listens on port 9 of loopback.
  const rt = runtime({}, { [DEST_B]: 'http://127.0.0.1:9' });
  const handler = createMirrorHandler(rt);
  const img = await pushImage(a, 'down', 'v1', { layers: [1_000] });
  const event = pushEvent('down', 'v1', img.manifest.digest);
  const first = sqsRecord(event, 1);
  expect((await handler(sqsEvent(first), context)).batchItemFailures).toEqual([
    { itemIdentifier: first.messageId },
  ]);
  expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(0);
  const last = sqsRecord(event, 3);
  expect((await handler(sqsEvent(last), context)).batchItemFailures).toEqual([]);
  const letter = sqs.commandCalls(SendMessageCommand)[0]!.args[0].input;
  expect(letter.MessageAttributes?.errorCode?.StringValue).toBe('NETWORK');
  expect(JSON.parse(letter.MessageBody!).id).toBe(event.id);
  expect(await rt.store.get({ sourceRepository: 'down', reference: 'v1', destinationId: 'b' })).toMatchObject(
    {
      status: 'failed',
      lastErrorCode: 'NETWORK',
      attempts: 2,
    },
  );
});

test('assume-role denied: a failed record with a clear reason', async () => {
  const rt = runtime();
  sts
    .on(AssumeRoleCommand)
    .rejects(
      Object.assign(new Error('User is not authorized to perform: sts:AssumeRole'), { name: 'AccessDenied' }),
    );
  const img = await pushImage(a, 'denied', 'v1', { layers: [1_000] });
  const res = await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(pushEvent('denied', 'v1', img.manifest.digest))),
    context,
  );
  expect(res.batchItemFailures).toEqual([]);
  const record = await rt.store.get({ sourceRepository: 'denied', reference: 'v1', destinationId: 'b' });
  expect(record).toMatchObject({ status: 'failed', lastErrorCode: 'DENIED' });
  expect(record!.lastErrorMessage).toContain(
    'assume role arn:aws:iam::222222222222:role/ecr-mirror-destination',
  );
  expect(events.commandCalls(PutEventsCommand)[0]!.args[0].input.Entries![0]!.DetailType).toBe(
    'Image Mirror Failed',
  );
});

test('a DENIED record names the refused action and resource and points at ecr-mirror doctor', async () => {
  const rt = runtime();
  sts
    .on(AssumeRoleCommand)
    .rejects(
      Object.assign(
        new Error(
          'User: arn:aws:sts::111111111111:assumed-role/ecr-mirror-prod-us-east-1/fn is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::222222222222:role/ecr-mirror-destination',
        ),
        { name: 'AccessDenied' },
      ),
    );
  const img = await pushImage(a, 'denied-sts', 'v1', { layers: [1_000] });
  await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(pushEvent('denied-sts', 'v1', img.manifest.digest))),
    context,
  );
  const record = await rt.store.get({ sourceRepository: 'denied-sts', reference: 'v1', destinationId: 'b' });
  expect(record!.lastErrorMessage).toMatch(
    /^sts:AssumeRole on arn:aws:iam::222222222222:role\/ecr-mirror-destination refused for arn:aws:sts::111111111111:assumed-role\/ecr-mirror-prod-us-east-1\/fn; run `ecr-mirror doctor`/,
  );
});

test('a push refused with 403 DENIED: the record names ecr:InitiateLayerUpload on the destination repository', async () => {
  // A registry that refuses the upload without AWS's sentence: the action is read from the operation.
  const proxy = await startFaultProxy(b);
  try {
    const rt = runtime(
      {
        DESTINATIONS: JSON.stringify([
          destination('b', '222222222222', 'eu-west-1', { repository: { addPrefix: 'mirror/' } }),
        ]),
      },
      { [DEST_B]: proxy.url },
    );
    proxy.fault({
      method: 'POST',
      path: /\/blobs\/uploads\/$/,
      action: {
        type: 'status',
        status: 403,
        body: ociError('DENIED', 'requested access to the resource is denied'),
      },
    });
    const img = await pushImage(a, 'refused', 'v1', { layers: [1_000] });
    await createMirrorHandler(rt)(
      sqsEvent(sqsRecord(pushEvent('refused', 'v1', img.manifest.digest))),
      context,
    );
    const record = await rt.store.get({ sourceRepository: 'refused', reference: 'v1', destinationId: 'b' });
    expect(record).toMatchObject({ status: 'failed', lastErrorCode: 'DENIED' });
    expect(record!.lastErrorMessage).toMatch(
      /^ecr:InitiateLayerUpload on arn:aws:ecr:eu-west-1:222222222222:repository\/mirror\/refused refused; run `ecr-mirror doctor` for the fix: start upload/,
    );
  } finally {
    await proxy.close();
  }
});

test('deletion sync deletes the destination tag unless the source has it again', async () => {
  const rt = runtime({ SYNC_DELETES: 'true' });
  ecr.on(BatchDeleteImageCommand).resolves({ imageIds: [{ imageTag: 'gone' }], failures: [] });
  const handler = createMirrorHandler(rt);
  const kept = await pushImage(a, 'deletions', 'kept', { layers: [1_000] });
  const del = (tag: string, digest: string) => {
    const e = sampleEvent('delete');
    Object.assign(e.detail, { 'repository-name': 'deletions', 'image-tag': tag, 'image-digest': digest });
    e.id = `del-${tag}`;
    e.time = new Date().toISOString();
    return e;
  };
  await handler(
    sqsEvent(sqsRecord(del('gone', kept.manifest.digest)), sqsRecord(del('kept', kept.manifest.digest))),
    context,
  );
  const calls = ecr.commandCalls(BatchDeleteImageCommand).map((call) => call.args[0].input);
  expect(calls).toEqual([{ repositoryName: 'deletions', imageIds: [{ imageTag: 'gone' }] }]);
  expect(
    await rt.store.get({ sourceRepository: 'deletions', reference: 'gone', destinationId: 'b' }),
  ).toMatchObject({
    status: 'deleted',
  });
  expect(
    await rt.store.get({ sourceRepository: 'deletions', reference: 'kept', destinationId: 'b' }),
  ).toMatchObject({
    status: 'skipped',
  });

  // Deletion sync off: DELETE events are ignored.
  ecr.resetHistory();
  await createMirrorHandler(runtime())(sqsEvent(sqsRecord(del('gone', kept.manifest.digest))), context);
  expect(ecr.commandCalls(BatchDeleteImageCommand)).toHaveLength(0);
});

test('one record failing does not fail the batch: only it is retried, the others are answered done', async () => {
  const rt = runtime();
  const img = await pushImage(a, 'isolated', 'v1', { layers: [1_000] });
  // Dead-lettering the malformed record fails (SQS refuses): that record, and only it, is retried.
  sqs.on(SendMessageCommand).rejects(Object.assign(new Error('internal error'), { name: 'InternalError' }));
  const good = sqsRecord(pushEvent('isolated', 'v1', img.manifest.digest));
  const bad = sqsRecord('{not json');
  const ignored = sqsRecord({ ...sampleEvent('push'), 'detail-type': 'ECR Image Scan' });
  const res = await createMirrorHandler(rt)(sqsEvent(good, bad, ignored), context);
  expect(res.batchItemFailures).toEqual([{ itemIdentifier: bad.messageId }]);
  expect((await getManifest(b, 'isolated', 'v1')).digest).toBe(img.manifest.digest);
});

test('a configuration error fails the Lambda at init, logged once with the setting, before any batch', () => {
  const saved = process.env;
  process.env = {
    ...saved,
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION: 'us-east-1',
    STATUS_TABLE: TABLE,
    DESTINATIONS: JSON.stringify([
      destination('b', '222222222222', 'eu-west-1', { repository: { addPrefix: 'Mirror/' } }),
    ]),
  };
  let thrown: unknown;
  let critical: jest.SpyInstance | undefined;
  try {
    jest.isolateModules(() => {
      // The entry module's own logger (a fresh module registry): what it logs at init.
      const { logger } = require('../../src/observability');
      critical = jest.spyOn(logger, 'critical').mockImplementation(() => undefined);
      try {
        require('../../src/handlers/mirror');
      } catch (err) {
        thrown = err;
      }
    });
  } finally {
    process.env = saved;
  }
  expect(thrown).toMatchObject({ code: 'INVALID_CONFIG', setting: 'DESTINATIONS[0].repository.addPrefix' });
  expect(critical).toHaveBeenCalledTimes(1);
  const [message, fields] = critical!.mock.calls[0]!;
  expect(message).toMatch(/configuration is invalid/);
  expect(fields).toMatchObject({ setting: 'DESTINATIONS[0].repository.addPrefix' });
  expect(fields.error).toMatch(/^INVALID_CONFIG: DESTINATIONS\[0\]\.repository\.addPrefix: /);
});

test.each([
  [
    'a template never expanded',
    'team/#{service}',
    /^repository-name contains "#" \(an unexpanded template\?\): "team\/#\{service\}"$/,
  ],
  [
    'a name over the table key limit',
    `team/${'a'.repeat(2_095)}`,
    /^repository-name is 2100 characters long \(at most 256\): "team\/a{55}…"$/,
  ],
])(
  'a malformed event (%s) is recorded, dead-lettered at once with the real reason, and done',
  async (_, name, reason) => {
    const rt = runtime();
    const record = sqsRecord(
      pushEvent(name, 'v1', `sha256:${'a'.repeat(64)}`, undefined, `evt-${name.length}`),
    );
    const res = await createMirrorHandler(rt)(sqsEvent(record), context);
    expect(res.batchItemFailures).toEqual([]);
    const letters = sqs.commandCalls(SendMessageCommand).map((call) => call.args[0].input);
    expect(letters).toHaveLength(1);
    expect(letters[0]!.MessageAttributes?.errorCode?.StringValue).toBe('INVALID_EVENT');
    expect(letters[0]!.MessageAttributes?.reason?.StringValue).toMatch(reason);
    // Findable with `status --failed`: the index of failures, newest first.
    const failed = await rt.store.queryByStatus('failed', { limit: 5 });
    expect(failed.find((r) => r.reference === `message-${record.messageId}`)).toMatchObject({
      sourceRepository: '(malformed)',
      status: 'failed',
      lastErrorCode: 'INVALID_EVENT',
      lastErrorMessage: expect.stringMatching(reason),
    });
  },
);

test('an error that is not ours (a bug) is recorded as INTERNAL and dead-lettered, not retried', async () => {
  const rt = runtime();
  const img = await pushImage(a, 'buggy', 'v1', { layers: [1_000] });
  const real = rt.destination.bind(rt);
  rt.destination = (d) => ({
    ...real(d),
    repositories: {
      ...real(d).repositories,
      ensure: async () => {
        throw new TypeError("Cannot read properties of undefined (reading 'repositoryName')");
      },
    },
  });
  const res = await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(pushEvent('buggy', 'v1', img.manifest.digest))),
    context,
  );
  expect(res.batchItemFailures).toEqual([]);
  expect(
    await rt.store.get({ sourceRepository: 'buggy', reference: 'v1', destinationId: 'b' }),
  ).toMatchObject({
    status: 'failed',
    lastErrorCode: 'INTERNAL',
    lastErrorMessage: "TypeError: Cannot read properties of undefined (reading 'repositoryName')",
  });
  expect(
    sqs.commandCalls(SendMessageCommand)[0]!.args[0].input.MessageAttributes?.errorCode?.StringValue,
  ).toBe('INTERNAL');
});

test('a destination in the source registry: its pushes are the mirror’s own output and are not mirrored again', async () => {
  const rt = runtime({
    DESTINATIONS: JSON.stringify([
      destination('self', '111111111111', 'us-east-1', { repository: { addPrefix: 'mirror/' } }),
    ]),
  });
  const handler = createMirrorHandler(rt);
  const img = await pushImage(a, 'feed/api', 'v1', { layers: [1_000] });
  await handler(sqsEvent(sqsRecord(pushEvent('feed/api', 'v1', img.manifest.digest))), context);
  expect((await getManifest(a, 'mirror/feed/api', 'v1')).digest).toBe(img.manifest.digest);
  // ECR now emits a push event for mirror/feed/api: it is ignored, logged and counted.
  const res = await handler(
    sqsEvent(sqsRecord(pushEvent('mirror/feed/api', 'v1', img.manifest.digest))),
    context,
  );
  expect(res.batchItemFailures).toEqual([]);
  expect((await getManifest(a, 'mirror/mirror/feed/api', 'v1')).status).toBe(404);
  expect(await rt.store.queryRepository('mirror/feed/api')).toEqual([]);
  const line = logs.map((l) => JSON.parse(l)).find((l) => l.message === 'own output ignored');
  expect(line).toMatchObject({ repository: 'mirror/feed/api' });
  expect(logs.join('')).toContain('"OwnOutputIgnored"');
});

test('a destination repository deleted behind the cache: the push meets a 404, the repository is created again', async () => {
  const proxy = await startFaultProxy(b);
  try {
    const rt = runtime({}, { [DEST_B]: proxy.url });
    const handler = createMirrorHandler(rt);
    const first = await pushImage(a, 'recreated', 'v1', { layers: [1_000] });
    await handler(sqsEvent(sqsRecord(pushEvent('recreated', 'v1', first.manifest.digest))), context);
    expect(ecr.commandCalls(DescribeRepositoriesCommand)).toHaveLength(1);
    // Someone deletes the repository in B: ECR answers 404 NAME_UNKNOWN to the next upload.
    proxy.fault({
      method: 'POST',
      path: /^\/v2\/recreated\/blobs\/uploads\//,
      times: 1,
      action: {
        type: 'status',
        status: 404,
        body: ociError('NAME_UNKNOWN', 'repository name not known to registry'),
      },
    });
    ecr
      .on(DescribeRepositoriesCommand)
      .rejects(Object.assign(new Error('no such repository'), { name: 'RepositoryNotFoundException' }));
    ecr.on(CreateRepositoryCommand).resolves({});
    const second = await pushImage(a, 'recreated', 'v2', { layers: [1_100] });
    const res = await handler(
      sqsEvent(sqsRecord(pushEvent('recreated', 'v2', second.manifest.digest))),
      context,
    );
    expect(res.batchItemFailures).toEqual([]);
    expect(ecr.commandCalls(CreateRepositoryCommand)).toHaveLength(1);
    expect((await getManifest(b, 'recreated', 'v2')).digest).toBe(second.manifest.digest);
    expect(
      await rt.store.get({ sourceRepository: 'recreated', reference: 'v2', destinationId: 'b' }),
    ).toMatchObject({ status: 'succeeded', attempts: 1 });
  } finally {
    await proxy.close();
  }
});

test('what a duplicate event costs at the destination: one HEAD for the tag and one per referrer tag, nothing sent', async () => {
  const proxy = await startFaultProxy(b);
  try {
    const rt = runtime({}, { [DEST_B]: proxy.url });
    const handler = createMirrorHandler(rt);
    const img = await pushImage(a, 'dup/api', 'v1', { layers: [2_000, 3_000] });
    // An SBOM attached to it, listed in the tag-schema fallback index (as clients do without the API).
    const empty = await pushBlob(a, 'dup/api', Buffer.from('{}'), MediaType.OciEmpty);
    const spdx = await pushBlob(
      a,
      'dup/api',
      Buffer.from('{"spdxVersion":"SPDX-2.3"}'),
      'application/spdx+json',
    );
    const sbom = await pushManifest(
      a,
      'dup/api',
      'sbom',
      {
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        artifactType: 'application/spdx+json',
        config: empty,
        layers: [spdx],
        subject: img.manifest,
      },
      MediaType.OciManifest,
    );
    await pushManifest(
      a,
      'dup/api',
      fallbackTag(img.manifest.digest),
      {
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [{ ...sbom, artifactType: 'application/spdx+json' }],
      },
      MediaType.OciIndex,
    );
    const event = pushEvent('dup/api', 'v1', img.manifest.digest, new Date().toISOString(), 'evt-dup');
    await handler(sqsEvent(sqsRecord(event)), context);
    expect((await getManifest(b, 'dup/api', fallbackTag(img.manifest.digest))).status).toBe(200);

    const before = proxy.requests.length;
    // The same event delivered again (EventBridge and SQS deliver at least once).
    const res = await handler(sqsEvent(sqsRecord(event)), context);
    expect(res.batchItemFailures).toEqual([]);
    const sent = proxy.requests.slice(before).map((r) => `${r.method} ${r.path}`);
    expect(sent).toEqual([
      'HEAD /v2/dup/api/manifests/v1',
      `HEAD /v2/dup/api/manifests/${fallbackTag(img.manifest.digest)}`,
    ]);
    expect(
      await rt.store.get({ sourceRepository: 'dup/api', reference: 'v1', destinationId: 'b' }),
    ).toMatchObject({
      status: 'skipped',
      bytes: 0,
      blobsCopied: 0,
    });
  } finally {
    await proxy.close();
  }
});
