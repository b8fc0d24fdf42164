import {
  DeleteRepositoryPolicyCommand,
  DescribeRepositoriesCommand,
  type ECRClient,
  GetRepositoryPolicyCommand,
  type Repository,
  SetRepositoryPolicyCommand,
} from '@aws-sdk/client-ecr';
import { awsError } from '../aws/errors';
import { globToRegExp } from '../config/patterns';
import { MirrorError } from '../errors';
import {
  addStatements,
  type Grantee,
  grantStatements,
  type PolicyChange,
  type PolicyDocument,
  parsePolicy,
  removeStatements,
  statementId,
} from './policy';

export interface GrantRequest {
  /** Repository names or globs (`app/*`). */
  repositories: string[];
  grantee: Grantee;
  push: boolean;
  revoke: boolean;
  dryRun: boolean;
  partition: string;
}

export interface RepositoryGrant {
  repository: string;
  repositoryArn: string;
  registryId: string;
  change: PolicyChange;
  /** The statements added, brought up to date, kept or removed. */
  statementIds: string[];
  before: PolicyDocument | undefined;
  after: PolicyDocument | undefined;
  /** Whether the policy was written (false when unchanged, and on a dry run). */
  applied: boolean;
}

const isGlob = (pattern: string): boolean => /[*?]/.test(pattern);

/** Names and globs to repositories: globs through DescribeRepositories, names checked to exist. */
export async function expandRepositories(ecr: ECRClient, patterns: readonly string[]): Promise<Repository[]> {
  const found = new Map<string, Repository>();
  const names = patterns.filter((p) => !isGlob(p));
  const globs = patterns.filter(isGlob);
  for (let i = 0; i < names.length; i += 100) {
    try {
      const out = await ecr.send(
        new DescribeRepositoriesCommand({ repositoryNames: names.slice(i, i + 100) }),
      );
      for (const r of out.repositories ?? []) found.set(r.repositoryName!, r);
    } catch (err) {
      if ((err as Error).name === 'RepositoryNotFoundException') {
        throw new MirrorError('NOT_FOUND', `${(err as Error).message.replace(/\s+/g, ' ')}`, { cause: err });
      }
      throw awsError('ecr:DescribeRepositories', err);
    }
  }
  if (globs.length > 0) {
    const all: Repository[] = [];
    let nextToken: string | undefined;
    do {
      try {
        const out = await ecr.send(
          new DescribeRepositoriesCommand({ maxResults: 1000, ...(nextToken && { nextToken }) }),
        );
        all.push(...(out.repositories ?? []));
        nextToken = out.nextToken;
      } catch (err) {
        throw awsError('ecr:DescribeRepositories', err);
      }
    } while (nextToken);
    for (const glob of globs) {
      const re = globToRegExp(glob);
      const matched = all.filter((r) => re.test(r.repositoryName ?? ''));
      if (matched.length === 0) throw new MirrorError('NOT_FOUND', `no repository matches ${glob}`);
      for (const r of matched) found.set(r.repositoryName!, r);
    }
  }
  return [...found.values()].sort((x, y) => x.repositoryName!.localeCompare(y.repositoryName!));
}

async function currentPolicy(ecr: ECRClient, repository: string): Promise<PolicyDocument | undefined> {
  let text: string | undefined;
  try {
    text = (await ecr.send(new GetRepositoryPolicyCommand({ repositoryName: repository }))).policyText;
  } catch (err) {
    if ((err as Error).name === 'RepositoryPolicyNotFoundException') return undefined;
    throw awsError(`ecr:GetRepositoryPolicy on ${repository}`, err);
  }
  try {
    return parsePolicy(text);
  } catch {
    throw new MirrorError('INVALID_CONFIG', `the policy of ${repository} is not JSON; fix it by hand first`);
  }
}

/**
 * Merges the grant into (or, with `revoke`, takes it out of) each repository's policy. A repository
 * whose policy already says so is left alone: no SetRepositoryPolicy call at all.
 */
export async function grantRepositories(ecr: ECRClient, request: GrantRequest): Promise<RepositoryGrant[]> {
  const repositories = await expandRepositories(ecr, request.repositories);
  const wanted = grantStatements(request.grantee, request.partition, request.push);
  const sids = request.revoke
    ? request.push
      ? [statementId('Push', request.grantee)]
      : [statementId('Pull', request.grantee), statementId('Push', request.grantee)]
    : wanted.map((s) => s.Sid!);
  const results: RepositoryGrant[] = [];
  for (const repo of repositories) {
    const repository = repo.repositoryName!;
    const before = await currentPolicy(ecr, repository);
    const { after, change } = request.revoke ? removeStatements(before, sids) : addStatements(before, wanted);
    const present = (before?.Statement ?? [])
      .map((s) => s.Sid)
      .filter((s): s is string => sids.includes(s ?? ''));
    const applied = change !== 'unchanged' && !request.dryRun;
    if (applied) {
      try {
        if (after) {
          await ecr.send(
            new SetRepositoryPolicyCommand({
              repositoryName: repository,
              policyText: JSON.stringify(after, null, 2),
            }),
          );
        } else {
          await ecr.send(new DeleteRepositoryPolicyCommand({ repositoryName: repository }));
        }
      } catch (err) {
        const action = after ? 'SetRepositoryPolicy' : 'DeleteRepositoryPolicy';
        throw awsError(`ecr:${action} on ${repo.repositoryArn ?? repository}`, err);
      }
    }
    results.push({
      repository,
      repositoryArn: repo.repositoryArn ?? repository,
      registryId: repo.registryId ?? '',
      change,
      statementIds: request.revoke ? present : sids,
      before,
      after,
      applied,
    });
  }
  return results;
}
