import type { HttpRegistry } from '../registry/http-registry';
import type { CallOptions } from '../registry/registry';
import type { ResyncDeps } from '../resync/resync';
import { createLimiter } from '../util/limit';

/**
 * What a source registry holds, page by page: the resync's inventory port, which `ecr-mirror sync`
 * reads too. ECR answers it from its API (src/aws); other registries from their own API, here.
 */
export type Inventory = ResyncDeps['inventory'];

/** Tags whose digests are asked for at once (one HEAD each). */
const HEADS_AT_ONCE = 8;

/**
 * A registry's inventory over the OCI distribution API: repositories from `/v2/_catalog`, tags
 * from `tags/list`, and each tag's digest from one manifest HEAD, grouped by digest as ECR's
 * DescribeImages answers.
 */
export function registryInventory(registry: HttpRegistry, options: CallOptions = {}): Inventory {
  return {
    repositories: (next) => registry.catalogPage(next, options),
    images: async (repository) => {
      const limit = createLimiter(HEADS_AT_ONCE);
      const tags = await registry.listTags(repository, options);
      const heads = await Promise.all(
        tags.map((tag) =>
          limit(async () => ({ tag, head: await registry.headManifest(repository, tag, options) })),
        ),
      );
      const byDigest = new Map<string, string[]>();
      for (const { tag, head } of heads) {
        if (head) byDigest.set(head.digest, [...(byDigest.get(head.digest) ?? []), tag]);
      }
      return { images: [...byDigest].map(([digest, tagList]) => ({ digest, tags: tagList })) };
    },
  };
}
