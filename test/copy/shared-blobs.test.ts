import { BlobLedger } from '../../src/copy/blob-ledger';
import { type CopyImageOptions, copyImage } from '../../src/copy/copy-image';
import type { Descriptor } from '../../src/core/descriptor';
import { parseReference } from '../../src/core/reference';
import type { MirrorError } from '../../src/errors';
import { openRegistry } from '../../src/registry/open';
import type { RegistryClient } from '../../src/registry/registry';
import type { RetryPolicy } from '../../src/registry/retry';
import { blobStatus, getBlob, getManifest, pushBlob, pushImage, sha256 } from '../support/content';
import { type FaultProxy, ociError, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';

/**
 * One BlobLedger shared by several copies: a blob goes up once per destination repository, however
 * many copies want it at once; one in another repository of the same registry is mounted (and a
 * refused or failed mount falls back to an upload); what the ledger knows never crosses registries,
 * and stale knowledge is looked at again. Real registries, each destination behind a recording proxy.
 */

const FAST_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 10, maxDelayMs: 50, maxElapsedMs: 5_000 };
const LAYER = 'application/vnd.oci.image.layer.v1.tar';

let a: TestRegistry;
let b: TestRegistry;
let c: TestRegistry;
let toB: FaultProxy;
let toC: FaultProxy;
beforeAll(async () => {
  [a, b, c] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
  [toB, toC] = await Promise.all([startFaultProxy(b), startFaultProxy(c)]);
});
beforeEach(() => {
  for (const p of [toB, toC]) {
    p.clearFaults();
    p.requests.length = 0;
  }
});
afterAll(async () => {
  await Promise.all([toB?.close(), toC?.close()]);
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
});

const client = (host: string): RegistryClient =>
  openRegistry(host, { insecure: true, credentials: TEST_CREDS, retry: FAST_RETRY });

function copy(to: FaultProxy, src: string, dst: string, options: CopyImageOptions) {
  return copyImage(
    client(a.host),
    parseReference(`${a.host}/${src}`),
    client(to.host),
    parseReference(`${to.host}/${dst}`),
    options,
  );
}

/** Completed uploads (`PUT …?digest=`) a proxy saw into a repository, by digest. */
const uploaded = (p: FaultProxy, repo: string): string[] =>
  p
    .seen('PUT', new RegExp(`^/v2/${repo}/blobs/uploads/[^?]+\\?.*digest=`))
    .map((r) => new URL(r.path, 'http://x').searchParams.get('digest')!);
const mountRequests = (p: FaultProxy, repo: string) =>
  p.seen('POST', new RegExp(`^/v2/${repo}/blobs/uploads/\\?.*mount=`));

async function sharedBase(repos: string[], size = 200_000): Promise<Descriptor> {
  const bytes = Buffer.alloc(size, repos.length);
  bytes.write(repos.join(','));
  let base: Descriptor | undefined;
  for (const repo of repos) base = await pushBlob(a, repo, bytes, LAYER);
  return base!;
}

test('two copies into one repository at once: each shared blob goes up once', async () => {
  const base = await sharedBase(['same/app']);
  const one = await pushImage(a, 'same/app', 'one', { layers: [base, 20_000] });
  const two = await pushImage(a, 'same/app', 'two', { layers: [base, 20_000] });
  const blobs = new BlobLedger();
  const [s1, s2] = await Promise.all([
    copy(toB, 'same/app:one', 'same/app', { blobs }),
    copy(toB, 'same/app:two', 'same/app', { blobs }),
  ]);
  const all = [one, two].flatMap((i) => [i.config, ...i.layers].map((d) => d.digest));
  expect(uploaded(toB, 'same/app').sort()).toEqual([...new Set(all)].sort());
  // One of the two copies moved the base layer; the other waited for it and counts it as there.
  expect(s1.blobs.copied + s2.blobs.copied).toBe(5);
  expect(s1.blobs.skipped + s2.blobs.skipped).toBe(1);
  expect((await getManifest(b, 'same/app', 'two')).digest).toBe(two.manifest.digest);
});

test('a blob in another repository of the registry is mounted; in parallel the second copy waits, then mounts', async () => {
  const base = await sharedBase(['mnt/one', 'mnt/two', 'mnt/three']);
  const one = await pushImage(a, 'mnt/one', 'v1', { layers: [base, 10_000] });
  const two = await pushImage(a, 'mnt/two', 'v1', { layers: [base, 10_000] });
  const three = await pushImage(a, 'mnt/three', 'v1', { layers: [base, 10_000] });
  const blobs = new BlobLedger();

  // Side by side: whichever claims the base layer first uploads it, the other waits and mounts it.
  const [s1, s2] = await Promise.all([
    copy(toB, 'mnt/one:v1', 'mnt/one', { blobs }),
    copy(toB, 'mnt/two:v1', 'mnt/two', { blobs }),
  ]);
  expect(
    [...uploaded(toB, 'mnt/one'), ...uploaded(toB, 'mnt/two')].filter((d) => d === base.digest),
  ).toHaveLength(1);
  expect(s1.blobs.mounted + s2.blobs.mounted).toBe(1);
  // Later: mounted at once, from either.
  const s3 = await copy(toB, 'mnt/three:v1', 'mnt/three', { blobs });
  expect(s3.blobs).toEqual({ copied: 2, mounted: 1, skipped: 0 });
  expect(uploaded(toB, 'mnt/three')).not.toContain(base.digest);
  const [mount] = mountRequests(toB, 'mnt/three');
  expect(mount?.status).toBe(201);
  expect(mount?.path).toMatch(/from=mnt%2F(one|two)/);
  // The registry really holds it there now, byte for byte.
  expect(sha256(await getBlob(b, 'mnt/three', base.digest))).toBe(base.digest);
  expect((await getManifest(b, 'mnt/three', 'v1')).digest).toBe(three.manifest.digest);
  expect((await getManifest(b, 'mnt/one', 'v1')).digest).toBe(one.manifest.digest);
  expect((await getManifest(b, 'mnt/two', 'v1')).digest).toBe(two.manifest.digest);
});

test('a mount the registry answers with 202 goes on as an upload into that session', async () => {
  const base = await sharedBase(['refused/app']);
  await pushImage(a, 'refused/app', 'v1', { layers: [base] });
  const blobs = new BlobLedger();
  // The ledger believes another repository holds the blob; the registry has no such thing.
  blobs.present(toB.host, 'refused/elsewhere', base.digest);
  const s = await copy(toB, 'refused/app:v1', 'refused/app', { blobs });
  expect(s.blobs).toEqual({ copied: 2, mounted: 0, skipped: 0 });
  const mount = mountRequests(toB, 'refused/app');
  expect(mount.map((r) => r.status)).toEqual([202]);
  // The session the 202 opened took the bytes: no second POST for that blob.
  const posts = toB.seen('POST', /^\/v2\/refused\/app\/blobs\/uploads\//);
  expect(posts).toHaveLength(2); // the mount, and the config's upload
  expect(await blobStatus(b, 'refused/app', base.digest)).toBe(200);
  // An uncommitted source was refused: from now on only repositories with an image are mount sources.
  expect(blobs.policy(toB.host)).toBe('committed');
});

test('a mount that fails falls back to an upload, and the registry is not asked to mount again', async () => {
  const base = await sharedBase(['broken/one', 'broken/two', 'broken/three']);
  await pushImage(a, 'broken/one', 'v1', { layers: [base] });
  await pushImage(a, 'broken/two', 'v1', { layers: [base] });
  await pushImage(a, 'broken/three', 'v1', { layers: [base] });
  const blobs = new BlobLedger();
  await copy(toB, 'broken/one:v1', 'broken/one', { blobs });
  toB.fault({
    method: 'POST',
    path: /mount=/,
    action: { type: 'status', status: 400, body: ociError('UNSUPPORTED', 'no mounting here') },
  });
  const s = await copy(toB, 'broken/two:v1', 'broken/two', { blobs });
  expect(s.blobs).toMatchObject({ copied: 2, mounted: 0 });
  expect(mountRequests(toB, 'broken/two')).toHaveLength(1);
  expect(blobs.policy(toB.host)).toBe('off');
  await copy(toB, 'broken/three:v1', 'broken/three', { blobs });
  expect(mountRequests(toB, 'broken/three')).toHaveLength(0);
  expect(await blobStatus(b, 'broken/three', base.digest)).toBe(200);
});

test('never across registries: a blob known at one registry is uploaded to another', async () => {
  const base = await sharedBase(['cross/app']);
  const img = await pushImage(a, 'cross/app', 'v1', { layers: [base] });
  const blobs = new BlobLedger();
  await copy(toB, 'cross/app:v1', 'cross/app', { blobs });
  const s = await copy(toC, 'cross/app:v1', 'cross/other', { blobs });
  expect(s.blobs).toEqual({ copied: 2, mounted: 0, skipped: 0 });
  expect(toC.seen('POST', /mount=/)).toHaveLength(0);
  expect((await getManifest(c, 'cross/other', 'v1')).digest).toBe(img.manifest.digest);
});

test('stale knowledge: content the ledger thought present is looked at again when the manifest is refused', async () => {
  const base = await sharedBase(['stale/app']);
  const img = await pushImage(a, 'stale/app', 'v1', { layers: [base, 5_000] });
  const blobs = new BlobLedger();
  // Believed present (say, before the repository was deleted and made again): nothing is there.
  for (const d of [img.config, ...img.layers]) blobs.present(toB.host, 'stale/app', d.digest);
  const s = await copy(toB, 'stale/app:v1', 'stale/app', { blobs });
  expect((await getManifest(b, 'stale/app', 'v1')).digest).toBe(img.manifest.digest);
  expect(s.blobs.copied).toBe(3);
  // The first manifest PUT was refused for missing blobs; the second went through.
  expect(toB.seen('PUT', /^\/v2\/stale\/app\/manifests\//).map((r) => r.status)).toEqual([400, 201]);
});

test('a copy waiting for a blob another copy moves stops at its own deadline; the other finishes', async () => {
  const base = await sharedBase(['wait/app'], 400_000);
  const one = await pushImage(a, 'wait/app', 'one', { layers: [base] });
  await pushImage(a, 'wait/app', 'two', { layers: [base] });
  toB.fault({
    method: 'PUT',
    path: new RegExp(`digest=${encodeURIComponent(base.digest)}`),
    times: 1,
    action: { type: 'delay', ms: 800 },
  });
  const blobs = new BlobLedger();
  const first = copy(toB, 'wait/app:one', 'wait/app', { blobs });
  await new Promise((r) => setTimeout(r, 150)); // the first owns the base layer's upload by now
  const second = copy(toB, 'wait/app:two', 'wait/app', { blobs, signal: AbortSignal.timeout(200) });
  await expect(second).rejects.toMatchObject({ code: 'TIMEOUT' } satisfies Partial<MirrorError>);
  await expect(first).resolves.toMatchObject({ digest: one.manifest.digest });
  expect(uploaded(toB, 'wait/app').filter((d) => d === base.digest)).toHaveLength(1);
});
