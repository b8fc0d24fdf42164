import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { Descriptor } from '../core/descriptor';
import { parseManifest } from '../core/manifest';
import { MediaType } from '../core/media-types';
import { fallbackTag } from '../core/referrers';
import type { RegistryClient } from '../registry/registry';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A minimal ustar archive: enough for a real, extractable image layer. */
export function tar(files: Record<string, string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, text] of Object.entries(files)) {
    const body = Buffer.from(text);
    const header = Buffer.alloc(512);
    header.write(name, 0, 100);
    header.write('0000644\0', 100);
    header.write('0000000\0', 108);
    header.write('0000000\0', 116);
    header.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124);
    header.write(
      `${Math.floor(Date.UTC(2026, 0, 1) / 1000)
        .toString(8)
        .padStart(11, '0')}\0`,
      136,
    );
    header.write('        ', 148); // checksum is computed with spaces here
    header.write('0', 156);
    header.write('ustar\0', 257);
    header.write('00', 263);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

async function pushBlob(
  registry: RegistryClient,
  repo: string,
  bytes: Buffer,
  mediaType: string,
): Promise<Descriptor> {
  const descriptor = { mediaType, digest: sha256(bytes), size: bytes.length };
  if (!(await registry.hasBlob(repo, descriptor.digest))) {
    await registry.putBlob(repo, descriptor, async () => Readable.from([bytes]));
  }
  return descriptor;
}

async function pushManifest(
  registry: RegistryClient,
  repo: string,
  body: object,
  reference?: string,
): Promise<Descriptor> {
  const manifest = parseManifest(Buffer.from(JSON.stringify(body, null, 2)));
  await registry.putManifest(repo, reference ?? manifest.digest, manifest);
  return { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.byteLength };
}

async function pushImage(
  registry: RegistryClient,
  repo: string,
  platform: { architecture: string; os: string },
  files: Record<string, string>,
  reference?: string,
): Promise<Descriptor> {
  const layerTar = tar(files);
  const layer = await pushBlob(
    registry,
    repo,
    gzipSync(layerTar),
    'application/vnd.oci.image.layer.v1.tar+gzip',
  );
  const config = await pushBlob(
    registry,
    repo,
    Buffer.from(
      JSON.stringify({
        ...platform,
        created: '2026-01-01T00:00:00Z',
        config: { Cmd: ['cat', '/hello.txt'] },
        rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] },
      }),
    ),
    'application/vnd.oci.image.config.v1+json',
  );
  return pushManifest(
    registry,
    repo,
    { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] },
    reference,
  );
}

export interface SampleImages {
  repository: string;
  /** Pushed before the mirror "was deployed": only a resync brings it over. */
  old: { tag: string; digest: string };
  /** Pushed with the mirror in place: its push event drives the mirror Lambda. */
  current: { tag: string; digest: string };
  sbom: Descriptor;
}

/**
 * Pushes the sample content into the source registry: `demo/hello:0.9`, a two-platform index, and
 * `demo/hello:1.0`, an image with an SPDX SBOM attached as an OCI 1.1 referrer (listed in the
 * tag-schema fallback index, as clients do for registries without the referrers API).
 */
export async function pushSampleImages(
  registry: RegistryClient,
  repository = 'demo/hello',
): Promise<SampleImages> {
  const amd64 = await pushImage(
    registry,
    repository,
    { architecture: 'amd64', os: 'linux' },
    {
      'hello.txt': 'Hello from ecr-mirror 0.9 (amd64)\n',
    },
  );
  const arm64 = await pushImage(
    registry,
    repository,
    { architecture: 'arm64', os: 'linux' },
    {
      'hello.txt': 'Hello from ecr-mirror 0.9 (arm64)\n',
    },
  );
  const index = await pushManifest(
    registry,
    repository,
    {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        { ...amd64, platform: { architecture: 'amd64', os: 'linux' } },
        { ...arm64, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    },
    '0.9',
  );
  const current = await pushImage(
    registry,
    repository,
    { architecture: 'amd64', os: 'linux' },
    { 'hello.txt': 'Hello from ecr-mirror 1.0\n', 'etc/ecr-mirror/version': '1.0\n' },
    '1.0',
  );
  const empty = await pushBlob(registry, repository, Buffer.from('{}'), MediaType.OciEmpty);
  const spdx = await pushBlob(
    registry,
    repository,
    Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: `${repository}:1.0`, packages: [] })),
    'application/spdx+json',
  );
  const sbom = await pushManifest(registry, repository, {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    artifactType: 'application/spdx+json',
    config: empty,
    layers: [spdx],
    subject: current,
  });
  await pushManifest(
    registry,
    repository,
    {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [{ ...sbom, artifactType: 'application/spdx+json' }],
    },
    fallbackTag(current.digest),
  );
  return {
    repository,
    old: { tag: '0.9', digest: index.digest },
    current: { tag: '1.0', digest: current.digest },
    sbom,
  };
}
