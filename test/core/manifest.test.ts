import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isForeign } from '../../src/core/descriptor';
import { digestOf } from '../../src/core/digest';
import { ecrHost, parseEcrHost } from '../../src/core/ecr-host';
import { blobsToCopy, MAX_MANIFEST_BYTES, parseManifest } from '../../src/core/manifest';
import { MediaType } from '../../src/core/media-types';
import { cosignTags, fallbackTag, referrerTags } from '../../src/core/referrers';
import type { MirrorError } from '../../src/errors';

const fixture = (name: string): Buffer => readFileSync(join(__dirname, '../fixtures/manifests', name));
const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as MirrorError).code;
  }
  return undefined;
};

describe('parseManifest', () => {
  test.each([
    ['an image without mediaType served as an index', { config: {}, layers: [] }, MediaType.OciIndex],
    ['an index declaring config', { mediaType: MediaType.OciIndex, manifests: [], config: {} }, undefined],
    [
      'an image declaring manifests',
      { mediaType: MediaType.OciManifest, config: {}, manifests: [] },
      undefined,
    ],
    [
      'a Docker list with layers',
      { mediaType: MediaType.DockerManifestList, manifests: [], layers: [] },
      undefined,
    ],
  ])('%s is ambiguous: MANIFEST_INVALID', (_name, body, contentType) => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, ...body }));
    expect(() => parseManifest(bytes, contentType)).toThrow(
      expect.objectContaining({
        code: 'MANIFEST_INVALID',
        message: expect.stringMatching(/^ambiguous manifest/),
      }),
    );
  });

  test('Docker schema 2 manifest: config and layers, foreign layer left out of the copy', () => {
    const bytes = fixture('docker-manifest.json');
    const m = parseManifest(bytes, MediaType.DockerManifest);
    expect(m.kind).toBe('image');
    expect(m.digest).toBe(digestOf(bytes));
    expect(m.blobs).toHaveLength(4);
    const copied = blobsToCopy(m);
    expect(copied).toHaveLength(3);
    expect(copied.some(isForeign)).toBe(false);
    // Largest first: the transfer that waits for a free slot is the shortest.
    const sizes = copied.map((b) => b.size);
    expect(sizes).toEqual([...sizes].sort((x, y) => y - x));
    expect(new Set(sizes).size).toBeGreaterThan(1);
  });

  test('OCI index with platforms', () => {
    const m = parseManifest(fixture('oci-index.json'), `${MediaType.OciIndex}; charset=utf-8`);
    expect(m.kind).toBe('index');
    expect(m.manifests.map((d) => d.platform?.architecture)).toEqual(['amd64', 'arm64']);
    expect(m.blobs).toHaveLength(0);
  });

  test('OCI artifact with a subject and an unknown config type is copied opaquely', () => {
    const m = parseManifest(fixture('oci-artifact.json'), MediaType.OciManifest);
    expect(m.artifactType).toBe('application/vnd.example.sbom+json');
    expect(m.subject?.digest).toMatch(/^sha256:/);
    expect(m.blobs.map((b) => b.mediaType)).toEqual([MediaType.OciEmpty, 'application/spdx+json']);
  });

  test('the shape tells an OCI manifest without mediaType', () => {
    const body = {
      schemaVersion: 2,
      config: { mediaType: 'x', digest: digestOf(Buffer.from('c')), size: 1 },
      layers: [],
    };
    expect(parseManifest(Buffer.from(JSON.stringify(body))).mediaType).toBe(MediaType.OciManifest);
  });

  test('duplicate layers move once', () => {
    const layer = { mediaType: 'l', digest: digestOf(Buffer.from('l')), size: 1 };
    const body = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: layer,
      layers: [layer, layer],
    };
    expect(blobsToCopy(parseManifest(Buffer.from(JSON.stringify(body))))).toHaveLength(1);
  });

  test.each([
    ['not JSON', Buffer.from('{oops'), undefined, 'MANIFEST_INVALID'],
    ['schema 1', Buffer.from('{"schemaVersion":1,"fsLayers":[]}'), undefined, 'UNSUPPORTED_MEDIA_TYPE'],
    [
      'unknown media type',
      Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.example.thing"}'),
      undefined,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'body and header disagree',
      Buffer.from(`{"schemaVersion":2,"mediaType":"${MediaType.OciIndex}","manifests":[]}`),
      MediaType.DockerManifestList,
      'MANIFEST_INVALID',
    ],
    [
      'bad descriptor digest',
      Buffer.from(
        `{"schemaVersion":2,"mediaType":"${MediaType.OciIndex}","manifests":[{"mediaType":"x","digest":"sha256:1","size":1}]}`,
      ),
      undefined,
      'MANIFEST_INVALID',
    ],
    ['too large', Buffer.alloc(MAX_MANIFEST_BYTES + 1, 32), undefined, 'MANIFEST_TOO_LARGE'],
  ])('refuses %s', (_name, bytes, type, expected) => {
    expect(code(() => parseManifest(bytes, type))).toBe(expected);
  });
});

describe('referrer tags', () => {
  const digest = `sha256:${'b'.repeat(64)}`;
  test('tag-schema fallback and cosign tags', () => {
    expect(fallbackTag(digest)).toBe(`sha256-${'b'.repeat(64)}`);
    expect(cosignTags(digest)).toEqual(['sig', 'att', 'sbom'].map((s) => `sha256-${'b'.repeat(64)}.${s}`));
    expect(referrerTags(digest)).toHaveLength(4);
  });
  test('sha512 fallback tags are cut to 128 characters', () => {
    expect(fallbackTag(`sha512:${'c'.repeat(128)}`)).toHaveLength(128);
  });
});

describe('ECR hosts', () => {
  test('parse and build', () => {
    expect(parseEcrHost('123456789012.dkr.ecr.eu-west-1.amazonaws.com')).toEqual({
      accountId: '123456789012',
      region: 'eu-west-1',
      fips: false,
    });
    expect(parseEcrHost('123456789012.dkr.ecr-fips.us-east-1.amazonaws.com')?.fips).toBe(true);
    expect(parseEcrHost('123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn')?.region).toBe('cn-north-1');
    expect(parseEcrHost('ghcr.io')).toBeUndefined();
    expect(parseEcrHost('12345.dkr.ecr.us-east-1.amazonaws.com')).toBeUndefined();
    expect(ecrHost('123456789012', 'cn-north-1')).toBe('123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn');
  });
});
