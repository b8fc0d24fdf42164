import { ECRClient } from '@aws-sdk/client-ecr';
import { ecrHost } from '../core/ecr-host';
import { partitionOf } from '../doctor/denied';
import { MirrorError } from '../errors';
import { PULL_ACTIONS_FOR_GRANT, PUSH_ACTIONS_FOR_GRANT } from '../grant/actions';
import { unifiedDiff } from '../grant/diff';
import { grantRepositories, type RepositoryGrant } from '../grant/grant';
import { type Grantee, policyText } from '../grant/policy';
import { cliRegion, withRegionHint } from './region';
import { forTerminal } from './terminal';

export interface GrantCommandOptions {
  account?: string[];
  org?: string;
  push?: boolean;
  region?: string;
  dryRun?: boolean;
  revoke?: boolean;
  json?: boolean;
}

export function granteeOf(opts: GrantCommandOptions): Grantee {
  const accounts = opts.account ?? [];
  if (accounts.length > 0 && opts.org) {
    throw new MirrorError('INVALID_ARGUMENT', 'use --account or --org, not both (run grant once for each)');
  }
  if (opts.org !== undefined) {
    if (!/^o-[a-z0-9]{10,32}$/.test(opts.org)) {
      throw new MirrorError(
        'INVALID_ARGUMENT',
        `--org must be an organization id such as o-a1b2c3d4e5, got "${opts.org}"`,
      );
    }
    return { kind: 'org', org: opts.org };
  }
  if (accounts.length === 0)
    throw new MirrorError('INVALID_ARGUMENT', 'name who may pull: --account ID or --org o-xxxx');
  for (const a of accounts) {
    if (!/^\d{12}$/.test(a))
      throw new MirrorError('INVALID_ARGUMENT', `--account must be a 12-digit account id, got "${a}"`);
  }
  return { kind: 'accounts', accounts };
}

/** What the consumer side needs: its principals' IAM policy, and the login and pull commands. */
export function consumerAdvice(results: readonly RepositoryGrant[], region: string, push: boolean) {
  const registry = results[0]?.registryId ?? '';
  const host = ecrHost(registry, region);
  const actions = push
    ? [...PULL_ACTIONS_FOR_GRANT, ...PUSH_ACTIONS_FOR_GRANT].sort()
    : [...PULL_ACTIONS_FOR_GRANT];
  const policy = {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'EcrLogin', Effect: 'Allow', Action: 'ecr:GetAuthorizationToken', Resource: '*' },
      {
        Sid: `EcrPullFrom${registry}`,
        Effect: 'Allow',
        Action: actions,
        Resource: results.map((r) => r.repositoryArn),
      },
    ],
  };
  const first = results[0]?.repository ?? 'REPO';
  const commands = [
    `aws ecr get-login-password --region ${region} | docker login --username AWS --password-stdin ${host}`,
    `docker pull ${host}/${first}:TAG`,
    ...(push ? [`docker push ${host}/${first}:TAG`] : []),
    `SOURCE_ACCOUNT_ID=${registry} SOURCE_REGION=${region} ecr-mirror doctor --repository ${first}:TAG`,
  ];
  return { policy, commands };
}

const who = (g: Grantee): string => (g.kind === 'org' ? `organization ${g.org}` : g.accounts.join(', '));

function describe(r: RepositoryGrant, grantee: Grantee, revoke: boolean, dryRun: boolean): string {
  const ids = r.statementIds.join(', ');
  const would = dryRun ? 'would be ' : '';
  switch (r.change) {
    case 'added':
      return `${r.repository}: ${ids} ${would}added (${who(grantee)})`;
    case 'updated':
      return `${r.repository}: ${ids} ${would}brought up to date (${who(grantee)})`;
    case 'removed':
      return `${r.repository}: ${ids} ${would}removed${r.after ? '' : ' (no statement left: the policy is deleted)'}`;
    default:
      return revoke
        ? `${r.repository}: nothing to revoke for ${who(grantee)}; unchanged`
        : `${r.repository}: unchanged, ${ids} already in place (no SetRepositoryPolicy)`;
  }
}

export async function runGrantCommand(repositories: string[], opts: GrantCommandOptions): Promise<void> {
  const grantee = granteeOf(opts);
  const revoke = opts.revoke === true;
  const dryRun = opts.dryRun === true;
  const push = opts.push === true;
  const ecr = new ECRClient(cliRegion(opts.region));
  try {
    const region = await withRegionHint(() => ecr.config.region());
    const results = await withRegionHint(() =>
      grantRepositories(ecr, { repositories, grantee, push, revoke, dryRun, partition: partitionOf(region) }),
    );
    const advice = revoke ? undefined : consumerAdvice(results, region, push);
    if (opts.json) {
      const out = {
        dryRun,
        repositories: results.map((r) => ({
          repository: r.repository,
          repositoryArn: r.repositoryArn,
          change: r.change,
          applied: r.applied,
          statementIds: r.statementIds,
          policyBefore: r.before ?? null,
          policyAfter: r.after ?? null,
        })),
        consumerPolicy: advice?.policy ?? null,
        commands: advice?.commands ?? [],
      };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return;
    }
    const lines: string[] = [];
    for (const r of results) {
      lines.push(forTerminal(describe(r, grantee, revoke, dryRun)));
      if (dryRun && r.change !== 'unchanged') {
        const diff = unifiedDiff(policyText(r.before), policyText(r.after), {
          before: `${r.repository} (current policy)`,
          after: `${r.repository} (after ${revoke ? 'revoke' : 'grant'})`,
        });
        for (const line of diff.trimEnd().split('\n')) lines.push(`  ${forTerminal(line)}`);
      }
    }
    if (dryRun) lines.push('Dry run: no policy was changed.');
    if (advice) {
      const consumer =
        grantee.kind === 'org' ? `the accounts of ${grantee.org}` : `account ${grantee.accounts.join(', ')}`;
      lines.push(
        '',
        `In ${consumer}, the principals that ${push ? 'pull and push' : 'pull'} need this IAM policy:`,
      );
      lines.push(
        ...JSON.stringify(advice.policy, null, 2)
          .split('\n')
          .map((l) => `  ${l}`),
      );
      lines.push('', 'Then log in and pull (the last command checks it all from there):');
      lines.push(...advice.commands.map((c) => `  ${c}`));
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    ecr.destroy();
  }
}
