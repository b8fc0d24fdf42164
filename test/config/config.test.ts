import { checkDestinations, isOwnOutput, loadConfig, repositoryInScope } from '../../src/config/config';
import { globToRegExp, matchesFilter, parsePatternList } from '../../src/config/patterns';
import type { MirrorError } from '../../src/errors';

const destination = {
  accountId: '222222222222',
  region: 'eu-west-1',
  roleArn: 'arn:aws:iam::222222222222:role/ecr-mirror-destination',
  externalId: 'ext-123',
};
/** A destination in the source account and region: the mirror writes where it reads. */
const sourceRegistry = {
  accountId: '111111111111',
  region: 'us-east-1',
  roleArn: 'arn:aws:iam::111111111111:role/ecr-mirror-destination',
};
const base = {
  SOURCE_ACCOUNT_ID: '111111111111',
  SOURCE_REGION: 'us-east-1',
  DESTINATIONS: JSON.stringify([destination]),
  STATUS_TABLE: 'status',
};

function configError(env: Record<string, string | undefined>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect((err as MirrorError).code).toBe('INVALID_CONFIG');
    return (err as MirrorError).message;
  }
  throw new Error('expected INVALID_CONFIG');
}

test('defaults', () => {
  const c = loadConfig(base);
  expect(c).toMatchObject({
    sourceAccountId: '111111111111',
    sourceRegion: 'us-east-1',
    repositoryPrefixes: [],
    mirrorUntagged: true,
    createRepositories: true,
    syncDeletes: false,
    referrers: true,
    historyTtlDays: 30,
    eventBusName: 'default',
    publishEvents: true,
    maxReceives: 5,
    blobConcurrency: 6,
    resyncApiRate: 5,
    registryEndpoints: {},
  });
  expect(c.destinations[0]).toMatchObject({
    id: '222222222222-eu-west-1',
    repository: {},
    repositorySettings: {
      tagMutability: 'MUTABLE',
      scanOnPush: false,
      encryption: { type: 'AES256' },
      tags: {},
    },
  });
  expect(loadConfig({ ...base, SOURCE_REGION: undefined, AWS_REGION: 'eu-central-1' }).sourceRegion).toBe(
    'eu-central-1',
  );
});

test.each([
  [{ SOURCE_ACCOUNT_ID: undefined }, /^SOURCE_ACCOUNT_ID: is required/],
  [{ SOURCE_ACCOUNT_ID: '1234' }, /^SOURCE_ACCOUNT_ID: must be a 12-digit AWS account id/],
  [{ SOURCE_REGION: 'Europe' }, /^SOURCE_REGION: must be an AWS region/],
  [{ DESTINATIONS: undefined }, /^DESTINATIONS: is required/],
  [{ DESTINATIONS: '[' }, /^DESTINATIONS: is not valid JSON/],
  [{ DESTINATIONS: '[]' }, /^DESTINATIONS: must list at least one destination/],
  [
    { DESTINATIONS: JSON.stringify([destination, { ...destination, roleArn: 'role' }]) },
    /^DESTINATIONS\[1\]\.roleArn: must be an IAM role ARN/,
  ],
  [{ DESTINATIONS: JSON.stringify([{ ...destination, colour: 'red' }]) }, /^DESTINATIONS\[0\]: .*colour/],
  [
    { DESTINATIONS: JSON.stringify([destination, destination]) },
    /^DESTINATIONS\[1\]\.id: "222222222222-eu-west-1" is used twice/,
  ],
  [
    {
      DESTINATIONS: JSON.stringify([
        { ...destination, repository: { template: 'x/{name}', addPrefix: 'y/' } },
      ]),
    },
    /^DESTINATIONS\[0\]\.repository: use either template or addPrefix/,
  ],
  [
    { DESTINATIONS: JSON.stringify([{ ...destination, ...sourceRegistry }]) },
    /^DESTINATIONS\[0\]\.repository: maps "team\/api" onto itself, and this destination is the source registry/,
  ],
  // A mapping that would fail on every event is refused at load, naming the field.
  [
    { DESTINATIONS: JSON.stringify([{ ...destination, repository: { addPrefix: 'Mirror/' } }]) },
    /^DESTINATIONS\[0\]\.repository\.addPrefix: repository mapping turns "team\/api" into an invalid name "Mirror\/team\/api"/,
  ],
  [
    { DESTINATIONS: JSON.stringify([{ ...destination, repository: { stripPrefix: 'team' } }]) },
    /^DESTINATIONS\[0\]\.repository\.stripPrefix: must be whole path components ending in "\/"/,
  ],
  [
    { DESTINATIONS: JSON.stringify([{ ...destination, repository: { template: 'copies/{foo}' } }]) },
    /^DESTINATIONS\[0\]\.repository\.template: may use only the placeholders \{repository\}, \{name\}, \{sourceAccount\}/,
  ],
  [
    { DESTINATIONS: JSON.stringify([{ ...destination, repository: { template: 'copies/{name' } }]) },
    /^DESTINATIONS\[0\]\.repository\.template: may use only the placeholders/,
  ],
  [
    { DESTINATIONS: JSON.stringify([{ ...destination, roleArn: 'arn:aws:iam::333333333333:role/r' }]) },
    /^DESTINATIONS\[0\]\.roleArn: must be a role in the destination account \(accountId\)/,
  ],
  [
    { DESTINATIONS: JSON.stringify([{ ...destination, accountId: undefined }]) },
    /^DESTINATIONS\[0\]\.accountId: /,
  ],
  // In the source registry, a mapping with a fixed point copies an image onto itself.
  [
    {
      DESTINATIONS: JSON.stringify([
        { ...destination, ...sourceRegistry, repository: { stripPrefix: 'mirror/', addPrefix: 'mirror/' } },
      ]),
    },
    /^DESTINATIONS\[0\]\.repository: maps "mirror\/team\/api" onto itself/,
  ],
  [
    {
      DESTINATIONS: JSON.stringify([
        { ...destination, ...sourceRegistry, repository: { template: 'copies/{name}' } },
      ]),
    },
    /^DESTINATIONS\[0\]\.repository: maps "copies\/api" onto itself/,
  ],
  [{ REPOSITORY_SETTINGS: '{"tagMutability":"FROZEN"}' }, /^REPOSITORY_SETTINGS\.tagMutability: /],
  [{ SYNC_DELETES: 'maybe' }, /^SYNC_DELETES: must be true or false, got "maybe"/],
  [{ MAX_RECEIVES: '0' }, /^MAX_RECEIVES: must be a whole number from 1 to 1000/],
  [{ REGISTRY_ENDPOINTS: '{"h":"ftp://x"}' }, /^REGISTRY_ENDPOINTS\.h: /],
  [{ STATUS_TABLE: '' }, /^STATUS_TABLE: is required/],
])('%j is refused, naming the setting', (override, message) => {
  expect(configError({ ...base, ...override })).toMatch(message);
});

test('repositories in scope: prefixes and globs together', () => {
  const c = loadConfig({
    ...base,
    REPOSITORY_PREFIXES: 'team-a/, base/',
    REPOSITORY_EXCLUDE: 'team-a/scratch-*',
  });
  expect(c.repositoryPrefixes).toEqual(['team-a/', 'base/']);
  expect(repositoryInScope('team-a/api', c)).toBe(true);
  expect(repositoryInScope('base/node', c)).toBe(true);
  expect(repositoryInScope('team-b/api', c)).toBe(false);
  expect(repositoryInScope('team-a/scratch-1', c)).toBe(false);
  expect(repositoryInScope('anything', loadConfig(base))).toBe(true);
});

test('globs: * crosses slashes, ? is one character, the rest is literal', () => {
  expect(globToRegExp('team/*').test('team/a/b')).toBe(true);
  expect(globToRegExp('v?.0').test('v1.0')).toBe(true);
  expect(globToRegExp('v?.0').test('v10.0')).toBe(false);
  expect(globToRegExp('a.b').test('axb')).toBe(false);
  expect(matchesFilter('v1', { include: [], exclude: [] })).toBe(true);
  expect(matchesFilter('v1-dev', { include: ['v*'], exclude: ['*-dev'] })).toBe(false);
  expect(parsePatternList(' a, ,b ')).toEqual(['a', 'b']);
});

test('a destination in the source registry with its own namespace loads; that namespace is its output', () => {
  const c = loadConfig({
    ...base,
    DESTINATIONS: JSON.stringify([
      destination,
      { ...destination, ...sourceRegistry, id: 'prefixed', repository: { addPrefix: 'mirror/' } },
      {
        ...destination,
        ...sourceRegistry,
        id: 'templated',
        repository: { template: 'from-{sourceAccount}/{repository}' },
      },
    ]),
  });
  expect(isOwnOutput('mirror/team/api', c)).toBe(true);
  expect(isOwnOutput('from-111111111111/team/api', c)).toBe(true);
  expect(isOwnOutput('team/api', c)).toBe(false);
  expect(isOwnOutput('mirrors/api', c)).toBe(false);
  // Destinations elsewhere never make anything in A their output.
  expect(loadConfig(base).ownOutput).toEqual([]);
});

test('checkDestinations names the setting it is given (the package-time param step)', () => {
  expect(() =>
    checkDestinations([{ ...destination, externalId: undefined }], { setting: 'param "destinations"' }),
  ).toThrow(/^param "destinations"\[0\]\.externalId: /);
});

describe('destinations named by their registry, with credentials in a secret', () => {
  const GOV_SECRET = 'arn:aws:secretsmanager:us-east-1:111111111111:secret:ecr-mirror/gov';
  const gov = {
    id: 'gov',
    registry: '123456789012.dkr.ecr.us-gov-west-1.amazonaws.com',
    credentials: { secretArn: GOV_SECRET },
  };
  const ghcr = {
    id: 'ghcr',
    registry: 'ghcr.io',
    repository: { template: 'acme/{name}' },
    credentials: {
      secretArn: 'arn:aws:secretsmanager:us-east-1:111111111111:secret:ecr-mirror/ghcr-AbC123',
      kmsKeyArn: 'arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    },
  };
  const load = (...destinations: unknown[]) =>
    loadConfig({ ...base, DESTINATIONS: JSON.stringify(destinations) }).destinations;

  test('the issue’s examples load beside a role destination: host, and account and region for ECR', () => {
    const [role, g, h] = load(destination, gov, ghcr);
    expect(role).toMatchObject({ kind: 'role', host: '222222222222.dkr.ecr.eu-west-1.amazonaws.com' });
    expect(g).toMatchObject({
      kind: 'registry',
      id: 'gov',
      host: gov.registry,
      accountId: '123456789012',
      region: 'us-gov-west-1',
      credentials: { secretArn: GOV_SECRET },
      repository: {},
    });
    expect(h).toMatchObject({ kind: 'registry', host: 'ghcr.io', credentials: ghcr.credentials });
    expect(h).not.toHaveProperty('accountId');
    // A registry that is not ECR is never the source registry, whatever its mapping.
    expect(isOwnOutput('acme/api', loadConfig({ ...base, DESTINATIONS: JSON.stringify([ghcr]) }))).toBe(
      false,
    );
  });

  test('each field is checked, naming it', () => {
    const bad = (d: Record<string, unknown>) => configError({ ...base, DESTINATIONS: JSON.stringify([d]) });
    const { id: _, ...noId } = ghcr;
    expect(bad(noId)).toBe('DESTINATIONS[0].id: is required for a destination named by its registry');
    expect(bad({ ...ghcr, registry: 'https://ghcr.io/acme' })).toMatch(
      /^DESTINATIONS\[0\]\.registry: must be a registry host/,
    );
    expect(bad({ ...ghcr, credentials: { secretArn: 'ecr-mirror/ghcr' } })).toMatch(
      /DESTINATIONS\[0\]\.credentials\.secretArn: must be a Secrets Manager secret ARN/,
    );
    expect(bad({ ...ghcr, credentials: { ...ghcr.credentials, kmsKeyArn: 'alias/x' } })).toMatch(
      /DESTINATIONS\[0\]\.credentials\.kmsKeyArn: must be a KMS key ARN/,
    );
    expect(bad({ ...ghcr, credentials: {} })).toBe('DESTINATIONS[0].credentials.secretArn: is required');
    expect(bad({ ...ghcr, credentials: { ...ghcr.credentials, password: 'x' } })).toMatch(
      /DESTINATIONS\[0\]\.credentials/,
    );
    expect(bad({ ...ghcr, roleArn: destination.roleArn })).toMatch(
      /DESTINATIONS\[0\]\.roleArn: a destination with registry and credentials takes no role/,
    );
    expect(bad({ id: 'x', registry: 'ghcr.io' })).toBe('DESTINATIONS[0].credentials: is required');
    // Repository settings are for repositories the mirror creates: in ECR only.
    expect(bad({ ...ghcr, repositorySettings: { scanOnPush: true } })).toMatch(
      /DESTINATIONS\[0\]\.repositorySettings: applies to ECR registries only/,
    );
    expect(load({ ...gov, repositorySettings: { scanOnPush: true } })[0]!.repositorySettings.scanOnPush).toBe(
      true,
    );
    // The functions read the secret with their own roles: it is in the mirror's partition.
    expect(
      bad({
        ...gov,
        credentials: { secretArn: 'arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x' },
      }),
    ).toMatch(/DESTINATIONS\[0\]\.credentials\.secretArn: must be in the mirror's own partition \(aws\)/);
  });

  test('ids stay unique across both kinds', () => {
    expect(() => checkDestinations([ghcr, { ...gov, id: 'ghcr' }])).toThrow(
      'DESTINATIONS[1].id: "ghcr" is used twice',
    );
  });
});
