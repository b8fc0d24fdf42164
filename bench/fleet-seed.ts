import { createHash, randomBytes } from 'node:crypto';
import type { Descriptor } from '../src/core/descriptor';
import { MediaType } from '../src/core/media-types';
import { pushBlob, pushManifest } from '../test/support/content';
import type { TestRegistry } from '../test/support/registry';
import { pushRandomLayer } from './seed';

const MiB = 1024 * 1024;

export interface FleetShape {
  repositories: number;
  tags: number;
  /** Layer sizes in MiB: the OS layer (every image), two runtimes (alternating repositories), a
   * dependency layer per repository (its tags share it), an application layer per tag. */
  osMiB: number;
  runtimeMiB: number;
  depsMiB: number;
  appMiB: number;
}

export interface FleetImage {
  repository: string;
  tag: string;
  digest: string;
}

export interface Fleet {
  prefix: string;
  repositories: string[];
  /** Every tag in A, the images' and their signatures'. */
  tags: FleetImage[];
  /** Size of every blob in the fleet, by digest. */
  sizes: Map<string, number>;
  /** Distinct blob bytes in the fleet, and what one copy per repository (no sharing) would move. */
  distinctBytes: number;
  perRepositoryBytes: number;
  /** The layers every image or half of them share. */
  shared: string[];
}

/** Links a blob already in `from` into `repo` (the registry's own mount): seeding shares layers for free. */
async function link(reg: TestRegistry, repo: string, blob: Descriptor, from: string): Promise<void> {
  const res = await fetch(
    `${reg.url}/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}`,
    { method: 'POST', headers: { authorization: reg.authorization } },
  );
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`mount ${blob.digest} into ${repo}: HTTP ${res.status}`);
}

/**
 * A service fleet in registry A, as such fleets are built: every image on one OS layer, half on one
 * runtime and half on another, each repository's tags on its own dependency layer, each tag with its
 * application layer and config, and a cosign-style signature tag (`sha256-<hex>.sig`) for each.
 */
export async function seedFleet(reg: TestRegistry, prefix: string, shape: FleetShape): Promise<Fleet> {
  const sizes = new Map<string, number>();
  const repositories = Array.from({ length: shape.repositories }, (_, i) => `${prefix}/svc-${i + 1}`);
  const first = repositories[0]!;
  const put = async (repo: string, mib: number): Promise<Descriptor> => {
    const d = await pushRandomLayer(reg, repo, Math.round(mib * MiB));
    sizes.set(d.digest, d.size);
    return d;
  };
  const os = await put(first, shape.osMiB);
  const runtimes = [
    await put(first, shape.runtimeMiB),
    await put(repositories[1] ?? first, shape.runtimeMiB),
  ];
  const tags: FleetImage[] = [];
  let perRepositoryBytes = 0;
  for (const [i, repo] of repositories.entries()) {
    const runtime = runtimes[i % 2]!;
    if (repo !== first) await link(reg, repo, os, first);
    const runtimeHome = i % 2 === 0 ? first : (repositories[1] ?? first);
    if (repo !== runtimeHome) await link(reg, repo, runtime, runtimeHome);
    const deps = await put(repo, shape.depsMiB);
    perRepositoryBytes += os.size + runtime.size + deps.size;
    for (let t = 1; t <= shape.tags; t++) {
      const tag = `v${t}`;
      const app = await put(repo, shape.appMiB);
      const config = await pushBlob(
        reg,
        repo,
        Buffer.from(
          JSON.stringify({
            architecture: 'amd64',
            os: 'linux',
            config: { Labels: { service: repo, version: tag } },
            rootfs: { type: 'layers', diff_ids: [os, runtime, deps, app].map((l) => l.digest) },
          }),
        ),
        'application/vnd.oci.image.config.v1+json',
      );
      sizes.set(config.digest, config.size);
      const manifest = await pushManifest(
        reg,
        repo,
        tag,
        { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [os, runtime, deps, app] },
        MediaType.OciManifest,
      );
      tags.push({ repository: repo, tag, digest: manifest.digest });
      perRepositoryBytes += app.size + config.size;
      tags.push(await signature(reg, repo, manifest, sizes));
    }
  }
  let distinctBytes = 0;
  for (const size of sizes.values()) distinctBytes += size;
  return {
    prefix,
    repositories,
    tags,
    sizes,
    distinctBytes,
    perRepositoryBytes,
    shared: [os.digest, ...runtimes.map((r) => r.digest)],
  };
}

/** A cosign-style signature of `image`: a simple-signing payload as a layer, tagged `sha256-<hex>.sig`. */
async function signature(
  reg: TestRegistry,
  repo: string,
  image: Descriptor,
  sizes: Map<string, number>,
): Promise<FleetImage> {
  const payload = Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': repo },
        image: { 'docker-manifest-digest': image.digest },
        type: 'cosign container image signature',
      },
      optional: { nonce: randomBytes(8).toString('hex') },
    }),
  );
  const layer = await pushBlob(reg, repo, payload, 'application/vnd.dev.cosign.simplesigning.v1+json');
  const config = await pushBlob(reg, repo, Buffer.from('{}'), MediaType.OciEmpty);
  sizes.set(layer.digest, layer.size);
  sizes.set(config.digest, config.size);
  const annotated = {
    ...layer,
    annotations: {
      'dev.cosignproject.cosign/signature': createHash('sha256').update(payload).digest('base64'),
    },
  };
  const tag = `${image.digest.replace(':', '-')}.sig`;
  const manifest = await pushManifest(
    reg,
    repo,
    tag,
    { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [annotated] },
    MediaType.OciManifest,
  );
  return { repository: repo, tag, digest: manifest.digest };
}
