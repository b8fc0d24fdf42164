import { DescribeRepositoriesCommand, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { DescribeKeyCommand } from '@aws-sdk/client-kms';
import { DestinationSecret, type SecretCredentials } from '../aws/destination-secret';
import { EcrRepositories } from '../aws/ecr-repositories';
import type { RegistryDestination } from '../config/config';
import { mapRepository } from '../config/mapping';
import { MirrorError } from '../errors';
import type { Credentials } from '../registry/auth';
import { RegistryError } from '../registry/errors';
import { registryBaseUrl } from '../registry/open';
import { pingRegistry, probeUpload } from '../registry/probe';
import { type Check, fail, notApplicable, ok } from './check';
import { type DoctorContext, type DoctorState, hostLabel } from './context';
import { denialIn, errorName, errorText, identityFix, policyHome, statement } from './fixes';

/**
 * The checks of a destination named by its registry, with credentials in a Secrets Manager secret:
 * `secret` (read as you, and its shape), `login` (`GET /v2/` with them; for ECR after a token from
 * GetAuthorizationToken with the secret's keys), `repository` (ECR only: exists, or is created as the
 * mirror would), `push` (an upload session opened and cancelled), `kms` (ECR with a KMS key).
 */
export function registryDestinationChecks(
  ctx: DoctorContext,
  state: DoctorState,
  d: RegistryDestination,
  index: number,
): Check[] {
  const id = (name: string) => `destination.${d.id}.${name}`;
  const { secretArn, kmsKeyArn } = d.credentials;
  const ecrRegion = d.accountId !== undefined ? d.region : undefined;
  let value: SecretCredentials | undefined;
  let login: Credentials | undefined;
  let repository: string | undefined;
  const keys = () => {
    if (value?.kind !== 'access-keys') throw new MirrorError('INTERNAL', 'no access keys');
    const { accessKeyId, secretAccessKey, sessionToken } = value;
    return { accessKeyId, secretAccessKey, ...(sessionToken && { sessionToken }) };
  };
  const probe = () => ({
    baseUrl: registryBaseUrl(d.host, { endpoints: ctx.source.registryEndpoints }),
    credentials: async () => login,
    preemptiveBasic: true,
    ...(ctx.registry?.retry && { retry: ctx.registry.retry }),
    ...(ctx.registry?.timeouts && { timeouts: ctx.registry.timeouts }),
  });

  const secretCheck: Check = {
    id: id('secret'),
    needs: ['aws.credentials'],
    run: async () => {
      const region = secretArn.split(':')[3]!;
      try {
        value = await new DestinationSecret(ctx.clients.secretsManager(region), secretArn).get();
      } catch (err) {
        const denial = denialIn((err as { cause?: unknown }).cause ?? err);
        if (denial) {
          const actions = statement(['secretsmanager:GetSecretValue'], [secretArn]);
          const decrypt = kmsKeyArn
            ? `\nand, for its KMS key, ${JSON.stringify(statement(['kms:Decrypt'], [kmsKeyArn]))}`
            : '';
          return fail(
            `secretsmanager:GetSecretValue on ${secretArn} refused for ${state.caller?.arn ?? 'you'}`,
            `the mirror's functions read it with their roles (serverless.yml grants it); to check it as yourself, ${identityFix(policyHome(state.caller?.arn ?? ''), actions)}${decrypt}`,
          );
        }
        if (/ResourceNotFound/.test(errorText(err))) {
          return fail(`no secret ${secretArn} (DESTINATIONS[${index}].credentials.secretArn)`);
        }
        return fail(errorText(err));
      }
      if (ecrRegion && value.kind !== 'access-keys') {
        return fail(
          `secret ${secretArn} holds a username and password; ${d.host} is ECR and needs {"accessKeyId","secretAccessKey"}`,
        );
      }
      if (!ecrRegion && value.kind !== 'password') {
        return fail(
          `secret ${secretArn} holds access keys; ${d.host} is not ECR and needs {"username","password"}`,
        );
      }
      return ok(
        value.kind === 'password'
          ? `${secretArn}: a username and password for ${d.host}`
          : `${secretArn}: access keys for ECR in ${ecrRegion}`,
      );
    },
  };

  const loginCheck: Check = {
    id: id('login'),
    needs: [id('secret')],
    run: async () => {
      let how = 'the secret’s username and password';
      if (value!.kind === 'access-keys') {
        try {
          const out = await ctx.clients.ecr(ecrRegion!, keys()).send(new GetAuthorizationTokenCommand({}));
          const decoded = Buffer.from(
            out.authorizationData?.[0]?.authorizationToken ?? '',
            'base64',
          ).toString('utf8');
          const colon = decoded.indexOf(':');
          if (colon <= 0) return fail(`GetAuthorizationToken in ${ecrRegion} returned no usable token`);
          login = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
          how = `a token from GetAuthorizationToken in ${ecrRegion} (the secret's keys)`;
        } catch (err) {
          return fail(
            `ecr:GetAuthorizationToken in ${ecrRegion} with the keys of ${secretArn} failed: ${errorName(err)}: ${errorText(err)}`,
            'the keys must be an active access key of an IAM user in that account and partition, allowed ecr:GetAuthorizationToken on "*"',
          );
        }
      } else {
        login = { username: value!.username, password: value!.password };
      }
      try {
        await pingRegistry(probe());
      } catch (err) {
        if (err instanceof RegistryError && err.code === 'UNAUTHORIZED') {
          return fail(
            `${hostLabel(ctx, d.host)} refused ${how}: ${errorText(err)}`,
            `put the registry's current credentials in ${secretArn} (the mirror reads it again when refused, and every 10 minutes)`,
          );
        }
        return fail(`GET /v2/ on ${hostLabel(ctx, d.host)} failed: ${errorText(err)}`);
      }
      return ok(`${hostLabel(ctx, d.host)} accepted ${how}`);
    },
  };

  const repositoryCheck: Check = {
    id: id('repository'),
    needs: [id('secret'), 'source.read'],
    run: async () => {
      if (!state.sample) return notApplicable('no source repository to map (none is in scope)');
      try {
        repository = mapRepository(state.sample.repository, d.repository, ctx.source.sourceAccountId);
      } catch (err) {
        return fail(errorText(err), `fix DESTINATIONS[${index}].repository`);
      }
      if (!ecrRegion) {
        return notApplicable(
          `${d.host} is not ECR: the mirror creates nothing there; ${repository} is made by the registry on the first push, or refused (see push)`,
        );
      }
      const ecr = ctx.clients.ecr(ecrRegion, keys());
      try {
        await ecr.send(new DescribeRepositoriesCommand({ repositoryNames: [repository] }));
        return ok(`${repository} exists`);
      } catch (err) {
        if (errorName(err) !== 'RepositoryNotFoundException') {
          return fail(
            `ecr:DescribeRepositories on ${repository} failed: ${errorName(err)}: ${errorText(err)}`,
          );
        }
      }
      if (!ctx.mirror?.createRepositories) {
        return fail(
          `${repository} does not exist in ${d.host} and CREATE_REPOSITORIES is off`,
          `create it in account ${d.accountId}, with the keys of ${secretArn} or as an administrator there:\n` +
            `  aws ecr create-repository --repository-name ${repository} --region ${ecrRegion}\n` +
            'or let the mirror create repositories: createRepositories: true (the keys need ecr:CreateRepository)',
        );
      }
      try {
        await new EcrRepositories(ecr, d.host).ensure(repository, d.repositorySettings, true);
      } catch (err) {
        return fail(`creating ${repository} in ${d.host} failed: ${errorText(err)}`);
      }
      return ok(`${repository} did not exist; created it as the mirror would on its first push`);
    },
  };

  const pushCheck: Check = {
    id: id('push'),
    needs: [id('login'), id('repository')],
    run: async () => {
      if (!repository) return notApplicable('no destination repository to push to');
      try {
        const result = await probeUpload(probe(), repository);
        return ok(
          result.cancelled
            ? `upload session opened in ${repository} and cancelled: the credentials may push, nothing stored`
            : `upload session opened in ${repository}; the registry does not cancel sessions, this one stores nothing and expires`,
        );
      } catch (err) {
        if (err instanceof RegistryError && (err.code === 'DENIED' || err.code === 'UNAUTHORIZED')) {
          return fail(
            `${hostLabel(ctx, d.host)} refused an upload to ${repository} for the credentials in ${secretArn}: ${errorText(err)}`,
            `give those credentials the right to push to ${repository} on ${d.host} (and to create it, where the registry creates repositories on push)`,
          );
        }
        return fail(
          `opening an upload session in ${repository} on ${hostLabel(ctx, d.host)} failed: ${errorText(err)}`,
        );
      }
    },
  };

  const kmsCheck: Check = {
    id: id('kms'),
    needs: [id('secret')],
    run: async () => {
      const encryption = d.repositorySettings.encryption;
      if (!ecrRegion || encryption.type !== 'KMS' || !encryption.kmsKey)
        return notApplicable('no KMS key configured');
      try {
        const out = await ctx.clients
          .kms(ecrRegion, keys())
          .send(new DescribeKeyCommand({ KeyId: encryption.kmsKey }));
        const state = out.KeyMetadata?.KeyState;
        return state === 'Enabled'
          ? ok(`${out.KeyMetadata?.Arn ?? encryption.kmsKey}: enabled; the keys may describe it`)
          : fail(`the KMS key ${encryption.kmsKey} is ${state ?? 'in an unknown state'}`);
      } catch (err) {
        return fail(
          `kms:DescribeKey on ${encryption.kmsKey} with the secret's keys failed: ${errorText(err)}`,
        );
      }
    },
  };

  return [secretCheck, loginCheck, repositoryCheck, pushCheck, kmsCheck];
}
