'use strict';

/**
 * Values serverless.yml derives from its params while it packages: the parts YAML variables cannot
 * express (a list mapped to EventBridge prefix filters or to IAM ARNs, a JSON check, a length limit).
 * Everything runs offline; a bad param fails `package`, not the first event after deploy.
 *
 * Referenced as `${file(./infra/serverless-params.cjs):<name>}`; each export receives
 * `{ resolveVariable }` from the framework (osls and Serverless Framework v3/v4 alike).
 */

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/;
// ECR repository names: lowercase, digits and . _ - / separators.
const REPOSITORY_PREFIX = /^[a-z0-9][a-z0-9._/-]*$/;

function fail(param, message) {
  throw new Error(`param "${param}": ${message}`);
}

async function param(resolveVariable, name) {
  return resolveVariable(`param:${name}`);
}

/** A list param: a YAML list, or a comma-separated string (the only form `--param` can pass). */
function list(value) {
  const items = Array.isArray(value) ? value : String(value ?? '').split(',');
  return items.map((item) => String(item).trim()).filter((item) => item.length > 0);
}

function bool(name, value) {
  const text = String(value).trim().toLowerCase();
  if (text === 'true') return true;
  if (text === 'false') return false;
  return fail(name, `must be true or false, got "${value}"`);
}

function int(name, value, min, max) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) fail(name, `must be a whole number from ${min} to ${max}`);
  return n;
}

/**
 * The Lambdas' own validator (src/config/config.ts, bundled by `npm run build`): one set of rules for
 * package time and load time, so a destination the functions would refuse fails here, naming the field.
 */
function configCheck() {
  try {
    return require('../dist/config-check.js');
  } catch (err) {
    if (err && err.code === 'MODULE_NOT_FOUND') {
      throw new Error(
        'dist/config-check.js is missing: run `npm run build` before packaging (`npm run package` does)',
      );
    }
    throw err;
  }
}

async function destinations(resolveVariable) {
  const raw = await param(resolveVariable, 'destinations');
  let parsed;
  try {
    parsed = typeof raw === 'string' ? JSON.parse(raw) : raw;
  } catch {
    fail('destinations', 'is not valid JSON');
  }
  // The source registry, when given as plain values (its defaults are references known at deploy).
  const source = {
    accountId: await param(resolveVariable, 'sourceAccountId'),
    region: await param(resolveVariable, 'sourceRegion'),
  };
  configCheck().checkDestinationsParam(parsed, source);
  return parsed;
}

/** The roles sts:AssumeRole may name (see the export of the same name). */
async function destinationRoleArns(resolveVariable) {
  const fromDestinations = [
    ...new Set((await destinations(resolveVariable)).map((d) => d.roleArn).filter(Boolean)),
  ];
  const configured = list(await param(resolveVariable, 'destinationRoleArns'));
  if (configured.length === 0) return fromDestinations;
  for (const arn of configured) {
    if (!ROLE_ARN.test(arn)) fail('destinationRoleArns', `"${arn}" is not an IAM role ARN`);
  }
  const missing = fromDestinations.filter((arn) => !configured.includes(arn));
  if (missing.length > 0) {
    fail('destinationRoleArns', `does not list the role of every destination: ${missing.join(', ')}`);
  }
  return configured;
}

/** Secrets Manager's ARNs end in `-` and six random characters after the name. */
const COMPLETE_SECRET_ARN = /:secret:.+-[A-Za-z0-9]{6}$/;

/** Destinations named by their registry, whose credentials are in a secret. */
async function secretDestinations(resolveVariable) {
  return (await destinations(resolveVariable)).filter((d) => d.credentials !== undefined);
}

async function secretKeys(resolveVariable) {
  const keys = (await secretDestinations(resolveVariable)).map((d) => d.credentials.kmsKeyArn);
  return [...new Set(keys.filter(Boolean))];
}

/** An account id param: 12 digits as a string, or a CloudFormation reference such as !Ref AWS::AccountId. */
async function accountId(resolveVariable, name) {
  const value = await param(resolveVariable, name);
  if (typeof value === 'object' && value !== null) return value;
  if (typeof value !== 'string' || !/^\d{12}$/.test(value)) {
    // An unquoted id in YAML is a number, and one with a leading zero loses it: quote account ids.
    fail(name, `must be a quoted 12-digit account id, got ${JSON.stringify(value)}`);
  }
  return value;
}

async function repositoryPrefixes(resolveVariable) {
  const prefixes = list(await param(resolveVariable, 'repositoryPrefixes'));
  for (const prefix of prefixes) {
    if (!REPOSITORY_PREFIX.test(prefix)) {
      fail('repositoryPrefixes', `"${prefix}" is not the start of an ECR repository name`);
    }
  }
  return prefixes;
}

/** ECR repository ARNs of the source account, one per prefix. */
async function sourceArns(resolveVariable, prefixes) {
  // Either param may be a CloudFormation reference (the defaults are !Ref AWS::AccountId / AWS::Region).
  const names = {
    SourceAccountId: await accountId(resolveVariable, 'sourceAccountId'),
    SourceRegion: await param(resolveVariable, 'sourceRegion'),
  };
  return prefixes.map((prefix) => ({
    'Fn::Sub': [
      `arn:\${AWS::Partition}:ecr:\${SourceRegion}:\${SourceAccountId}:repository/${prefix}*`,
      names,
    ],
  }));
}

/** infra/destination-role.yml trusts `<MirrorRoleArn>` and `<MirrorRoleArn>-resync`. */
const RESYNC_ROLE_SUFFIX = '-resync';

async function roleName(resolveVariable, suffix) {
  const service = await resolveVariable('self:service');
  const base = `${service}-${await resolveVariable('sls:stage')}-${await resolveVariable('aws:region')}`;
  const longest = `${base}${RESYNC_ROLE_SUFFIX}`;
  if (longest.length > 64) {
    throw new Error(
      `the resync role name "${longest}" is ${longest.length} characters; IAM allows 64: shorten the stage`,
    );
  }
  return `${base}${suffix}`;
}

module.exports = {
  /** SOURCE_ACCOUNT_ID and the rule's account filter. */
  sourceAccountId: async ({ resolveVariable }) => accountId(resolveVariable, 'sourceAccountId'),

  /** DESTINATIONS for the Lambda: the param checked and re-serialised as compact JSON. */
  destinationsJson: async ({ resolveVariable }) => JSON.stringify(await destinations(resolveVariable)),

  /**
   * The roles sts:AssumeRole may name: the `destinationRoleArns` param, or when it is empty every
   * `roleArn` of `destinations`. A destination whose role is missing from an explicit list fails
   * here, instead of with AccessDenied on its first image.
   */
  destinationRoleArns: async ({ resolveVariable }) => destinationRoleArns(resolveVariable),

  /** "true" when there is a role to assume: the AssumeDestinationRoles statements exist only then. */
  hasDestinationRoles: async ({ resolveVariable }) =>
    String((await destinationRoleArns(resolveVariable)).length > 0),

  /**
   * The secrets secretsmanager:GetSecretValue may read: exactly those of `destinations`. A complete
   * ARN (ending in Secrets Manager's `-` and six characters) is granted as it is; a partial one
   * (without that suffix) as `<arn>-??????`, the secret of that name whatever its suffix, as AWS
   * documents for naming a secret in a policy.
   */
  destinationSecretArns: async ({ resolveVariable }) =>
    [...new Set((await secretDestinations(resolveVariable)).map((d) => d.credentials.secretArn))].map(
      (arn) => (COMPLETE_SECRET_ARN.test(arn) ? arn : `${arn}-??????`),
    ),

  /** "true" when a destination names a secret: the ReadDestinationSecrets statements exist only then. */
  hasDestinationSecrets: async ({ resolveVariable }) =>
    String((await secretDestinations(resolveVariable)).length > 0),

  /** The secrets' customer managed KMS keys (credentials.kmsKeyArn): kms:Decrypt through Secrets Manager. */
  secretKmsKeyArns: async ({ resolveVariable }) => secretKeys(resolveVariable),

  hasSecretKmsKeys: async ({ resolveVariable }) => String((await secretKeys(resolveVariable)).length > 0),

  /**
   * The rule's `detail` filter: successful pushes (and deletes when syncDeletes is true), limited to
   * the repository prefixes when some are given. Other action types never reach the queue.
   */
  eventDetail: async ({ resolveVariable }) => {
    const syncDeletes = bool('syncDeletes', await param(resolveVariable, 'syncDeletes'));
    const prefixes = await repositoryPrefixes(resolveVariable);
    const detail = { result: ['SUCCESS'], 'action-type': syncDeletes ? ['PUSH', 'DELETE'] : ['PUSH'] };
    if (prefixes.length > 0) detail['repository-name'] = prefixes.map((prefix) => ({ prefix }));
    return detail;
  },

  /** The source repositories the mirror may read: all of the source account's, or those under the prefixes. */
  sourceRepositoryArns: async ({ resolveVariable }) => {
    const prefixes = await repositoryPrefixes(resolveVariable);
    return sourceArns(resolveVariable, prefixes.length > 0 ? prefixes : ['']);
  },

  /**
   * Every repository of the source account: DescribeRepositories without names (how a resync lists
   * them) is authorized against the whole account, so prefix-scoped ARNs would deny it. It reveals
   * repository metadata only; images stay readable under the prefixes alone.
   */
  allSourceRepositoryArns: async ({ resolveVariable }) => sourceArns(resolveVariable, ['']),

  /** The bus the mirror publishes its result events to: a name in this account and region, or an ARN. */
  eventBusArn: async ({ resolveVariable }) => {
    const bus = String(await param(resolveVariable, 'eventBusName')).trim() || 'default';
    if (bus.startsWith('arn:')) return bus;
    return { 'Fn::Sub': `arn:\${AWS::Partition}:events:\${AWS::Region}:\${AWS::AccountId}:event-bus/${bus}` };
  },

  /** The queue's maxReceiveCount, also handed to the Lambda as MAX_RECEIVES (same bounds as the config). */
  maxReceives: async ({ resolveVariable }) =>
    int('maxReceives', await param(resolveVariable, 'maxReceives'), 1, 1000),

  /** Actions of the dead-letter alarm: the SNS topic when alarmTopicArn is set, none otherwise. */
  alarmActions: async ({ resolveVariable }) => list(await param(resolveVariable, 'alarmTopicArn')),

  /**
   * The mirror function's role name, fixed so a destination account's trust policy can name it:
   * `<service>-<stage>-<region>`, e.g. `ecr-mirror-prod-eu-west-1`. IAM names stop at 64 characters;
   * the resync role adds `-resync`, so a stage too long for that fails here.
   */
  mirrorRoleName: async ({ resolveVariable }) => roleName(resolveVariable, ''),

  /** The resync function's role: the mirror's name and `-resync`, which the destination role trusts too. */
  resyncRoleName: async ({ resolveVariable }) => roleName(resolveVariable, RESYNC_ROLE_SUFFIX),
};
