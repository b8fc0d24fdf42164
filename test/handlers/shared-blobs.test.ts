import { DescribeRepositoriesCommand, ECRClient } from '@aws-sdk/client-ecr';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { loadConfig } from '../../src/config/config';
import { createMirrorHandler } from '../../src/mirror/handler';
import type { MirrorRuntime } from '../../src/mirror/ports';
import { jobEvent } from '../../src/resync/wire';
import { mirrorRuntime } from '../../src/wiring/mirror';
import { context, sampleEvent, sqsEvent, sqsRecord } from '../fixtures/lambda';
import { mockAssumeRole, mockEcrToken } from '../support/aws-mocks';
import { getManifest, pushBlob, pushImage, pushIndex } from '../support/content';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, type TestRegistry } from '../support/registry';

/**
 * Blobs shared by the records of a batch, and by later batches of a warm function: each is uploaded
 * once per destination repository (the runtime's BlobLedger), and mounted from another repository of
 * the destination registry where an image already references it. The destination is a real registry
 * behind a recording proxy, so uploads and mounts are counted as the registry received them.
 */

const SOURCE = '111111111111.dkr.ecr.us-east-1.amazonaws.com';
const DEST = '222222222222.dkr.ecr.eu-west-1.amazonaws.com';
const TABLE = 'shared-blobs-test';

const ecr = mockClient(ECRClient);
const sts = mockClient(STSClient);
const events = mockClient(EventBridgeClient);

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
  for (const m of [ecr, sts, events]) m.reset();
  mockEcrToken(ecr);
  ecr.on(DescribeRepositoriesCommand).resolves({ repositories: [{ repositoryName: 'x' }] });
  mockAssumeRole(sts);
  events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [] });
  proxy.requests.length = 0;
});

function runtime(): MirrorRuntime {
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
    REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: a.url, [DEST]: proxy.url }),
  });
  return mirrorRuntime(config);
}

function push(repository: string, tag: string | undefined, digest: string) {
  const e = sampleEvent(tag === undefined ? 'push-multiarch-child' : 'push');
  e.id = `evt-${Math.random().toString(36).slice(2)}`;
  e.time = new Date().toISOString();
  Object.assign(e.detail, {
    'repository-name': repository,
    'image-tag': tag ?? '',
    'image-digest': digest,
  });
  return sqsRecord(e);
}

/** Completed uploads (the PUT with `?digest=`) the destination received, by digest. */
function uploads(repository: string): string[] {
  const path = new RegExp(`^/v2/${repository}/blobs/uploads/[^?]+\\?.*digest=`);
  return proxy.seen('PUT', path).map((r) => new URL(r.path, 'http://x').searchParams.get('digest')!);
}

const mounts = (repository: string) =>
  proxy
    .seen('POST', new RegExp(`^/v2/${repository}/blobs/uploads/\\?.*mount=`))
    .filter((r) => r.status === 201);

test('a multi-arch push in one batch (index and children): each distinct blob is uploaded once', async () => {
  // Two platforms on one base layer, each with a layer and a config of its own: 5 distinct blobs.
  const base = await pushBlob(
    a,
    'multi/app',
    Buffer.alloc(60_000, 7),
    'application/vnd.oci.image.layer.v1.tar',
  );
  const amd = await pushImage(a, 'multi/app', undefined, {
    layers: [base, 30_000],
    platform: { architecture: 'amd64', os: 'linux' },
  });
  const arm = await pushImage(a, 'multi/app', undefined, {
    layers: [base, 30_000],
    platform: { architecture: 'arm64', os: 'linux' },
  });
  const index = await pushIndex(a, 'multi/app', 'v1', [
    { descriptor: amd.manifest, platform: { architecture: 'amd64', os: 'linux' } },
    { descriptor: arm.manifest, platform: { architecture: 'arm64', os: 'linux' } },
  ]);
  const distinct = new Set(
    [base, amd.config, arm.config, amd.layers[1]!, arm.layers[1]!].map((d) => d.digest),
  );
  expect(distinct.size).toBe(5);

  // As ECR sends them: one event per child (no tag), then the index with its tag; one batch.
  const res = await createMirrorHandler(runtime())(
    sqsEvent(
      push('multi/app', undefined, amd.manifest.digest),
      push('multi/app', undefined, arm.manifest.digest),
      push('multi/app', 'v1', index.descriptor.digest),
    ),
    context,
  );
  expect(res.batchItemFailures).toEqual([]);
  expect((await getManifest(b, 'multi/app', 'v1')).digest).toBe(index.descriptor.digest);

  const uploaded = uploads('multi/app');
  expect(uploaded.sort()).toEqual([...distinct].sort());
});

test('a warm function mounts a blob an earlier image put in another repository, and records it', async () => {
  const rt = runtime();
  const handler = createMirrorHandler(rt);
  const base = await pushBlob(
    a,
    'fleet/one',
    Buffer.alloc(80_000, 3),
    'application/vnd.oci.image.layer.v1.tar',
  );
  await pushBlob(a, 'fleet/two', Buffer.alloc(80_000, 3), 'application/vnd.oci.image.layer.v1.tar');
  const one = await pushImage(a, 'fleet/one', 'v1', { layers: [base, 10_000] });
  const two = await pushImage(a, 'fleet/two', 'v1', { layers: [base, 12_000] });

  expect(
    (await handler(sqsEvent(push('fleet/one', 'v1', one.manifest.digest)), context)).batchItemFailures,
  ).toEqual([]);
  expect(
    (await handler(sqsEvent(push('fleet/two', 'v1', two.manifest.digest)), context)).batchItemFailures,
  ).toEqual([]);

  expect((await getManifest(b, 'fleet/two', 'v1')).digest).toBe(two.manifest.digest);
  // The base layer went up once, into fleet/one; fleet/two had it mounted from there.
  expect(uploads('fleet/one')).toContain(base.digest);
  expect(uploads('fleet/two')).not.toContain(base.digest);
  const mounted = mounts('fleet/two');
  expect(mounted).toHaveLength(1);
  expect(mounted[0]!.path).toContain(`from=${encodeURIComponent('fleet/one')}`);
  const record = await rt.store.get({ sourceRepository: 'fleet/two', reference: 'v1', destinationId: 'b' });
  expect(record).toMatchObject({ status: 'succeeded', blobsCopied: 2, blobsMounted: 1, blobsSkipped: 0 });
});

test("a resync's jobs on a warm function: a shared layer goes up once per repository, then is mounted", async () => {
  // What a resync after an outage enqueues: jobs for tags that share a base layer, handled by one
  // warm mirror function in successive batches (its runtime's ledger, as for push events).
  const rt = runtime();
  const handler = createMirrorHandler(rt);
  const layer = Buffer.alloc(70_000, 5);
  const LAYER = 'application/vnd.oci.image.layer.v1.tar';
  const base = await pushBlob(a, 'healed/one', layer, LAYER);
  await pushBlob(a, 'healed/two', layer, LAYER);
  const one1 = await pushImage(a, 'healed/one', 'v1', { layers: [base, 9_000] });
  const one2 = await pushImage(a, 'healed/one', 'v2', { layers: [base, 9_500] });
  const two1 = await pushImage(a, 'healed/two', 'v1', { layers: [base, 11_000] });
  const job = (repository: string, tag: string, digest: string) =>
    sqsRecord(jobEvent({ repository, tag, digest, destinations: ['b'] }, '111111111111', 'us-east-1'));

  // One batch, two jobs into one repository at once: the base layer is uploaded once.
  const first = await handler(
    sqsEvent(job('healed/one', 'v1', one1.manifest.digest), job('healed/one', 'v2', one2.manifest.digest)),
    context,
  );
  expect(first.batchItemFailures).toEqual([]);
  expect(uploads('healed/one').filter((d) => d === base.digest)).toHaveLength(1);

  // The next batch, into another repository of the same registry: mounted, not uploaded.
  const second = await handler(sqsEvent(job('healed/two', 'v1', two1.manifest.digest)), context);
  expect(second.batchItemFailures).toEqual([]);
  expect(uploads('healed/two')).not.toContain(base.digest);
  expect(mounts('healed/two')).toHaveLength(1);
  expect((await getManifest(b, 'healed/two', 'v1')).digest).toBe(two1.manifest.digest);
  expect((await getManifest(b, 'healed/one', 'v2')).digest).toBe(one2.manifest.digest);
  const record = await rt.store.get({ sourceRepository: 'healed/two', reference: 'v1', destinationId: 'b' });
  expect(record).toMatchObject({ status: 'succeeded', blobsMounted: 1 });
});
