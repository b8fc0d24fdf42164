import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Descriptor } from '../src/core/descriptor';
import { MediaType } from '../src/core/media-types';
import { pushBlob, pushManifest } from '../test/support/content';
import type { TestRegistry } from '../test/support/registry';

const PIECE = 1024 * 1024;
const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

/**
 * Incompressible bytes, fast: an AES-256-CTR keystream (GB/s with AES-NI, where randomBytes gives
 * a few hundred MB/s). The same key gives the same bytes again, so a layer of any size is hashed in
 * one pass and uploaded in a second without ever being held in memory.
 */
function* keystream(key: Buffer, size: number): Generator<Buffer> {
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(PIECE);
  for (let left = size; left > 0; left -= PIECE) {
    yield cipher.update(left >= PIECE ? zeros : zeros.subarray(0, left));
  }
}

/**
 * Pushes a random layer of `size` bytes with node:http (not the client under test): POST, then one
 * streamed PUT with the digest.
 */
export async function pushRandomLayer(reg: TestRegistry, repo: string, size: number): Promise<Descriptor> {
  const key = randomBytes(32);
  const hash = createHash('sha256');
  for (const piece of keystream(key, size)) hash.update(piece);
  const digest = `sha256:${hash.digest('hex')}`;

  const start = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, {
    method: 'POST',
    headers: { authorization: reg.authorization },
  });
  await start.arrayBuffer();
  if (start.status !== 202) throw new Error(`POST upload to ${repo}: HTTP ${start.status}`);
  const location = new URL(start.headers.get('location')!, reg.url);
  location.searchParams.set('digest', digest);

  await new Promise<void>((resolve, reject) => {
    const req = request(
      location,
      {
        method: 'PUT',
        headers: {
          authorization: reg.authorization,
          'content-type': 'application/octet-stream',
          'content-length': String(size),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 201
            ? resolve()
            : reject(new Error(`PUT blob to ${repo}: HTTP ${res.statusCode}`)),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    const pieces = keystream(key, size);
    const write = (): void => {
      for (;;) {
        const next = pieces.next();
        if (next.done) {
          req.end();
          return;
        }
        if (!req.write(next.value)) {
          req.once('drain', write);
          return;
        }
      }
    };
    write();
  });
  return { mediaType: LAYER_TYPE, digest, size };
}

export interface SeededImage {
  manifest: Descriptor;
  layers: Descriptor[];
  /** Layers and config. */
  bytes: number;
}

/** An OCI image of random layers under `repo:tag`. */
export async function seedImage(
  reg: TestRegistry,
  repo: string,
  tag: string,
  layerSizes: readonly number[],
): Promise<SeededImage> {
  const layers: Descriptor[] = [];
  for (const size of layerSizes) layers.push(await pushRandomLayer(reg, repo, size));
  const config = await pushBlob(
    reg,
    repo,
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
        config: { Labels: { 'org.opencontainers.image.title': 'ecr-mirror benchmark' } },
      }),
    ),
    'application/vnd.oci.image.config.v1+json',
  );
  const body = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers };
  const manifest = await pushManifest(reg, repo, tag, body, MediaType.OciManifest);
  return { manifest, layers, bytes: config.size + layers.reduce((s, l) => s + l.size, 0) };
}
