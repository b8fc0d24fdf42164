import {
  DescribeImagesCommand,
  type DescribeImagesCommandOutput,
  DescribeRepositoriesCommand,
  GetAuthorizationTokenCommand,
} from '@aws-sdk/client-ecr';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity } from '@smithy/types';
import { repositoryInScope } from '../config/config';
import { matchesFilter } from '../config/patterns';
import { ecrHost } from '../core/ecr-host';
import { MirrorError } from '../errors';
import { SOURCE_REPOSITORY_ACTIONS } from '../permissions';
import { RegistryError } from '../registry/errors';
import { openRegistry } from '../registry/open';
import { pingRegistry } from '../registry/probe';
import { type Check, fail, type Outcome, ok, warn } from './check';
import type { DoctorClients } from './clients';
import { type DoctorContext, type DoctorState, hostLabel, probeOptions } from './context';
import { repositoryArn } from './denied';
import {
  CREDENTIAL_REMEDIES,
  credentialProblem,
  denialIn,
  errorName,
  errorText,
  identityFix,
  policyHome,
  statement,
} from './fixes';

/** What the mirror and the resync do in a source repository (src/permissions.ts, not retyped here). */
export const PULL_ACTIONS = SOURCE_REPOSITORY_ACTIONS;

/** `aws.credentials`: who am I. No credentials, no region, an expired session: the exact remedy. */
export function credentialsCheck(clients: DoctorClients, state: DoctorState, region?: string): Check {
  return {
    id: 'aws.credentials',
    needs: [],
    run: async () => {
      try {
        const out = await clients.sts(region).send(new GetCallerIdentityCommand({}));
        state.caller = { arn: out.Arn ?? 'unknown', account: out.Account ?? 'unknown' };
        return ok(`${state.caller.arn} (account ${state.caller.account})`);
      } catch (err) {
        const problem = credentialProblem(err);
        if (problem) return fail(`sts:GetCallerIdentity: ${errorText(err)}`, CREDENTIAL_REMEDIES[problem]);
        return fail(
          `sts:GetCallerIdentity failed: ${errorName(err)}: ${errorText(err)}`,
          'check the network path to STS (a proxy or firewall), and AWS_ENDPOINT_URL_STS if it is set',
        );
      }
    },
  };
}

export interface RegistryToken {
  username: string;
  password: string;
  expiresAt?: Date;
}

/** `GetAuthorizationToken` in a region, as the caller or an assumed role; the AWS error is left to the caller. */
export async function authorizationToken(
  ctx: DoctorContext,
  region: string,
  credentials?: AwsCredentialIdentity,
): Promise<RegistryToken> {
  const out = await ctx.clients.ecr(region, credentials).send(new GetAuthorizationTokenCommand({}));
  const data = out.authorizationData?.[0];
  const decoded = data?.authorizationToken
    ? Buffer.from(data.authorizationToken, 'base64').toString('utf8')
    : '';
  const colon = decoded.indexOf(':');
  if (colon <= 0)
    throw new MirrorError('AWS_ERROR', `GetAuthorizationToken in ${region} returned no usable token`);
  return {
    username: decoded.slice(0, colon),
    password: decoded.slice(colon + 1),
    ...(data?.expiresAt && { expiresAt: data.expiresAt }),
  };
}

/** Why a registry refused a token (HTTP 401, docker's "no basic auth credentials"), and what to run. */
export function refusedTokenFix(host: string, region: string): string {
  return (
    `a registry token is good for one region's registries for 12 hours, and docker says "no basic auth credentials"\n` +
    `when it has none for the exact host it pulls from. Log in to ${host} with a token from ${region}:\n` +
    `  aws ecr get-login-password --region ${region} | docker login --username AWS --password-stdin ${host}\n` +
    'if that is refused too, the token and the host disagree: another region (or partition) than the host names,\n' +
    'a REGISTRY_ENDPOINTS entry pointing at another registry, or a clock far off (tokens are signed with a time)'
  );
}

/** The login half shared by source and destination: a token, then `GET /v2/` with it. */
export async function login(
  ctx: DoctorContext,
  args: {
    host: string;
    region: string;
    who: string;
    whoHome: string;
    credentials?: AwsCredentialIdentity;
    onToken: (token: RegistryToken) => void;
  },
): Promise<Outcome> {
  let token: RegistryToken;
  try {
    token = await authorizationToken(ctx, args.region, args.credentials);
  } catch (err) {
    if (denialIn(err)) {
      return fail(
        `ecr:GetAuthorizationToken in ${args.region} refused for ${args.who}`,
        identityFix(args.whoHome, statement(['ecr:GetAuthorizationToken'], ['*'])),
      );
    }
    return fail(`ecr:GetAuthorizationToken in ${args.region} failed: ${errorName(err)}: ${errorText(err)}`);
  }
  try {
    await pingRegistry(probeOptions(ctx, args.host, token));
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'UNAUTHORIZED') {
      return fail(
        `GET /v2/ on ${hostLabel(ctx, args.host)}: HTTP 401, the registry refused the token from ${args.region} ("no basic auth credentials")`,
        refusedTokenFix(args.host, args.region),
      );
    }
    return fail(`GET /v2/ on ${hostLabel(ctx, args.host)} failed: ${errorText(err)}`);
  }
  args.onToken(token);
  const until = token.expiresAt ? ` (valid until ${token.expiresAt.toISOString().slice(0, 16)}Z)` : '';
  return ok(
    `token from GetAuthorizationToken in ${args.region}${until} accepted by ${hostLabel(ctx, args.host)}`,
  );
}

/** `source.login`: a token for A's registry, and an authenticated `GET /v2/` there. */
export function sourceLoginCheck(ctx: DoctorContext, state: DoctorState): Check {
  const { sourceAccountId, sourceRegion } = ctx.source;
  return {
    id: 'source.login',
    needs: ['aws.credentials'],
    run: () =>
      login(ctx, {
        host: ecrHost(sourceAccountId, sourceRegion),
        region: sourceRegion,
        who: state.caller!.arn,
        whoHome: policyHome(state.caller!.arn),
        onToken: (token) => {
          state.sourceToken = token;
        },
      }),
  };
}

/**
 * The fix for a refused read of A's repository: an identity statement when the caller is in A; from
 * another account, A's repository policy (`ecr-mirror grant`) and the caller's own statement.
 */
export function readFix(
  ctx: DoctorContext,
  state: DoctorState,
  repository: string,
  actions: readonly string[],
): string {
  const arn = repositoryArn({
    accountId: ctx.source.sourceAccountId,
    region: ctx.source.sourceRegion,
    repository,
  });
  const caller = state.caller!;
  const own = identityFix(policyHome(caller.arn), statement(actions, [arn]));
  if (caller.account === ctx.source.sourceAccountId) return own;
  return (
    `in account ${ctx.source.sourceAccountId}, its repository policy must let account ${caller.account} pull (run there):\n` +
    `  ecr-mirror grant ${repository} --account ${caller.account} --region ${ctx.source.sourceRegion}\n` +
    `and in account ${caller.account}, ${own}`
  );
}

const MAX_LIST_PAGES = 10;

/** Repositories of A in scope (DescribeRepositories, a few pages at most), sorted. */
async function repositoriesInScope(ctx: DoctorContext): Promise<{ all: number; inScope: string[] }> {
  const ecr = ctx.clients.ecr(ctx.source.sourceRegion);
  const names: string[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_LIST_PAGES; page++) {
    const out = await ecr.send(
      new DescribeRepositoriesCommand({
        registryId: ctx.source.sourceAccountId,
        maxResults: 1000,
        ...(nextToken && { nextToken }),
      }),
    );
    names.push(...(out.repositories ?? []).map((r) => r.repositoryName ?? '').filter(Boolean));
    nextToken = out.nextToken;
    if (!nextToken) break;
  }
  return { all: names.length, inScope: names.filter((n) => repositoryInScope(n, ctx.source)).sort() };
}

const shortDigest = (digest: string): string => `${digest.slice(0, 19)}…`;

/**
 * `source.read`: the repositories in scope, and for `--repository` (or a sample) DescribeImages and a
 * manifest HEAD. A refusal names the action and the repository ARN.
 */
export function sourceReadCheck(ctx: DoctorContext, state: DoctorState): Check {
  const { sourceAccountId, sourceRegion } = ctx.source;
  return {
    id: 'source.read',
    needs: ['source.login'],
    run: async () => {
      const caller = state.caller!;
      const parts: string[] = [];
      const notes: string[] = [];
      let repository = ctx.target?.repository;

      // Listing A's repositories is for A's own principals; from elsewhere, the named repository is checked.
      if (caller.account === sourceAccountId || repository === undefined) {
        let listed: { all: number; inScope: string[] };
        try {
          listed = await repositoriesInScope(ctx);
        } catch (err) {
          const arn = repositoryArn({ accountId: sourceAccountId, region: sourceRegion, repository: '*' });
          if (denialIn(err)) {
            const fix =
              caller.account === sourceAccountId
                ? identityFix(policyHome(caller.arn), statement(['ecr:DescribeRepositories'], [arn]))
                : `account ${caller.account} cannot list the repositories of ${sourceAccountId}: name one with --repository REPO[:TAG]`;
            return fail(`ecr:DescribeRepositories on ${arn} refused for ${caller.arn}`, fix);
          }
          return fail(
            `ecr:DescribeRepositories in ${sourceRegion} failed: ${errorName(err)}: ${errorText(err)}`,
          );
        }
        const shown = listed.inScope.slice(0, 3).join(', ');
        const more = listed.inScope.length > 3 ? ', …' : '';
        parts.push(
          `${listed.inScope.length} of ${listed.all} repositories in scope${listed.inScope.length > 0 ? ` (${shown}${more})` : ''}`,
        );
        if (repository === undefined) {
          repository = listed.inScope[0];
          if (repository === undefined) {
            return warn(
              `no repository of ${sourceAccountId} in ${sourceRegion} is in scope (${listed.all} listed)`,
              'check REPOSITORY_PREFIXES, REPOSITORY_INCLUDE and REPOSITORY_EXCLUDE (the repositoryPrefixes, repositoryInclude and repositoryExclude params)',
            );
          }
        }
      }
      if (!repositoryInScope(repository, ctx.source)) {
        notes.push(`${repository} is not mirrored: outside REPOSITORY_PREFIXES or the repository filters`);
      }

      // One image: the tag or digest asked for, else the newest tagged one the tag filters let through.
      const reference = ctx.target?.repository === repository ? ctx.target.reference : undefined;
      let images: DescribeImagesCommandOutput;
      try {
        images = await ctx.clients.ecr(sourceRegion).send(
          new DescribeImagesCommand({
            registryId: sourceAccountId,
            repositoryName: repository,
            ...(reference !== undefined
              ? {
                  imageIds: [
                    reference.startsWith('sha256:') ? { imageDigest: reference } : { imageTag: reference },
                  ],
                }
              : { filter: { tagStatus: 'TAGGED' }, maxResults: 100 }),
          }),
        );
      } catch (err) {
        const name = errorName(err);
        if (name === 'RepositoryNotFoundException') {
          return fail(`repository ${repository} does not exist in ${sourceAccountId} (${sourceRegion})`);
        }
        if (name === 'ImageNotFoundException') {
          return fail(`${repository}:${reference} is not in ${sourceAccountId} (${sourceRegion})`);
        }
        if (denialIn(err)) {
          const arn = repositoryArn({ accountId: sourceAccountId, region: sourceRegion, repository });
          return fail(
            `ecr:DescribeImages on ${arn} refused for ${caller.arn}`,
            readFix(ctx, state, repository, PULL_ACTIONS),
          );
        }
        return fail(`ecr:DescribeImages on ${repository} failed: ${errorName(err)}: ${errorText(err)}`);
      }
      const details = (images.imageDetails ?? []).filter((d) => d.imageDigest);
      let chosen = reference;
      if (chosen === undefined) {
        const newest = details
          .flatMap((d) => (d.imageTags ?? []).map((tag) => ({ tag, at: d.imagePushedAt?.getTime() ?? 0 })))
          .filter((t) => matchesFilter(t.tag, ctx.source.tags))
          .sort((x, y) => y.at - x.at)[0];
        chosen = newest?.tag;
      }
      state.sample = { repository, ...(chosen !== undefined && { reference: chosen }) };
      if (chosen === undefined) {
        parts.push(`${repository} has no tagged image yet`);
        return notes.length > 0 ? warn([...parts, ...notes].join('; ')) : ok(parts.join('; '));
      }

      const host = ecrHost(sourceAccountId, sourceRegion);
      const registry = openRegistry(host, {
        endpoints: ctx.source.registryEndpoints,
        credentials: state.sourceToken!,
        ...(ctx.registry?.retry && { retry: ctx.registry.retry }),
        ...(ctx.registry?.timeouts && { timeouts: ctx.registry.timeouts }),
      });
      const sep = chosen.startsWith('sha256:') ? '@' : ':';
      try {
        const head = await registry.headManifest(repository, chosen);
        if (!head)
          return fail(
            `${repository}${sep}${chosen}: DescribeImages lists it, but the registry has no manifest`,
          );
        parts.push(
          `${repository}${sep}${chosen} is ${shortDigest(head.digest)} (DescribeImages, manifest HEAD)`,
        );
      } catch (err) {
        if (err instanceof MirrorError && err.code === 'DENIED') {
          const arn = repositoryArn({ accountId: sourceAccountId, region: sourceRegion, repository });
          return fail(
            `ecr:BatchGetImage on ${arn} refused for ${caller.arn} (manifest HEAD: ${errorText(err)})`,
            readFix(ctx, state, repository, PULL_ACTIONS),
          );
        }
        return fail(`manifest HEAD of ${repository}${sep}${chosen} failed: ${errorText(err)}`);
      }
      return notes.length > 0 ? warn([...parts, ...notes].join('; ')) : ok(parts.join('; '));
    },
  };
}
