import {
  DeleteRepositoryPolicyCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  GetRepositoryPolicyCommand,
  SetRepositoryPolicyCommand,
} from '@aws-sdk/client-ecr';
import { mockClient } from 'aws-sdk-client-mock';
import { consumerAdvice, granteeOf } from '../../src/cli/grant';
import { unifiedDiff } from '../../src/grant/diff';
import { type GrantRequest, grantRepositories } from '../../src/grant/grant';
import { policyText, statementId } from '../../src/grant/policy';

const A = '111111111111';
const ecr = mockClient(ECRClient);
const client = new ECRClient({
  region: 'us-east-1',
  credentials: { accessKeyId: 'k', secretAccessKey: 's' },
});

/** The repositories' policies, as ECR keeps them: set and read back through the mock. */
let policies: Map<string, string>;

const repo = (name: string) => ({
  repositoryName: name,
  registryId: A,
  repositoryArn: `arn:aws:ecr:us-east-1:${A}:repository/${name}`,
});

const EXISTING = {
  Version: '2012-10-17',
  Statement: [
    {
      Sid: 'LambdaPull',
      Effect: 'Allow',
      Principal: { Service: 'lambda.amazonaws.com' },
      Action: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer'],
      Condition: { StringLike: { 'aws:sourceArn': `arn:aws:lambda:us-east-1:${A}:function:*` } },
    },
    { Sid: 'DenyDelete', Effect: 'Deny', Principal: '*', Action: 'ecr:BatchDeleteImage' },
  ],
};

beforeEach(() => {
  ecr.reset();
  policies = new Map([['team/api', JSON.stringify(EXISTING)]]);
  ecr.on(DescribeRepositoriesCommand).callsFake((input: { repositoryNames?: string[] }) => {
    const all = ['team/api', 'team/web', 'other/tool'];
    if (input.repositoryNames) {
      const missing = input.repositoryNames.find((n) => !all.includes(n));
      if (missing) {
        throw Object.assign(new Error(`The repository with name '${missing}' does not exist`), {
          name: 'RepositoryNotFoundException',
        });
      }
      return { repositories: input.repositoryNames.map(repo) };
    }
    return { repositories: all.map(repo) };
  });
  ecr.on(GetRepositoryPolicyCommand).callsFake((input: { repositoryName: string }) => {
    const text = policies.get(input.repositoryName);
    if (!text) throw Object.assign(new Error('no policy'), { name: 'RepositoryPolicyNotFoundException' });
    return { policyText: text, repositoryName: input.repositoryName, registryId: A };
  });
  ecr.on(SetRepositoryPolicyCommand).callsFake((input: { repositoryName: string; policyText: string }) => {
    policies.set(input.repositoryName, input.policyText);
    return { repositoryName: input.repositoryName, policyText: input.policyText };
  });
  ecr.on(DeleteRepositoryPolicyCommand).callsFake((input: { repositoryName: string }) => {
    policies.delete(input.repositoryName);
    return {};
  });
});

const request = (over: Partial<GrantRequest> = {}): GrantRequest => ({
  repositories: ['team/*'],
  grantee: { kind: 'accounts', accounts: ['222222222222'] },
  push: false,
  revoke: false,
  dryRun: false,
  partition: 'aws',
  ...over,
});

const statements = (name: string) => JSON.parse(policies.get(name)!).Statement as Record<string, unknown>[];

test('grant merges one statement per repository; every other statement survives unchanged', async () => {
  const results = await grantRepositories(client, request());
  const sid = statementId('Pull', { kind: 'accounts', accounts: ['222222222222'] });
  expect(sid).toMatch(/^EcrMirrorPull[0-9a-f]{8}$/);
  expect(results.map((r) => [r.repository, r.change, r.applied])).toEqual([
    ['team/api', 'added', true],
    ['team/web', 'added', true],
  ]);
  const api = statements('team/api');
  expect(api.slice(0, 2)).toEqual(EXISTING.Statement);
  expect(api[2]).toEqual({
    Sid: sid,
    Effect: 'Allow',
    Principal: { AWS: 'arn:aws:iam::222222222222:root' },
    Action: [
      'ecr:BatchCheckLayerAvailability',
      'ecr:BatchGetImage',
      'ecr:DescribeImages',
      'ecr:GetDownloadUrlForLayer',
    ],
  });
  expect(statements('team/web')).toEqual([api[2]]); // a repository without a policy gets just ours
  expect(policies.has('other/tool')).toBe(false);
});

test('idempotent: a second run changes nothing and makes no SetRepositoryPolicy call', async () => {
  await grantRepositories(client, request());
  const before = new Map(policies);
  ecr.resetHistory();
  // ECR may hand the policy back reformatted, the principal as a list and the actions reordered.
  const stored = JSON.parse(policies.get('team/web')!);
  stored.Statement[0].Principal.AWS = ['arn:aws:iam::222222222222:root'];
  stored.Statement[0].Action.reverse();
  policies.set('team/web', JSON.stringify(stored));
  const again = await grantRepositories(client, request());
  expect(again.map((r) => r.change)).toEqual(['unchanged', 'unchanged']);
  expect(ecr.commandCalls(SetRepositoryPolicyCommand)).toHaveLength(0);
  expect(policies.get('team/api')).toBe(before.get('team/api'));
  // The same accounts in another order are the same principals: the same Sid.
  const swapped = { kind: 'accounts' as const, accounts: ['333333333333', '222222222222'] };
  expect(statementId('Pull', swapped)).toBe(
    statementId('Pull', { kind: 'accounts', accounts: ['222222222222', '333333333333'] }),
  );
});

test('revoke removes only what grant added; a policy left empty is deleted', async () => {
  await grantRepositories(client, request());
  await grantRepositories(client, request({ grantee: { kind: 'accounts', accounts: ['333333333333'] } }));
  expect(statements('team/api')).toHaveLength(4);
  const revoked = await grantRepositories(client, request({ revoke: true }));
  expect(revoked.map((r) => r.change)).toEqual(['removed', 'removed']);
  const api = statements('team/api');
  expect(api.slice(0, 2)).toEqual(EXISTING.Statement);
  expect(api[2]!.Sid).toBe(statementId('Pull', { kind: 'accounts', accounts: ['333333333333'] }));
  await grantRepositories(
    client,
    request({ revoke: true, grantee: { kind: 'accounts', accounts: ['333333333333'] } }),
  );
  expect(JSON.parse(policies.get('team/api')!)).toEqual(EXISTING);
  expect(policies.has('team/web')).toBe(false);
  expect(ecr.commandCalls(DeleteRepositoryPolicyCommand).map((c) => c.args[0].input.repositoryName)).toEqual([
    'team/web',
  ]);
  // Nothing left to revoke: no call at all.
  ecr.resetHistory();
  const nothing = await grantRepositories(client, request({ revoke: true, repositories: ['team/api'] }));
  expect(nothing[0]!.change).toBe('unchanged');
  expect(ecr.commandCalls(SetRepositoryPolicyCommand)).toHaveLength(0);
  // A statement that only looks like ours by content, not by Sid, is never touched.
  expect(statements('team/api').map((s) => s.Sid)).toEqual(['LambdaPull', 'DenyDelete']);
});

test('--org: any principal of the organization, by aws:PrincipalOrgID; --push adds a push statement', async () => {
  await grantRepositories(
    client,
    request({ repositories: ['team/api'], grantee: { kind: 'org', org: 'o-a1b2c3d4e5' }, push: true }),
  );
  const [pull, push] = statements('team/api').slice(2);
  expect(pull).toMatchObject({
    Sid: statementId('Pull', { kind: 'org', org: 'o-a1b2c3d4e5' }),
    Principal: { AWS: '*' },
    Condition: { StringEquals: { 'aws:PrincipalOrgID': 'o-a1b2c3d4e5' } },
  });
  expect(push).toMatchObject({
    Sid: statementId('Push', { kind: 'org', org: 'o-a1b2c3d4e5' }),
    Action: ['ecr:CompleteLayerUpload', 'ecr:InitiateLayerUpload', 'ecr:PutImage', 'ecr:UploadLayerPart'],
  });
  // --revoke --push takes push away and leaves pull.
  await grantRepositories(
    client,
    request({
      repositories: ['team/api'],
      grantee: { kind: 'org', org: 'o-a1b2c3d4e5' },
      push: true,
      revoke: true,
    }),
  );
  expect(statements('team/api').map((s) => s.Sid)).toEqual(['LambdaPull', 'DenyDelete', pull!.Sid]);
});

test('--dry-run changes nothing and shows the policy before and after as a diff', async () => {
  const results = await grantRepositories(client, request({ repositories: ['team/api'], dryRun: true }));
  expect(ecr.commandCalls(SetRepositoryPolicyCommand)).toHaveLength(0);
  expect(results[0]).toMatchObject({ change: 'added', applied: false });
  const diff = unifiedDiff(policyText(results[0]!.before), policyText(results[0]!.after), {
    before: 'team/api (current policy)',
    after: 'team/api (after grant)',
  });
  const lines = diff.split('\n');
  expect(lines.slice(0, 2)).toEqual(['--- team/api (current policy)', '+++ team/api (after grant)']);
  expect(lines[2]).toMatch(/^@@ -\d+,\d+ \+\d+,\d+ @@$/);
  // Nothing of the old policy goes: at most the closing brace of its last statement gains a comma.
  expect(lines.filter((l) => /^-(?!--)/.test(l)).every((l) => l === '-    }')).toBe(true);
  expect(lines).toContain(`+      "Sid": "${results[0]!.statementIds[0]}",`);
  expect(lines).toContain('+        "AWS": "arn:aws:iam::222222222222:root"');
  // Only the end of the old policy shows, as context: the untouched statements are not repeated.
  expect(diff).not.toContain('LambdaPull');
});

test('globs that match nothing and names that do not exist are errors; usage errors are INVALID_ARGUMENT', async () => {
  await expect(grantRepositories(client, request({ repositories: ['nothing/*'] }))).rejects.toThrow(
    'no repository matches nothing/*',
  );
  await expect(grantRepositories(client, request({ repositories: ['team/gone'] }))).rejects.toMatchObject({
    code: 'NOT_FOUND',
  });
  expect(() => granteeOf({})).toThrow(/--account ID or --org/);
  expect(() => granteeOf({ account: ['12'] })).toThrow(/12-digit/);
  expect(() => granteeOf({ account: ['222222222222'], org: 'o-a1b2c3d4e5' })).toThrow(/not both/);
  expect(() => granteeOf({ org: 'org-1' })).toThrow(/organization id/);
});

test('the consumer side: one IAM policy (token on *, pull on the repository ARNs) and the commands', async () => {
  const results = await grantRepositories(client, request());
  const { policy, commands } = consumerAdvice(results, 'us-east-1', false);
  expect(policy.Statement).toEqual([
    { Sid: 'EcrLogin', Effect: 'Allow', Action: 'ecr:GetAuthorizationToken', Resource: '*' },
    {
      Sid: `EcrPullFrom${A}`,
      Effect: 'Allow',
      Action: [
        'ecr:BatchCheckLayerAvailability',
        'ecr:BatchGetImage',
        'ecr:DescribeImages',
        'ecr:GetDownloadUrlForLayer',
      ],
      Resource: [
        `arn:aws:ecr:us-east-1:${A}:repository/team/api`,
        `arn:aws:ecr:us-east-1:${A}:repository/team/web`,
      ],
    },
  ]);
  expect(commands).toEqual([
    `aws ecr get-login-password --region us-east-1 | docker login --username AWS --password-stdin ${A}.dkr.ecr.us-east-1.amazonaws.com`,
    `docker pull ${A}.dkr.ecr.us-east-1.amazonaws.com/team/api:TAG`,
    `SOURCE_ACCOUNT_ID=${A} SOURCE_REGION=us-east-1 ecr-mirror doctor --repository team/api:TAG`,
  ]);
});

test('unifiedDiff: hunks with three lines of context, line numbers of both sides', () => {
  const before = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'].join('\n');
  const after = ['a', 'B', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'].join('\n');
  expect(unifiedDiff(`${before}\n`, `${after}\n`, { before: 'x', after: 'y' })).toBe(
    [
      '--- x',
      '+++ y',
      '@@ -1,5 +1,5 @@',
      ' a',
      '-b',
      '+B',
      ' c',
      ' d',
      ' e',
      '@@ -8,3 +8,4 @@',
      ' h',
      ' i',
      ' j',
      '+k',
      '',
    ].join('\n'),
  );
  expect(unifiedDiff('same\n', 'same\n', { before: 'x', after: 'y' })).toBe('');
  expect(unifiedDiff('', 'new\n', { before: 'x', after: 'y' })).toBe('--- x\n+++ y\n@@ -0,0 +1,1 @@\n+new\n');
});
