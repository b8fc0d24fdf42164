import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatSyncSummary, SyncProgress } from '../../src/cli/sync';
import type { SyncSummary } from '../../src/sync/sync';
import { getManifest, pushImage } from '../support/content';
import { startEcrApi } from '../support/ecr-api';
import { ociError, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_PASSWORD, TEST_USER, type TestRegistry } from '../support/registry';
import { ensureBuilt, runBuilt } from '../support/run-built';

const CREDS = `${TEST_USER}:${TEST_PASSWORD}`;
const run = (args: string[], env: Record<string, string> = {}) => runBuilt('dist/cli.js', args, env);

let a: TestRegistry;
let b: TestRegistry;
beforeAll(async () => {
  ensureBuilt('dist/cli.js');
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

/**
 * A preload that makes any require of the AWS SDK or zod fail: proof that a command never loads them
 * (the SDK is for ECR sides only; zod, the configuration validator, for the Lambdas and `doctor`).
 */
function noAwsSdk(): string {
  const file = join(tmpdir(), `no-aws-sdk-${process.pid}.js`);
  writeFileSync(
    file,
    `const Module = require('module');
const load = Module._load;
Module._load = function (request, ...rest) {
  if (request.startsWith('@aws-sdk/') || request === 'zod') throw new Error('loaded: ' + request);
  return load.call(this, request, ...rest);
};
`,
  );
  return file;
}

test('--help lists the sync verb with its flags', async () => {
  const r = await run(['sync', '--help']);
  expect(r.code).toBe(0);
  for (const flag of [
    '--repositories <GLOB,...>',
    '--exclude-repositories <GLOB,...>',
    '--tags <GLOB,...>',
    '--exclude-tags <GLOB,...>',
    '--dry-run',
    '--concurrency <N>',
    '--images <N>',
    '--src-creds <U:P>',
    '--dest-creds <U:P>',
    '--insecure',
    '--no-referrers',
    '--json',
  ]) {
    expect(r.stdout).toContain(flag);
  }
});

test('sync --json between two registries, then a warm run; neither the AWS SDK nor zod is loaded', async () => {
  const one = await pushImage(a, 'cli-fleet/one', 'v1', { layers: [20_000] });
  await pushImage(a, 'cli-fleet/two', 'v1', { layers: [20_000] });
  const args = ['sync', '--insecure', '--json', '--src-creds', CREDS, '--dest-creds', CREDS];
  const env = { NODE_OPTIONS: `--require ${noAwsSdk()}` };
  const cold = await run([...args, `${a.host}/cli-fleet`, `${b.host}/copies`], env);
  expect(cold.stderr).toBe('');
  expect(cold.code).toBe(0);
  const summary = JSON.parse(cold.stdout) as SyncSummary;
  expect(summary).toMatchObject({
    source: `${a.host}/cli-fleet`,
    destination: `${b.host}/copies`,
    dryRun: false,
    repositories: 2,
    images: { total: 2, copied: 2, inSync: 0, failed: 0 },
    blobs: { copied: 4, mounted: 0, skipped: 0 },
    failures: [],
  });
  expect(summary.differences).toHaveLength(2);
  expect(summary.requests.source).toBeGreaterThan(0);
  expect((await getManifest(b, 'copies/one', 'v1')).digest).toBe(one.manifest.digest);

  const warm = await run([...args, `${a.host}/cli-fleet`, `${b.host}/copies`], env);
  expect(warm.code).toBe(0);
  expect(JSON.parse(warm.stdout)).toMatchObject({ images: { copied: 0, inSync: 2 }, differences: [] });
});

test('a failed image: exit 1, every failure listed (escaped), one line on stderr', async () => {
  await pushImage(a, 'cli-bad/app', 'v1', { layers: [1_000] });
  await pushImage(a, 'cli-bad/app', 'v2', { layers: [1_000] });
  const proxy = await startFaultProxy(b);
  try {
    proxy.fault({
      method: 'PUT',
      path: /\/manifests\/v2$/,
      action: { type: 'status', status: 400, body: ociError('MANIFEST_INVALID', 'no\x1b[31m way\nat all') },
    });
    const r = await run([
      'sync',
      '--insecure',
      '--src-creds',
      CREDS,
      '--dest-creds',
      CREDS,
      `${a.host}/cli-bad`,
      `${proxy.host}/cli-bad`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['ecr-mirror: sync: 1 failure, each listed in the summary']);
    expect(r.stdout).toMatch(/images: +1 copied, 0 in sync, 1 failed/);
    const failed = r.stdout.split('\n').filter((l) => l.includes('failed: '));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain('cli-bad/app:v2: REGISTRY_ERROR:');
    expect(failed[0]).toContain('no\\x1b[31m way\\nat all');
    expect(r.stdout).not.toContain('\x1b');
  } finally {
    await proxy.close();
  }
});

test('--dry-run lists what would be copied and copies nothing', async () => {
  await pushImage(a, 'cli-dry/app', 'v1', { layers: [1_000] });
  const r = await run([
    'sync',
    '--dry-run',
    '--insecure',
    '--src-creds',
    CREDS,
    '--dest-creds',
    CREDS,
    `${a.host}/cli-dry`,
    `${b.host}/cli-dry`,
  ]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`Dry run: ${a.host}/cli-dry → ${b.host}/cli-dry`);
  expect(r.stdout).toContain('would copy cli-dry/app:v1 → cli-dry/app:v1 (missing)');
  expect(r.stdout).toMatch(/images: +1 to copy, 0 in sync, 0 failed/);
  expect((await getManifest(b, 'cli-dry/app', 'v1')).status).toBe(404);
});

test.each([
  [['sync', 'team/api', 'r.io'], /SRC "team\/api": "team" is not a registry host/],
  [['sync', 'a.io/x:1', 'b.io'], /not a tag or a digest/],
  [['sync', 'a.io', 'b.io', '--images', '0'], /--images must be a whole number from 1 to 64/],
  [['sync', 'a.io', 'b.io', '--concurrency', 'lots'], /--concurrency must be a whole number/],
  [['sync', 'a.io'], /missing required argument/],
])('usage errors exit 2 with one line: %j', async (args, message) => {
  const r = await run(args);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(message);
});

test('ECR to ECR: DescribeRepositories and ListImages at the source, missing repositories created', async () => {
  const SRC = '111111111111.dkr.ecr.us-east-1.amazonaws.com';
  const DST = '222222222222.dkr.ecr.eu-west-1.amazonaws.com';
  const img = await pushImage(a, 'ecr-team/api', 'v3', { layers: [5_000] });
  const api = await startEcrApi({
    registries: { '111111111111': a, '222222222222': b },
    callers: { 'eu-west-1': '222222222222' },
  });
  try {
    const r = await run(['sync', '--json', `${SRC}/ecr-team`, `${DST}/mirror`], {
      REGISTRY_ENDPOINTS: JSON.stringify({ [SRC]: a.url, [DST]: b.url }),
      AWS_ENDPOINT_URL_ECR: api.url,
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret-example',
      AWS_REGION: 'us-east-1',
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ images: { copied: 1 }, failures: [] });
    expect((await getManifest(b, 'mirror/api', 'v3')).digest).toBe(img.manifest.digest);
    const ops = api.calls.map((c) => c.split('.')[1]);
    expect(ops).toEqual(
      expect.arrayContaining([
        'DescribeRepositories',
        'ListImages',
        'GetAuthorizationToken',
        'CreateRepository',
      ]),
    );
    expect(ops).not.toContain('DescribeImages');
    expect(api.created).toEqual(['222222222222/mirror/api']);
    expect(api.inputs.find((i) => i.repositoryName === 'ecr-team/api')).toMatchObject({
      registryId: '111111111111',
      filter: { tagStatus: 'TAGGED' },
    });
  } finally {
    await api.stop();
  }
});

test('the summary and the progress line', () => {
  const summary: SyncSummary = {
    source: 'a.io/team',
    destination: 'b.io/mirror',
    dryRun: false,
    repositories: 2,
    images: { total: 5, copied: 3, inSync: 1, failed: 1 },
    blobs: { copied: 4, mounted: 2, skipped: 1 },
    bytes: 2_500_000,
    requests: { source: 20, destination: 30 },
    throttled: { source: 0, destination: 3 },
    seconds: 1.5,
    differences: [],
    failures: [{ repository: 'team/x', tag: 'v1', code: 'DENIED', message: 'no' }],
  };
  expect(formatSyncSummary(summary)).toBe(
    [
      'Synced: a.io/team → b.io/mirror',
      '  images:   3 copied, 1 in sync, 1 failed (5 tags in 2 repositories)',
      '  blobs:    4 copied, 2 mounted, 1 already present; 2.5 MB sent',
      '  requests: 20 to the source, 30 to the destination (0 and 3 throttled)',
      '  1.50 s',
      '  failed: team/x:v1: DENIED: no',
      '',
    ].join('\n'),
  );
  const written: string[] = [];
  const progress = new SyncProgress({
    write: (s: string) => written.push(s),
  } as unknown as NodeJS.WriteStream);
  jest.useFakeTimers();
  try {
    progress.onEvent({ type: 'planned', repository: 'team/x', images: 4, inSync: 1, toCopy: 3 });
    progress.onEvent({ type: 'blob-bytes', bytes: 1_000_000 });
    progress.onEvent({ type: 'image-done', repository: 'team/x', tag: 'v1', ok: true });
    jest.advanceTimersByTime(250);
    expect(written.at(-1)?.startsWith('\r\x1b[Kimages 2/4 (1 in sync, 0 failed) · 1.0 MB sent · ')).toBe(
      true,
    );
    progress.stop();
    expect(written.at(-1)).toBe('\r\x1b[K');
  } finally {
    jest.useRealTimers();
  }
});
