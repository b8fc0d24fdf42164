import { randomBytes } from 'node:crypto';
import { copyImage } from '../../src/copy/copy-image';
import type { Descriptor } from '../../src/core/descriptor';
import { MediaType } from '../../src/core/media-types';
import { parseReference } from '../../src/core/reference';
import { cosignTags, fallbackTag } from '../../src/core/referrers';
import type { MirrorError } from '../../src/errors';
import { openRegistry } from '../../src/registry/open';
import type { RegistryClient } from '../../src/registry/registry';
import {
  blobStatus,
  getBlob,
  getManifest,
  pushBlob,
  pushImage,
  pushIndex,
  pushManifest,
  sha256,
} from '../support/content';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';

let a: TestRegistry;
let b: TestRegistry;
beforeAll(async () => {
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

const client = (reg: TestRegistry): RegistryClient =>
  openRegistry(reg.host, { insecure: true, credentials: TEST_CREDS });
const copy = (src: string, dst: string, options: Parameters<typeof copyImage>[4] = {}) =>
  copyImage(
    client(a),
    parseReference(`${a.host}/${src}`),
    client(b),
    parseReference(`${b.host}/${dst}`),
    options,
  );

/** The destination holds the very same manifest bytes, and every blob with the same bytes. */
async function expectSameImage(
  srcRepo: string,
  dstRepo: string,
  reference: string,
  blobs: Descriptor[],
): Promise<void> {
  const [src, dst] = await Promise.all([
    getManifest(a, srcRepo, reference),
    getManifest(b, dstRepo, reference),
  ]);
  expect(dst.status).toBe(200);
  expect(dst.bytes.equals(src.bytes)).toBe(true);
  expect(dst.contentType).toBe(src.contentType);
  for (const blob of blobs) {
    expect(sha256(await getBlob(b, dstRepo, blob.digest))).toBe(blob.digest);
  }
}

test('OCI image: exact bytes, summary counts, then an idempotent re-run that sends no blob', async () => {
  const img = await pushImage(a, 'oci/app', 'v1', { layers: [300_000, 50_000, 1, 0] });
  const first = await copy('oci/app:v1', 'oci/app');
  await expectSameImage('oci/app', 'oci/app', 'v1', [img.config, ...img.layers]);
  expect(first).toMatchObject({
    digest: img.manifest.digest,
    mediaType: MediaType.OciManifest,
    upToDate: false,
    manifests: { copied: 1, skipped: 0 },
    blobs: { copied: 5, skipped: 0 },
    bytes: [img.config, ...img.layers].reduce((n, d) => n + d.size, 0),
  });
  expect(first.destination).toBe(`${b.host}/oci/app:v1@${img.manifest.digest}`);

  const dst = client(b);
  const again = await copyImage(
    client(a),
    parseReference(`${a.host}/oci/app:v1`),
    dst,
    parseReference(`${b.host}/oci/app:v1`),
  );
  expect(again).toMatchObject({ upToDate: true, blobs: { copied: 0, skipped: 0 }, bytes: 0 });
  expect(again.requests.destination).toBe(1);
  expect(dst.counts.blob + dst.counts.upload).toBe(0);
});

test('Docker schema 2 manifest into a nested repository under another name', async () => {
  const img = await pushImage(a, 'team/svc/api', '2.0', { layers: [10_000, 20_000], format: 'docker' });
  const s = await copy('team/svc/api:2.0', 'mirror/team/svc/api:2.0');
  expect(s.mediaType).toBe(MediaType.DockerManifest);
  const got = await getManifest(b, 'mirror/team/svc/api', '2.0');
  expect(got.digest).toBe(img.manifest.digest);
  expect(got.contentType).toBe(MediaType.DockerManifest);
});

test.each(['oci', 'docker'] as const)(
  'multi-arch %s index whose children share a layer: shared blob moves once',
  async (format) => {
    const repo = `multi-${format}`;
    const shared = await pushBlob(
      a,
      repo,
      randomBytes(100_000),
      'application/vnd.oci.image.layer.v1.tar+gzip',
    );
    const amd = await pushImage(a, repo, undefined, {
      layers: [shared, 5_000],
      format,
      platform: { architecture: 'amd64', os: 'linux' },
    });
    const arm = await pushImage(a, repo, undefined, {
      layers: [shared, 6_000],
      format,
      platform: { architecture: 'arm64', os: 'linux' },
    });
    const index = await pushIndex(
      a,
      repo,
      'latest',
      [
        { descriptor: amd.manifest, platform: { architecture: 'amd64', os: 'linux' } },
        { descriptor: arm.manifest, platform: { architecture: 'arm64', os: 'linux' } },
      ],
      format,
    );
    const dst = client(b);
    const s = await copyImage(
      client(a),
      parseReference(`${a.host}/${repo}:latest`),
      dst,
      parseReference(`${b.host}/${repo}:latest`),
    );
    expect(s.digest).toBe(index.descriptor.digest);
    expect(s.manifests).toEqual({ copied: 3, skipped: 0 });
    // shared layer + 2 own layers + 2 configs
    expect(s.blobs).toEqual({ copied: 5, mounted: 0, skipped: 0 });
    expect(dst.counts.upload).toBe(10); // POST + PUT per blob: the shared one once
    await expectSameImage(repo, repo, 'latest', []);
    for (const child of [amd, arm]) {
      await expectSameImage(repo, repo, child.manifest.digest, [child.config, ...child.layers]);
    }
  },
);

test('OCI artifact with an unknown config type and a foreign layer', async () => {
  const foreignBytes = randomBytes(64);
  const foreign: Descriptor = {
    mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
    digest: sha256(foreignBytes),
    size: foreignBytes.length,
    urls: ['https://example.invalid/layer.tar.gz'],
  };
  const img = await pushImage(a, 'artifacts/model', 'v3', {
    layers: [2_000],
    configMediaType: 'application/vnd.example.model.config.v1+json',
    artifactType: 'application/vnd.example.model',
    extraLayers: [foreign],
  });
  const s = await copy('artifacts/model:v3', 'artifacts/model:v3');
  expect(s.blobs.copied).toBe(2);
  await expectSameImage('artifacts/model', 'artifacts/model', 'v3', [img.config, ...img.layers]);
  expect(await blobStatus(b, 'artifacts/model', foreign.digest)).toBe(404);
});

test('by digest: the destination gets the digest and no tag', async () => {
  const img = await pushImage(a, 'bydigest', 'v1', { layers: [1_000] });
  const s = await copy(`bydigest@${img.manifest.digest}`, 'bydigest');
  expect(s.destination).toBe(`${b.host}/bydigest@${img.manifest.digest}`);
  expect((await getManifest(b, 'bydigest', img.manifest.digest)).status).toBe(200);
  expect((await getManifest(b, 'bydigest', 'v1')).status).toBe(404);
});

test('blobs the destination already has are not sent; a moved tag is updated', async () => {
  const base = await pushImage(a, 'layers', 'v1', { layers: [40_000, 30_000] });
  await copy('layers:v1', 'layers:v1');
  const next = await pushImage(a, 'layers', 'v1', { layers: [...base.layers, 10_000] });
  const s = await copy('layers:v1', 'layers:v1');
  expect(s.blobs).toEqual({ copied: 2, mounted: 0, skipped: 2 }); // new layer + new config; the two old layers stay
  expect((await getManifest(b, 'layers', 'v1')).digest).toBe(next.manifest.digest);
});

test('signatures, SBOMs and attestations follow the image; --no-referrers leaves them', async () => {
  const repo = 'signed/app';
  const img = await pushImage(a, repo, 'v1', { layers: [5_000] });
  const [sig, att] = cosignTags(img.manifest.digest).map((tag) => tag);
  const signature = await pushImage(a, repo, sig, {
    layers: [300],
    configMediaType: 'application/vnd.oci.image.config.v1+json',
  });
  const attestation = await pushImage(a, repo, att, { layers: [400] });
  // An SBOM pushed with a subject to a registry without the referrers API, as oras does: by digest,
  // then listed in the tag-schema fallback index.
  const sbom = await pushImage(a, repo, undefined, {
    layers: [700],
    configMediaType: MediaType.OciEmpty,
    artifactType: 'application/spdx+json',
    subject: img.manifest,
  });
  const fallback = await pushManifest(
    a,
    repo,
    fallbackTag(img.manifest.digest),
    {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [{ ...sbom.manifest, artifactType: 'application/spdx+json' }],
    },
    MediaType.OciIndex,
  );

  const none = await copy(`${repo}:v1`, 'unsigned/app:v1', { referrers: false });
  expect(none.referrers).toBe(0);
  expect((await getManifest(b, 'unsigned/app', sig!)).status).toBe(404);

  const s = await copy(`${repo}:v1`, `${repo}:v1`);
  expect(s.referrers).toBe(3);
  await expectSameImage(repo, repo, sig!, [signature.config, ...signature.layers]);
  await expectSameImage(repo, repo, att!, [attestation.config, ...attestation.layers]);
  await expectSameImage(repo, repo, fallbackTag(img.manifest.digest), []);
  await expectSameImage(repo, repo, sbom.manifest.digest, [sbom.config, ...sbom.layers]);
  expect((await getManifest(b, repo, fallbackTag(img.manifest.digest))).digest).toBe(fallback.digest);

  // Re-run: nothing sent, and only a few requests to look at the referrer tags.
  const again = await copy(`${repo}:v1`, `${repo}:v1`);
  expect(again).toMatchObject({ upToDate: true, blobs: { copied: 0 }, manifests: { copied: 0 } });
  expect(again.requests.destination).toBeLessThanOrEqual(4);
});

test('referrers from an OCI 1.1 referrers API reach a destination without one through its fallback index', async () => {
  const repo = 'api/app';
  const img = await pushImage(a, repo, 'v1', { layers: [1_000] });
  const sbom = await pushImage(a, repo, undefined, {
    layers: [900],
    configMediaType: MediaType.OciEmpty,
    artifactType: 'application/spdx+json',
    subject: img.manifest,
  });
  const listed: Descriptor = { ...sbom.manifest, artifactType: 'application/spdx+json' };
  // The real registry, answering the referrers API as a registry with OCI 1.1 support would.
  const real = client(a);
  const source: RegistryClient = Object.assign(Object.create(real) as RegistryClient, {
    referrers: async (_repo: string, digest: string) => (digest === img.manifest.digest ? [listed] : []),
  });
  const s = await copyImage(
    source,
    parseReference(`${a.host}/${repo}:v1`),
    client(b),
    parseReference(`${b.host}/${repo}:v1`),
  );
  expect(s.referrers).toBe(1);
  await expectSameImage(repo, repo, sbom.manifest.digest, [sbom.config, ...sbom.layers]);
  const index = await getManifest(b, repo, fallbackTag(img.manifest.digest));
  expect(index.status).toBe(200);
  expect(JSON.parse(index.bytes.toString()).manifests).toEqual([listed]);
});

test('a missing source image fails with NOT_FOUND and a clear reason', async () => {
  await expect(copy('nothing/here:v1', 'nothing/here:v1')).rejects.toMatchObject({
    code: 'NOT_FOUND',
    retryable: false,
  });
  let err: MirrorError | undefined;
  try {
    await copy('nothing/here:v1', 'x:v1');
  } catch (e) {
    err = e as MirrorError;
  }
  expect(err?.message).toContain('nothing/here:v1');
});
