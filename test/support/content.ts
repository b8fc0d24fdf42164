import { createHash, randomBytes } from 'node:crypto';
import type { Descriptor } from '../../src/core/descriptor';
import { MediaType } from '../../src/core/media-types';
import type { TestRegistry } from './registry';

/**
 * Pushes and reads content with plain fetch, independently of the client under test, so that
 * assertions do not trust the code they check.
 */
export const sha256 = (bytes: Uint8Array): string =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export async function pushBlob(
  reg: TestRegistry,
  repo: string,
  bytes: Buffer,
  mediaType: string,
): Promise<Descriptor> {
  const digest = sha256(bytes);
  const start = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, {
    method: 'POST',
    headers: { authorization: reg.authorization },
  });
  if (start.status !== 202) throw new Error(`POST upload: ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location')!, reg.url);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, {
    method: 'PUT',
    headers: { authorization: reg.authorization, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  if (put.status !== 201) throw new Error(`PUT blob: ${put.status} ${await put.text()}`);
  return { mediaType, digest, size: bytes.length };
}

export async function pushManifest(
  reg: TestRegistry,
  repo: string,
  reference: string,
  body: Buffer | object,
  mediaType: string,
): Promise<Descriptor> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { authorization: reg.authorization, 'content-type': mediaType },
    body: bytes,
  });
  if (res.status !== 201)
    throw new Error(`PUT manifest ${repo}:${reference}: ${res.status} ${await res.text()}`);
  return { mediaType, digest: sha256(bytes), size: bytes.length };
}

export interface RawManifest {
  status: number;
  bytes: Buffer;
  digest: string;
  contentType: string | null;
}

export async function getManifest(reg: TestRegistry, repo: string, reference: string): Promise<RawManifest> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${reference}`, {
    headers: {
      authorization: reg.authorization,
      accept: Object.values(MediaType).join(', '),
    },
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, bytes, digest: sha256(bytes), contentType: res.headers.get('content-type') };
}

export async function blobStatus(reg: TestRegistry, repo: string, digest: string): Promise<number> {
  const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`, {
    method: 'HEAD',
    headers: { authorization: reg.authorization },
  });
  return res.status;
}

export async function getBlob(reg: TestRegistry, repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`, {
    headers: { authorization: reg.authorization },
  });
  if (res.status !== 200) throw new Error(`GET blob ${digest}: ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

export interface BuiltImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  bytes: Buffer;
}

export interface ImageSpec {
  /** Layer sizes in bytes (random content), or existing layer descriptors to reuse. */
  layers: (number | Descriptor)[];
  format?: 'oci' | 'docker';
  platform?: { architecture: string; os: string };
  /** OCI artifact: a config media type other than an image config. */
  configMediaType?: string;
  artifactType?: string;
  subject?: Descriptor;
  extraLayers?: Descriptor[];
}

/** Pushes the blobs of an image and its manifest (by `reference`, tag or digest). */
export async function pushImage(
  reg: TestRegistry,
  repo: string,
  reference: string | undefined,
  spec: ImageSpec,
): Promise<BuiltImage> {
  const docker = spec.format === 'docker';
  const layerType = docker
    ? 'application/vnd.docker.image.rootfs.diff.tar.gzip'
    : 'application/vnd.oci.image.layer.v1.tar+gzip';
  const layers: Descriptor[] = [];
  for (const layer of spec.layers) {
    layers.push(typeof layer === 'number' ? await pushBlob(reg, repo, randomBytes(layer), layerType) : layer);
  }
  const configBody = Buffer.from(
    JSON.stringify({
      architecture: spec.platform?.architecture ?? 'amd64',
      os: spec.platform?.os ?? 'linux',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      nonce: randomBytes(8).toString('hex'),
    }),
  );
  const configType =
    spec.configMediaType ??
    (docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json');
  const config = await pushBlob(reg, repo, configBody, configType);
  const mediaType = docker ? MediaType.DockerManifest : MediaType.OciManifest;
  const body: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    ...(spec.artifactType && { artifactType: spec.artifactType }),
    config,
    layers: [...layers, ...(spec.extraLayers ?? [])],
    ...(spec.subject && { subject: spec.subject }),
  };
  // Pretty-printed on purpose: a copy that re-serialises JSON would change the digest.
  const bytes = Buffer.from(JSON.stringify(body, null, 3));
  const manifest = await pushManifest(reg, repo, reference ?? sha256(bytes), bytes, mediaType);
  return { manifest, config, layers, bytes };
}

export async function pushIndex(
  reg: TestRegistry,
  repo: string,
  reference: string,
  children: { descriptor: Descriptor; platform?: { architecture: string; os: string } }[],
  format: 'oci' | 'docker' = 'oci',
): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
  const mediaType = format === 'docker' ? MediaType.DockerManifestList : MediaType.OciIndex;
  const body = {
    schemaVersion: 2,
    mediaType,
    manifests: children.map((c) => ({ ...c.descriptor, ...(c.platform && { platform: c.platform }) })),
  };
  const bytes = Buffer.from(JSON.stringify(body, null, 2));
  return { descriptor: await pushManifest(reg, repo, reference, bytes, mediaType), bytes };
}
