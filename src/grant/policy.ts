import { createHash } from 'node:crypto';
import { PULL_ACTIONS_FOR_GRANT, PUSH_ACTIONS_FOR_GRANT } from './actions';

/**
 * Repository policies, merged rather than replaced: `grant` owns the statements whose Sid it made
 * (`EcrMirrorPull<hash>`, `EcrMirrorPush<hash>`, the hash naming the principals) and leaves every
 * other statement as it was. Pure: the ECR calls live in grant.ts.
 */

export type Statement = Record<string, unknown> & { Sid?: string };

export interface PolicyDocument {
  Version?: string;
  Statement: Statement[];
  [key: string]: unknown;
}

export type Grantee = { kind: 'accounts'; accounts: string[] } | { kind: 'org'; org: string };

const OWN_SID = /^EcrMirror(?:Pull|Push)[0-9a-f]{8}$/;

/** Whether a statement is one `grant` added (and so one `--revoke` may remove). */
export const isGrantStatement = (s: Statement): boolean => typeof s.Sid === 'string' && OWN_SID.test(s.Sid);

function principalKey(grantee: Grantee): string {
  return grantee.kind === 'org' ? `org:${grantee.org}` : [...new Set(grantee.accounts)].sort().join(',');
}

/** `EcrMirrorPull` (or `Push`) and 8 hex characters of the principals' sha256: stable across runs. */
export function statementId(kind: 'Pull' | 'Push', grantee: Grantee): string {
  return `EcrMirror${kind}${createHash('sha256').update(principalKey(grantee)).digest('hex').slice(0, 8)}`;
}

export function grantStatements(grantee: Grantee, partition: string, push: boolean): Statement[] {
  const principal =
    grantee.kind === 'org'
      ? { Principal: { AWS: '*' }, Condition: { StringEquals: { 'aws:PrincipalOrgID': grantee.org } } }
      : {
          Principal: {
            AWS: oneOrMany(
              [...new Set(grantee.accounts)].sort().map((a) => `arn:${partition}:iam::${a}:root`),
            ),
          },
        };
  const make = (kind: 'Pull' | 'Push', actions: readonly string[]): Statement => {
    const { Principal, ...rest } = principal as { Principal: unknown; Condition?: unknown };
    return { Sid: statementId(kind, grantee), Effect: 'Allow', Principal, Action: [...actions], ...rest };
  };
  const statements = [make('Pull', PULL_ACTIONS_FOR_GRANT)];
  if (push) statements.push(make('Push', PUSH_ACTIONS_FOR_GRANT));
  return statements;
}

const oneOrMany = (values: string[]): string | string[] => (values.length === 1 ? values[0]! : values);

/** Parses a repository policy; a single Statement object counts as a list of one. */
export function parsePolicy(text: string | undefined): PolicyDocument | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const parsed = JSON.parse(text) as Record<string, unknown>;
  const statement = parsed.Statement;
  return {
    ...parsed,
    Statement: Array.isArray(statement)
      ? (statement as Statement[])
      : statement
        ? [statement as Statement]
        : [],
  };
}

export const policyText = (doc: PolicyDocument | undefined): string =>
  doc ? `${JSON.stringify(doc, null, 2)}\n` : '';

/**
 * A statement reduced to its meaning, for comparison: IAM may store one principal as a string or a
 * list, an account as its id or its root ARN, and actions in any order or case.
 */
function meaning(s: Statement): string {
  const list = (v: unknown): string[] =>
    Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)];
  const principal = s.Principal as Record<string, unknown> | string | undefined;
  const aws =
    typeof principal === 'string'
      ? [principal]
      : list(principal?.AWS).map((p) => p.replace(/^(\d{12})$/, 'arn:aws:iam::$1:root'));
  const sortDeep = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sortDeep).sort()
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .sort(([x], [y]) => x.localeCompare(y))
              .map(([k, x]) => [k, sortDeep(x)]),
          )
        : v;
  return JSON.stringify({
    Effect: s.Effect,
    Principal: aws.sort(),
    Action: list(s.Action)
      .map((a) => a.toLowerCase())
      .sort(),
    NotAction: s.NotAction,
    Resource: s.Resource,
    Condition: sortDeep(s.Condition ?? {}),
  });
}

export type PolicyChange = 'added' | 'updated' | 'removed' | 'unchanged';

export interface MergeResult {
  after: PolicyDocument | undefined;
  change: PolicyChange;
}

/** Adds (or brings up to date) our statements; everything else in the policy stays as it is. */
export function addStatements(before: PolicyDocument | undefined, wanted: readonly Statement[]): MergeResult {
  const statements = [...(before?.Statement ?? [])];
  let change: PolicyChange = 'unchanged';
  for (const s of wanted) {
    const at = statements.findIndex((x) => x.Sid === s.Sid);
    if (at < 0) {
      statements.push(s);
      change = 'added';
    } else if (meaning(statements[at]!) !== meaning(s)) {
      statements[at] = s;
      if (change === 'unchanged') change = 'updated';
    }
  }
  if (change === 'unchanged') return { after: before, change };
  return { after: { Version: '2012-10-17', ...before, Statement: statements }, change };
}

/** Removes only statements `grant` added with these Sids; a policy left empty is deleted (undefined). */
export function removeStatements(before: PolicyDocument | undefined, sids: readonly string[]): MergeResult {
  if (!before) return { after: undefined, change: 'unchanged' };
  const kept = before.Statement.filter((s) => !(isGrantStatement(s) && sids.includes(s.Sid!)));
  if (kept.length === before.Statement.length) return { after: before, change: 'unchanged' };
  return { after: kept.length === 0 ? undefined : { ...before, Statement: kept }, change: 'removed' };
}
