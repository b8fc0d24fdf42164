import {
  CreateRepositoryCommand,
  DescribeImagesCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  GetAuthorizationTokenCommand,
  RepositoryNotFoundException,
} from '@aws-sdk/client-ecr';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { configFromEnvironment } from '../../src/cli/doctor';
import type { CheckResult } from '../../src/doctor/check';
import { DoctorClients } from '../../src/doctor/clients';
import { runDoctor } from '../../src/doctor/doctor';
import { renderResult } from '../../src/doctor/render';
import { pushImage } from '../support/content';
import { startRegistry, TEST_CREDS, TEST_PASSWORD, TEST_TOKEN, type TestRegistry } from '../support/registry';

/**
 * doctor's checks of destinations named by their registry: a registry with a login in a secret, and
 * an ECR registry of another partition with access keys in one. Real registries; AWS mocked.
 */

const A = '111111111111';
const SOURCE = `${A}.dkr.ecr.us-east-1.amazonaws.com`;
const OTHER = 'registry.example.com';
const GOV = '123456789012.dkr.ecr.us-gov-west-1.amazonaws.com';
const LOGIN_SECRET = `arn:aws:secretsmanager:us-east-1:${A}:secret:ecr-mirror/other`;
const KEYS_SECRET = `arn:aws:secretsmanager:us-east-1:${A}:secret:ecr-mirror/gov`;
const KEY_SECRET_VALUE = 'gov-secret-access-key-value';

const sts = mockClient(STSClient);
const ecr = mockClient(ECRClient);
const secrets = mockClient(SecretsManagerClient);

let a: TestRegistry;
let b: TestRegistry;
let digest: string;

beforeAll(async () => {
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
  digest = (await pushImage(a, 'team/api', 'v1', { layers: [1_000] })).manifest.digest;
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

beforeEach(() => {
  for (const m of [sts, ecr, secrets]) m.reset();
  sts.on(GetCallerIdentityCommand).resolves({ Arn: `arn:aws:sts::${A}:assumed-role/ops/alice`, Account: A });
  // Tokens: the test registries' Basic login, for the source (default chain) and for GovCloud (the keys).
  ecr.on(GetAuthorizationTokenCommand).resolves({
    authorizationData: [{ authorizationToken: TEST_TOKEN, expiresAt: new Date(Date.now() + 3600_000) }],
  });
  ecr
    .on(DescribeRepositoriesCommand, { registryId: A })
    .resolves({ repositories: [{ repositoryName: 'team/api' }] });
  ecr.on(DescribeImagesCommand).resolves({ imageDetails: [{ imageDigest: digest, imageTags: ['v1'] }] });
  ecr
    .on(DescribeRepositoriesCommand, { repositoryNames: ['team/api'] })
    .rejects(new RepositoryNotFoundException({ message: 'none', $metadata: {} }));
  ecr.on(CreateRepositoryCommand).resolves({});
  secrets
    .on(GetSecretValueCommand, { SecretId: LOGIN_SECRET })
    .resolves({ SecretString: JSON.stringify(TEST_CREDS) });
  secrets.on(GetSecretValueCommand, { SecretId: KEYS_SECRET }).resolves({
    SecretString: JSON.stringify({ accessKeyId: 'AKIAGOV', secretAccessKey: KEY_SECRET_VALUE }),
  });
});

async function doctor(
  destinations: unknown[],
  extra: Record<string, string> = {},
): Promise<Record<string, CheckResult>> {
  const clients = new DoctorClients();
  try {
    const env = {
      SOURCE_ACCOUNT_ID: A,
      SOURCE_REGION: 'us-east-1',
      DESTINATIONS: JSON.stringify(destinations),
      STATUS_TABLE: 'doctor-registry-status',
      REPOSITORY_PREFIXES: 'team/',
      REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: a.url, [OTHER]: b.url, [GOV]: b.url }),
      ...extra,
    };
    const results = await runDoctor(configFromEnvironment(env), {
      clients,
      registry: {
        retry: { attempts: 1, baseDelayMs: 10, maxDelayMs: 10, maxElapsedMs: 1_000 },
        timeouts: { connectMs: 1_000, headersMs: 5_000, bodyMs: 5_000 },
      },
    });
    const text = results.map((r) => renderResult(r, false)).join('') + JSON.stringify(results);
    for (const secret of [TEST_PASSWORD, TEST_TOKEN, KEY_SECRET_VALUE]) expect(text).not.toContain(secret);
    return Object.fromEntries(results.map((r) => [r.id, r]));
  } finally {
    clients.destroy();
  }
}

const other = { id: 'other', registry: OTHER, credentials: { secretArn: LOGIN_SECRET } };
const gov = { id: 'gov', registry: GOV, credentials: { secretArn: KEYS_SECRET } };

test('a registry with a login and an ECR registry with access keys: secret, login, repository, push, kms', async () => {
  const r = await doctor([other, gov]);
  const ids = Object.keys(r).filter((id) => id.startsWith('destination.'));
  expect(ids).toEqual(
    ['other', 'gov'].flatMap((d) =>
      ['secret', 'login', 'repository', 'push', 'kms'].map((c) => `destination.${d}.${c}`),
    ),
  );
  expect(r['destination.other.secret']).toMatchObject({
    status: 'ok',
    detail: expect.stringContaining('a username and password'),
  });
  expect(r['destination.other.login']).toMatchObject({ status: 'ok' });
  expect(r['destination.other.repository']).toMatchObject({
    status: 'skipped',
    detail: expect.stringContaining('is not ECR'),
  });
  expect(r['destination.other.push']).toMatchObject({ status: 'ok' });
  expect(r['destination.gov.secret']).toMatchObject({
    status: 'ok',
    detail: expect.stringContaining('access keys for ECR in us-gov-west-1'),
  });
  expect(r['destination.gov.login']).toMatchObject({
    status: 'ok',
    detail: expect.stringContaining('GetAuthorizationToken in us-gov-west-1'),
  });
  // Created as the mirror would, in GovCloud, with the secret's keys.
  expect(r['destination.gov.repository']).toMatchObject({
    status: 'ok',
    detail: expect.stringContaining('created'),
  });
  const created = ecr.commandCalls(CreateRepositoryCommand)[0]!;
  const client = created.thisValue as ECRClient;
  expect(await client.config.region()).toBe('us-gov-west-1');
  expect(await client.config.credentials()).toMatchObject({ accessKeyId: 'AKIAGOV' });
  expect(r['destination.gov.push']).toMatchObject({ status: 'ok' });

  // Missing with creation off: the command that creates it, as for a destination with a role.
  const off = await doctor([gov], { CREATE_REPOSITORIES: 'false' });
  expect(off['destination.gov.repository']).toMatchObject({
    status: 'fail',
    detail: `team/api does not exist in ${GOV} and CREATE_REPOSITORIES is off`,
  });
  expect(off['destination.gov.repository']!.fix).toContain(
    'aws ecr create-repository --repository-name team/api --region us-gov-west-1',
  );
  expect(off['destination.gov.push']).toMatchObject({ status: 'skipped' });
});

test('a secret you may not read, a wrong login, and a secret of the wrong kind fail with the fix', async () => {
  secrets
    .on(GetSecretValueCommand, { SecretId: LOGIN_SECRET })
    .rejects(
      Object.assign(
        new Error(
          `User: arn:aws:sts::${A}:assumed-role/ops/alice is not authorized to perform: secretsmanager:GetSecretValue on resource: ${LOGIN_SECRET}`,
        ),
        { name: 'AccessDeniedException' },
      ),
    );
  const refused = await doctor([other]);
  expect(refused['destination.other.secret']).toMatchObject({
    status: 'fail',
    detail: expect.stringContaining(`secretsmanager:GetSecretValue on ${LOGIN_SECRET} refused`),
  });
  expect(refused['destination.other.secret']!.fix).toContain('"secretsmanager:GetSecretValue"');
  expect(refused['destination.other.login']).toMatchObject({ status: 'skipped' });

  secrets
    .on(GetSecretValueCommand, { SecretId: LOGIN_SECRET })
    .resolves({ SecretString: JSON.stringify({ ...TEST_CREDS, password: 'not-it' }) });
  const wrong = await doctor([other]);
  expect(wrong['destination.other.login']).toMatchObject({ status: 'fail' });
  expect(wrong['destination.other.login']!.fix).toContain(LOGIN_SECRET);

  const mixedUp = await doctor([{ ...gov, credentials: { secretArn: LOGIN_SECRET } }]);
  expect(mixedUp['destination.gov.secret']).toMatchObject({
    status: 'fail',
    detail: expect.stringContaining('needs {"accessKeyId","secretAccessKey"}'),
  });
});
