import { LOCAL, type LocalDeployment, startLocalDeployment } from '../../src/local/local-deployment';
import { pushImage } from '../support/content';
import { type LocalDynamo, startStatusTable } from '../support/dynalite';
import { startRegistry, TEST_PASSWORD, TEST_TOKEN, type TestRegistry } from '../support/registry';
import { ensureBuilt, runBuilt } from '../support/run-built';

/**
 * The built CLI as users run it, its AWS calls answered by the local stand-in (AWS_ENDPOINT_URL_*),
 * which aws-sdk-client-mock cannot reach in another process; registries and the table are real.
 */

const TABLE = 'doctor-cli-status';
const SOURCE = `${LOCAL.sourceAccount}.dkr.ecr.${LOCAL.sourceRegion}.amazonaws.com`;
const DEST = `${LOCAL.destinationAccount}.dkr.ecr.${LOCAL.destinationRegion}.amazonaws.com`;

let a: TestRegistry;
let b: TestRegistry;
let dynamo: LocalDynamo;
let deployment: LocalDeployment;

beforeAll(async () => {
  ensureBuilt('dist/cli.js');
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
  dynamo = await startStatusTable(TABLE);
  deployment = await startLocalDeployment({ source: a.url, destination: b.url });
  await pushImage(a, 'demo/hello', '1.0', { layers: [800] });
  deployment.deployFunction(deployment.mirrorEnvironment({ destinationId: 'b', statusTable: TABLE }));
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), dynamo?.stop(), deployment?.standIn.stop()]);
});

/** No AWS profile or instance role of this machine may leak in. */
const ISOLATED = {
  AWS_PROFILE: '',
  AWS_CONFIG_FILE: '/nonexistent/aws-config',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_SESSION_TOKEN: '',
};

const run = (args: string[], extra: Record<string, string> = {}) =>
  runBuilt('dist/cli.js', args, {
    ...ISOLATED,
    ...deployment.doctorEnv({
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      REGISTRY_ENDPOINTS: JSON.stringify({ [SOURCE]: a.url, [DEST]: b.url }),
    }),
    ...extra,
  });

test('doctor --function --json: every finding with its fix, exit code 1 when a check failed', async () => {
  const state = deployment.standIn.state;
  state.rules[0]!.state = 'DISABLED';
  state.queues.get(deployment.deadLetterQueueUrl)!.messages = 3;
  state.denied.add('kms:DescribeKey');
  try {
    const { code, stdout, stderr } = await run(['doctor', '--function', LOCAL.functionName, '--json']);
    expect(stderr).toBe('');
    expect(code).toBe(1);
    const results = JSON.parse(stdout) as {
      id: string;
      status: string;
      detail: string;
      fix: string | null;
    }[];
    for (const r of results) expect(Object.keys(r)).toEqual(['id', 'status', 'detail', 'fix']);
    expect(Object.fromEntries(results.map((r) => [r.id, r.status]))).toEqual({
      'aws.credentials': 'ok',
      'source.login': 'ok',
      'source.read': 'ok',
      'destination.b.assume-role': 'ok',
      'destination.b.login': 'ok',
      // B had no demo/hello: created, as the mirror would on its first push.
      'destination.b.repository': 'ok',
      'destination.b.push': 'ok',
      'destination.b.kms': 'fail',
      'deployment.rule': 'fail',
      'deployment.queue': 'warn',
      'status.recent': 'ok',
    });
    const byId = Object.fromEntries(results.map((r) => [r.id, r]));
    expect(byId['deployment.rule']!.fix).toBe(
      'aws events enable-rule --name ecr-mirror-local-MirrorRule --region us-east-1',
    );
    expect(byId['deployment.queue']!.fix).toContain('aws sqs start-message-move-task');
    expect(byId['destination.b.kms']!.detail).toBe(
      `kms:DescribeKey on ${LOCAL.kmsKey} refused for ${LOCAL.destinationRole}`,
    );
    expect(byId['destination.b.repository']!.detail).toMatch(/demo\/hello did not exist; created it/);
    expect(byId['status.recent']!.fix).toBeNull();
    expect(state.calls).toContain('ECR.CreateRepository');
    // Nothing secret in the output: registry password and token, the assumed keys, the ExternalId.
    for (const secret of [TEST_PASSWORD, TEST_TOKEN, LOCAL.externalId, 'local-operator-secret']) {
      expect(stdout).not.toContain(secret);
    }
  } finally {
    state.rules[0]!.state = 'ENABLED';
    state.queues.get(deployment.deadLetterQueueUrl)!.messages = 0;
    state.denied.delete('kms:DescribeKey');
  }
  // Fixed: the same command passes, as text.
  const { code, stdout } = await run(['doctor', '--function', LOCAL.functionName]);
  expect(stdout).toMatch(
    /^✓ aws\.credentials +arn:aws:sts::111111111111:assumed-role\/ecr-mirror-local-operator\/doctor/,
  );
  expect(stdout.trimEnd().split('\n').pop()).toBe('11 checks: 11 ok, 0 failed, 0 warnings, 0 skipped');
  expect(code).toBe(0);
});

test('doctor without credentials: the exact remedy, exit code 1', async () => {
  const { code, stdout } = await run(['doctor', '--function', LOCAL.functionName], {
    AWS_ACCESS_KEY_ID: '',
    AWS_SECRET_ACCESS_KEY: '',
  });
  expect(code).toBe(1);
  const lines = stdout.split('\n');
  expect(lines[0]).toMatch(/^✗ aws\.credentials +sts:GetCallerIdentity: /);
  expect(stdout).toContain('    aws sso login --profile NAME && export AWS_PROFILE=NAME');
});

test('doctor with an empty AWS_REGION: the region remedy, not a network hint, exit code 1', async () => {
  const { code, stdout } = await run(['doctor', '--function', LOCAL.functionName], { AWS_REGION: '' });
  expect(code).toBe(1);
  expect(stdout.split('\n')[0]).toMatch(/^✗ aws\.credentials +sts:GetCallerIdentity: Region not accepted/);
  expect(stdout).toContain('    set the region of the mirror (its stack):');
  expect(stdout).not.toContain('network path');
});

test('doctor from the environment, with --repository, and its usage errors (exit code 2)', async () => {
  const env = {
    SOURCE_ACCOUNT_ID: LOCAL.sourceAccount,
    SOURCE_REGION: LOCAL.sourceRegion,
  };
  // Only a source configured (the consumer of a grant): the source checks, the rest skipped with why.
  const source = await run(['doctor', '--repository', 'demo/hello:1.0'], env);
  expect(source.stdout).toMatch(
    /✓ source\.read +1 of 1 repositories in scope \(demo\/hello\); demo\/hello:1\.0 is sha256:/,
  );
  expect(source.stdout).toMatch(/- deployment\.rule +no mirror configured/);
  expect(source.code).toBe(0);

  const missingTag = await run(['doctor', '--repository', 'demo/hello:9.9'], env);
  expect(missingTag.stdout).toMatch(/✗ source\.read +demo\/hello:9\.9 is not in 111111111111 \(us-east-1\)/);
  expect(missingTag.code).toBe(1);

  const bad = await run(['doctor', '--repository', 'Not A Repo'], env);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/^ecr-mirror: INVALID_REFERENCE: /);

  const unset = await run(['doctor']);
  expect(unset.code).toBe(2);
  expect(unset.stderr).toMatch(
    /SOURCE_ACCOUNT_ID: is required; doctor reads the mirror's settings from the environment/,
  );

  const noFunction = await run(['doctor', '--function', 'no-such-function']);
  expect(noFunction.code).toBe(1);
  expect(noFunction.stderr).toMatch(/^ecr-mirror: NOT_FOUND: no function no-such-function/);
});

test('grant: merged into the policy, idempotent, dry run as a diff, revoke, JSON', async () => {
  const grant = (...args: string[]) => run(['grant', 'demo/*', '--account', '222222222222', ...args]);
  const dry = await grant('--dry-run');
  expect(dry.code).toBe(0);
  expect(dry.stdout).toMatch(/^demo\/hello: EcrMirrorPull[0-9a-f]{8} would be added \(222222222222\)/);
  expect(dry.stdout).toContain('  +++ demo/hello (after grant)');
  expect(dry.stdout).toContain('Dry run: no policy was changed.');
  expect(deployment.standIn.state.policies.size).toBe(0);

  const first = await grant();
  expect(first.stdout).toMatch(/^demo\/hello: EcrMirrorPull[0-9a-f]{8} added \(222222222222\)/m);
  expect(first.stdout).toContain(
    'docker login --username AWS --password-stdin 111111111111.dkr.ecr.us-east-1.amazonaws.com',
  );
  const calls = () => deployment.standIn.state.calls.filter((c) => c === 'ECR.SetRepositoryPolicy').length;
  expect(calls()).toBe(1);

  const second = await grant('--json');
  const out = JSON.parse(second.stdout);
  expect(out.repositories).toEqual([
    expect.objectContaining({ repository: 'demo/hello', change: 'unchanged', applied: false }),
  ]);
  expect(out.consumerPolicy.Statement[1].Resource).toEqual([
    'arn:aws:ecr:us-east-1:111111111111:repository/demo/hello',
  ]);
  expect(calls()).toBe(1);

  const revoke = await grant('--revoke');
  expect(revoke.stdout).toMatch(/removed \(no statement left: the policy is deleted\)/);
  expect(deployment.standIn.state.policies.size).toBe(0);

  // No region (AWS_REGION empty, no --region): the SDK's sentence, and what to set.
  const noRegion = await run(['grant', 'demo/*', '--account', '222222222222'], { AWS_REGION: '' });
  expect(noRegion.code).toBe(1);
  expect(noRegion.stderr).toMatch(
    /^ecr-mirror: AWS_ERROR: Region not accepted: .* \(set --region or AWS_REGION\)\n$/,
  );

  const usage = await run(['grant', 'demo/*']);
  expect(usage.code).toBe(2);
  expect(usage.stderr).toBe(
    'ecr-mirror: INVALID_ARGUMENT: name who may pull: --account ID or --org o-xxxx\n',
  );
});
