import { DescribeRepositoriesCommand, type Repository } from '@aws-sdk/client-ecr';
import { DescribeKeyCommand } from '@aws-sdk/client-kms';
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { EcrRepositories } from '../aws/ecr-repositories';
import type { RoleDestination } from '../config/config';
import { mapRepository } from '../config/mapping';
import { MirrorError } from '../errors';
import { DESTINATION_PUSH_ACTIONS, destinationActionsWhen } from '../permissions';
import { RegistryError } from '../registry/errors';
import { probeUpload } from '../registry/probe';
import { type Check, fail, notApplicable, ok } from './check';
import {
  type DestinationState,
  type DoctorContext,
  type DoctorState,
  hostLabel,
  probeOptions,
} from './context';
import { type Denial, partitionOf, repositoriesArn, repositoryArn } from './denied';
import {
  denialIn,
  errorName,
  errorText,
  identityFix,
  json,
  policyHome,
  roleOfSession,
  statement,
} from './fixes';
import { login, refusedTokenFix } from './source-checks';

/** The mirror's reads and push in a destination repository (src/permissions.ts, not retyped here). */
export const PUSH_ACTIONS = DESTINATION_PUSH_ACTIONS;
/** What the destination stack grants for creating repositories, and for a KMS key. */
const CREATE_ACTIONS = destinationActionsWhen('CreateRepositories');
const KMS_ACTIONS = destinationActionsWhen('HasKmsKey');

const SESSION_NAME = 'ecr-mirror-doctor';

/** The checks of one destination, in the order the issue gives them. */
export function destinationChecks(
  ctx: DoctorContext,
  state: DoctorState,
  d: RoleDestination,
  index: number,
): Check[] {
  const id = (name: string) => `destination.${d.id}.${name}`;
  const dest: DestinationState = {};
  state.destinations.set(d.id, dest);
  const host = d.host;
  const roleHome = `the role ${d.roleArn}`;
  /** An explicit deny is not fixed by an Allow: say so before the statement. */
  const withDeny = (denial: Denial | undefined, fix: string): string =>
    denial?.missingIn === 'explicit-deny'
      ? `an explicit Deny refuses it (a service control policy, a permissions boundary, or a Deny statement): an Allow cannot override it; remove or narrow the Deny, then\n${fix}`
      : fix;

  const assumeRole: Check = {
    id: id('assume-role'),
    needs: ['aws.credentials'],
    run: async () => {
      const caller = state.caller!;
      try {
        const out = await ctx.clients.sts(ctx.source.sourceRegion).send(
          new AssumeRoleCommand({
            RoleArn: d.roleArn,
            ExternalId: d.externalId,
            RoleSessionName: SESSION_NAME,
            DurationSeconds: 900,
          }),
        );
        const c = out.Credentials;
        if (!c?.AccessKeyId || !c.SecretAccessKey)
          return fail(`sts:AssumeRole on ${d.roleArn} returned no credentials`);
        dest.credentials = {
          accessKeyId: c.AccessKeyId,
          secretAccessKey: c.SecretAccessKey,
          ...(c.SessionToken && { sessionToken: c.SessionToken }),
          ...(c.Expiration && { expiration: c.Expiration }),
        };
        return ok(`${out.AssumedRoleUser?.Arn ?? d.roleArn} (with the ExternalId of DESTINATIONS[${index}])`);
      } catch (err) {
        const denial = denialIn(err);
        if (!denial)
          return fail(`sts:AssumeRole on ${d.roleArn} failed: ${errorName(err)}: ${errorText(err)}`);
        const callerRole = roleOfSession(caller.arn) ?? caller.arn;
        const asMirror = ctx.mirrorRole !== undefined && ctx.mirrorRole === callerRole;
        const who =
          ctx.mirrorRole && !asMirror ? ` (doctor runs as you; the mirror runs as ${ctx.mirrorRole})` : '';
        const trust = {
          Effect: 'Allow',
          Principal: { AWS: callerRole },
          Action: 'sts:AssumeRole',
          Condition: { StringEquals: { 'sts:ExternalId': `<DESTINATIONS[${index}].externalId>` } },
        };
        // infra/destination-role.yml trusts the mirror's function roles, and operators only when named.
        const operators = asMirror
          ? ''
          : ` (with infra/destination-role.yml: deploy it again with OperatorPrincipalArns=${callerRole}, which trusts it with the same ExternalId)`;
        const causes = [
          `the trust policy's principal: in account ${d.accountId}, the trust policy of ${d.roleArn} must name ${callerRole}${operators}` +
            ` (see it with: aws iam get-role --role-name ${d.roleArn.split('/').pop()} --query Role.AssumeRolePolicyDocument);` +
            ` the statement:\n${json(trust)}`,
          `the ExternalId: DESTINATIONS[${index}].externalId must equal the trust policy's sts:ExternalId` +
            ' (the ExternalId parameter of the destination stack, infra/destination-role.yml)',
          `the caller's sts:AssumeRole permission: ${identityFix(policyHome(caller.arn), statement(['sts:AssumeRole'], [d.roleArn]))}`,
        ];
        // AWS sometimes says which policy is missing the permission: that cause goes first.
        if (denial.missingIn === 'identity') causes.unshift(causes.pop()!);
        const numbered = causes.map((c, i) => `${i + 1}. ${c}`).join('\n');
        return fail(
          `sts:AssumeRole on ${d.roleArn} refused for ${caller.arn}${who}`,
          withDeny(denial, `one of these is wrong:\n${numbered}`),
        );
      }
    },
  };

  const loginCheck: Check = {
    id: id('login'),
    needs: [id('assume-role')],
    run: () =>
      login(ctx, {
        host,
        region: d.region,
        who: d.roleArn,
        whoHome: `${roleHome} (the AuthorizationToken statement of infra/destination-role.yml)`,
        credentials: dest.credentials!,
        onToken: (token) => {
          dest.token = token;
        },
      }),
  };

  const repositoryCheck: Check = {
    id: id('repository'),
    needs: [id('assume-role'), 'source.read'],
    run: async () => {
      if (!state.sample) return notApplicable('no source repository to map (none is in scope)');
      const mirror = ctx.mirror!;
      let name: string;
      try {
        name = mapRepository(state.sample.repository, d.repository, ctx.source.sourceAccountId);
      } catch (err) {
        return fail(errorText(err), `fix DESTINATIONS[${index}].repository`);
      }
      const arn = repositoryArn({ accountId: d.accountId, region: d.region, repository: name });
      const ecr = ctx.clients.ecr(d.region, dest.credentials!);
      let found: Repository | undefined;
      try {
        const out = await ecr.send(
          new DescribeRepositoriesCommand({ registryId: d.accountId, repositoryNames: [name] }),
        );
        found = out.repositories?.[0];
      } catch (err) {
        if (errorName(err) !== 'RepositoryNotFoundException') {
          const denial = denialIn(err);
          if (denial) {
            return fail(
              `ecr:DescribeRepositories on ${arn} refused for ${d.roleArn}`,
              withDeny(denial, identityFix(roleHome, statement(['ecr:DescribeRepositories'], [arn]))),
            );
          }
          return fail(`ecr:DescribeRepositories on ${name} failed: ${errorName(err)}: ${errorText(err)}`);
        }
      }
      if (found) {
        dest.repository = name;
        const encryption = found.encryptionConfiguration?.encryptionType ?? 'AES256';
        return ok(`${name} exists (${encryption}, tags ${found.imageTagMutability ?? 'MUTABLE'})`);
      }
      if (!mirror.createRepositories) {
        return fail(
          `${name} does not exist in ${d.accountId} (${d.region}) and CREATE_REPOSITORIES is off`,
          `create it in account ${d.accountId}:\n  aws ecr create-repository --repository-name ${name} --region ${d.region}\n` +
            'or let the mirror create repositories: createRepositories: true (and AllowCreateRepositories=true in the destination stack)',
        );
      }
      // The only proof that CreateRepository is allowed is to create it, as the mirror would on its first push.
      try {
        await new EcrRepositories(ecr, `${d.accountId}/${d.region}`).ensure(name, d.repositorySettings, true);
      } catch (err) {
        const denial = denialIn(err);
        if (denial) {
          const prefix = repositoriesArn(d.accountId, d.region, `${d.repository.addPrefix ?? ''}*`);
          const actions = CREATE_ACTIONS;
          return fail(
            `ecr:${denial.action?.split(':')[1] ?? 'CreateRepository'} on ${arn} refused for ${d.roleArn} (${name} does not exist yet; CREATE_REPOSITORIES is on)`,
            withDeny(
              denial,
              `${identityFix(roleHome, statement(actions, [prefix]))}\n(AllowCreateRepositories=true in the destination stack; a KMS key needs the kms check's statement too)`,
            ),
          );
        }
        return fail(`creating ${name} in ${d.accountId} (${d.region}) failed: ${errorText(err)}`);
      }
      dest.repository = name;
      return ok(
        `${name} did not exist; created it as the mirror would on its first push (CREATE_REPOSITORIES is on)`,
      );
    },
  };

  const pushCheck: Check = {
    id: id('push'),
    needs: [id('login'), id('repository')],
    run: async () => {
      const name = dest.repository;
      if (!name) return notApplicable('no destination repository to push to');
      const arn = repositoryArn({ accountId: d.accountId, region: d.region, repository: name });
      try {
        const probe = await probeUpload(probeOptions(ctx, host, dest.token!), name);
        return ok(
          probe.cancelled
            ? `upload session opened in ${name} and cancelled: the role may push, nothing stored`
            : `upload session opened in ${name}; the registry does not cancel sessions, this one stores nothing and expires`,
        );
      } catch (err) {
        if (err instanceof RegistryError && err.code === 'DENIED') {
          const denial = denialIn(err);
          const resource = repositoriesArn(d.accountId, d.region, `${d.repository.addPrefix ?? ''}*`);
          return fail(
            `ecr:InitiateLayerUpload on ${arn} refused for ${d.roleArn} (HTTP 403 ${err.ociCode ?? 'DENIED'})`,
            withDeny(
              denial,
              `${identityFix(roleHome, statement(PUSH_ACTIONS, [resource]))}\n` +
                `and no repository policy on ${name} may deny it (aws ecr get-repository-policy --repository-name ${name} --region ${d.region})`,
            ),
          );
        }
        if (err instanceof MirrorError && err.code === 'UNAUTHORIZED') {
          return fail(
            `the registry refused the role's token: ${errorText(err)}`,
            refusedTokenFix(host, d.region),
          );
        }
        return fail(
          `opening an upload session in ${name} on ${hostLabel(ctx, host)} failed: ${errorText(err)}`,
        );
      }
    },
  };

  const kmsCheck: Check = {
    id: id('kms'),
    needs: [id('assume-role')],
    run: async () => {
      const encryption = d.repositorySettings.encryption;
      if (encryption.type !== 'KMS' || !encryption.kmsKey) {
        return notApplicable(
          encryption.type === 'KMS'
            ? 'KMS with the AWS managed key aws/ecr: nothing to check'
            : 'no KMS key configured',
        );
      }
      const key = encryption.kmsKey;
      const keyRegion = /^arn:[\w-]+:kms:([a-z0-9-]+):/.exec(key)?.[1];
      if (keyRegion && keyRegion !== d.region) {
        return fail(
          `the KMS key ${key} is in ${keyRegion}; repositories in ${d.region} need a key of ${d.region}`,
          `set a key of ${d.region} in DESTINATIONS[${index}].repositorySettings.encryption.kmsKey`,
        );
      }
      try {
        const out = await ctx.clients
          .kms(d.region, dest.credentials!)
          .send(new DescribeKeyCommand({ KeyId: key }));
        const meta = out.KeyMetadata;
        if (meta?.KeyState !== 'Enabled') {
          return fail(
            `the KMS key ${meta?.Arn ?? key} is ${meta?.KeyState ?? 'in an unknown state'}`,
            meta?.KeyState === 'PendingDeletion'
              ? `aws kms cancel-key-deletion --key-id ${key} --region ${d.region} && aws kms enable-key --key-id ${key} --region ${d.region}`
              : `aws kms enable-key --key-id ${key} --region ${d.region}`,
          );
        }
        if (meta.KeyUsage !== 'ENCRYPT_DECRYPT' || (meta.KeySpec && meta.KeySpec !== 'SYMMETRIC_DEFAULT')) {
          return fail(
            `the KMS key ${meta.Arn ?? key} is ${meta.KeySpec ?? ''} for ${meta.KeyUsage ?? ''}; ECR needs a symmetric encryption key`,
          );
        }
        return ok(`${meta.Arn ?? key}: enabled, symmetric; the role may describe it`);
      } catch (err) {
        if (errorName(err) === 'NotFoundException') {
          return fail(`no KMS key ${key} in ${d.region} (as seen from account ${d.accountId})`);
        }
        const denial = denialIn(err);
        if (denial?.missingIn === 'identity') {
          // infra/destination-role.yml grants DescribeKey on the keys of its KmsKeyArn parameter.
          return fail(
            `kms:DescribeKey on ${key} refused for ${d.roleArn}: the role is not given this key`,
            withDeny(
              denial,
              `add the key to the destination stack's KmsKeyArn parameter (infra/destination-role.yml) in account ${d.accountId}, or ` +
                identityFix(roleHome, statement(KMS_ACTIONS, [key])),
            ),
          );
        }
        if (denial) {
          const keyPolicy = {
            Effect: 'Allow',
            Principal: { AWS: `arn:${partitionOf(d.region)}:iam::${d.accountId}:root` },
            Action: KMS_ACTIONS,
            Resource: '*',
          };
          return fail(
            `kms:DescribeKey on ${key} refused for ${d.roleArn}`,
            withDeny(
              denial,
              `${identityFix(roleHome, statement(KMS_ACTIONS, [key]))}\n` +
                `(KmsKeyArn in the destination stack) and the key policy must let account ${d.accountId} use the key:\n${json(keyPolicy)}`,
            ),
          );
        }
        return fail(`kms:DescribeKey on ${key} failed: ${errorName(err)}: ${errorText(err)}`);
      }
    },
  };

  return [assumeRole, loginCheck, repositoryCheck, pushCheck, kmsCheck];
}
