import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { tableDefinition, timeToLiveDefinition } from '../../src/aws/status-table';
import { METRIC_NAMES, METRIC_NAMESPACE, type MetricName } from '../../src/metrics';
import { type FunctionName, PERMISSIONS } from '../../src/permissions';
import { STATUS_INDEX, TABLE_KEYS, TTL_ATTRIBUTE } from '../../src/status/schema';
import { ensureBuilt } from '../support/run-built';
import {
  asList,
  conditionValues,
  danglingReferences,
  dependencyCycle,
  type Json,
  type JsonObject,
  policyStatements,
  type Resource,
  roleStatements,
  statementsFor,
  type Template,
  withConditions,
  zipEntries,
} from './cloudformation';

/**
 * serverless.yml, packaged offline by osls (no AWS credentials, no network) and checked in the
 * CloudFormation it produces. Two param sets: the defaults, and every option turned the other way.
 */

const root = resolve(__dirname, '../..');
const osls = join(root, 'node_modules/osls/bin/serverless.js');
const run = promisify(execFile);

const DESTINATIONS = [
  {
    id: 'prod-eu',
    accountId: '222222222222',
    region: 'eu-west-1',
    roleArn: 'arn:aws:iam::222222222222:role/ecr-mirror-destination',
    externalId: 'external-id-eu',
    repository: { addPrefix: 'mirror/' },
  },
  {
    id: 'dr-us',
    accountId: '333333333333',
    region: 'us-west-2',
    roleArn: 'arn:aws:iam::333333333333:role/ecr-mirror-destination',
    externalId: 'external-id-us',
  },
];
const ROLE_ARNS = DESTINATIONS.map((d) => d.roleArn);
/** Destinations named by their registry: a GovCloud ECR (access keys) and GHCR (a login), secrets in A. */
const GOV_SECRET = 'arn:aws:secretsmanager:us-east-1:111111111111:secret:ecr-mirror/gov-AbC123';
const GHCR_SECRET = 'arn:aws:secretsmanager:us-east-1:111111111111:secret:ecr-mirror/ghcr';
const SECRET_KEY = 'arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const SECRET_DESTINATIONS = [
  {
    id: 'gov',
    registry: '123456789012.dkr.ecr.us-gov-west-1.amazonaws.com',
    credentials: { secretArn: GOV_SECRET, kmsKeyArn: SECRET_KEY },
  },
  {
    id: 'ghcr',
    registry: 'ghcr.io',
    repository: { template: 'acme/{name}' },
    credentials: { secretArn: GHCR_SECRET },
  },
];
const EXTRA_ROLE = 'arn:aws:iam::444444444444:role/ecr-mirror-destination';
const TOPIC = 'arn:aws:sns:us-east-1:111111111111:ops-alerts';

const DEFAULT_PARAMS = { destinations: JSON.stringify(DESTINATIONS) };
const CUSTOM_PARAMS = {
  destinations: JSON.stringify([...DESTINATIONS, ...SECRET_DESTINATIONS]),
  destinationRoleArns: [...ROLE_ARNS, EXTRA_ROLE].join(','),
  sourceAccountId: '111111111111',
  repositoryPrefixes: 'team-a/, base/',
  syncDeletes: 'true',
  maxReceives: '3',
  maxConcurrency: '4',
  alarmTopicArn: TOPIC,
  latencyAlarmMinutes: '2.5',
  dashboard: 'false',
};
/** Only destinations named by their registry: no role to assume at all. */
const SECRET_ONLY_PARAMS = { destinations: JSON.stringify(SECRET_DESTINATIONS) };

interface Packaged {
  template: Template;
  output: string;
  files: string[];
}

/** Runs `osls package` in a temporary copy holding only what packaging reads. */
async function packageService(params: Record<string, string>, dirs: string[]): Promise<Packaged> {
  const dir = await mkdtemp(join(tmpdir(), 'ecr-mirror-package-'));
  dirs.push(dir);
  await cp(join(root, 'serverless.yml'), join(dir, 'serverless.yml'));
  await cp(join(root, 'infra'), join(dir, 'infra'), { recursive: true });
  // The real bundles when `npm run build` made them; otherwise (handler not written yet) a stand-in:
  // the template does not depend on the code.
  if (existsSync(join(root, 'dist/lambda/mirror.js'))) {
    await cp(join(root, 'dist/lambda'), join(dir, 'dist/lambda'), { recursive: true });
  } else {
    await mkdir(join(dir, 'dist/lambda'), { recursive: true });
    await writeFile(
      join(dir, 'dist/lambda/mirror.js'),
      'exports.handler = async () => ({ batchItemFailures: [] });\n',
    );
  }
  // The configuration validator the param step runs (bundled by `npm run build`).
  await cp(ensureBuilt('dist/config-check.js'), join(dir, 'dist/config-check.js'));
  await writeFile(join(dir, 'README.md'), 'not part of the package\n');

  // No credentials at all: packaging must not need AWS.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
  const args = ['package', '--stage', 'ci', '--region', 'us-east-1'];
  for (const [key, value] of Object.entries(params)) args.push(`--param=${key}=${value}`);
  let output: string;
  try {
    const result = await run(process.execPath, [osls, ...args], {
      cwd: dir,
      env: { ...env, NO_COLOR: '1', SLS_TELEMETRY_DISABLED: '1' },
      timeout: 45_000,
    });
    output = result.stdout + result.stderr;
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string };
    throw new Error(`osls package failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
  const out = join(dir, '.serverless');
  return {
    template: JSON.parse(await readFile(join(out, 'cloudformation-template-update-stack.json'), 'utf8')),
    output,
    files: zipEntries(await readFile(join(out, 'ecr-mirror.zip'))),
  };
}

function resource(template: Template, type: string): [string, Resource] {
  const found = Object.entries(template.Resources).filter(([, r]) => r.Type === type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0]!;
}

/** The mirror function, or the rule feeding its queue, among the functions and rules of the stack. */
const mirrorFunction = (template: Template): Resource => named(template, 'MirrorLambdaFunction');
const mirrorRule = (template: Template): [string, Resource] => ['MirrorRule', named(template, 'MirrorRule')];

function named(template: Template, name: string): Resource {
  const r = template.Resources[name];
  if (!r) throw new Error(`no resource ${name}`);
  return r;
}

const props = (r: Resource): JsonObject => r.Properties ?? {};
const getAtt = (name: string, attribute: string): Json => ({ 'Fn::GetAtt': [name, attribute] });

/** The queue a logical id names, among the SQS queues: the mirror queue or its dead-letter queue. */
function queues(template: Template): { queue: string; dlq: string } {
  const names = Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::SQS::Queue')
    .map(([n]) => n);
  const queue = names.find((n) => props(named(template, n)).RedrivePolicy !== undefined);
  const dlq = names.find((n) => n !== queue);
  if (!queue || !dlq || names.length !== 2) throw new Error(`expected a queue and its DLQ, found ${names}`);
  return { queue, dlq };
}

/** Environment names src/config/config.ts reads: `env.NAME` and `bool(env, 'NAME', ...)` forms. */
async function configEnvironmentNames(): Promise<string[]> {
  const source = await readFile(join(root, 'src/config/config.ts'), 'utf8');
  const names = [...source.matchAll(/\benv(?:\.|,\s*')([A-Z][A-Z0-9_]+)/g)].map((m) => m[1]!);
  return [...new Set(names)].sort();
}

describe('serverless.yml packaged by osls', () => {
  const dirs: string[] = [];
  let defaults: Packaged;
  let custom: Packaged;
  let secretOnly: Packaged;

  beforeAll(async () => {
    [defaults, custom, secretOnly] = await Promise.all([
      packageService(DEFAULT_PARAMS, dirs),
      packageService(CUSTOM_PARAMS, dirs),
      packageService(SECRET_ONLY_PARAMS, dirs),
    ]);
  }, 90_000);

  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('refuses to package destinations the Lambdas would refuse at load, naming the setting', async () => {
    const { accountId: _, ...noAccount } = DESTINATIONS[1]!;
    await expect(
      packageService({ destinations: JSON.stringify([DESTINATIONS[0], noAccount]) }, dirs),
    ).rejects.toThrow(/param "destinations"\[1\]\.accountId: is required/);
  }, 45_000);

  it('validates against the osls schema except for the v4-only build key', () => {
    for (const { output } of [defaults, custom]) {
      const lines = output.split('\n').map((l) => l.trim());
      const start = lines.indexOf('Warning: Invalid configuration encountered');
      expect(start).toBeGreaterThanOrEqual(0);
      const end = lines.findIndex((l, i) => i > start && l === '');
      expect(lines.slice(start + 1, end)).toEqual(["at root: unrecognized property 'build'"]);
      expect(output).not.toMatch(/deprecat/i);
    }
  });

  it('is a template CloudFormation can order: no dangling references, no dependency cycle', () => {
    for (const { template } of [defaults, custom]) {
      expect(danglingReferences(template)).toEqual([]);
      expect(dependencyCycle(template)).toBeUndefined();
    }
  });

  it('runs every function on Node.js 24 (nodejs24.x) on arm64', () => {
    const functions = Object.values(defaults.template.Resources).filter(
      (r) => r.Type === 'AWS::Lambda::Function',
    );
    expect(functions).toHaveLength(2);
    for (const f of functions) {
      expect(props(f)).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'] });
    }
  });

  it('packages only the prebuilt bundles', () => {
    expect(defaults.files).toContain('dist/lambda/mirror.js');
    expect(defaults.files.filter((f) => !f.startsWith('dist/lambda/'))).toEqual([]);
  });

  describe('the mirror function', () => {
    const fn = (p: Packaged) => props(mirrorFunction(p.template));
    const environment = (p: Packaged) => (fn(p).Environment as { Variables: Record<string, Json> }).Variables;

    it('runs the bundle on arm64', () => {
      const f = fn(defaults);
      expect(f.Handler).toBe('dist/lambda/mirror.handler');
      expect(f.Architectures).toEqual(['arm64']);
      expect(f.Timeout).toBeLessThanOrEqual(900);
      expect(f.MemorySize).toBeGreaterThanOrEqual(1769);
    });

    it('gets every setting src/config/config.ts reads, but never REGISTRY_ENDPOINTS', async () => {
      const read = await configEnvironmentNames();
      expect(read).toEqual(expect.arrayContaining(['DESTINATIONS', 'MAX_RECEIVES', 'REGISTRY_ENDPOINTS']));
      // AWS_REGION is set by the Lambda runtime; REGISTRY_ENDPOINTS is for local runs and tests only.
      const deployed = read.filter((n) => n !== 'AWS_REGION' && n !== 'REGISTRY_ENDPOINTS');
      for (const p of [defaults, custom]) {
        const vars = environment(p);
        expect(Object.keys(vars).sort()).toEqual(
          [
            ...deployed,
            'NODE_OPTIONS',
            'POWERTOOLS_LOG_LEVEL',
            'POWERTOOLS_METRICS_NAMESPACE',
            'POWERTOOLS_SERVICE_NAME',
          ].sort(),
        );
        expect(vars).not.toHaveProperty('REGISTRY_ENDPOINTS');
        // One `service` dimension per stage (the dashboard's).
        expect(vars.POWERTOOLS_SERVICE_NAME).toBe('ecr-mirror-ci');
        expect(vars.POWERTOOLS_METRICS_NAMESPACE).toBe('EcrMirror');
      }
    });

    it('passes the destinations as JSON and points at the stack’s table, bus and dead-letter queue', () => {
      const vars = environment(defaults);
      const { dlq } = queues(defaults.template);
      expect(JSON.parse(String(vars.DESTINATIONS))).toEqual(DESTINATIONS);
      expect(vars.STATUS_TABLE).toEqual({ Ref: resource(defaults.template, 'AWS::DynamoDB::Table')[0] });
      expect(vars.DEAD_LETTER_QUEUE_URL).toEqual({ Ref: dlq });
      expect(vars.EVENT_BUS_NAME).toBe('default');
      expect(vars.SOURCE_ACCOUNT_ID).toEqual({ Ref: 'AWS::AccountId' });
      expect(vars.SOURCE_REGION).toEqual({ Ref: 'AWS::Region' });
      expect(environment(custom).SOURCE_ACCOUNT_ID).toBe('111111111111');
      expect([vars.SYNC_DELETES, environment(custom).SYNC_DELETES]).toEqual(['false', 'true']);
    });

    it('consumes the mirror queue with partial batch failures and bounded concurrency', () => {
      for (const [p, concurrency] of [
        [defaults, 10],
        [custom, 4],
      ] as const) {
        const mapping = props(resource(p.template, 'AWS::Lambda::EventSourceMapping')[1]);
        expect(mapping.EventSourceArn).toEqual(getAtt(queues(p.template).queue, 'Arn'));
        expect(mapping.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
        expect(mapping.ScalingConfig).toEqual({ MaximumConcurrency: concurrency });
        expect(Number(mapping.BatchSize)).toBeGreaterThanOrEqual(1);
      }
    });
  });

  describe('the EventBridge rule', () => {
    const pattern = (p: Packaged) => props(mirrorRule(p.template)[1]).EventPattern as JsonObject;

    it('matches successful ECR pushes of the source account on the default bus', () => {
      const rule = props(mirrorRule(defaults.template)[1]);
      expect(rule.EventBusName ?? 'default').toBe('default');
      expect(pattern(defaults)).toEqual({
        source: ['aws.ecr'],
        'detail-type': ['ECR Image Action'],
        account: [{ Ref: 'AWS::AccountId' }],
        detail: { result: ['SUCCESS'], 'action-type': ['PUSH'] },
      });
    });

    it('adds DELETE with syncDeletes and prefix filters with repositoryPrefixes', () => {
      expect(pattern(custom)).toEqual({
        source: ['aws.ecr'],
        'detail-type': ['ECR Image Action'],
        account: ['111111111111'],
        detail: {
          result: ['SUCCESS'],
          'action-type': ['PUSH', 'DELETE'],
          'repository-name': [{ prefix: 'team-a/' }, { prefix: 'base/' }],
        },
      });
    });

    it('targets the mirror queue, which accepts messages from this rule only', () => {
      const [ruleName, rule] = mirrorRule(defaults.template);
      const { queue, dlq } = queues(defaults.template);
      const targets = props(rule).Targets as JsonObject[];
      expect(targets).toHaveLength(1);
      expect(targets[0]!.Arn).toEqual(getAtt(queue, 'Arn'));
      expect(targets[0]!.DeadLetterConfig).toEqual({ Arn: getAtt(dlq, 'Arn') });

      const policies = Object.values(defaults.template.Resources).filter(
        (r) => r.Type === 'AWS::SQS::QueuePolicy',
      );
      for (const target of [queue, dlq]) {
        const policy = policies.find((r) =>
          asList(props(r).Queues as Json[]).some(
            (q) => JSON.stringify(q) === JSON.stringify({ Ref: target }),
          ),
        );
        expect(policy).toBeDefined();
        const statements = policyStatements(props(policy!).PolicyDocument);
        expect(statements).toEqual([
          expect.objectContaining({
            Effect: 'Allow',
            Principal: { Service: 'events.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Resource: getAtt(target, 'Arn'),
            Condition: { ArnEquals: { 'aws:SourceArn': getAtt(ruleName, 'Arn') } },
          }),
        ]);
      }
    });
  });

  describe('the queues', () => {
    it('hide a message for at least 6x the function timeout', () => {
      const timeout = Number(props(mirrorFunction(defaults.template)).Timeout);
      const { queue } = queues(defaults.template);
      expect(Number(props(named(defaults.template, queue)).VisibilityTimeout)).toBeGreaterThanOrEqual(
        6 * timeout,
      );
    });

    it('dead-letter after MAX_RECEIVES receives, and keep dead letters 14 days', () => {
      for (const [p, receives] of [
        [defaults, 5],
        [custom, 3],
      ] as const) {
        const { queue, dlq } = queues(p.template);
        const env = (props(mirrorFunction(p.template)).Environment as JsonObject).Variables as JsonObject;
        expect(props(named(p.template, queue)).RedrivePolicy).toEqual({
          deadLetterTargetArn: getAtt(dlq, 'Arn'),
          maxReceiveCount: receives,
        });
        expect(Number(env.MAX_RECEIVES)).toBe(receives);
        expect(props(named(p.template, dlq)).MessageRetentionPeriod).toBe(14 * 24 * 3600);
        for (const q of [queue, dlq]) expect(props(named(p.template, q)).SqsManagedSseEnabled).toBe(true);
      }
    });

    it('raise an alarm on the first dead letter, notifying alarmTopicArn when set', () => {
      for (const [p, actions] of [
        [defaults, []],
        [custom, [TOPIC]],
      ] as const) {
        const alarm = props(named(p.template, 'MirrorDeadLetterAlarm'));
        expect(alarm).toMatchObject({
          Namespace: 'AWS/SQS',
          MetricName: 'ApproximateNumberOfMessagesVisible',
          Dimensions: [{ Name: 'QueueName', Value: getAtt(queues(p.template).dlq, 'QueueName') }],
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        });
        expect(alarm.AlarmActions).toEqual(actions);
      }
    });
  });

  it('creates the status table of src/status/schema.ts', () => {
    const table = props(resource(defaults.template, 'AWS::DynamoDB::Table')[1]);
    const { partition, sort } = TABLE_KEYS;
    expect(table.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.KeySchema).toEqual([
      { AttributeName: partition, KeyType: 'HASH' },
      { AttributeName: sort, KeyType: 'RANGE' },
    ]);
    expect(table.GlobalSecondaryIndexes).toEqual([
      {
        IndexName: STATUS_INDEX.name,
        KeySchema: [
          { AttributeName: STATUS_INDEX.partition, KeyType: 'HASH' },
          { AttributeName: STATUS_INDEX.sort, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ]);
    expect(table.AttributeDefinitions).toEqual(
      [partition, sort, STATUS_INDEX.partition, STATUS_INDEX.sort].map((name) => ({
        AttributeName: name,
        AttributeType: 'S',
      })),
    );
    expect(table.TimeToLiveSpecification).toEqual({ AttributeName: TTL_ATTRIBUTE, Enabled: true });
    expect(table.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
  });

  it('creates the same table as the status store does for local runs', () => {
    const [, table] = resource(defaults.template, 'AWS::DynamoDB::Table');
    const { TableName: _name, ...definition } = tableDefinition('any');
    expect(props(table)).toMatchObject(definition);
    expect(props(table).TimeToLiveSpecification).toEqual(timeToLiveDefinition('any').TimeToLiveSpecification);
  });

  describe('the function roles', () => {
    const FUNCTIONS = { mirror: 'MirrorLambdaFunction', resync: 'ResyncLambdaFunction' } as const;
    /** The role a function runs with: its own role resource, named by Fn::GetAtt. */
    const roleOf = (p: Packaged, name: FunctionName): [string, Resource] => {
      const role = props(named(p.template, FUNCTIONS[name])).Role as { 'Fn::GetAtt': [string, string] };
      const logical = role['Fn::GetAtt'][0];
      return [logical, named(p.template, logical)];
    };
    /** The role's statements as CloudFormation creates them: its conditions evaluated. */
    const statements = (p: Packaged, name: FunctionName) => {
      const role = roleOf(p, name)[1];
      const evaluated = withConditions(role.Properties ?? {}, conditionValues(p.template)) as JsonObject;
      return roleStatements({ ...role, Properties: evaluated });
    };
    const granted = (p: Packaged, name: FunctionName, action: string) =>
      statementsFor(statements(p, name), action).flatMap((s) => asList(s.Resource));
    const sourceArn = `arn:\${AWS::Partition}:ecr:\${SourceRegion}:\${SourceAccountId}:repository/`;
    const sourceRepositories = (account: Json, suffixes: readonly string[]) =>
      suffixes.map((s) => ({
        'Fn::Sub': [`${sourceArn}${s}`, { SourceAccountId: account, SourceRegion: { Ref: 'AWS::Region' } }],
      }));

    it('gives each function a role of its own, with fixed names that fit IAM’s 64 characters', () => {
      const roles = Object.entries(defaults.template.Resources).filter(
        ([, r]) => r.Type === 'AWS::IAM::Role',
      );
      expect(roles.map(([n]) => n).sort()).toEqual(
        [roleOf(defaults, 'mirror')[0], roleOf(defaults, 'resync')[0]].sort(),
      );
      expect(roleOf(defaults, 'mirror')[0]).not.toBe(roleOf(defaults, 'resync')[0]);
      expect(props(roleOf(defaults, 'mirror')[1]).RoleName).toBe('ecr-mirror-ci-us-east-1');
      // infra/destination-role.yml trusts this name too.
      expect(props(roleOf(defaults, 'resync')[1]).RoleName).toBe('ecr-mirror-ci-us-east-1-resync');
      for (const [, role] of roles) {
        expect(policyStatements(props(role).AssumeRolePolicyDocument)).toEqual([
          { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
        ]);
      }
    });

    it.each(['mirror', 'resync'] as const)(
      'grants the %s function exactly the actions src/permissions.ts lists for it',
      (name) => {
        for (const p of [defaults, custom, secretOnly]) {
          // A grant under a condition (roles to assume, secrets to read) only when the destinations need it.
          const conditions = conditionValues(p.template);
          const listed = PERMISSIONS[name]
            .filter((x) => x.caller === 'function' && (!x.when || conditions[x.when]))
            .map((x) => x.action);
          const actions = statements(p, name).flatMap((s) => asList(s.Action));
          expect([...actions].sort()).toEqual([...listed].sort());
          expect(statements(p, name).every((s) => s.Effect === 'Allow' && s.Resource !== undefined)).toBe(
            true,
          );
        }
      },
    );

    it('grants "*" for ecr:GetAuthorizationToken only, and no wildcard actions', () => {
      for (const p of [defaults, custom]) {
        for (const name of ['mirror', 'resync'] as const) {
          const all = statements(p, name);
          const star = all.filter((s) => asList(s.Resource).includes('*'));
          expect(star.map((s) => asList(s.Action))).toEqual(
            name === 'mirror' ? [['ecr:GetAuthorizationToken']] : [],
          );
          expect(all.flatMap((s) => asList(s.Action)).filter((a) => a.includes('*'))).toEqual([]);
        }
      }
    });

    it('lets each function write its own log group only', () => {
      for (const name of ['mirror', 'resync'] as const) {
        const group = `arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/lambda/ecr-mirror-ci-${name}:*`;
        for (const action of ['logs:CreateLogStream', 'logs:PutLogEvents']) {
          expect(granted(defaults, name, action)).toEqual([{ 'Fn::Sub': group }]);
        }
      }
    });

    it('lets both functions assume exactly the configured destination roles', () => {
      for (const name of ['mirror', 'resync'] as const) {
        expect(granted(defaults, name, 'sts:AssumeRole')).toEqual(ROLE_ARNS);
        expect(granted(custom, name, 'sts:AssumeRole')).toEqual([...ROLE_ARNS, EXTRA_ROLE]);
        // No role to assume: no statement (an empty Resource would be refused by IAM).
        expect(statementsFor(statements(secretOnly, name), 'sts:AssumeRole')).toEqual([]);
      }
    });

    it('lets both functions read exactly the configured destination secrets, and decrypt through Secrets Manager', () => {
      for (const name of ['mirror', 'resync'] as const) {
        // A complete ARN as it is; a partial one (no random suffix) as the secret of that name.
        expect(granted(custom, name, 'secretsmanager:GetSecretValue')).toEqual([
          GOV_SECRET,
          `${GHCR_SECRET}-??????`,
        ]);
        expect(granted(secretOnly, name, 'secretsmanager:GetSecretValue')).toEqual([
          GOV_SECRET,
          `${GHCR_SECRET}-??????`,
        ]);
        expect(statementsFor(statements(defaults, name), 'secretsmanager:GetSecretValue')).toEqual([]);
        const decrypt = statementsFor(statements(custom, name), 'kms:Decrypt');
        expect(decrypt.map((st) => [asList(st.Action), st.Resource, st.Condition])).toEqual([
          [
            ['kms:Decrypt'],
            [SECRET_KEY],
            { StringLike: { 'kms:ViaService': { 'Fn::Sub': `secretsmanager.*.\${AWS::URLSuffix}` } } },
          ],
        ]);
        expect(statementsFor(statements(defaults, name), 'kms:Decrypt')).toEqual([]);
      }
    });

    it('lets the mirror pull from the source repositories, under the prefixes when given', () => {
      for (const [p, account, suffixes] of [
        [defaults, { Ref: 'AWS::AccountId' }, ['*']],
        [custom, '111111111111', ['team-a/*', 'base/*']],
      ] as const) {
        for (const action of ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer']) {
          expect(granted(p, 'mirror', action)).toEqual(sourceRepositories(account, suffixes));
        }
        expect(granted(p, 'resync', 'ecr:DescribeImages')).toEqual(sourceRepositories(account, suffixes));
        // Listing repositories (resync) is authorized account-wide; metadata only.
        const listing = statementsFor(statements(p, 'resync'), 'ecr:DescribeRepositories');
        expect(listing.flatMap((st) => asList(st.Resource))).toEqual(sourceRepositories(account, ['*']));
        expect(listing.flatMap((st) => asList(st.Action))).toEqual(['ecr:DescribeRepositories']);
      }
    });

    it('lets the mirror write status items, consume its queue, dead-letter and publish', () => {
      const table = getAtt(resource(defaults.template, 'AWS::DynamoDB::Table')[0], 'Arn');
      const { queue, dlq } = queues(defaults.template);
      for (const action of ['dynamodb:UpdateItem', 'dynamodb:PutItem', 'dynamodb:GetItem']) {
        // The table only: the byStatus index is read by the CLI, not by a function.
        expect(granted(defaults, 'mirror', action)).toEqual([table]);
      }
      expect(granted(defaults, 'mirror', 'events:PutEvents')).toEqual([
        { 'Fn::Sub': `arn:\${AWS::Partition}:events:\${AWS::Region}:\${AWS::AccountId}:event-bus/default` },
      ]);
      expect(granted(defaults, 'mirror', 'sqs:SendMessage')).toEqual([getAtt(dlq, 'Arn')]);
      // A retried message is put back after the mirror's backoff, on the mirror queue only.
      expect(granted(defaults, 'mirror', 'sqs:ChangeMessageVisibility')).toEqual([getAtt(queue, 'Arn')]);
      expect(granted(defaults, 'resync', 'sqs:ChangeMessageVisibility')).toEqual([]);
      for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes']) {
        expect(granted(defaults, 'mirror', action)).toEqual([getAtt(queue, 'Arn')]);
        expect(granted(defaults, 'resync', action)).toEqual([]);
      }
      // The mirror may not start a resync, nor enqueue jobs on its own queue.
      expect(granted(defaults, 'mirror', 'lambda:InvokeFunction')).toEqual([]);
    });

    it('lets the resync record its summary, enqueue on the mirror queue and continue itself', () => {
      const table = getAtt(resource(defaults.template, 'AWS::DynamoDB::Table')[0], 'Arn');
      const { queue } = queues(defaults.template);
      expect(granted(defaults, 'resync', 'dynamodb:PutItem')).toEqual([table]);
      // A paused run reads its summary back from the table.
      expect(granted(defaults, 'resync', 'dynamodb:GetItem')).toEqual([table]);
      expect(granted(defaults, 'resync', 'sqs:SendMessage')).toEqual([getAtt(queue, 'Arn')]);
      expect(granted(defaults, 'resync', 'lambda:InvokeFunction')).toEqual([
        {
          'Fn::Sub': `arn:\${AWS::Partition}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:ecr-mirror-ci-resync`,
        },
      ]);
      // Nothing from the source registry: no token, no pulls.
      for (const action of ['ecr:GetAuthorizationToken', 'ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer']) {
        expect(granted(defaults, 'resync', action)).toEqual([]);
      }
    });

    it('waits for the mirror role before the queue’s event source starts polling with it', () => {
      const mapping = resource(defaults.template, 'AWS::Lambda::EventSourceMapping')[1];
      expect(asList(mapping.DependsOn)).toContain(roleOf(defaults, 'mirror')[0]);
    });
  });

  describe('the dashboard and the alarms', () => {
    type Line = (string | Record<string, string>)[];
    interface Widget {
      type: string;
      properties: { title?: string; metrics?: Line[]; alarms?: string[]; region?: string };
    }
    const widgets = (p: Packaged): Widget[] => {
      const body = props(named(p.template, 'Dashboard')).DashboardBody as { 'Fn::Sub': string };
      return (JSON.parse(body['Fn::Sub']) as { widgets: Widget[] }).widgets;
    };
    /** Each metric of the dashboard: namespace, name, dimensions and options. */
    const lines = (p: Packaged) =>
      widgets(p).flatMap((w) =>
        (w.properties.metrics ?? []).map((line) => {
          const options = typeof line.at(-1) === 'object' ? (line.at(-1) as Record<string, string>) : {};
          const parts = line.filter((x): x is string => typeof x === 'string');
          const [namespace, name, ...rest] = parts;
          const dimensions: Record<string, string> = {};
          for (let i = 0; i + 1 < rest.length; i += 2) dimensions[rest[i]!] = rest[i + 1]!;
          return { widget: w.properties.title, namespace, name: name!, dimensions, options };
        }),
      );
    const service = (p: Packaged) =>
      (props(mirrorFunction(p.template)).Environment as { Variables: Record<string, Json> }).Variables
        .POWERTOOLS_SERVICE_NAME;

    it('is on by default, and the dashboard param turns it off', () => {
      expect(named(defaults.template, 'Dashboard').Condition).toBe('DashboardEnabled');
      expect(defaults.template.Conditions?.DashboardEnabled).toEqual({ 'Fn::Equals': ['true', 'true'] });
      expect(custom.template.Conditions?.DashboardEnabled).toEqual({ 'Fn::Equals': ['false', 'true'] });
      expect(props(named(defaults.template, 'Dashboard')).DashboardName).toBe('ecr-mirror-ci');
    });

    it('shows only EcrMirror metrics the code emits (src/metrics.ts), with the functions’ service dimension', () => {
      const ours = lines(defaults).filter((l) => l.namespace === METRIC_NAMESPACE);
      expect(ours.length).toBeGreaterThan(10);
      expect(service(defaults)).toBe('ecr-mirror-ci');
      for (const l of ours) {
        expect(METRIC_NAMES).toContain(l.name);
        expect(l.dimensions).toEqual({ service: service(defaults) });
      }
      for (const l of lines(defaults)) {
        expect([METRIC_NAMESPACE, 'AWS/Lambda', 'AWS/SQS']).toContain(l.namespace);
      }
      expect(
        (props(mirrorFunction(defaults.template)).Environment as JsonObject).Variables as JsonObject,
      ).toMatchObject({ POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE });
    });

    it('has a widget for each thing the issue lists', () => {
      const shown = (namespace: string, name: string) =>
        lines(defaults).filter((l) => l.namespace === namespace && l.name === name);
      const latency = shown(METRIC_NAMESPACE, 'MirrorLatency' satisfies MetricName);
      expect(latency.map((l) => l.options.stat)).toEqual(['p50', 'p90', 'p99']);
      const emitted: MetricName[] = [
        'ImagesMirrored',
        'ImagesSkipped',
        'ImagesFailed',
        'BytesCopied',
        'RegistryThrottles',
        'RegistryRetries',
        'ResyncRuns',
        'ResyncEnqueued',
      ];
      for (const name of emitted) expect(shown(METRIC_NAMESPACE, name)).not.toHaveLength(0);
      const dlq = { QueueName: `\${${queues(defaults.template).dlq}.QueueName}` };
      for (const name of ['ApproximateNumberOfMessagesVisible', 'ApproximateAgeOfOldestMessage']) {
        expect(shown('AWS/SQS', name).map((l) => l.dimensions)).toEqual([dlq]);
      }
      for (const name of ['Errors', 'Duration', 'ConcurrentExecutions']) {
        expect(shown('AWS/Lambda', name).map((l) => l.dimensions.FunctionName)).toEqual([
          'ecr-mirror-ci-mirror',
          'ecr-mirror-ci-resync',
        ]);
      }
      const alarms = widgets(defaults).find((w) => w.type === 'alarm');
      expect(alarms?.properties.alarms).toEqual([
        `\${MirrorLatencyAlarm.Arn}`,
        `\${MirrorDeadLetterAlarm.Arn}`,
      ]);
      for (const w of widgets(defaults).filter((x) => x.type === 'metric')) {
        expect(w.properties.region).toBe(`\${AWS::Region}`);
      }
    });

    it('raises an alarm when the p99 of mirror latency stays above latencyAlarmMinutes', () => {
      for (const [p, thresholdMs, actions] of [
        [defaults, 10 * 60_000, []],
        [custom, 2.5 * 60_000, [TOPIC]],
      ] as const) {
        const alarm = props(named(p.template, 'MirrorLatencyAlarm'));
        expect(alarm).toMatchObject({
          Namespace: METRIC_NAMESPACE,
          MetricName: 'MirrorLatency' satisfies MetricName,
          Dimensions: [{ Name: 'service', Value: service(p) }],
          ExtendedStatistic: 'p99',
          Threshold: thresholdMs,
          ComparisonOperator: 'GreaterThanThreshold',
          TreatMissingData: 'notBreaching',
        });
        expect(alarm.AlarmActions).toEqual(actions);
        // Beside the dead-letter alarm, with the same actions.
        expect(props(named(p.template, 'MirrorDeadLetterAlarm')).AlarmActions).toEqual(actions);
      }
    });

    it('lists only metrics the code emits', async () => {
      // Every name of src/metrics.ts is passed to emit() somewhere in src/ (emit takes no other).
      const { readdir } = await import('node:fs/promises');
      const files = (await readdir(join(root, 'src'), { recursive: true })).filter((f) => f.endsWith('.ts'));
      const text = (await Promise.all(files.map((f) => readFile(join(root, 'src', f), 'utf8')))).join('\n');
      const emitted = new Set([...text.matchAll(/\bemit\('(\w+)'/g)].map((m) => m[1]));
      expect(METRIC_NAMES.filter((n) => !emitted.has(n))).toEqual([]);
    });
  });

  it('runs the resync function on a daily schedule with an empty input', () => {
    const fn = props(named(defaults.template, 'ResyncLambdaFunction'));
    expect(fn).toMatchObject({ Handler: 'dist/lambda/resync.handler', Runtime: 'nodejs24.x', Timeout: 900 });
    expect(fn.FunctionName).toBe('ecr-mirror-ci-resync');
    const schedules = Object.values(defaults.template.Resources).filter(
      (r) => r.Type === 'AWS::Events::Rule' && props(r).ScheduleExpression !== undefined,
    );
    expect(schedules).toHaveLength(1);
    expect(props(schedules[0]!)).toMatchObject({ ScheduleExpression: 'rate(1 day)', State: 'ENABLED' });
    expect((props(schedules[0]!).Targets as JsonObject[])[0]!.Input).toBe('{}');
  });

  it('outputs the role ARN, table name and queue URLs', () => {
    const { queue, dlq } = queues(defaults.template);
    const outputs = defaults.template.Outputs ?? {};
    const roleArn = (fn: string) => props(named(defaults.template, fn)).Role;
    expect(outputs.MirrorRoleArn?.Value).toEqual(roleArn('MirrorLambdaFunction'));
    expect(outputs.ResyncRoleArn?.Value).toEqual(roleArn('ResyncLambdaFunction'));
    expect(outputs.StatusTableName?.Value).toEqual({
      Ref: resource(defaults.template, 'AWS::DynamoDB::Table')[0],
    });
    expect(outputs.MirrorQueueUrl?.Value).toEqual({ Ref: queue });
    expect(outputs.DeadLetterQueueUrl?.Value).toEqual({ Ref: dlq });
  });
});

describe('infra/serverless-params.cjs', () => {
  type Helper = (context: { resolveVariable: (variable: string) => Promise<unknown> }) => Promise<unknown>;
  // CommonJS, as the framework loads it.
  const helper: Record<string, Helper> = require('../../infra/serverless-params.cjs');
  const base: Record<string, unknown> = {
    'param:destinations': JSON.stringify(DESTINATIONS),
    'param:destinationRoleArns': '',
    'param:sourceAccountId': { Ref: 'AWS::AccountId' },
    'param:sourceRegion': { Ref: 'AWS::Region' },
    'param:repositoryPrefixes': '',
    'self:service': 'ecr-mirror',
    'sls:stage': 'ci',
    'aws:region': 'us-east-1',
  };
  const call = (name: string, overrides: Record<string, unknown> = {}) => {
    const values = { ...base, ...overrides };
    return helper[name]!({
      resolveVariable: async (variable) => {
        if (!(variable in values)) throw new Error(`unexpected variable ${variable}`);
        return values[variable];
      },
    });
  };

  it('refuses an explicit destinationRoleArns that leaves out a destination’s role', async () => {
    await expect(call('destinationRoleArns', { 'param:destinationRoleArns': ROLE_ARNS[0] })).rejects.toThrow(
      `does not list the role of every destination: ${ROLE_ARNS[1]}`,
    );
  });

  it('refuses destinations that are not a JSON array of destinations with roles', async () => {
    await expect(call('destinationsJson', { 'param:destinations': '[{' })).rejects.toThrow('not valid JSON');
    await expect(call('destinationsJson', { 'param:destinations': '[]' })).rejects.toThrow('at least one');
    await expect(
      call('destinationsJson', {
        'param:destinations': JSON.stringify([{ ...DESTINATIONS[1], roleArn: 'x' }]),
      }),
    ).rejects.toThrow('[0].roleArn: must be an IAM role ARN');
  });

  it('checks destinations with the configuration schema: every field, mappings, the role’s account', async () => {
    const destinations = (d: Record<string, unknown>) => ({
      'param:destinations': JSON.stringify([{ ...DESTINATIONS[1], ...d }]),
    });
    for (const [change, message] of [
      [{ region: undefined }, 'param "destinations"[0].region: is required'],
      [{ externalId: undefined }, 'param "destinations"[0].externalId: is required'],
      [
        { repository: { addPrefix: 'Mirror/' } },
        'param "destinations"[0].repository.addPrefix: repository mapping turns',
      ],
      [
        { repository: { stripPrefix: 'team' } },
        'param "destinations"[0].repository.stripPrefix: must be whole path components',
      ],
      [{ repository: { template: 'x/{foo}' } }, 'param "destinations"[0].repository.template: may use only'],
      [
        { roleArn: ROLE_ARNS[0] },
        'param "destinations"[0].roleArn: must be a role in the destination account',
      ],
    ] as const) {
      await expect(call('destinationsJson', destinations(change))).rejects.toThrow(message);
    }
    // With the source account and region as values, a copy onto itself in the source registry is refused too.
    await expect(
      call('destinationsJson', {
        ...destinations({
          accountId: '111111111111',
          region: 'us-east-1',
          roleArn: 'arn:aws:iam::111111111111:role/r',
        }),
        'param:sourceAccountId': '111111111111',
        'param:sourceRegion': 'us-east-1',
      }),
    ).rejects.toThrow('param "destinations"[0].repository: maps "team/api" onto itself');
  });

  it('checks destinations named by their registry too, and lists their secrets and keys for IAM', async () => {
    const secretParams = { 'param:destinations': JSON.stringify(SECRET_DESTINATIONS) };
    await expect(
      call('destinationsJson', {
        'param:destinations': JSON.stringify([{ ...SECRET_DESTINATIONS[1], registry: 'https://ghcr.io' }]),
      }),
    ).rejects.toThrow('param "destinations"[0].registry: must be a registry host');
    await expect(call('destinationSecretArns', secretParams)).resolves.toEqual([
      GOV_SECRET,
      `${GHCR_SECRET}-??????`,
    ]);
    await expect(call('secretKmsKeyArns', secretParams)).resolves.toEqual([SECRET_KEY]);
    await expect(call('hasDestinationRoles', secretParams)).resolves.toBe('false');
    await expect(call('hasDestinationRoles')).resolves.toBe('true');
    await expect(call('hasDestinationSecrets')).resolves.toBe('false');
  });

  it('refuses an unquoted account id and a prefix no repository name can start with', async () => {
    await expect(call('sourceAccountId', { 'param:sourceAccountId': 12345678901 })).rejects.toThrow('quoted');
    await expect(call('sourceRepositoryArns', { 'param:repositoryPrefixes': 'Team/' })).rejects.toThrow(
      'repositoryPrefixes',
    );
  });

  it('refuses a stage that makes the role name longer than IAM allows', async () => {
    await expect(call('mirrorRoleName', { 'sls:stage': 'x'.repeat(50) })).rejects.toThrow('IAM allows 64');
    await expect(call('mirrorRoleName')).resolves.toBe('ecr-mirror-ci-us-east-1');
    // The resync role's name is 7 characters longer; both are refused when it does not fit.
    const stage = 'x'.repeat(64 - 'ecr-mirror--us-east-1'.length - 3);
    await expect(call('mirrorRoleName', { 'sls:stage': stage })).rejects.toThrow('IAM allows 64');
    await expect(call('resyncRoleName', { 'sls:stage': stage })).rejects.toThrow('IAM allows 64');
    await expect(call('resyncRoleName')).resolves.toBe('ecr-mirror-ci-us-east-1-resync');
  });
});
