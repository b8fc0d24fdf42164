import { DescribeRepositoriesCommand, ECRClient } from '@aws-sdk/client-ecr';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { loadConfig } from '../../src/config/config';
import { createMirrorHandler } from '../../src/mirror/handler';
import type { MirrorRuntime } from '../../src/mirror/ports';
import { RegistryRepositories } from '../../src/mirror/registry-repositories';
import { openRegistry } from '../../src/registry/open';
import { runResync } from '../../src/resync/resync';
import { mirrorRuntime } from '../../src/wiring/mirror';
import { context, sampleEvent, sqsEvent, sqsRecord } from '../fixtures/lambda';
import { mockEcrToken } from '../support/aws-mocks';
import { getManifest, pushImage } from '../support/content';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { startRegistry, TEST_CREDS, TEST_PASSWORD, type TestRegistry } from '../support/registry';
import { PUSHER, startTokenServer, type TokenServer } from '../support/token-server';

/**
 * Destinations named by their registry, with credentials in Secrets Manager (mocked): real
 * registries with Basic auth and with Bearer tokens (a token server), and a secret rotated while the
 * function runs. The source is ECR as ever (its token mocked).
 */

const SOURCE = '111111111111.dkr.ecr.us-east-1.amazonaws.com';
const BASIC_HOST = 'registry.example.com';
const BEARER_HOST = 'ghcr.example.com';
const TABLE = 'registry-destinations-test';
const BASIC_SECRET = 'arn:aws:secretsmanager:us-east-1:111111111111:secret:ecr-mirror/basic-AbC123';
const BEARER_SECRET = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:ecr-mirror/bearer';

const ecr = mockClient(ECRClient);
const sts = mockClient(STSClient);
const events = mockClient(EventBridgeClient);
const secrets = mockClient(SecretsManagerClient);

let source: TestRegistry;
let basic: TestRegistry;
let bearer: TestRegistry;
let tokens: TokenServer;
let dynamo: LocalDynamo;

beforeAll(async () => {
  tokens = await startTokenServer();
  [source, basic, bearer] = await Promise.all([
    startRegistry(),
    startRegistry(),
    startRegistry({ authYaml: tokens.authYaml }),
  ]);
  dynamo = await startStatusTable(TABLE);
  process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamo.endpoint;
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
});
afterAll(async () => {
  delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
  await Promise.all([source?.stop(), basic?.stop(), bearer?.stop(), tokens?.stop(), dynamo?.stop()]);
});

const login = (password = TEST_PASSWORD) => ({ SecretString: JSON.stringify({ ...TEST_CREDS, password }) });

beforeEach(() => {
  for (const m of [ecr, sts, events, secrets]) m.reset();
  mockEcrToken(ecr);
  events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [] });
  secrets.on(GetSecretValueCommand).resolves(login());
});

function runtime(secretTtlMs?: number): MirrorRuntime {
  const config = loadConfig({
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION: 'us-east-1',
    DESTINATIONS: JSON.stringify([
      { id: 'basic', registry: BASIC_HOST, credentials: { secretArn: BASIC_SECRET } },
      {
        id: 'ghcr',
        registry: BEARER_HOST,
        repository: { template: 'acme/{name}' },
        credentials: { secretArn: BEARER_SECRET },
      },
    ]),
    STATUS_TABLE: TABLE,
    SYNC_DELETES: 'true',
    REGISTRY_ENDPOINTS: JSON.stringify({
      [SOURCE]: source.url,
      [BASIC_HOST]: basic.url,
      [BEARER_HOST]: bearer.url,
    }),
  });
  return mirrorRuntime(config, {
    registry: {
      retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50, maxElapsedMs: 2_000 },
      timeouts: { connectMs: 1_000, headersMs: 5_000, bodyMs: 5_000 },
    },
    ...(secretTtlMs !== undefined && { secretTtlMs }),
  });
}

function event(action: 'push' | 'delete', repository: string, tag: string, digest: string) {
  const e = sampleEvent(action);
  e.id = `evt-${Math.random().toString(36).slice(2)}`;
  e.time = new Date().toISOString();
  Object.assign(e.detail, { 'repository-name': repository, 'image-tag': tag, 'image-digest': digest });
  return e;
}

/** The Bearer registry as the tests read it: with a token for the repository, minted in-process. */
const viaToken = (name: string): TestRegistry => ({
  ...bearer,
  authorization: `Bearer ${tokens.mint([{ type: 'repository', name, actions: ['pull'] }])}`,
});

const secretReads = (arn: string) =>
  secrets.commandCalls(GetSecretValueCommand).filter((c) => c.args[0].input.SecretId === arn);

test('a push lands in a Basic-auth registry and a Bearer-token registry with logins from Secrets Manager', async () => {
  const rt = runtime();
  const img = await pushImage(source, 'team/api', 'v1', { layers: [20_000, 5_000] });
  const res = await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(event('push', 'team/api', 'v1', img.manifest.digest))),
    context,
  );
  expect(res.batchItemFailures).toEqual([]);
  for (const [registry, name] of [
    [basic, 'team/api'],
    [viaToken('acme/api'), 'acme/api'],
  ] as const) {
    const got = await getManifest(registry, name, 'v1');
    expect(got.digest).toBe(img.manifest.digest);
    expect(got.bytes.equals(img.bytes)).toBe(true);
  }
  // The Bearer registry's token server was asked with the secret's login, for pull and push.
  expect(
    tokens.requests.some(
      (r) => r.basic && r.status === 200 && r.scopes.includes('repository:acme/api:pull,push'),
    ),
  ).toBe(true);
  for (const id of ['basic', 'ghcr']) {
    const record = await rt.store.get({ sourceRepository: 'team/api', reference: 'v1', destinationId: id });
    expect(record).toMatchObject({ status: 'succeeded', destinationDigest: img.manifest.digest });
  }
  // The result events, one per destination, as for a destination reached through a role.
  const published = events
    .commandCalls(PutEventsCommand)
    .flatMap((c) => c.args[0].input.Entries ?? [])
    .map((e) => ({ type: e.DetailType, ...JSON.parse(e.Detail ?? '{}') }));
  expect(published.map((e) => `${e.type}: ${e.destinationId} ${e.destinationRepository}`).sort()).toEqual([
    'Image Mirrored: basic team/api',
    'Image Mirrored: ghcr acme/api',
  ]);
  // Each secret read once, in its own region, and cached for the next image.
  expect(secretReads(BASIC_SECRET)).toHaveLength(1);
  expect(secretReads(BEARER_SECRET)).toHaveLength(1);
  const bearerClient = secretReads(BEARER_SECRET)[0]!.thisValue as SecretsManagerClient;
  expect(await bearerClient.config.region()).toBe('eu-west-1');
  const img2 = await pushImage(source, 'team/api', 'v2', { layers: [3_000] });
  await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(event('push', 'team/api', 'v2', img2.manifest.digest))),
    context,
  );
  expect(secretReads(BASIC_SECRET)).toHaveLength(1);
  // No repository creation outside ECR: no ECR API call but the source token.
  expect(ecr.calls().every((c) => c.args[0].constructor.name === 'GetAuthorizationTokenCommand')).toBe(true);
  expect(sts.calls()).toHaveLength(0);
});

test('a rotated secret: refused credentials read the secret again once, and the copy goes on', async () => {
  const rt = runtime();
  // The function holds the old password; the registries and the secret have moved on to the new one.
  for (const SecretId of [BASIC_SECRET, BEARER_SECRET]) {
    secrets.on(GetSecretValueCommand, { SecretId }).resolvesOnce(login('old-password')).resolves(login());
  }
  const img = await pushImage(source, 'team/rotated', 'v1', { layers: [4_000] });
  const res = await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(event('push', 'team/rotated', 'v1', img.manifest.digest))),
    context,
  );
  expect(res.batchItemFailures).toEqual([]);
  expect((await getManifest(basic, 'team/rotated', 'v1')).digest).toBe(img.manifest.digest);
  expect((await getManifest(viaToken('acme/rotated'), 'acme/rotated', 'v1')).digest).toBe(
    img.manifest.digest,
  );
  // One read with the old value, one after the refusal: for each destination's secret.
  expect(secretReads(BASIC_SECRET)).toHaveLength(2);
  expect(secretReads(BEARER_SECRET)).toHaveLength(2);
});

test('a secret still wrong after the re-read fails the record as UNAUTHORIZED, naming no password', async () => {
  const rt = runtime();
  secrets.on(GetSecretValueCommand).resolves(login('wrong-password'));
  const img = await pushImage(source, 'team/wrong', 'v1', { layers: [1_000] });
  await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(event('push', 'team/wrong', 'v1', img.manifest.digest))),
    context,
  );
  const record = await rt.store.get({
    sourceRepository: 'team/wrong',
    reference: 'v1',
    destinationId: 'basic',
  });
  expect(record).toMatchObject({ status: 'failed', lastErrorCode: 'UNAUTHORIZED' });
  expect(JSON.stringify(record)).not.toContain('wrong-password');
  // Read once, and once again after the refusal; no more however many requests were refused.
  expect(secretReads(BASIC_SECRET)).toHaveLength(2);
});

test('a rotation is picked up after the cache time even when the old value still works', async () => {
  const rt = runtime(0);
  const img = await pushImage(source, 'team/ttl', 'v1', { layers: [1_000] });
  await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(event('push', 'team/ttl', 'v1', img.manifest.digest))),
    context,
  );
  // With no cache time every handshake reads the secret: more than once per destination.
  expect(secretReads(BASIC_SECRET).length).toBeGreaterThan(1);
});

test('an ECR registry of another partition, with access keys from the secret: token, repository, image', async () => {
  const GOV = '123456789012.dkr.ecr.us-gov-west-1.amazonaws.com';
  const GOV_SECRET = 'arn:aws:secretsmanager:us-east-1:111111111111:secret:ecr-mirror/gov';
  secrets.on(GetSecretValueCommand, { SecretId: GOV_SECRET }).resolves({
    SecretString: JSON.stringify({ accessKeyId: 'AKIAGOV', secretAccessKey: 'gov-secret-key' }),
  });
  ecr.on(DescribeRepositoriesCommand).resolves({ repositories: [{ repositoryName: 'team/gov' }] });
  const config = loadConfig({
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION: 'us-east-1',
    DESTINATIONS: JSON.stringify([{ id: 'gov', registry: GOV, credentials: { secretArn: GOV_SECRET } }]),
    STATUS_TABLE: TABLE,
    // The GovCloud registry is played by the Basic registry; its token is that registry's login.
    REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: source.url, [GOV]: basic.url }),
  });
  const rt = mirrorRuntime(config, {
    registry: { retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50, maxElapsedMs: 2_000 } },
  });
  const img = await pushImage(source, 'team/gov', 'v1', { layers: [2_000] });
  const res = await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(event('push', 'team/gov', 'v1', img.manifest.digest))),
    context,
  );
  expect(res.batchItemFailures).toEqual([]);
  expect((await getManifest(basic, 'team/gov', 'v1')).digest).toBe(img.manifest.digest);
  // The destination's token and repository check: in us-gov-west-1, signed with the secret's keys.
  const asGov = await Promise.all(
    ecr.calls().map(async (c) => {
      const client = c.thisValue as ECRClient;
      return [
        c.args[0].constructor.name,
        await client.config.region(),
        (await client.config.credentials()).accessKeyId,
      ];
    }),
  );
  expect(asGov).toEqual(
    expect.arrayContaining([
      ['GetAuthorizationTokenCommand', 'us-gov-west-1', 'AKIAGOV'],
      ['DescribeRepositoriesCommand', 'us-gov-west-1', 'AKIAGOV'],
    ]),
  );
  expect(sts.calls()).toHaveLength(0);
});

test('deletion sync deletes the tag through the registry API, and resync compares tags there', async () => {
  const rt = runtime();
  const img = await pushImage(source, 'team/gone', 'v1', { layers: [1_000] });
  await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(event('push', 'team/gone', 'v1', img.manifest.digest))),
    context,
  );
  expect((await getManifest(basic, 'team/gone', 'v1')).digest).toBe(img.manifest.digest);

  // Resync through the registry API (tags/list and manifest HEADs): in sync, then one missing.
  const compare = (tags: string[]) =>
    runResync(
      { dryRun: true },
      {
        config: rt.config,
        inventory: {
          repositories: async () => ({ repositories: ['team/gone'] }),
          images: async () => ({ images: [{ digest: img.manifest.digest, tags }] }),
        },
        destinationRegistry: (d) => rt.destination(d).registry,
        remainingMs: () => 600_000,
        newRunId: () => 'run',
        now: () => new Date(),
      },
    );
  const inSync = await compare(['v1']);
  expect(inSync.summary.destinations).toMatchObject({ basic: { inSync: 1 }, ghcr: { inSync: 1 } });
  const missing = await compare(['v1', 'v9']);
  expect(missing.differences.map((d) => `${d.destinationId}:${d.tag}:${d.reason}`).sort()).toEqual([
    'basic:v9:missing',
    'ghcr:v9:missing',
  ]);

  // Deleted at the source (the tag names nothing there now). A tag is deleted as a tag (OCI 1.1);
  // this registry (distribution 2.8) refuses that, and deleting the manifest would take its other
  // tags along: the record says so, and the tag stays.
  await fetch(`${source.url}/v2/team/gone/manifests/${img.manifest.digest}`, {
    method: 'DELETE',
    headers: { authorization: source.authorization },
  });
  await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(event('delete', 'team/gone', 'v1', img.manifest.digest))),
    context,
  );
  const refused = await rt.store.get({
    sourceRepository: 'team/gone',
    reference: 'v1',
    destinationId: 'basic',
  });
  expect(refused).toMatchObject({ status: 'failed', lastErrorCode: 'REGISTRY_ERROR' });
  expect(refused?.lastErrorMessage).toMatch(/did not delete the tag team\/gone:v1 .*every other tag on it/);
  expect((await getManifest(basic, 'team/gone', 'v1')).status).toBe(200);
  // The Bearer registry refuses it for the same reason, not for want of a token that may delete.
  const refusedBearer = await rt.store.get({
    sourceRepository: 'team/gone',
    reference: 'v1',
    destinationId: 'ghcr',
  });
  expect(refusedBearer).toMatchObject({ status: 'failed', lastErrorCode: 'REGISTRY_ERROR' });
  expect(refusedBearer?.lastErrorMessage).toMatch(/did not delete the tag acme\/gone:v1 .*HTTP 400/);

  // An image deleted by digest (no tag) is deleted by digest.
  await createMirrorHandler(rt)(
    sqsEvent(sqsRecord(event('delete', 'team/gone', '', img.manifest.digest))),
    context,
  );
  const deleted = await rt.store.get({
    sourceRepository: 'team/gone',
    reference: img.manifest.digest,
    destinationId: 'basic',
  });
  expect(deleted).toMatchObject({ status: 'deleted' });
  expect((await getManifest(basic, 'team/gone', img.manifest.digest)).status).toBe(404);
  // A token registry authorizes a DELETE with the `delete` action (the token spec): the token asks for it.
  const deletedBearer = await rt.store.get({
    sourceRepository: 'team/gone',
    reference: img.manifest.digest,
    destinationId: 'ghcr',
  });
  expect(deletedBearer).toMatchObject({ status: 'deleted' });
  expect((await getManifest(viaToken('acme/gone'), 'acme/gone', img.manifest.digest)).status).toBe(404);
  expect(tokens.requests.some((r) => r.scopes.includes('repository:acme/gone:delete'))).toBe(true);
});

test('a login that may push but not delete: its deletions fail as UNAUTHORIZED, not blamed on the registry', async () => {
  const img = await pushImage(
    {
      ...bearer,
      authorization: `Bearer ${tokens.mint([{ type: 'repository', name: 'acme/kept', actions: ['pull', 'push'] }])}`,
    },
    'acme/kept',
    'v1',
    { layers: [1_000] },
  );
  const registry = openRegistry(BEARER_HOST, {
    endpoints: { [BEARER_HOST]: bearer.url },
    credentials: PUSHER,
    retry: { attempts: 1, baseDelayMs: 10, maxDelayMs: 10, maxElapsedMs: 1_000 },
  });
  const repositories = new RegistryRepositories(registry, BEARER_HOST);
  for (const image of [{ tag: 'v1' }, { digest: img.manifest.digest }]) {
    const err = await repositories.deleteImage('acme/kept', image).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAUTHORIZED' });
    expect((err as Error).message).not.toMatch(/every other tag/);
  }
  expect((await getManifest(viaToken('acme/kept'), 'acme/kept', 'v1')).status).toBe(200);
});
