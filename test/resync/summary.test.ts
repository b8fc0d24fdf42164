import { DynamoResyncLog } from '../../src/aws/resync-log';
import { loadConfig } from '../../src/config/config';
import { openRegistry } from '../../src/registry/open';
import type { ResyncDeps } from '../../src/resync/resync';
import { runResync } from '../../src/resync/resync';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { type FaultProxy, ociError, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';

const TABLE = 'resync-summary';
const DEST = '222222222222.dkr.ecr.eu-west-1.amazonaws.com';

let b: TestRegistry;
let proxy: FaultProxy;
let dynamo: LocalDynamo;

beforeAll(async () => {
  b = await startRegistry();
  proxy = await startFaultProxy(b);
  dynamo = await startStatusTable(TABLE);
});
afterAll(async () => {
  await proxy?.close();
  await Promise.all([b?.stop(), dynamo?.stop()]);
});

const config = () =>
  loadConfig({
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION: 'us-east-1',
    STATUS_TABLE: TABLE,
    DESTINATIONS: JSON.stringify([
      {
        id: 'b',
        accountId: '222222222222',
        region: 'eu-west-1',
        roleArn: 'arn:aws:iam::222222222222:role/ecr-mirror-destination',
        externalId: 'x-id',
      },
    ]),
  });

function deps(overrides: Partial<ResyncDeps> & Pick<ResyncDeps, 'inventory'>): ResyncDeps {
  const registry = openRegistry(DEST, {
    endpoints: { [DEST]: proxy.url },
    credentials: TEST_CREDS,
    retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1, maxElapsedMs: 100 },
  });
  return {
    config: config(),
    destinationRegistry: () => registry,
    remainingMs: () => 600_000,
    log: new DynamoResyncLog(dynamo.client, TABLE, 30),
    newRunId: () => `run-${Math.random().toString(36).slice(2)}`,
    now: () => new Date(),
    ...overrides,
  };
}

test('a destination refusing every repository: the summary stays small, errors counted, the first ones kept', async () => {
  // What ECR answers a role without ecr:ListImages, with the long message it carries.
  proxy.fault({
    method: 'GET',
    path: /\/tags\/list/,
    action: {
      type: 'status',
      status: 403,
      body: ociError(
        'DENIED',
        `User: arn:aws:sts::222222222222:assumed-role/ecr-mirror-destination/ecr-mirror-prod is not authorized to perform: ecr:ListImages on resource: ${'x'.repeat(120)}`,
      ),
    },
  });
  const repositories = Array.from({ length: 3_000 }, (_, i) => `team/service-${i}`);
  const result = await runResync(
    { dryRun: true },
    deps({
      inventory: {
        repositories: async () => ({ repositories }),
        images: async () => ({ images: [{ digest: `sha256:${'1'.repeat(64)}`, tags: ['v1'] }] }),
      },
    }),
  );
  proxy.clearFaults();
  const s = result.summary;
  expect(s).toMatchObject({ complete: true, repositories: 3_000, checked: 3_000, errorCount: 3_000 });
  expect(s.errors).toHaveLength(20);
  expect(s.errors[0]).toMatchObject({ repository: 'team/service-0', destinationId: 'b' });
  expect(s.errors[0]!.message).toMatch(/^DENIED: .*not authorized to perform: ecr:ListImages/);
  // Far under DynamoDB's 400 KB item and the 1 MB asynchronous payload.
  expect(Buffer.byteLength(JSON.stringify(s))).toBeLessThan(16_000);
  // And it is in the table under its run id.
  const saved = await new DynamoResyncLog(dynamo.client, TABLE, 30).load(s.runId, s.startedAt);
  expect(saved).toEqual(s);
}, 60_000);

test('a pause carries only tokens; the run continues from the table and counts each repository once', async () => {
  let pages = 0;
  const inventory: ResyncDeps['inventory'] = {
    repositories: async () => ({ repositories: ['team/a', 'team/b', 'team/c'] }),
    images: async () => {
      pages++;
      return { images: [] };
    },
  };
  // Time runs short after team/a's page: the pause falls between two repositories.
  const first = await runResync(
    { dryRun: true, continueInBackground: false },
    deps({ inventory, remainingMs: () => (pages >= 1 ? 10_000 : 600_000) }),
  );
  expect(first.summary).toMatchObject({ complete: false, repositories: 1 });
  const continuation = first.continuation!;
  expect(Object.keys(continuation).sort()).toEqual(['repositoryIndex', 'runId', 'startedAt']);
  expect(continuation.repositoryIndex).toBe(1);
  const second = await runResync({ dryRun: true, continuation }, deps({ inventory }));
  expect(second.summary).toMatchObject({
    runId: first.summary.runId,
    complete: true,
    invocations: 2,
    repositories: 3,
  });
  await expect(
    runResync({ dryRun: true, continuation: { ...continuation, runId: 'unknown' } }, deps({ inventory })),
  ).rejects.toThrow(/resync run unknown has no summary to continue from/);
});

test('the mirror’s own output in the source registry is not listed', async () => {
  const listed: string[] = [];
  const self = loadConfig({
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION: 'us-east-1',
    STATUS_TABLE: TABLE,
    DESTINATIONS: JSON.stringify([
      {
        id: 'self',
        accountId: '111111111111',
        region: 'us-east-1',
        roleArn: 'arn:aws:iam::111111111111:role/ecr-mirror-destination',
        externalId: 'x-id',
        repository: { addPrefix: 'mirror/' },
      },
    ]),
  });
  const result = await runResync(
    { dryRun: true },
    deps({
      config: self,
      inventory: {
        repositories: async () => ({ repositories: ['team/api', 'mirror/team/api'] }),
        images: async (repository) => {
          listed.push(repository);
          return { images: [] };
        },
      },
    }),
  );
  expect(listed).toEqual(['team/api']);
  expect(result.summary.repositories).toBe(1);
});
