import {
  BatchDeleteImageCommand,
  CreateRepositoryCommand,
  DescribeImagesCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  RepositoryNotFoundException,
} from '@aws-sdk/client-ecr';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  ChangeMessageVisibilityCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { STSClient } from '@aws-sdk/client-sts';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { loadConfig } from '../../src/config/config';
import { MediaType } from '../../src/core/media-types';
import { fallbackTag } from '../../src/core/referrers';
import { createMirrorHandler } from '../../src/mirror/handler';
import { type Caller, type FunctionName, PERMISSIONS } from '../../src/permissions';
import { createResyncHandler } from '../../src/resync/handler';
import type { ResyncInput } from '../../src/resync/wire';
import { mirrorRuntime } from '../../src/wiring/mirror';
import { resyncServices } from '../../src/wiring/resync';
import { context, sampleEvent, sqsEvent, sqsRecord } from '../fixtures/lambda';
import { mockAssumeRole, mockEcrToken } from '../support/aws-mocks';
import { getBlob, pushBlob, pushImage, pushManifest } from '../support/content';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { type FaultProxy, type SeenRequest, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';
import { actionOf } from './sdk-actions';

/**
 * src/permissions.ts against what the functions do: each handler works through real scenarios on
 * real registries (a recording proxy in front of each) and mocked AWS APIs, and every request and SDK
 * call it makes becomes the IAM action ECR or AWS authorizes it as, with who made it. The actions a
 * function performs as its SDK and registry calls must be exactly the ones listed for it.
 */

const SOURCE_REGION = 'us-east-1';
const SOURCE = `111111111111.dkr.ecr.${SOURCE_REGION}.amazonaws.com`;
const DEST = '222222222222.dkr.ecr.eu-west-1.amazonaws.com';
const TABLE = 'calls-test';
const OTHER = 'registry.example.com';
const SECRET_ARN = `arn:aws:secretsmanager:${SOURCE_REGION}:111111111111:secret:ecr-mirror/other-AbC123`;
const DLQ = 'https://sqs.us-east-1.amazonaws.com/111111111111/ecr-mirror-dlq';
const QUEUE = 'https://sqs.us-east-1.amazonaws.com/111111111111/ecr-mirror';

/** The IAM action ECR authorizes a registry API request as (ECR user guide, registry authentication). */
function registryAction(req: SeenRequest): string[] {
  const path = req.path.split('?')[0]!;
  const query = req.path.includes('?') ? req.path.slice(req.path.indexOf('?')) : '';
  const route: [string, RegExp, string[]][] = [
    ['GET', /^\/v2\/?$/, []],
    ['HEAD', /\/manifests\/[^/]+$/, ['ecr:BatchGetImage']],
    ['GET', /\/manifests\/[^/]+$/, ['ecr:BatchGetImage']],
    ['PUT', /\/manifests\/[^/]+$/, ['ecr:PutImage']],
    ['DELETE', /\/manifests\/[^/]+$/, ['ecr:BatchDeleteImage']],
    ['HEAD', /\/blobs\/sha256:[a-f0-9]+$/, ['ecr:BatchCheckLayerAvailability']],
    ['GET', /\/blobs\/sha256:[a-f0-9]+$/, ['ecr:GetDownloadUrlForLayer']],
    ['POST', /\/blobs\/uploads\/$/, ['ecr:InitiateLayerUpload']],
    ['PATCH', /\/blobs\/uploads\/[^/]+$/, ['ecr:UploadLayerPart']],
    ['GET', /\/tags\/list$/, ['ecr:ListImages']],
    // ListImageReferrers, and the registry's referrers API, are authorized as BatchGetImage.
    ['GET', /\/referrers\/sha256:[a-f0-9]+$/, ['ecr:BatchGetImage']],
  ];
  if (req.method === 'POST' && /\/blobs\/uploads\/$/.test(path) && /[?&]mount=/.test(query)) {
    // A cross-repository mount: ECR wants download rights on the repository it mounts from.
    return ['ecr:InitiateLayerUpload', 'ecr:GetDownloadUrlForLayer'];
  }
  if (req.method === 'PUT' && /\/blobs\/uploads\/[^/]+$/.test(path)) {
    // The last PUT of an upload completes it; with a body it also carries bytes.
    const bytes = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'];
    return bytes ? ['ecr:UploadLayerPart', 'ecr:CompleteLayerUpload'] : ['ecr:CompleteLayerUpload'];
  }
  const found = route.find(([method, pattern]) => method === req.method && pattern.test(path));
  if (!found)
    throw new Error(`no IAM action known for ${req.method} ${path}${query}: add it to registryAction`);
  return found[2];
}

const ecr = mockClient(ECRClient);
const sts = mockClient(STSClient);
const events = mockClient(EventBridgeClient);
const sqs = mockClient(SQSClient);
const lambda = mockClient(LambdaClient);
const secrets = mockClient(SecretsManagerClient);

let a: TestRegistry;
let b: TestRegistry;
let source: FaultProxy;
let destination: FaultProxy;
let dynamo: LocalDynamo;
let tableCalls: jest.SpyInstance;

beforeAll(async () => {
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
  [source, destination] = await Promise.all([startFaultProxy(a), startFaultProxy(b)]);
  dynamo = await startStatusTable(TABLE);
  process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamo.endpoint;
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
});
afterAll(async () => {
  delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
  await Promise.all([source?.close(), destination?.close()]);
  await Promise.all([a?.stop(), b?.stop(), dynamo?.stop()]);
});

beforeEach(() => {
  for (const m of [ecr, sts, events, sqs, lambda, secrets]) m.reset();
  secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify(TEST_CREDS) });
  source.requests.length = 0;
  destination.requests.length = 0;
  mockEcrToken(ecr);
  // One destination repository is missing: the mirror creates it.
  ecr.on(DescribeRepositoriesCommand).resolves({ repositories: [{ repositoryName: 'x' }] });
  ecr
    .on(DescribeRepositoriesCommand, { repositoryNames: ['team/new'] })
    .rejects(new RepositoryNotFoundException({ message: 'no team/new', $metadata: {} }));
  ecr.on(CreateRepositoryCommand).resolves({});
  ecr.on(BatchDeleteImageCommand).resolves({ failures: [] });
  mockAssumeRole(sts);
  events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [] });
  sqs.on(SendMessageCommand).resolves({ MessageId: 'dlq-1' });
  sqs.on(SendMessageBatchCommand).callsFake((input) => ({
    Successful: input.Entries.map((e: { Id: string }) => ({
      Id: e.Id,
      MessageId: e.Id,
      MD5OfMessageBody: '',
    })),
  }));
  lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
  tableCalls = jest.spyOn(DynamoDBDocumentClient.prototype, 'send');
});
afterEach(() => tableCalls.mockRestore());

function config(env: Record<string, string> = {}) {
  return loadConfig({
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION,
    DESTINATIONS: JSON.stringify([
      {
        id: 'b',
        accountId: '222222222222',
        region: 'eu-west-1',
        roleArn: 'arn:aws:iam::222222222222:role/ecr-mirror-destination',
        externalId: 'external-b',
      },
      // A destination named by its registry, with a login in a secret (the same registry, by another
      // name, under a namespace of its own): the secret is read with the function's role.
      {
        id: 'other',
        registry: OTHER,
        credentials: { secretArn: SECRET_ARN },
        repository: { addPrefix: 'other/' },
      },
    ]),
    STATUS_TABLE: TABLE,
    DEAD_LETTER_QUEUE_URL: DLQ,
    MIRROR_QUEUE_URL: QUEUE,
    SYNC_DELETES: 'true',
    RESYNC_API_RATE: '100',
    REGISTRY_ENDPOINTS: JSON.stringify({
      [SOURCE]: source.url,
      [DEST]: destination.url,
      [OTHER]: destination.url,
    }),
    ...env,
  });
}

function event(action: 'push' | 'delete', repository: string, tag: string, digest: string) {
  const e = sampleEvent(action);
  e.id = `evt-${Math.random().toString(36).slice(2)}`;
  e.time = new Date().toISOString();
  Object.assign(e.detail, { 'repository-name': repository, 'image-tag': tag, 'image-digest': digest });
  return e;
}

/** What a function did, as `caller action` pairs: SDK calls (by client region) and registry requests. */
async function performed(): Promise<Set<string>> {
  const done = new Set<string>();
  const add = (caller: Caller, action: string) => done.add(`${caller} ${action}`);
  const mocks = [ecr, sts, events, sqs, lambda, secrets] as unknown as {
    send: { getCalls(): { thisValue: unknown; args: unknown[] }[] };
  }[];
  for (const mock of mocks) {
    for (const call of mock.send.getCalls()) {
      const client = call.thisValue as { config: { region: () => Promise<string> } };
      const region = await client.config.region();
      add(region === SOURCE_REGION ? 'function' : 'destination', actionOf(call.args[0] as object));
    }
  }
  for (const call of tableCalls.mock.calls) add('function', actionOf(call[0] as object));
  for (const req of source.requests) for (const action of registryAction(req)) add('function', action);
  for (const req of destination.requests)
    for (const action of registryAction(req)) add('destination', action);
  return done;
}

/** What src/permissions.ts says the function's SDK and registry calls are. */
const listed = (name: FunctionName) =>
  new Set(
    PERMISSIONS[name]
      .filter((p) => p.via === 'sdk' || p.via === 'registry')
      .map((p) => `${p.caller} ${p.action}`),
  );

test('the mirror function performs exactly the SDK and registry actions listed for it', async () => {
  const rt = mirrorRuntime(config(), {
    registry: {
      retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50, maxElapsedMs: 2_000 },
      timeouts: { connectMs: 1_000, headersMs: 5_000, bodyMs: 5_000 },
    },
  });
  const handler = createMirrorHandler(rt);

  // An image with an SBOM (a referrer by subject, listed in the fallback tag's index), into a
  // destination repository the mirror creates; then the same push again; then its deletion; and a
  // message that is not an event at all (dead-lettered with its reason).
  const img = await pushImage(a, 'team/new', 'v1', { layers: [20_000, 3_000] });
  const sbom = await pushImage(a, 'team/new', undefined, {
    layers: [700],
    configMediaType: MediaType.OciEmpty,
    artifactType: 'application/spdx+json',
    subject: img.manifest,
  });
  await pushManifest(
    a,
    'team/new',
    fallbackTag(img.manifest.digest),
    {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [{ ...sbom.manifest, artifactType: 'application/spdx+json' }],
    },
    MediaType.OciIndex,
  );
  const late = event('push', 'team/new', 'v1', img.manifest.digest);
  late.time = new Date(Date.now() - 60_000).toISOString();
  const push = () => sqsRecord(event('push', 'team/new', 'v1', img.manifest.digest));
  expect((await handler(sqsEvent(push()), context)).batchItemFailures).toEqual([]);
  expect((await handler(sqsEvent(push()), context)).batchItemFailures).toEqual([]);
  // A late, older event: its result loses to the standing one, which is read back and checked.
  expect((await handler(sqsEvent(sqsRecord(late)), context)).batchItemFailures).toEqual([]);
  // Another repository built on the same layer: mounted from team/new, where an image now uses it.
  const shared = img.layers[0]!;
  await pushBlob(a, 'team/sibling', await getBlob(a, 'team/new', shared.digest), shared.mediaType);
  const sibling = await pushImage(a, 'team/sibling', 'v1', { layers: [shared] });
  const mounted = sqsRecord(event('push', 'team/sibling', 'v1', sibling.manifest.digest));
  expect((await handler(sqsEvent(mounted), context)).batchItemFailures).toEqual([]);
  // (Role destination b's mount; the registry destination mounts within other/ on the same registry.)
  expect(destination.seen('POST', /^\/v2\/team\/.*mount=/).map((r) => r.status)).toEqual([201]);
  // A destination that answers 503: the message is retried after a backoff the mirror sets.
  const flaky = await pushImage(a, 'team/flaky', 'v1', { layers: [1_000] });
  destination.fault({
    method: 'POST',
    path: /^\/v2\/team\/flaky\/blobs\/uploads\//,
    action: { type: 'status', status: 503 },
  });
  const retried = sqsRecord(event('push', 'team/flaky', 'v1', flaky.manifest.digest));
  expect((await handler(sqsEvent(retried), context)).batchItemFailures).toEqual([
    { itemIdentifier: retried.messageId },
  ]);
  destination.clearFaults();
  expect(sqs.commandCalls(ChangeMessageVisibilityCommand)).toHaveLength(1);
  // A tag deleted in A (it names nothing there any more) is deleted in B.
  const deleted = event('delete', 'team/new', 'v0', `sha256:${'0'.repeat(64)}`);
  expect((await handler(sqsEvent(sqsRecord(deleted)), context)).batchItemFailures).toEqual([]);
  await handler(sqsEvent(sqsRecord('not an event')), context);

  expect(ecr.commandCalls(CreateRepositoryCommand)).toHaveLength(1);
  expect(ecr.commandCalls(BatchDeleteImageCommand)).toHaveLength(1);
  expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(1);
  expect([...(await performed())].sort()).toEqual([...listed('mirror')].sort());
});

test('the resync function performs exactly the SDK and registry actions listed for it', async () => {
  // B has team/app:v1 at A's digest; A also has v2, which B lacks.
  const v1 = await pushImage(b, 'team/app', 'v1', { layers: [1_000] });
  ecr.on(DescribeRepositoriesCommand).resolves({ repositories: [{ repositoryName: 'team/app' }] });
  ecr.on(DescribeImagesCommand).resolves({
    imageDetails: [
      { imageDigest: v1.manifest.digest, imageTags: ['v1'] },
      { imageDigest: `sha256:${'2'.repeat(64)}`, imageTags: ['v2'] },
    ],
  });
  const services = resyncServices(config(), {
    clients: {
      ecr: new ECRClient({ region: SOURCE_REGION }),
      sqs: new SQSClient({ region: SOURCE_REGION }),
      lambda: new LambdaClient({ region: SOURCE_REGION }),
      dynamodb: dynamo.client,
    },
  });
  const handler = createResyncHandler(services);
  const result = (await handler({}, context)) as { summary: { enqueued: number; complete: boolean } };
  // v2 for both destinations; v1 for the one named by its registry (other/team/app has nothing yet).
  expect(result.summary).toMatchObject({ enqueued: 2, complete: true });
  // A run short of time continues in a new invocation of itself.
  await handler({}, { ...context, getRemainingTimeInMillis: () => 1_000 });
  expect(lambda.commandCalls(InvokeCommand)).toHaveLength(1);
  // That invocation reads the run's summary back from the table.
  const next = JSON.parse(
    Buffer.from(lambda.commandCalls(InvokeCommand)[0]!.args[0].input.Payload as Uint8Array).toString(),
  ) as ResyncInput;
  expect((await handler(next, context)) as { summary: { complete: boolean } }).toMatchObject({
    summary: { complete: true },
  });

  expect([...(await performed())].sort()).toEqual([...listed('resync')].sort());
});
