import { describeError, MirrorError } from '../errors';
import { type Denial, parseDenial } from './denied';

/**
 * The doctor's answers: which identity policy gets which statement, and the commands that repair
 * what a statement cannot. Pure text; the checks decide when each applies.
 */

export interface IamStatement {
  Effect: 'Allow';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string>>;
}

export function statement(
  actions: readonly string[],
  resources: readonly string[],
  condition?: IamStatement['Condition'],
): IamStatement {
  return {
    Effect: 'Allow',
    Action: actions.length === 1 ? actions[0]! : [...actions],
    Resource: resources.length === 1 ? resources[0]! : [...resources],
    ...(condition && { Condition: condition }),
  };
}

/** Indented JSON, as it is pasted into a policy. */
export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

export interface Principal {
  /** The identity AWS reports (`GetCallerIdentity`): an assumed-role session, a user, root. */
  arn: string;
  account: string;
}

/** Where a principal's permissions are edited: its role or user, named for people. */
export function policyHome(arn: string): string {
  const assumed = /^arn:([\w-]+):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(arn);
  if (assumed) {
    const [, partition, account, role] = assumed;
    if (role!.startsWith('AWSReservedSSO_')) {
      const set = role!.replace(/^AWSReservedSSO_/, '').replace(/_[0-9a-f]{16}$/, '');
      return `the permission set ${set} (IAM Identity Center; its role arn:${partition}:iam::${account}:role/${role})`;
    }
    return `the role arn:${partition}:iam::${account}:role/${role}`;
  }
  if (/^arn:[\w-]+:iam::\d{12}:user\//.test(arn)) return `the user ${arn}`;
  return arn;
}

/** `arn:aws:sts::1:assumed-role/R/s` → `arn:aws:iam::1:role/R` (as a trust policy names it). */
export function roleOfSession(arn: string): string | undefined {
  const m = /^arn:([\w-]+):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(arn);
  return m ? `arn:${m[1]}:iam::${m[2]}:role/${m[3]}` : undefined;
}

/** "Add to the IAM policy of <who>:" and the statement. */
export function identityFix(who: string, s: IamStatement): string {
  return `add to the IAM policy of ${who}:\n${json(s)}`;
}

export const errorName = (err: unknown): string => {
  if (err instanceof MirrorError) return err.code;
  return (err as { name?: string }).name ?? 'Error';
};

/** The message of an AWS SDK error or a MirrorError, one line. */
export const errorText = (err: unknown): string =>
  (err instanceof MirrorError ? err.message : describeError(err)).replace(/\s+/g, ' ').trim();

const DENIED_NAMES = /AccessDenied|UnauthorizedOperation|NotAuthorized|AuthorizationError|Forbidden/;

/** The denial an error reports (AWS's sentence), or undefined when the error is not a refusal. */
export function denialIn(err: unknown): Denial | undefined {
  const name = errorName(err);
  const message = errorText(err);
  const parsed = parseDenial(message);
  if (parsed) return parsed;
  if (DENIED_NAMES.test(name) || name === 'DENIED') return {};
  return undefined;
}

export type CredentialProblem = 'no-credentials' | 'no-region' | 'expired' | 'invalid' | undefined;

/** Whether an error is about the caller's own credentials or region rather than a permission. */
export function credentialProblem(err: unknown): CredentialProblem {
  const name = errorName(err);
  const message = errorText(err);
  // "Region not accepted": AWS_REGION set but empty (or not a region at all).
  if (/Region is missing|Region not accepted|region.*(not|must be) (set|configured)/i.test(message))
    return 'no-region';
  if (
    name === 'CredentialsProviderError' ||
    /Could not load credentials|credentials.*not.*found/i.test(message)
  )
    return 'no-credentials';
  if (/ExpiredToken|RequestExpired|TokenRefreshRequired|expired/i.test(`${name} ${message}`))
    return 'expired';
  if (/InvalidClientTokenId|SignatureDoesNotMatch|UnrecognizedClient|InvalidAccessKeyId/.test(name))
    return 'invalid';
  return undefined;
}

export const CREDENTIAL_REMEDIES: Record<Exclude<CredentialProblem, undefined>, string> = {
  'no-credentials':
    'configure AWS credentials, one of:\n' +
    '  aws configure                                   # access keys in ~/.aws/credentials\n' +
    '  aws sso login --profile NAME && export AWS_PROFILE=NAME\n' +
    '  export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… [AWS_SESSION_TOKEN=…]',
  'no-region':
    'set the region of the mirror (its stack):\n  export AWS_REGION=eu-west-1    # or: aws configure set region eu-west-1',
  expired:
    'the session has expired: log in again (aws sso login --profile NAME), or get fresh keys for AWS_ACCESS_KEY_ID / AWS_SESSION_TOKEN',
  invalid:
    'the access key is not valid (deleted, deactivated, or a secret that does not belong to it): check AWS_ACCESS_KEY_ID, AWS_PROFILE and ~/.aws/credentials',
};
