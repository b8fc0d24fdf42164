import type { Descriptor } from '../core/descriptor';
import { type Manifest, parseManifest } from '../core/manifest';
import { MediaType } from '../core/media-types';
import { cosignTags, fallbackTag } from '../core/referrers';
import type { RegistryClient } from '../registry/registry';
import type { Copier } from './copier';

/** Signatures of signatures, attestations of SBOMs: followed this deep, then no further. */
const MAX_DEPTH = 3;

/** What refers to one manifest at the source: the referrers API's list and the referrer tags. */
export interface FoundReferrers {
  subject: string;
  /** From the OCI 1.1 referrers API; empty when the source has none or lacks the API. */
  listed: Descriptor[];
  /** The fallback index `sha256-<hex>` and cosign's `.sig`, `.att` and `.sbom` tags that exist. */
  tags: { tag: string; descriptor: Descriptor }[];
}

/**
 * Asks the source what refers to the given manifests. It reads the source only, so a copy starts it
 * with the blobs and spends no time on it at the end.
 */
export function findReferrers(
  source: RegistryClient,
  repository: string,
  subjects: readonly string[],
  signal?: AbortSignal,
): Promise<FoundReferrers[]> {
  return Promise.all(subjects.map((subject) => findReferrersOf(source, repository, subject, signal)));
}

async function findReferrersOf(
  source: RegistryClient,
  repository: string,
  subject: string,
  signal: AbortSignal | undefined,
): Promise<FoundReferrers> {
  const options = signal ? { signal } : {};
  const [fromApi, ...tagged] = await Promise.all([
    source.referrers(repository, subject, options),
    ...[fallbackTag(subject), ...cosignTags(subject)].map(async (tag) => {
      const found = await source.headManifest(repository, tag, options);
      return found ? { tag, descriptor: found } : undefined;
    }),
  ]);
  const tags = tagged.filter((t): t is { tag: string; descriptor: Descriptor } => t !== undefined);
  return { subject, listed: fromApi ?? [], tags };
}

/**
 * Copies what refers to the given manifests: OCI 1.1 referrers (API where the source has it), the
 * tag-schema fallback index `sha256-<hex>`, and cosign's `.sig`, `.att` and `.sbom` tags. Returns how
 * many referrer manifests and tags it found at the source. `found` is what findReferrers already
 * learnt of these subjects, if anything.
 */
export async function copyReferrers(
  copier: Copier,
  subjects: readonly string[],
  found?: readonly FoundReferrers[],
  depth = 0,
): Promise<number> {
  if (depth >= MAX_DEPTH) return 0;
  const all = found ?? (await findReferrers(copier.source, copier.sourceRepository, subjects, copier.signal));
  const counts = await Promise.all(all.map((f) => copier.guard(() => copyFound(copier, f, depth))));
  return counts.reduce((a, b) => a + b, 0);
}

async function copyFound(
  copier: Copier,
  { subject, listed, tags }: FoundReferrers,
  depth: number,
): Promise<number> {
  // Tags first, byte for byte (the fallback index among them), so the API merge below sees them.
  for (const { tag, descriptor } of tags) await copyTag(copier, tag, descriptor);
  if (listed.length > 0) await copyListedReferrers(copier, subject, listed);
  // Referrers of referrers (a signed SBOM) are followed through the API only, to bound the requests.
  const nested = listed.map((d) => d.digest);
  const deeper = nested.length > 0 ? await copyReferrers(copier, nested, undefined, depth + 1) : 0;
  return tags.length + listed.length + deeper;
}

async function copyTag(copier: Copier, tag: string, descriptor: Descriptor): Promise<void> {
  const { signal } = copier;
  const existing = await copier.destination.headManifest(copier.destinationRepository, tag, { signal });
  if (existing?.digest === descriptor.digest) return;
  const manifest = await copier.source.getManifest(copier.sourceRepository, descriptor.digest, { signal });
  await copier.copyManifest(manifest, tag);
}

/**
 * Referrers the source listed through its API. Where the destination has the API too, pushing each
 * manifest is enough (it indexes the subject); otherwise we keep its fallback index up to date, as the
 * OCI distribution spec asks of clients.
 */
async function copyListedReferrers(
  copier: Copier,
  subject: string,
  listed: readonly Descriptor[],
): Promise<void> {
  const { destination, destinationRepository, signal } = copier;
  const atDestination = await destination.referrers(destinationRepository, subject, { signal });
  const present = new Set((atDestination ?? []).map((d) => d.digest));
  await Promise.all(listed.filter((d) => !present.has(d.digest)).map((d) => copier.copyManifestByDigest(d)));
  if (atDestination !== undefined) return;

  const tag = fallbackTag(subject);
  const current = (await destination.headManifest(destinationRepository, tag, { signal }))
    ? await destination.getManifest(destinationRepository, tag, { signal })
    : undefined;
  const merged = mergeFallbackIndex(current, listed);
  if (merged) await destination.putManifest(destinationRepository, tag, merged, { signal });
}

/** The fallback index with `listed` added, or undefined when it already lists them all. */
export function mergeFallbackIndex(
  current: Manifest | undefined,
  listed: readonly Descriptor[],
): Manifest | undefined {
  const manifests: Descriptor[] = [...(current?.manifests ?? [])];
  const known = new Set(manifests.map((d) => d.digest));
  const missing = listed.filter((d) => !known.has(d.digest));
  if (current && missing.length === 0) return undefined;
  manifests.push(...missing);
  const body = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
  return parseManifest(Buffer.from(JSON.stringify(body)), MediaType.OciIndex);
}
