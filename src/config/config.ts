import { z } from 'zod';
import { MirrorError } from '../errors';
import { parseRegistryEndpoints } from './endpoints';
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

const repositoryMapping = z
  .object({
    /** Prepended to the source name: `mirror/` makes `team/api` into `mirror/team/api`. */
    addPrefix: z.string().optional(),
    /** Removed from the start of the source name when present. */
    stripPrefix: z.string().optional(),
    /** A rename template with `{repository}`, `{name}` (last path component), `{sourceAccount}`. */
    template: z
      .string()
      .includes('{', { message: 'must contain a placeholder such as {repository}' })
      .optional(),
  })
  .strict()
  .refine((m) => !(m.template && (m.addPrefix || m.stripPrefix)), {
    message: 'use either template or addPrefix/stripPrefix, not both',
  })
  .default({});

export type RepositoryMapping = z.infer<typeof repositoryMapping>;

const destination = z
  .object({
    /** Names the destination in status records and on the command line; defaults to `<account>-<region>`. */
    id: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 of A-Z a-z 0-9 . _ -')
      .optional(),
    accountId,
    region,
    roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, 'must be an IAM role ARN'),
    externalId: z.string().min(2).max(1224),
    repository: repositoryMapping,
    /** Overrides REPOSITORY_SETTINGS for repositories created in this destination (a KMS key is per region). */
    repositorySettings: repositorySettings.optional(),
  })
  .strict();

export interface Destination {
  id: string;
  accountId: string;
  region: string;
  roleArn: string;
  externalId: string;
  repository: RepositoryMapping;
  repositorySettings: RepositorySettings;
}

export interface MirrorConfig {
  sourceAccountId: string;
  sourceRegion: string;
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
}

function fail(setting: string, message: string): never {
  throw new MirrorError('INVALID_CONFIG', `${setting}: ${message}`);
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
  return fail(`${setting}${path}`, issue.message);
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

/** Reads and validates the whole configuration; throws INVALID_CONFIG naming the first bad setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): MirrorConfig {
  const source = loadSourceConfig(env);
  const { sourceAccountId, sourceRegion } = source;
  const defaults = check('REPOSITORY_SETTINGS', repositorySettings, json(env, 'REPOSITORY_SETTINGS') ?? {});
  const rawDestinations = check(
    'DESTINATIONS',
    z.array(destination).min(1, 'must list at least one destination'),
    json(env, 'DESTINATIONS') ?? fail('DESTINATIONS', 'is required: a JSON array of destinations'),
  );
  const destinations: Destination[] = rawDestinations.map((d) => ({
    ...d,
    id: d.id ?? `${d.accountId}-${d.region}`,
    repositorySettings: d.repositorySettings ?? defaults,
  }));
  const ids = new Set<string>();
  destinations.forEach((d, i) => {
    if (ids.has(d.id)) fail(`DESTINATIONS[${i}].id`, `"${d.id}" is used twice`);
    ids.add(d.id);
    if (
      d.accountId === sourceAccountId &&
      d.region === sourceRegion &&
      !d.repository.addPrefix &&
      !d.repository.template
    ) {
      fail(
        `DESTINATIONS[${i}]`,
        'is the source registry itself; add a prefix or template so images do not copy onto themselves',
      );
    }
  });

  const statusTable = env.STATUS_TABLE?.trim() || fail('STATUS_TABLE', 'is required');
  return {
    ...source,
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
  };
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
