import type { Descriptor } from '../../src/core/descriptor';
import { MediaType } from '../../src/core/media-types';
import { openRegistry } from '../../src/registry/open';
import { registryInventory } from '../../src/sync/inventory';
import { parseLocation } from '../../src/sync/location';
import { runSync, type SyncOptions } from '../../src/sync/sync';
import { getManifest, pushBlob, pushImage, pushManifest } from '../support/content';
import { type FaultProxy, ociError, type SeenRequest, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';

/**
 * `ecr-mirror sync` in-process between real registries, each behind a recording proxy: what a cold
 * run copies (each blob once per destination repository, mounted where it can be), what a warm run
 * costs (one manifest HEAD per tag at each side, no blob request), dry runs, filters and failures.
 */

const LAYER = 'application/vnd.oci.image.layer.v1.tar';

let a: TestRegistry;
let b: TestRegistry;
let toA: FaultProxy;
let toB: FaultProxy;
beforeAll(async () => {
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
  [toA, toB] = await Promise.all([startFaultProxy(a), startFaultProxy(b)]);
});
beforeEach(() => {
  for (const p of [toA, toB]) {
    p.clearFaults();
    p.requests.length = 0;
  }
});
afterAll(async () => {
  await Promise.all([toA?.close(), toB?.close()]);
  await Promise.all([a?.stop(), b?.stop()]);
});

const open = (host: string) => openRegistry(host, { insecure: true, credentials: TEST_CREDS });

function sync(src: string, dst: string, extra: Partial<SyncOptions> = {}) {
  const source = open(toA.host);
  return runSync(
    {
      source: parseLocation(src.replace('A', toA.host), 'SRC'),
      destination: parseLocation(dst.replace('B', toB.host), 'DST'),
      repositories: { include: [], exclude: [] },
      tags: { include: [], exclude: [] },
      dryRun: false,
      images: 4,
      concurrency: 8,
      referrers: true,
      ...extra,
    },
    { source, destination: open(toB.host), inventory: registryInventory(source) },
  );
}

/** A base layer shared by several repositories (the same bytes pushed into each). */
async function base(repos: string[], size: number, fill: number): Promise<Descriptor> {
  let d: Descriptor | undefined;
  for (const repo of repos) d = await pushBlob(a, repo, Buffer.alloc(size, fill), LAYER);
  return d!;
}

/** A cosign-style signature for an image: a small manifest tagged `sha256-<hex>.sig`. */
async function sign(repo: string, image: Descriptor): Promise<Descriptor> {
  const sig = await pushImage(a, repo, undefined, {
    layers: [200],
    configMediaType: MediaType.OciEmpty,
    artifactType: 'application/vnd.dev.cosign.simplesigning.v1+json',
  });
  await pushManifest(a, repo, `${image.digest.replace(':', '-')}.sig`, sig.bytes, MediaType.OciManifest);
  return sig.manifest;
}

const blobRequests = (p: FaultProxy): SeenRequest[] => p.requests.filter((r) => /\/blobs\//.test(r.path));
const uploadsOf = (p: FaultProxy, digest: string): string[] =>
  p
    .seen('PUT', /\/blobs\/uploads\/[^?]+\?.*digest=/)
    .filter((r) => r.path.includes(encodeURIComponent(digest)))
    .map((r) => r.path.split('/blobs/')[0]!);

test('a cold run copies the fleet, each blob once per repository, mounting shared layers; a warm run only HEADs', async () => {
  const os = await base(['fleet/api', 'fleet/web', 'fleet/worker'], 120_000, 1);
  const api1 = await pushImage(a, 'fleet/api', 'v1', { layers: [os, 20_000] });
  const api2 = await pushImage(a, 'fleet/api', 'v2', { layers: [os, 21_000] });
  await pushImage(a, 'fleet/web', 'v1', { layers: [os, 22_000] });
  await pushImage(a, 'fleet/worker', 'v1', { layers: [os, 23_000] });
  await pushImage(a, 'elsewhere/tool', 'v1', { layers: [1_000] });
  await sign('fleet/api', api1.manifest);

  const cold = await sync('A/fleet', 'B/mirror');
  expect(cold.failures).toEqual([]);
  expect(cold).toMatchObject({
    repositories: 3,
    images: { total: 5, copied: 5, inSync: 0, failed: 0 },
  });
  for (const [repo, tag, digest] of [
    ['api', 'v1', api1.manifest.digest],
    ['api', 'v2', api2.manifest.digest],
  ] as const) {
    expect((await getManifest(b, `mirror/${repo}`, tag)).digest).toBe(digest);
  }
  expect((await getManifest(b, 'mirror/api', `${api1.manifest.digest.replace(':', '-')}.sig`)).status).toBe(
    200,
  );
  expect((await getManifest(b, 'mirror/web', 'v1')).status).toBe(200);
  expect((await getManifest(b, 'elsewhere/tool', 'v1')).status).toBe(404);
  // The shared layer went up once; the other repositories had it mounted.
  expect(uploadsOf(toB, os.digest)).toHaveLength(1);
  expect(cold.blobs.mounted).toBe(2);
  expect(toB.seen('POST', /mount=/).filter((r) => r.status === 201)).toHaveLength(2);
  // The destination repositories did not exist: nothing to ask about before sending each blob.
  expect(toB.seen('HEAD', /\/blobs\//)).toEqual([]);
  // No blob went up twice into one repository.
  const puts = toB
    .seen('PUT', /\/blobs\/uploads\/[^?]+\?.*digest=/)
    .map((r) => r.path.replace(/uploads\/[^?]+/, ''));
  expect(new Set(puts).size).toBe(puts.length);

  // At the source: one HEAD per tag to compare, and one for the one referrer tag it listed (no
  // lookups of referrer tags it does not have); its lack of a referrers API is learnt from the first
  // answer (copies that asked at the same moment, at most --images of them, ask once each).
  expect(toA.seen('HEAD', /\/manifests\//)).toHaveLength(5 + 1);
  expect(toA.seen('GET', /\/referrers\//).length).toBeLessThanOrEqual(4);

  toA.requests.length = 0;
  toB.requests.length = 0;
  const warm = await sync('A/fleet', 'B/mirror');
  expect(warm).toMatchObject({ images: { total: 5, copied: 0, inSync: 5, failed: 0 }, failures: [] });
  for (const side of [toA, toB]) {
    // One manifest HEAD per tag, nothing else about manifests, and no blob request.
    expect(side.seen('HEAD', /\/manifests\//)).toHaveLength(5);
    expect(side.requests.filter((r) => /\/manifests\//.test(r.path) && r.method !== 'HEAD')).toEqual([]);
    expect(blobRequests(side)).toEqual([]);
  }
  // Listing: the catalog at the source, a tag list per repository at each side.
  expect(toA.seen('GET', /\/tags\/list/)).toHaveLength(3);
  expect(toB.seen('GET', /\/tags\/list/)).toHaveLength(3);
  expect(warm.requests.destination).toBe(toB.requests.length);
});

test('a dry run lists what differs and copies nothing', async () => {
  const img = await pushImage(a, 'dry/app', 'v1', { layers: [3_000] });
  await pushImage(a, 'dry/app', 'v2', { layers: [3_000] });
  // The destination holds v1 at another digest.
  const other = await pushImage(b, 'dry/app', 'v1', { layers: [2_000] });
  const s = await sync('A/dry', 'B/dry', { dryRun: true });
  expect(s.images).toEqual({ total: 2, copied: 2, inSync: 0, failed: 0 });
  expect(s.differences.map((d) => [d.tag, d.reason, d.destinationDigest])).toEqual(
    expect.arrayContaining([
      ['v1', 'different', other.manifest.digest],
      ['v2', 'missing', undefined],
    ]),
  );
  expect(s.differences.find((d) => d.tag === 'v1')?.digest).toBe(img.manifest.digest);
  expect(toB.requests.filter((r) => r.method !== 'HEAD' && r.method !== 'GET')).toEqual([]);
  expect((await getManifest(b, 'dry/app', 'v1')).digest).toBe(other.manifest.digest);
});

test('repository and tag filters; a tag held at another digest is put right', async () => {
  await pushImage(a, 'filt/keep', 'v1', { layers: [1_000] });
  await pushImage(a, 'filt/keep', 'v1-dev', { layers: [1_000] });
  await pushImage(a, 'filt/keep', 'latest', { layers: [1_000] });
  await pushImage(a, 'filt/drop', 'v1', { layers: [1_000] });
  await pushImage(a, 'filt/also', 'v1', { layers: [1_000] });
  const stale = await pushImage(b, 'copies/keep', 'v1', { layers: [500] });
  const s = await sync('A/filt', 'B/copies', {
    repositories: { include: ['filt/*'], exclude: ['filt/drop'] },
    tags: { include: ['v*'], exclude: ['*-dev'] },
  });
  expect(s.failures).toEqual([]);
  expect(s).toMatchObject({ repositories: 2, images: { total: 2, copied: 2 } });
  expect((await getManifest(b, 'copies/keep', 'v1')).digest).not.toBe(stale.manifest.digest);
  expect((await getManifest(b, 'copies/keep', 'v1')).digest).toBe(
    (await getManifest(a, 'filt/keep', 'v1')).digest,
  );
  expect((await getManifest(b, 'copies/keep', 'latest')).status).toBe(404);
  expect((await getManifest(b, 'copies/keep', 'v1-dev')).status).toBe(404);
  expect((await getManifest(b, 'copies/drop', 'v1')).status).toBe(404);
  expect((await getManifest(b, 'copies/also', 'v1')).status).toBe(200);
});

test('a failed image is listed with its reason and the rest is copied', async () => {
  await pushImage(a, 'fails/good', 'v1', { layers: [1_000] });
  await pushImage(a, 'fails/bad', 'v1', { layers: [1_000] });
  await pushImage(a, 'fails/bad', 'v2', { layers: [1_000] });
  toB.fault({
    method: 'PUT',
    path: /^\/v2\/fails\/bad\/manifests\/v2$/,
    action: { type: 'status', status: 400, body: ociError('MANIFEST_INVALID', 'refused on purpose') },
  });
  const s = await sync('A/fails', 'B/fails');
  expect(s.images).toMatchObject({ total: 3, copied: 2, failed: 1 });
  expect(s.failures).toEqual([
    expect.objectContaining({
      repository: 'fails/bad',
      tag: 'v2',
      destinationRepository: 'fails/bad',
      code: 'REGISTRY_ERROR',
      message: expect.stringContaining('refused on purpose'),
    }),
  ]);
  expect((await getManifest(b, 'fails/good', 'v1')).status).toBe(200);
  expect((await getManifest(b, 'fails/bad', 'v1')).status).toBe(200);
});

test('--no-referrers leaves signatures and their tags behind', async () => {
  const img = await pushImage(a, 'unsigned/app', 'v1', { layers: [2_000] });
  await sign('unsigned/app', img.manifest);
  const s = await sync('A/unsigned', 'B/unsigned', { referrers: false });
  expect(s).toMatchObject({ images: { total: 1, copied: 1 }, failures: [] });
  expect((await getManifest(b, 'unsigned/app', 'v1')).digest).toBe(img.manifest.digest);
  expect((await getManifest(b, 'unsigned/app', `${img.manifest.digest.replace(':', '-')}.sig`)).status).toBe(
    404,
  );
  expect(toA.seen('GET', /\/referrers\//)).toEqual([]);
});

test('a repository that cannot be listed is a failure of its own; the others are copied', async () => {
  await pushImage(a, 'unlisted/ok', 'v1', { layers: [1_000] });
  await pushImage(a, 'unlisted/broken', 'v1', { layers: [1_000] });
  toA.fault({
    method: 'GET',
    path: /^\/v2\/unlisted\/broken\/tags\/list/,
    action: { type: 'status', status: 403, body: ociError('DENIED', 'not for you') },
  });
  const s = await sync('A/unlisted', 'B/unlisted');
  expect(s.images).toMatchObject({ total: 1, copied: 1, failed: 0 });
  expect(s.failures).toEqual([
    {
      repository: 'unlisted/broken',
      destinationRepository: 'unlisted/broken',
      code: 'DENIED',
      message: expect.stringContaining('not for you'),
    },
  ]);
  expect((await getManifest(b, 'unlisted/ok', 'v1')).status).toBe(200);
});

test('within one registry every blob is mounted from the source repository', async () => {
  await pushImage(a, 'promote/app', 'v1', { layers: [50_000, 6_000] });
  const source = open(toA.host);
  const s = await runSync(
    {
      source: parseLocation(`${toA.host}/promote`, 'SRC'),
      destination: parseLocation(`${toA.host}/released`, 'DST'),
      repositories: { include: [], exclude: [] },
      tags: { include: [], exclude: [] },
      dryRun: false,
      images: 2,
      concurrency: 4,
      referrers: true,
    },
    { source, destination: open(toA.host), inventory: registryInventory(source) },
  );
  expect(s.failures).toEqual([]);
  expect(s.blobs).toEqual({ copied: 0, mounted: 3, skipped: 0 });
  expect(s.bytes).toBe(0);
  expect(toA.seen('PUT', /\/blobs\/uploads\//)).toEqual([]);
  expect((await getManifest(a, 'released/app', 'v1')).digest).toBe(
    (await getManifest(a, 'promote/app', 'v1')).digest,
  );
});

test('Ctrl-C stops the run: in-flight copies are cancelled and it rejects with CANCELLED', async () => {
  await pushImage(a, 'stop/app', 'v1', { layers: [200_000] });
  toB.fault({ method: 'PUT', path: /^\/v2\/stop\/app\/blobs\/uploads\//, action: { type: 'stall' } });
  const controller = new AbortController();
  const run = sync('A/stop', 'B/stop', { signal: controller.signal });
  setTimeout(() => controller.abort(), 300);
  await expect(run).rejects.toMatchObject({ code: 'CANCELLED' });
});
