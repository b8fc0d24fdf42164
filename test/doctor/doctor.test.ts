import {
  CreateRepositoryCommand,
  DescribeImagesCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  GetAuthorizationTokenCommand,
} from '@aws-sdk/client-ecr';
import {
  DescribeRuleCommand,
  EventBridgeClient,
  ListRuleNamesByTargetCommand,
  TestEventPatternCommand,
} from '@aws-sdk/client-eventbridge';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoDbStatusStore } from '../../src/aws/dynamodb-status-store';
import { configFromEnvironment } from '../../src/cli/doctor';
import type { CheckResult } from '../../src/doctor/check';
import { DoctorClients } from '../../src/doctor/clients';
import { runDoctor } from '../../src/doctor/doctor';
import { renderResult } from '../../src/doctor/render';
import { mockEcrToken } from '../support/aws-mocks';
import { pushImage } from '../support/content';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { type FaultProxy, ociError, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_PASSWORD, TEST_TOKEN, TEST_USER, type TestRegistry } from '../support/registry';

const A = '111111111111';
const B = '222222222222';
const SOURCE = `${A}.dkr.ecr.us-east-1.amazonaws.com`;
const DEST = `${B}.dkr.ecr.eu-west-1.amazonaws.com`;
const TABLE = 'doctor-status';
const ROLE = `arn:aws:iam::${B}:role/ecr-mirror-destination`;
const EXTERNAL_ID = 'ext-secretish-4711';
const KEY = `arn:aws:kms:eu-west-1:${B}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const QUEUE = `https://sqs.us-east-1.amazonaws.com/${A}/ecr-mirror-prod-mirror`;
const DLQ = `${QUEUE}-dlq`;
const QUEUE_ARN = `arn:aws:sqs:us-east-1:${A}:ecr-mirror-prod-mirror`;
const CALLER = `arn:aws:sts::${A}:assumed-role/ops/alice`;
const CALLER_ROLE = `arn:aws:iam::${A}:role/ops`;
const ASSUMED_SECRET = 'assumed-secret-key-value';
const ASSUMED_TOKEN = 'assumed-session-token-value';

const sts = mockClient(STSClient);
const ecr = mockClient(ECRClient);
const kms = mockClient(KMSClient);
const events = mockClient(EventBridgeClient);
const sqs = mockClient(SQSClient);

let a: TestRegistry;
let b: TestRegistry;
let dynamo: LocalDynamo;
let digest: string;

beforeAll(async () => {
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
  dynamo = await startStatusTable(TABLE);
  process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamo.endpoint;
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
  digest = (await pushImage(a, 'team/api', 'v1', { layers: [1_000] })).manifest.digest;
});
afterAll(async () => {
  delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
  await Promise.all([a?.stop(), b?.stop(), dynamo?.stop()]);
});

const denied = (action: string, resource: string, principal = CALLER, extra = '') =>
  Object.assign(
    new Error(`User: ${principal} is not authorized to perform: ${action} on resource: ${resource}${extra}`),
    { name: action.startsWith('sts:') ? 'AccessDenied' : 'AccessDeniedException' },
  );

beforeEach(() => {
  for (const m of [sts, ecr, kms, events, sqs]) m.reset();
  sts.on(GetCallerIdentityCommand).resolves({ Arn: CALLER, Account: A, UserId: 'AROA:alice' });
  sts.on(AssumeRoleCommand).callsFake((input: { ExternalId?: string; RoleArn?: string }) => {
    if (input.ExternalId !== EXTERNAL_ID) throw denied('sts:AssumeRole', String(input.RoleArn));
    return {
      Credentials: {
        AccessKeyId: 'ASIAASSUMED',
        SecretAccessKey: ASSUMED_SECRET,
        SessionToken: ASSUMED_TOKEN,
        Expiration: new Date(Date.now() + 900_000),
      },
      AssumedRoleUser: {
        Arn: `arn:aws:sts::${B}:assumed-role/ecr-mirror-destination/ecr-mirror-doctor`,
        AssumedRoleId: 'x',
      },
    };
  });
  mockEcrToken(ecr);
  ecr
    .on(DescribeRepositoriesCommand, { registryId: A })
    .resolves({ repositories: [{ repositoryName: 'team/api' }, { repositoryName: 'scratch/x' }] });
  ecr.on(DescribeRepositoriesCommand, { repositoryNames: ['mirror/team/api'] }).resolves({
    repositories: [{ repositoryName: 'mirror/team/api', encryptionConfiguration: { encryptionType: 'KMS' } }],
  });
  ecr.on(DescribeImagesCommand).resolves({
    imageDetails: [{ imageDigest: digest, imageTags: ['v1'], imagePushedAt: new Date() }],
  });
  kms.on(DescribeKeyCommand).resolves({
    KeyMetadata: {
      KeyId: 'k',
      Arn: KEY,
      KeyState: 'Enabled',
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeySpec: 'SYMMETRIC_DEFAULT',
    },
  });
  sqs.on(GetQueueAttributesCommand, { QueueUrl: QUEUE }).resolves({
    Attributes: { QueueArn: QUEUE_ARN, ApproximateNumberOfMessages: '2' },
  });
  sqs.on(GetQueueAttributesCommand, { QueueUrl: DLQ }).resolves({
    Attributes: { QueueArn: `${QUEUE_ARN}-dlq`, ApproximateNumberOfMessages: '0' },
  });
  events.on(ListRuleNamesByTargetCommand).resolves({ RuleNames: ['ecr-mirror-prod-MirrorRule-1'] });
  events.on(DescribeRuleCommand).resolves({
    Name: 'ecr-mirror-prod-MirrorRule-1',
    State: 'ENABLED',
    EventPattern: JSON.stringify({
      source: ['aws.ecr'],
      detail: { 'repository-name': [{ prefix: 'team/' }] },
    }),
  });
  events.on(TestEventPatternCommand).resolves({ Result: true });
});

function env(overrides: Record<string, string | undefined> = {}, destination: Record<string, unknown> = {}) {
  const base: Record<string, string | undefined> = {
    SOURCE_ACCOUNT_ID: A,
    SOURCE_REGION: 'us-east-1',
    DESTINATIONS: JSON.stringify([
      {
        id: 'prod',
        accountId: B,
        region: 'eu-west-1',
        roleArn: ROLE,
        externalId: EXTERNAL_ID,
        repository: { addPrefix: 'mirror/' },
        repositorySettings: { encryption: { type: 'KMS', kmsKey: KEY } },
        ...destination,
      },
    ]),
    STATUS_TABLE: TABLE,
    MIRROR_QUEUE_URL: QUEUE,
    DEAD_LETTER_QUEUE_URL: DLQ,
    REPOSITORY_PREFIXES: 'team/',
    REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: a.url, [DEST]: b.url }),
    ...overrides,
  };
  return Object.fromEntries(Object.entries(base).filter(([, v]) => v !== undefined)) as Record<
    string,
    string
  >;
}

async function doctor(
  e: Record<string, string> = env(),
  target?: { repository: string; reference?: string },
): Promise<Record<string, CheckResult>> {
  const clients = new DoctorClients();
  try {
    const results = await runDoctor(configFromEnvironment(e), {
      clients,
      ...(target && { target }),
      registry: {
        retry: { attempts: 1, baseDelayMs: 10, maxDelayMs: 10, maxElapsedMs: 1_000 },
        timeouts: { connectMs: 1_000, headersMs: 5_000, bodyMs: 5_000 },
      },
    });
    // No credential in any output, text or JSON: registry password, its token, assumed keys, the ExternalId.
    const text = results.map((r) => renderResult(r, false)).join('') + JSON.stringify(results);
    for (const secret of [TEST_PASSWORD, TEST_TOKEN, ASSUMED_SECRET, ASSUMED_TOKEN, EXTERNAL_ID]) {
      expect(text).not.toContain(secret);
    }
    return Object.fromEntries(results.map((r) => [r.id, r]));
  } finally {
    clients.destroy();
  }
}

const IDS = [
  'aws.credentials',
  'source.login',
  'source.read',
  'destination.prod.assume-role',
  'destination.prod.login',
  'destination.prod.repository',
  'destination.prod.push',
  'destination.prod.kms',
  'deployment.rule',
  'deployment.queue',
  'status.recent',
];

test('a healthy setup: every check in order, each ok with its detail', async () => {
  const r = await doctor();
  expect(Object.keys(r)).toEqual(IDS);
  for (const id of IDS) expect([id, r[id]!.status]).toEqual([id, 'ok']);
  expect(r['aws.credentials']!.detail).toBe(`${CALLER} (account ${A})`);
  expect(r['source.login']!.detail).toMatch(
    /token from GetAuthorizationToken in us-east-1 .*accepted by 111111111111\.dkr\.ecr/,
  );
  expect(r['source.read']!.detail).toMatch(
    /^1 of 2 repositories in scope \(team\/api\); team\/api:v1 is sha256:/,
  );
  expect(r['destination.prod.repository']!.detail).toBe('mirror/team/api exists (KMS, tags MUTABLE)');
  expect(r['destination.prod.push']!.detail).toMatch(
    /upload session opened in mirror\/team\/api and cancelled/,
  );
  expect(r['deployment.queue']!.detail).toBe(
    'dead-letter queue empty; 2 messages waiting in the mirror queue',
  );
  expect(r['status.recent']!.fix).toBeNull();
  // The assumed role's credentials reached ECR and KMS: the destination is checked as the role.
  expect(await kms.commandCalls(DescribeKeyCommand)[0]!.thisValue.config.credentials()).toMatchObject({
    accessKeyId: 'ASIAASSUMED',
  });
  // The rule's pattern was tested with a push of the repository checked, in the source account.
  const event = JSON.parse(events.commandCalls(TestEventPatternCommand)[0]!.args[0].input.Event!);
  expect(event).toMatchObject({
    source: 'aws.ecr',
    account: A,
    detail: { 'repository-name': 'team/api', 'image-tag': 'v1' },
  });
});

test('aws.credentials: no credentials gets the exact remedy, and everything after is skipped, not failed', async () => {
  sts.on(GetCallerIdentityCommand).rejects(
    Object.assign(new Error('Could not load credentials from any providers'), {
      name: 'CredentialsProviderError',
    }),
  );
  const r = await doctor();
  expect(r['aws.credentials']).toMatchObject({ status: 'fail' });
  expect(r['aws.credentials']!.fix).toContain('aws sso login --profile NAME && export AWS_PROFILE=NAME');
  for (const id of IDS.slice(1)) expect([id, r[id]!.status]).toEqual([id, 'skipped']);
  expect(r['source.login']!.detail).toBe('needs aws.credentials');
  expect(r['destination.prod.push']!.detail).toBe('needs destination.prod.login');

  sts.on(GetCallerIdentityCommand).rejects(new Error('Region is missing'));
  expect((await doctor())['aws.credentials']!.fix).toContain('export AWS_REGION=');
  sts.on(GetCallerIdentityCommand).rejects(
    Object.assign(new Error('The security token included in the request is expired'), {
      name: 'ExpiredToken',
    }),
  );
  expect((await doctor())['aws.credentials']!.fix).toMatch(/session has expired/);
});

test('source.login: a token the registry refuses is the "no basic auth credentials" case, explained', async () => {
  ecr.on(GetAuthorizationTokenCommand).resolves({
    authorizationData: [
      { authorizationToken: Buffer.from(`${TEST_USER}:wrong-password`).toString('base64') },
    ],
  });
  const r = await doctor();
  expect(r['source.login']).toMatchObject({ status: 'fail' });
  expect(r['source.login']!.detail).toMatch(
    /GET \/v2\/ on 111111111111\.dkr\.ecr\.us-east-1\.amazonaws\.com .*HTTP 401.*no basic auth credentials/,
  );
  expect(r['source.login']!.fix).toContain(
    `aws ecr get-login-password --region us-east-1 | docker login --username AWS --password-stdin ${SOURCE}`,
  );
  expect(r['source.read']).toMatchObject({ status: 'skipped', detail: 'needs source.login' });
  expect(r['destination.prod.login']!.status).toBe('fail'); // the same token is refused by B too
});

test('source.login: GetAuthorizationToken refused names the action and gives the statement', async () => {
  ecr.on(GetAuthorizationTokenCommand).rejects(denied('ecr:GetAuthorizationToken', '*'));
  const r = await doctor();
  expect(r['source.login']).toMatchObject({
    status: 'fail',
    detail: `ecr:GetAuthorizationToken in us-east-1 refused for ${CALLER}`,
  });
  expect(r['source.login']!.fix).toContain(`add to the IAM policy of the role arn:aws:iam::${A}:role/ops:`);
  expect(JSON.parse(r['source.login']!.fix!.slice(r['source.login']!.fix!.indexOf('{')))).toEqual({
    Effect: 'Allow',
    Action: 'ecr:GetAuthorizationToken',
    Resource: '*',
  });
});

test('source.read: access denied names the action and the repository ARN', async () => {
  ecr
    .on(DescribeImagesCommand)
    .rejects(denied('ecr:DescribeImages', `arn:aws:ecr:us-east-1:${A}:repository/team/api`));
  const r = await doctor();
  expect(r['source.read']).toMatchObject({
    status: 'fail',
    detail: `ecr:DescribeImages on arn:aws:ecr:us-east-1:${A}:repository/team/api refused for ${CALLER}`,
  });
  expect(r['source.read']!.fix).toContain('"ecr:BatchGetImage"');
  expect(r['destination.prod.repository']).toMatchObject({ status: 'skipped', detail: 'needs source.read' });
  expect(r['deployment.rule']!.status).toBe('ok');

  ecr.on(DescribeRepositoriesCommand, { registryId: A }).rejects(denied('ecr:DescribeRepositories', '*'));
  const listing = await doctor();
  expect(listing['source.read']!.detail).toBe(
    `ecr:DescribeRepositories on arn:aws:ecr:us-east-1:${A}:repository/* refused for ${CALLER}`,
  );
});

test('source.read from account B (--repository): a refused BatchGetImage points at grant in A', async () => {
  const B_CALLER = `arn:aws:sts::${B}:assumed-role/ci/job`;
  sts.on(GetCallerIdentityCommand).resolves({ Arn: B_CALLER, Account: B });
  const proxy: FaultProxy = await startFaultProxy(a);
  try {
    proxy.fault({
      method: 'HEAD',
      path: /\/manifests\//,
      action: { type: 'status', status: 403, body: ociError('DENIED', 'not authorized') },
    });
    const e = {
      SOURCE_ACCOUNT_ID: A,
      SOURCE_REGION: 'us-east-1',
      REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: proxy.url }),
    };
    const r = await doctor(e, { repository: 'team/api', reference: 'v1' });
    expect(Object.keys(r)).toEqual([
      'aws.credentials',
      'source.login',
      'source.read',
      'deployment.rule',
      'deployment.queue',
      'status.recent',
    ]);
    expect(r['source.read']).toMatchObject({ status: 'fail' });
    expect(r['source.read']!.detail).toMatch(
      new RegExp(
        `^ecr:BatchGetImage on arn:aws:ecr:us-east-1:${A}:repository/team/api refused for ${B_CALLER.replace(/\//g, '\\/')}`,
      ),
    );
    expect(r['source.read']!.fix).toContain(`ecr-mirror grant team/api --account ${B} --region us-east-1`);
    expect(ecr.commandCalls(DescribeRepositoriesCommand)).toHaveLength(0); // B does not list A's repositories
    expect(r['status.recent']).toMatchObject({ status: 'skipped' });
    // Granted: the same check passes from B's side.
    proxy.clearFaults();
    const granted = await doctor(e, { repository: 'team/api', reference: 'v1' });
    expect(granted['source.read']).toMatchObject({ status: 'ok' });
    expect(granted['source.read']!.detail).toMatch(/^team\/api:v1 is sha256:/);
  } finally {
    await proxy.close();
  }
});

test('destination assume-role: a denied AssumeRole explains trust principal, ExternalId and the caller permission', async () => {
  sts
    .on(AssumeRoleCommand)
    .rejects(
      denied(
        'sts:AssumeRole',
        ROLE,
        CALLER,
        ' because no identity-based policy allows the sts:AssumeRole action',
      ),
    );
  const r = await doctor();
  const check = r['destination.prod.assume-role']!;
  expect(check).toMatchObject({ status: 'fail', detail: `sts:AssumeRole on ${ROLE} refused for ${CALLER}` });
  // AWS said the identity policy lacks it: that cause comes first.
  expect(check.fix).toMatch(/^one of these is wrong:\n1\. the caller's sts:AssumeRole permission/);
  expect(check.fix).toContain("the trust policy's principal");
  expect(check.fix).toContain('DESTINATIONS[0].externalId must equal');
  // The destination template trusts the mirror's roles only, unless told of the operator.
  expect(check.fix).toContain(`OperatorPrincipalArns=${CALLER_ROLE}`);
  for (const id of ['login', 'repository', 'kms']) {
    expect(r[`destination.prod.${id}`]).toMatchObject({
      status: 'skipped',
      detail: 'needs destination.prod.assume-role',
    });
  }
  expect(r['destination.prod.push']).toMatchObject({
    status: 'skipped',
    detail: 'needs destination.prod.login',
  });
});

test('destination assume-role: a wrong ExternalId is refused; the explanation names the setting, never the value', async () => {
  const r = await doctor(env({}, { externalId: 'not-the-agreed-one' }));
  const check = r['destination.prod.assume-role']!;
  expect(check.status).toBe('fail');
  expect(check.fix).toMatch(/^one of these is wrong:\n1\. the trust policy's principal/);
  expect(check.fix).toContain('"sts:ExternalId": "<DESTINATIONS[0].externalId>"');
  expect(`${check.detail}${check.fix}`).not.toContain('not-the-agreed-one');
});

test('destination login: a token refused by B', async () => {
  ecr
    .on(GetAuthorizationTokenCommand)
    .resolvesOnce({ authorizationData: [{ authorizationToken: TEST_TOKEN }] })
    .resolves({ authorizationData: [{ authorizationToken: Buffer.from('AWS:expired').toString('base64') }] });
  const r = await doctor();
  expect(r['source.login']!.status).toBe('ok');
  expect(r['destination.prod.login']).toMatchObject({ status: 'fail' });
  expect(r['destination.prod.login']!.fix).toContain(
    `--region eu-west-1 | docker login --username AWS --password-stdin ${DEST}`,
  );
  expect(r['destination.prod.push']).toMatchObject({
    status: 'skipped',
    detail: 'needs destination.prod.login',
  });
  expect(r['destination.prod.repository']!.status).toBe('ok');
});

test('destination repository: missing with creation off fails; with creation on it is created as the mirror would', async () => {
  const missing = Object.assign(new Error(`The repository with name 'mirror/team/api' does not exist`), {
    name: 'RepositoryNotFoundException',
  });
  ecr.on(DescribeRepositoriesCommand, { repositoryNames: ['mirror/team/api'] }).rejects(missing);
  const off = await doctor(env({ CREATE_REPOSITORIES: 'false' }));
  expect(off['destination.prod.repository']).toMatchObject({
    status: 'fail',
    detail: `mirror/team/api does not exist in ${B} (eu-west-1) and CREATE_REPOSITORIES is off`,
  });
  expect(off['destination.prod.repository']!.fix).toContain(
    'aws ecr create-repository --repository-name mirror/team/api --region eu-west-1',
  );
  expect(off['destination.prod.push']).toMatchObject({
    status: 'skipped',
    detail: 'needs destination.prod.repository',
  });
  expect(ecr.commandCalls(CreateRepositoryCommand)).toHaveLength(0);

  ecr.on(CreateRepositoryCommand).resolves({ repository: { repositoryName: 'mirror/team/api' } });
  const on = await doctor();
  expect(on['destination.prod.repository']).toMatchObject({ status: 'ok' });
  expect(on['destination.prod.repository']!.detail).toMatch(/did not exist; created it as the mirror would/);
  expect(ecr.commandCalls(CreateRepositoryCommand)[0]!.args[0].input).toMatchObject({
    repositoryName: 'mirror/team/api',
    encryptionConfiguration: { encryptionType: 'KMS', kmsKey: KEY },
  });
  expect(on['destination.prod.push']!.status).toBe('ok');

  ecr
    .on(CreateRepositoryCommand)
    .rejects(
      denied(
        'ecr:CreateRepository',
        `arn:aws:ecr:eu-west-1:${B}:repository/mirror/team/api`,
        'arn:aws:sts::222222222222:assumed-role/ecr-mirror-destination/ecr-mirror-doctor',
      ),
    );
  const refused = await doctor();
  expect(refused['destination.prod.repository']).toMatchObject({ status: 'fail' });
  expect(refused['destination.prod.repository']!.detail).toMatch(
    /^ecr:CreateRepository on arn:aws:ecr:eu-west-1:222222222222:repository\/mirror\/team\/api refused for arn:aws:iam::222222222222:role\/ecr-mirror-destination/,
  );
  expect(refused['destination.prod.repository']!.fix).toContain(`"arn:aws:ecr:*:${B}:repository/mirror/*"`);
});

test('destination push: an upload refused with 403 DENIED names InitiateLayerUpload and the role statement', async () => {
  const proxy = await startFaultProxy(b);
  try {
    proxy.fault({
      method: 'POST',
      path: /\/blobs\/uploads\/$/,
      action: {
        type: 'status',
        status: 403,
        body: ociError(
          'DENIED',
          'User: arn:aws:sts::222222222222:assumed-role/ecr-mirror-destination/ecr-mirror-doctor is not authorized to perform: ecr:InitiateLayerUpload on resource: arn:aws:ecr:eu-west-1:222222222222:repository/mirror/team/api because no identity-based policy allows the ecr:InitiateLayerUpload action',
        ),
      },
    });
    const r = await doctor(
      env({ REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: a.url, [DEST]: proxy.url }) }),
    );
    const push = r['destination.prod.push']!;
    expect(push).toMatchObject({
      status: 'fail',
      detail: `ecr:InitiateLayerUpload on arn:aws:ecr:eu-west-1:${B}:repository/mirror/team/api refused for ${ROLE} (HTTP 403 DENIED)`,
    });
    expect(push.fix).toContain(`add to the IAM policy of the role ${ROLE}:`);
    expect(push.fix).toContain('"ecr:PutImage"');
    // The working path: the session is opened and cancelled (the real registry answers the DELETE).
    proxy.clearFaults();
    const again = await doctor(
      env({ REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: a.url, [DEST]: proxy.url }) }),
    );
    expect(again['destination.prod.push']!.status).toBe('ok');
    expect(proxy.seen('DELETE', /\/blobs\/uploads\//).map((s) => s.status)).toEqual([204]);
    expect(proxy.seen('PUT')).toHaveLength(0); // nothing was stored
  } finally {
    await proxy.close();
  }
});

test('destination kms: a key the role cannot use, a disabled key, and no key at all', async () => {
  kms
    .on(DescribeKeyCommand)
    .rejects(
      denied(
        'kms:DescribeKey',
        KEY,
        'arn:aws:sts::222222222222:assumed-role/ecr-mirror-destination/ecr-mirror-doctor',
      ),
    );
  const r = await doctor();
  expect(r['destination.prod.kms']).toMatchObject({
    status: 'fail',
    detail: `kms:DescribeKey on ${KEY} refused for ${ROLE}`,
  });
  expect(r['destination.prod.kms']!.fix).toContain('"kms:CreateGrant"');
  expect(r['destination.prod.kms']!.fix).toContain(`"AWS": "arn:aws:iam::${B}:root"`);

  kms
    .on(DescribeKeyCommand)
    .resolves({ KeyMetadata: { KeyId: 'k', Arn: KEY, KeyState: 'Disabled', KeyUsage: 'ENCRYPT_DECRYPT' } });
  const disabled = await doctor();
  expect(disabled['destination.prod.kms']).toMatchObject({
    status: 'fail',
    fix: `aws kms enable-key --key-id ${KEY} --region eu-west-1`,
  });

  // The destination stack grants DescribeKey on the keys of its KmsKeyArn parameter: a refusal by the
  // identity policy means the key is not among them, a failure that says where to add it.
  kms
    .on(DescribeKeyCommand)
    .rejects(
      denied(
        'kms:DescribeKey',
        KEY,
        'arn:aws:sts::222222222222:assumed-role/ecr-mirror-destination/ecr-mirror-doctor',
        ' because no identity-based policy allows the kms:DescribeKey action',
      ),
    );
  const notGiven = await doctor();
  expect(notGiven['destination.prod.kms']).toMatchObject({
    status: 'fail',
    detail: `kms:DescribeKey on ${KEY} refused for ${ROLE}: the role is not given this key`,
  });
  expect(notGiven['destination.prod.kms']!.fix).toContain("the destination stack's KmsKeyArn parameter");
  expect(notGiven['destination.prod.kms']!.fix).toContain('"kms:DescribeKey"');

  // A good key, described as the role (what the destination stack now grants without kms:ViaService).
  kms.on(DescribeKeyCommand).resolves({
    KeyMetadata: {
      KeyId: 'k',
      Arn: KEY,
      KeyState: 'Enabled',
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeySpec: 'SYMMETRIC_DEFAULT',
    },
  });
  expect((await doctor())['destination.prod.kms']).toMatchObject({ status: 'ok' });

  const none = await doctor(env({}, { repositorySettings: {} }));
  expect(none['destination.prod.kms']).toMatchObject({ status: 'skipped', detail: 'no KMS key configured' });
});

test('deployment.rule: a disabled rule, no rule, a pattern that leaves the repository out', async () => {
  events
    .on(DescribeRuleCommand)
    .resolves({ Name: 'ecr-mirror-prod-MirrorRule-1', State: 'DISABLED', EventPattern: '{}' });
  const disabled = await doctor();
  expect(disabled['deployment.rule']).toMatchObject({
    status: 'fail',
    fix: 'aws events enable-rule --name ecr-mirror-prod-MirrorRule-1 --region us-east-1',
  });
  expect(disabled['deployment.rule']!.detail).toMatch(/is DISABLED: pushes are not forwarded/);

  events.on(ListRuleNamesByTargetCommand).resolves({ RuleNames: [] });
  expect((await doctor())['deployment.rule']!.detail).toBe(
    `no EventBridge rule sends to ${QUEUE_ARN}: pushes never reach the mirror`,
  );

  events.on(ListRuleNamesByTargetCommand).resolves({ RuleNames: ['ecr-mirror-prod-MirrorRule-1'] });
  events.on(DescribeRuleCommand).resolves({
    Name: 'ecr-mirror-prod-MirrorRule-1',
    State: 'ENABLED',
    EventPattern: '{"detail":{"repository-name":[{"prefix":"web/"}]}}',
  });
  events.on(TestEventPatternCommand).resolves({ Result: false });
  const narrow = await doctor();
  expect(narrow['deployment.rule']!.detail).toMatch(
    /does not take a push to team\/api in 111111111111 \(us-east-1\); its pattern: .*web\//,
  );
  expect(narrow['deployment.rule']!.fix).toMatch(/repositoryPrefixes/);
});

test('deployment.queue: messages in the dead-letter queue are a warning with the redrive command; exit stays 0', async () => {
  sqs.on(GetQueueAttributesCommand, { QueueUrl: DLQ }).resolves({
    Attributes: { QueueArn: `${QUEUE_ARN}-dlq`, ApproximateNumberOfMessages: '3' },
  });
  const r = await doctor();
  expect(r['deployment.queue']).toMatchObject({
    status: 'warn',
    detail:
      '3 messages in the dead-letter queue: images that were not mirrored (2 messages waiting in the mirror queue)',
  });
  expect(r['deployment.queue']!.fix).toContain(
    `aws sqs start-message-move-task --source-arn ${QUEUE_ARN}-dlq --destination-arn ${QUEUE_ARN} --region us-east-1`,
  );
  expect(Object.values(r).some((c) => c.status === 'fail')).toBe(false);
});

test('not deployed: the deployment checks say why they are skipped; status.recent groups failures by code', async () => {
  const store = new DynamoDbStatusStore(TABLE, 30, dynamo.client);
  const at = new Date().toISOString();
  const base = {
    destinationId: 'prod',
    destinationRepository: 'mirror/team/api',
    bytes: 0,
    blobsCopied: 0,
    blobsSkipped: 0,
    durationMs: 1,
    eventTime: at,
    startedAt: at,
  };
  await store.finish({
    ...base,
    sourceRepository: 'team/api',
    reference: 'v1',
    status: 'failed',
    lastErrorCode: 'DENIED',
    lastErrorMessage: 'ecr:PutImage on arn:… refused; run `ecr-mirror doctor` for the fix',
    eventId: 'e1',
  });
  await store.finish({
    ...base,
    sourceRepository: 'team/api',
    reference: 'v2',
    status: 'failed',
    lastErrorCode: 'DENIED',
    lastErrorMessage: 'denied',
    eventId: 'e2',
  });
  await store.finish({
    ...base,
    sourceRepository: 'team/web',
    reference: 'v1',
    status: 'conflict',
    lastErrorCode: 'TAG_IMMUTABLE',
    lastErrorMessage: 'immutable',
    eventId: 'e3',
  });
  const r = await doctor(env({ MIRROR_QUEUE_URL: undefined }));
  expect(r['deployment.rule']).toMatchObject({
    status: 'skipped',
    detail: expect.stringMatching(/^not deployed: MIRROR_QUEUE_URL is not set/),
  });
  expect(r['deployment.queue']!.status).toBe('skipped');
  expect(r['status.recent']).toMatchObject({
    status: 'warn',
    detail: '2 failed, 1 conflict in the last 24 h: DENIED ×2, TAG_IMMUTABLE ×1',
  });
  expect(r['status.recent']!.fix).toContain(`ecr-mirror status --failed --since 24h --table ${TABLE}`);
  expect(r['status.recent']!.fix).toContain('the newest DENIED');

  const missing = await doctor(env({ STATUS_TABLE: 'no-such-table' }));
  expect(missing['status.recent']!.detail).toBe('the status table no-such-table does not exist in us-east-1');
});

test('text output: one line per check, the fix indented under failures, terminal control characters escaped', () => {
  const text = renderResult(
    { id: 'source.read', status: 'fail', detail: 'evil \x1b[2Jregistry', fix: 'line one\nline \x07two' },
    false,
  );
  expect(text).toBe(`✗ ${'source.read'.padEnd(34)} evil \\x1b[2Jregistry\n    line one\n    line \\x07two\n`);
  expect(renderResult({ id: 'x', status: 'ok', detail: 'fine', fix: null }, false)).toBe(
    `✓ ${'x'.padEnd(34)} fine\n`,
  );
});

test('--function: the configuration comes from the function; its errors are one clear line', async () => {
  const { GetFunctionConfigurationCommand, LambdaClient } = await import('@aws-sdk/client-lambda');
  const { functionConfig } = await import('../../src/cli/doctor');
  const lambda = mockClient(LambdaClient);
  try {
    const variables = env({ REGISTRY_ENDPOINTS: undefined });
    lambda.on(GetFunctionConfigurationCommand).resolves({
      FunctionArn: `arn:aws:lambda:eu-central-1:${A}:function:ecr-mirror-prod-mirror`,
      Role: `arn:aws:iam::${A}:role/ecr-mirror-prod-eu-central-1`,
      Environment: { Variables: variables },
    });
    const client = new LambdaClient({ region: 'eu-central-1' });
    const loaded = await functionConfig(client, 'ecr-mirror-prod-mirror', {
      REGISTRY_ENDPOINTS: '{"h":"http://127.0.0.1:1"}',
    });
    expect(loaded).toMatchObject({
      mirrorRole: `arn:aws:iam::${A}:role/ecr-mirror-prod-eu-central-1`,
      deploymentRegion: 'eu-central-1',
      mirror: { sourceAccountId: A, statusTable: TABLE, registryEndpoints: { h: 'http://127.0.0.1:1' } },
    });

    lambda
      .on(GetFunctionConfigurationCommand)
      .resolves({ Environment: { Variables: { ...variables, DESTINATIONS: '[]' } } });
    await expect(functionConfig(client, 'f', {})).rejects.toThrow(
      'the environment of f is not a valid configuration: DESTINATIONS: must list at least one destination',
    );
    lambda
      .on(GetFunctionConfigurationCommand)
      .rejects(denied('lambda:GetFunctionConfiguration', 'arn:aws:lambda:eu-central-1:1:function:f'));
    await expect(functionConfig(client, 'f', {})).rejects.toMatchObject({ code: 'DENIED' });
    lambda
      .on(GetFunctionConfigurationCommand)
      .rejects(Object.assign(new Error('Function not found'), { name: 'ResourceNotFoundException' }));
    await expect(functionConfig(client, 'f', {})).rejects.toThrow(/^no function f in this region/);
    client.destroy();
  } finally {
    lambda.restore();
  }
});
