import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { type DestinationOption, PERMISSIONS } from '../../src/permissions';
import {
  asList,
  cloudFormationTags,
  danglingReferences,
  type Json,
  type JsonObject,
  roleStatements,
  type Statement,
  statementsFor,
  type Template,
  withConditions,
} from './cloudformation';

/** infra/destination-role.yml: the role ecr-mirror assumes in each destination account. */

const file = join(resolve(__dirname, '../..'), 'infra/destination-role.yml');
const REPOSITORIES = {
  'Fn::Sub': `arn:\${AWS::Partition}:ecr:*:\${AWS::AccountId}:repository/\${RepositoryPrefix}*`,
};
/** What the functions call through the destination role (src/permissions.ts), by the condition granting it. */
const DESTINATION = Object.values(PERMISSIONS)
  .flat()
  .filter((p) => p.caller === 'destination');
const always = [...new Set(DESTINATION.filter((p) => !p.when).map((p) => p.action))];
const onlyWhen = (option: DestinationOption) => [
  ...new Set(DESTINATION.filter((p) => p.when === option).map((p) => p.action)),
];
const PUSH_AND_READ = always.filter((a) => a !== 'ecr:GetAuthorizationToken');

describe('infra/destination-role.yml', () => {
  let template: Template;
  let role: JsonObject;

  beforeAll(async () => {
    template = parse(await readFile(file, 'utf8'), { customTags: cloudFormationTags }) as Template;
    const roles = Object.values(template.Resources).filter((r) => r.Type === 'AWS::IAM::Role');
    expect(roles).toHaveLength(1);
    role = roles[0]!.Properties ?? {};
  });

  /** The role's permissions once CloudFormation has evaluated the template's conditions. */
  const statementsWhen = (conditions: Record<string, boolean>): Statement[] =>
    roleStatements({ Type: 'AWS::IAM::Role', Properties: withConditions(role, conditions) as JsonObject });
  const ALL_ON = { CreateRepositories: true, Deletes: true, HasKmsKey: true, HasOperators: true };
  const ALL_OFF = { CreateRepositories: false, Deletes: false, HasKmsKey: false, HasOperators: false };

  it('takes the parameters the README documents, the external id hidden', () => {
    const parameters = template.Parameters ?? {};
    expect(Object.keys(parameters)).toEqual(
      expect.arrayContaining([
        'MirrorRoleArn',
        'ExternalId',
        'RepositoryPrefix',
        'AllowCreateRepositories',
        'AllowDeletes',
        'KmsKeyArn',
        'OperatorPrincipalArns',
      ]),
    );
    expect(parameters.ExternalId?.NoEcho).toBe(true);
    expect(parameters.RepositoryPrefix?.Default).toBe('');
    expect(parameters.AllowCreateRepositories?.AllowedValues).toEqual(['true', 'false']);
    expect(parameters.AllowDeletes?.AllowedValues).toEqual(['true', 'false']);
    expect(parameters.AllowDeletes?.Default).toBe('false');
    expect(parameters.KmsKeyArn?.Default).toBe('');
    expect(danglingReferences(template)).toEqual([]);
  });

  it('ties each condition to its parameter', () => {
    expect(template.Conditions).toEqual({
      CreateRepositories: { 'Fn::Equals': [{ Ref: 'AllowCreateRepositories' }, 'true'] },
      Deletes: { 'Fn::Equals': [{ Ref: 'AllowDeletes' }, 'true'] },
      HasKmsKey: { 'Fn::Not': [{ 'Fn::Equals': [{ 'Fn::Join': ['', { Ref: 'KmsKeyArn' }] }, ''] }] },
      HasOperators: expect.anything(),
    });
  });

  it('trusts the mirror’s two function roles, and the operators named, only with the external id', () => {
    const trustWhen = (HasOperators: boolean) =>
      (withConditions(role.AssumeRolePolicyDocument as Json, { HasOperators }) as { Statement: Json[] })
        .Statement;
    const withExternalId = { StringEquals: { 'sts:ExternalId': { Ref: 'ExternalId' } } };
    const functions = {
      Sid: expect.any(String),
      Effect: 'Allow',
      // serverless.yml names the resync function's role after the mirror's (resyncRoleName).
      Principal: { AWS: [{ Ref: 'MirrorRoleArn' }, { 'Fn::Sub': `\${MirrorRoleArn}-resync` }] },
      Action: 'sts:AssumeRole',
      Condition: withExternalId,
    };
    expect(trustWhen(false)).toEqual([functions]);
    // OperatorPrincipalArns: whoever runs `ecr-mirror doctor` against the deployment.
    expect(trustWhen(true)).toEqual([
      functions,
      {
        Sid: expect.any(String),
        Effect: 'Allow',
        Principal: { AWS: { Ref: 'OperatorPrincipalArns' } },
        Action: 'sts:AssumeRole',
        Condition: withExternalId,
      },
    ]);
    expect(template.Parameters?.OperatorPrincipalArns).toMatchObject({
      Type: 'CommaDelimitedList',
      Default: '',
    });
    expect(template.Conditions?.HasOperators).toEqual({
      'Fn::Not': [{ 'Fn::Equals': [{ 'Fn::Join': ['', { Ref: 'OperatorPrincipalArns' }] }, ''] }],
    });
    expect(role.MaxSessionDuration).toBe(3600);
  });

  it('grants "*" for ecr:GetAuthorizationToken only, whatever the parameters', () => {
    for (const conditions of [ALL_ON, ALL_OFF]) {
      const statements = statementsWhen(conditions);
      const star = statements.filter((s) => asList(s.Resource).includes('*'));
      expect(star.map((s) => asList(s.Action))).toEqual([['ecr:GetAuthorizationToken']]);
      expect(statements.flatMap((s) => asList(s.Action)).filter((a) => a.includes('*'))).toEqual([]);
    }
  });

  it('pushes and reads repositories under the prefix, in any region of the account', () => {
    const statements = statementsWhen(ALL_OFF);
    expect(PUSH_AND_READ.length).toBeGreaterThan(5);
    for (const action of PUSH_AND_READ) {
      expect(statementsFor(statements, action).map((s) => s.Resource)).toEqual([REPOSITORIES]);
    }
  });

  it('grants exactly what src/permissions.ts lists for the destination, each under its condition', () => {
    const actions = (conditions: Record<string, boolean>) =>
      [...new Set(statementsWhen(conditions).flatMap((s) => asList(s.Action)))].sort();
    expect(actions(ALL_OFF)).toEqual([...always].sort());
    for (const option of ['CreateRepositories', 'Deletes', 'HasKmsKey'] as const) {
      expect(onlyWhen(option).length).toBeGreaterThan(0);
      expect(actions({ ...ALL_OFF, [option]: true })).toEqual([...always, ...onlyWhen(option)].sort());
    }
    // No DescribeImages: nothing calls it at a destination. GetDownloadUrlForLayer is there for blob
    // mounts only (ECR asks it of whoever mounts from a repository), on the same repositories.
    expect(statementsFor(statementsWhen(ALL_ON), 'ecr:DescribeImages')).toEqual([]);
    expect(
      statementsFor(statementsWhen(ALL_ON), 'ecr:GetDownloadUrlForLayer').map((s) => s.Resource),
    ).toEqual([REPOSITORIES]);
  });

  it('creates repositories and deletes images only when allowed', () => {
    const on = statementsWhen(ALL_ON);
    const off = statementsWhen(ALL_OFF);
    for (const action of ['ecr:CreateRepository', 'ecr:TagResource', 'ecr:BatchDeleteImage']) {
      expect(statementsFor(on, action).map((s) => s.Resource)).toEqual([REPOSITORIES]);
      expect(statementsFor(off, action)).toEqual([]);
    }
    const created = statementsWhen({ ...ALL_OFF, CreateRepositories: true });
    expect(statementsFor(created, 'ecr:CreateRepository')).toHaveLength(1);
    expect(statementsFor(created, 'ecr:BatchDeleteImage')).toEqual([]);
  });

  it('uses the KMS key(s) only when given, and only through ECR; describes them directly (metadata)', () => {
    const viaEcr = { 'kms:ViaService': { 'Fn::Sub': `ecr.*.\${AWS::URLSuffix}` } };
    for (const action of ['kms:CreateGrant', 'kms:DescribeKey', 'kms:RetireGrant']) {
      const granted = statementsFor(statementsWhen(ALL_ON), action);
      expect(granted.map((s) => s.Resource)).toEqual([{ Ref: 'KmsKeyArn' }]);
      expect(statementsFor(statementsWhen(ALL_OFF), action)).toEqual([]);
      if (action === 'kms:DescribeKey') {
        // `ecr-mirror doctor` describes the key as the role, outside ECR: no condition, and alone.
        expect(granted[0]!.Condition).toBeUndefined();
        expect(asList(granted[0]!.Action)).toEqual(['kms:DescribeKey']);
      } else {
        expect(granted[0]!.Condition?.StringLike).toEqual(viaEcr);
      }
    }
  });

  it('lets the role grant the key to an AWS resource only (ECR’s own grant)', () => {
    const [grant] = statementsFor(statementsWhen(ALL_ON), 'kms:CreateGrant');
    expect(grant!.Condition).toEqual({
      Bool: { 'kms:GrantIsForAWSResource': 'true' },
      StringLike: { 'kms:ViaService': { 'Fn::Sub': `ecr.*.\${AWS::URLSuffix}` } },
    });
    expect(asList(grant!.Action)).toEqual(['kms:CreateGrant']);
  });

  it('outputs the role ARN for the mirror’s destinations param', () => {
    const [name] = Object.entries(template.Resources).find(([, r]) => r.Type === 'AWS::IAM::Role')!;
    expect(template.Outputs?.RoleArn?.Value).toEqual({ 'Fn::GetAtt': [name, 'Arn'] });
  });
});
