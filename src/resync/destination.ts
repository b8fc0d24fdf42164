import type { CallOptions, RegistryClient } from '../registry/registry';
import { createLimiter } from '../util/limit';
import type { SourceImage } from './plan';

/**
 * What a destination holds for the tags being compared: how a resync and `ecr-mirror sync` learn it
 * (the tag list, then one manifest HEAD per tag the destination has). No configuration here, so the
 * CLI's `sync` loads none.
 */

/**
 * A destination repository's tags; undefined when the repository does not exist yet. With
 * destinationDigests, how a resync and `ecr-mirror sync` learn what a destination holds.
 */
export async function listTags(
  registry: RegistryClient,
  repository: string,
  options: CallOptions = {},
): Promise<Set<string> | undefined> {
  try {
    return new Set(await registry.listTags(repository, options));
  } catch (err) {
    if ((err as { code?: string }).code === 'NOT_FOUND') return undefined;
    throw err;
  }
}

/** The digests a destination holds for these tags: a HEAD per tag it has (a tag it lacks needs none). */
export async function destinationDigests(
  registry: RegistryClient,
  repository: string,
  images: readonly SourceImage[],
  present: Set<string> | undefined,
  options: CallOptions = {},
): Promise<Map<string, string>> {
  if (!present) return new Map();
  const limit = createLimiter(8);
  const out = new Map<string, string>();
  await Promise.all(
    images
      .filter((i) => present.has(i.tag))
      .map((i) =>
        limit(async () => {
          const head = await registry.headManifest(repository, i.tag, options);
          if (head) out.set(i.tag, head.digest);
        }),
      ),
  );
  return out;
}
