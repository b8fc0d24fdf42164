import { z } from 'zod';
import { ecrHost, parseEcrHost, partitionOf } from '../core/ecr-host';
import { ConfigError } from '../errors';
import { parseRegistryEndpoints } from './endpoints';
import {
  mappedNamespace,
  mapRepository,
  nameMappedOntoItself,
  type RepositoryMapping,
  TEMPLATE_PLACEHOLDERS,
} from './mapping';
import { type Filter, matchesFilter, parsePatternList } from './patterns';

/**
 * The mirror's configuration, read from the environment once at start (serverless.yml sets it from
 * its params). Every error names the setting at fault.
 */

const accountId = z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id');
const region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-1');

const repositorySettings = z
  .object({
    tagMutability: z.enum(['MUTABLE', 'IMMUTABLE']).default('MUTABLE'),
    scanOnPush: z.boolean().default(false),
    encryption: z
      .discriminatedUnion('type', [
        z.object({ type: z.literal('AES256') }),
        z.object({ type: z.literal('KMS'), kmsKey: z.string().min(1).optional() }),
      ])
      .default({ type: 'AES256' }),
    tags: z.record(z.string(), z.string()).default({}),
  })
  .strict();

export type RepositorySettings = z.infer<typeof repositorySettings>;

const pathComponents =
  /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\/$/;

const repositoryMapping = z
  .object({
    addPrefix: z.string().min(1, 'must not be empty (leave it out instead)').optional(),
    stripPrefix: z
      .string()
      .regex(pathComponents, 'must be whole path components ending in "/", such as "team-a/"')
      .optional(),
    template: z
      .string()
      .includes('{', { message: 'must contain a placeholder such as {repository}' })
      .refine(
        (t) => (t.match(/\{[^}]*\}?/g) ?? []).every((p) => TEMPLATE_PLACEHOLDERS.includes(p as never)),
        {
          message: `may use only the placeholders ${TEMPLATE_PLACEHOLDERS.join(', ')}`,
        },
      )
      .optional(),
  })
  .strict()
  .refine((m) => !(m.template && (m.addPrefix || m.stripPrefix)), {
    message: 'use either template or addPrefix/stripPrefix, not both',
  })
  .default({}) satisfies z.ZodType<RepositoryMapping>;

const roleAccount = (arn: string): string | undefined => /^arn:[^:]+:iam::(\d{12}):/.exec(arn)?.[1];

const destinationId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 of A-Z a-z 0-9 . _ -');

/** A destination in ECR reached through a role of its account, assumed with an external id. */
const roleDestination = z
  .object({
    /** Names the destination in status records and on the command line; defaults to `<account>-<region>`. */
    id: destinationId.optional(),
    accountId,
    region,
    roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, 'must be an IAM role ARN'),
    externalId: z.string().min(2).max(1224),
    repository: repositoryMapping,
    /** Overrides REPOSITORY_SETTINGS for repositories created in this destination (a KMS key is per region). */
    repositorySettings: repositorySettings.optional(),
  })
  .strict()
  // The role pushes with a registry token of its own account: one from another account cannot push here.
  .refine((d) => roleAccount(d.roleArn) === d.accountId, {
    path: ['roleArn'],
    message: 'must be a role in the destination account (accountId)',
  });

const REGION = '[a-z]{2}(?:-[a-z]+)+-\\d';
const secretArn = z
  .string()
  .regex(
    new RegExp(`^arn:aws[a-z-]*:secretsmanager:${REGION}:\\d{12}:secret:[\\w/+=.@-]+$`),
    'must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)',
  );
const kmsKeyArn = z
  .string()
  .regex(
    new RegExp(`^arn:aws[a-z-]*:kms:${REGION}:\\d{12}:key/[\\w-]+$`),
    'must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)',
  );

/**
 * A destination named by its registry, with credentials from a Secrets Manager secret: any OCI
 * registry (user name and password), or an ECR registry where no role can be assumed, such as another
 * partition (access keys).
 */
const registryDestination = z
  .object({
    id: destinationId,
    registry: z
      .string()
      .regex(
        /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::\d{1,5})?$/,
        'must be a registry host such as ghcr.io or registry.example.com:5000 (no scheme, no path)',
      ),
    credentials: z
      .object({
        /** The secret holding `{"username","password"}` or `{"accessKeyId","secretAccessKey"}`. */
        secretArn,
        /** The secret's customer managed KMS key, when it has one: the functions may decrypt with it. */
        kmsKeyArn: kmsKeyArn.optional(),
      })
      .strict(),
    repository: repositoryMapping,
    /** For repositories the mirror creates: ECR registries only. */
    repositorySettings: repositorySettings.optional(),
  })
  .strict();

interface DestinationCommon {
  /** Names the destination in status records and on the command line. */
  id: string;
  /** The registry host images are pushed to. */
  host: string;
  repository: RepositoryMapping;
  repositorySettings: RepositorySettings;
}

/** An ECR destination reached through a role in its account (infra/destination-role.yml). */
export interface RoleDestination extends DestinationCommon {
  kind: 'role';
  accountId: string;
  region: string;
  roleArn: string;
  externalId: string;
}

/** A registry reached with credentials from a Secrets Manager secret. */
export interface RegistryDestination extends DestinationCommon {
  kind: 'registry';
  credentials: { secretArn: string; kmsKeyArn?: string };
  /** Set when the host is an ECR registry (its account and region): repositories are then managed over the ECR API. */
  accountId?: string;
  region?: string;
}

export type Destination = RoleDestination | RegistryDestination;

/** The partition of a secret or key ARN. */
const arnPartition = (arn: string): string => arn.split(':')[1]!;

export interface MirrorConfig {
  sourceAccountId: string;
  sourceRegion: string;
  /**
   * The region the function runs in (AWS_REGION, set by Lambda), where its stack keeps the status
   * table, the queues and the event bus; SOURCE_REGION when unset (local runs). The source registry
   * may be in another region than the stack (the sourceRegion param).
   */
  functionRegion: string;
  destinations: Destination[];
  /** Repository-name prefixes the deployment is scoped to (its EventBridge rule and IAM); empty: all. */
  repositoryPrefixes: string[];
  repositories: Filter;
  tags: Filter;
  /** Copy digest-only pushes (the children of a multi-arch push arrive with an empty tag). */
  mirrorUntagged: boolean;
  createRepositories: boolean;
  syncDeletes: boolean;
  referrers: boolean;
  registryEndpoints: Record<string, string>;
  statusTable: string;
  historyTtlDays: number;
  eventBusName: string;
  publishEvents: boolean;
  deadLetterQueueUrl: string | undefined;
  /** The queue's maxReceiveCount: on the last receive a retryable failure is dead-lettered with its reason. */
  maxReceives: number;
  blobConcurrency: number;
  /** The mirror queue, where resync puts its jobs. */
  mirrorQueueUrl: string | undefined;
  /** ECR API calls per second a resync makes at most (DescribeRepositories, DescribeImages). */
  resyncApiRate: number;
  /** What the mirror itself writes into the source registry (see ownOutputNamespaces): never mirrored. */
  ownOutput: RegExp[];
}

function fail(setting: string, message: string): never {
  throw new ConfigError(setting, message);
}

function json(env: NodeJS.ProcessEnv, setting: string): unknown {
  const raw = env[setting];
  if (raw === undefined || raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    return fail(setting, 'is not valid JSON');
  }
}

function check<T>(setting: string, schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  const missing = issue.code === 'invalid_type' && /received undefined$/.test(issue.message);
  return fail(`${setting}${path}`, missing ? 'is required' : issue.message);
}

function bool(env: NodeJS.ProcessEnv, setting: string, fallback: boolean): boolean {
  const raw = env[setting]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  return fail(setting, `must be true or false, got "${env[setting]}"`);
}

function int(env: NodeJS.ProcessEnv, setting: string, fallback: number, min: number, max: number): number {
  const raw = env[setting]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    fail(setting, `must be a whole number from ${min} to ${max}`);
  return n;
}

/** The source side alone: what `ecr-mirror doctor` checks where no mirror is configured (a consumer of `grant`). */
export type SourceConfig = Pick<
  MirrorConfig,
  'sourceAccountId' | 'sourceRegion' | 'repositoryPrefixes' | 'repositories' | 'tags' | 'registryEndpoints'
>;

/** Reads and validates the source settings; loadConfig reads them the same way. */
export function loadSourceConfig(env: NodeJS.ProcessEnv = process.env): SourceConfig {
  return {
    sourceAccountId: check(
      'SOURCE_ACCOUNT_ID',
      accountId,
      env.SOURCE_ACCOUNT_ID ?? fail('SOURCE_ACCOUNT_ID', 'is required'),
    ),
    sourceRegion: check(
      'SOURCE_REGION',
      region,
      env.SOURCE_REGION || env.AWS_REGION || fail('SOURCE_REGION', 'is required (or AWS_REGION)'),
    ),
    repositoryPrefixes: parsePatternList(env.REPOSITORY_PREFIXES),
    repositories: {
      include: parsePatternList(env.REPOSITORY_INCLUDE),
      exclude: parsePatternList(env.REPOSITORY_EXCLUDE),
    },
    tags: { include: parsePatternList(env.TAG_INCLUDE), exclude: parsePatternList(env.TAG_EXCLUDE) },
    registryEndpoints: parseRegistryEndpoints(env.REGISTRY_ENDPOINTS),
  };
}

/** Names every mapping is tried on at load; a stripPrefix adds one name it applies to. */
const SAMPLE_NAMES = ['team/api', 'api'];

export interface DestinationContext {
  /** The setting being read, for messages: `DESTINATIONS`, or `param "destinations"` at package time. */
  setting?: string;
  /** The source registry; unknown at package time when it is a CloudFormation reference (checked at load). */
  sourceAccountId?: string;
  sourceRegion?: string;
  repositorySettings?: RepositorySettings;
}

/**
 * Validates DESTINATIONS: the schema, unique ids, the role in the destination's account, and every
 * repository mapping tried on sample names, so that a mapping that would fail on every event fails
 * here instead. A destination in the source registry must not be able to map a name onto itself.
 * The Lambdas call this at load (through loadConfig), serverless.yml's param step at package time.
 */
export function checkDestinations(raw: unknown, context: DestinationContext = {}): Destination[] {
  const setting = context.setting ?? 'DESTINATIONS';
  const list = check(setting, z.array(z.unknown()).min(1, 'must list at least one destination'), raw);
  const defaults = context.repositorySettings ?? repositorySettings.parse({});
  const ids = new Set<string>();
  return list.map((item, i) => {
    const at = `${setting}[${i}]`;
    const d = parseDestination(at, item, defaults, context.sourceRegion);
    const id = d.id;
    if (ids.has(id)) fail(`${at}.id`, `"${id}" is used twice`);
    ids.add(id);
    const mapping = d.repository;
    const field = mapping.template ? 'template' : mapping.addPrefix ? 'addPrefix' : 'stripPrefix';
    const samples = [...SAMPLE_NAMES, ...(mapping.stripPrefix ? [`${mapping.stripPrefix}api`] : [])];
    const account = context.sourceAccountId ?? '111111111111';
    for (const sample of samples) {
      try {
        mapRepository(sample, mapping, account);
      } catch (err) {
        fail(`${at}.repository.${field}`, `${(err as Error).message}, so every event would fail`);
      }
    }
    if (
      d.accountId !== undefined &&
      d.accountId === context.sourceAccountId &&
      d.region === context.sourceRegion
    ) {
      const same = nameMappedOntoItself(mapping, account, samples);
      if (same !== undefined) {
        fail(
          `${at}.repository`,
          `maps "${same}" onto itself, and this destination is the source registry: give it an addPrefix or a template that puts the copies in a namespace of their own`,
        );
      }
    }
    return d;
  });
}

/** One destination: a role destination, or (with `registry`) a registry destination with a secret. */
function parseDestination(
  at: string,
  item: unknown,
  defaults: RepositorySettings,
  sourceRegion: string | undefined,
): Destination {
  const fields = typeof item === 'object' && item !== null ? (item as Record<string, unknown>) : {};
  if (!('registry' in fields) && !('credentials' in fields)) {
    const d = check(at, roleDestination, item);
    return {
      ...d,
      kind: 'role',
      id: d.id ?? `${d.accountId}-${d.region}`,
      host: ecrHost(d.accountId, d.region),
      repositorySettings: d.repositorySettings ?? defaults,
    };
  }
  for (const key of ['roleArn', 'externalId', 'accountId', 'region']) {
    if (key in fields) {
      fail(
        `${at}.${key}`,
        'a destination with registry and credentials takes no role: use either roleArn/externalId (ECR through a role) or registry/credentials (a secret)',
      );
    }
  }
  if (!('id' in fields)) fail(`${at}.id`, 'is required for a destination named by its registry');
  const d = check(at, registryDestination, item);
  const ecr = parseEcrHost(d.registry);
  if (!ecr && d.repositorySettings) {
    fail(
      `${at}.repositorySettings`,
      `applies to ECR registries only: the mirror creates repositories in ECR, and ${d.registry} is not one`,
    );
  }
  // The functions read the secret (and decrypt with its key) with their own roles, in their partition.
  const partition = sourceRegion ? partitionOf(sourceRegion) : undefined;
  for (const [field, arn] of [
    ['secretArn', d.credentials.secretArn],
    ['kmsKeyArn', d.credentials.kmsKeyArn],
  ] as const) {
    if (arn && partition && arnPartition(arn) !== partition) {
      fail(
        `${at}.credentials.${field}`,
        `must be in the mirror's own partition (${partition}): the functions read it with their roles`,
      );
    }
  }
  return {
    kind: 'registry',
    id: d.id,
    host: d.registry,
    credentials: d.credentials,
    ...(ecr && { accountId: ecr.accountId, region: ecr.region }),
    repository: d.repository,
    repositorySettings: d.repositorySettings ?? defaults,
  };
}

/**
 * Where the mirror writes in the source registry itself: the name patterns of destinations in the
 * source account and region. A push there is the mirror's own output and is never mirrored again.
 */
export function ownOutputNamespaces(
  config: Pick<MirrorConfig, 'destinations' | 'sourceAccountId' | 'sourceRegion'>,
): RegExp[] {
  return config.destinations
    .filter(
      (d) =>
        d.accountId !== undefined &&
        d.accountId === config.sourceAccountId &&
        d.region === config.sourceRegion,
    )
    .map((d) => mappedNamespace(d.repository, config.sourceAccountId));
}

/** Reads and validates the whole configuration; throws INVALID_CONFIG naming the first bad setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): MirrorConfig {
  const source = loadSourceConfig(env);
  const { sourceAccountId, sourceRegion } = source;
  const defaults = check('REPOSITORY_SETTINGS', repositorySettings, json(env, 'REPOSITORY_SETTINGS') ?? {});
  const destinations = checkDestinations(
    json(env, 'DESTINATIONS') ?? fail('DESTINATIONS', 'is required: a JSON array of destinations'),
    { sourceAccountId, sourceRegion, repositorySettings: defaults },
  );

  const statusTable = env.STATUS_TABLE?.trim() || fail('STATUS_TABLE', 'is required');
  return {
    ...source,
    functionRegion: env.AWS_REGION?.trim()
      ? check('AWS_REGION', region, env.AWS_REGION.trim())
      : sourceRegion,
    destinations,
    mirrorUntagged: bool(env, 'MIRROR_UNTAGGED', true),
    createRepositories: bool(env, 'CREATE_REPOSITORIES', true),
    syncDeletes: bool(env, 'SYNC_DELETES', false),
    referrers: bool(env, 'COPY_REFERRERS', true),
    statusTable,
    historyTtlDays: int(env, 'HISTORY_TTL_DAYS', 30, 1, 3650),
    eventBusName: env.EVENT_BUS_NAME?.trim() || 'default',
    publishEvents: bool(env, 'PUBLISH_EVENTS', true),
    deadLetterQueueUrl: env.DEAD_LETTER_QUEUE_URL?.trim() || undefined,
    maxReceives: int(env, 'MAX_RECEIVES', 5, 1, 1000),
    blobConcurrency: int(env, 'BLOB_CONCURRENCY', 6, 1, 64),
    mirrorQueueUrl: env.MIRROR_QUEUE_URL?.trim() || undefined,
    resyncApiRate: int(env, 'RESYNC_API_RATE', 5, 1, 100),
    ownOutput: ownOutputNamespaces({ destinations, sourceAccountId, sourceRegion }),
  };
}

/** Whether a source repository is one the mirror writes itself (a destination in the source registry). */
export function isOwnOutput(repository: string, config: Pick<MirrorConfig, 'ownOutput'>): boolean {
  return config.ownOutput.some((pattern) => pattern.test(repository));
}

/** Whether a source repository is mirrored: inside the prefixes (when any) and through the globs. */
export function repositoryInScope(
  repository: string,
  config: Pick<MirrorConfig, 'repositoryPrefixes' | 'repositories'>,
): boolean {
  const prefixed =
    config.repositoryPrefixes.length === 0 || config.repositoryPrefixes.some((p) => repository.startsWith(p));
  return prefixed && matchesFilter(repository, config.repositories);
}
