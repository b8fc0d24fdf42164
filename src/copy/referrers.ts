import type { Descriptor } from '../core/descriptor';
import { type Manifest, parseManifest } from '../core/manifest';
import { MediaType } from '../core/media-types';
import { cosignTags, fallbackTag } from '../core/referrers';
import type { Copier } from './copier';

/** Signatures of signatures, attestations of SBOMs: followed this deep, then no further. */
const MAX_DEPTH = 3;

/**
 * Copies what refers to the given manifests: OCI 1.1 referrers (API where the source has it), the
 * tag-schema fallback index `sha256-<hex>`, and cosign's `.sig`, `.att` and `.sbom` tags. Returns how
 * many referrer manifests and tags it found at the source.
 */
export async function copyReferrers(copier: Copier, subjects: readonly string[], depth = 0): Promise<number> {
  if (depth >= MAX_DEPTH) return 0;
  const counts = await Promise.all(subjects.map((subject) => copyReferrersOf(copier, subject, depth)));
  return counts.reduce((a, b) => a + b, 0);
}

async function copyReferrersOf(copier: Copier, subject: string, depth: number): Promise<number> {
  const { source, sourceRepository } = copier;
  const [fromApi, ...tagged] = await Promise.all([
    source.referrers(sourceRepository, subject),
    ...[fallbackTag(subject), ...cosignTags(subject)].map(async (tag) => {
      const found = await source.headManifest(sourceRepository, tag);
      return found ? { tag, descriptor: found } : undefined;
    }),
  ]);
  const tags = tagged.filter((t): t is { tag: string; descriptor: Descriptor } => t !== undefined);

  // Tags first, byte for byte (the fallback index among them), so the API merge below sees them.
  for (const { tag, descriptor } of tags) await copyTag(copier, tag, descriptor);

  let found = tags.length;
  const listed = fromApi ?? [];
  if (listed.length > 0) {
    found += listed.length;
    await copyListedReferrers(copier, subject, listed);
  }
  // Referrers of referrers (a signed SBOM) are followed through the API only, to bound the requests.
  const nested = listed.map((d) => d.digest);
  return found + (nested.length > 0 ? await copyReferrers(copier, nested, depth + 1) : 0);
}

async function copyTag(copier: Copier, tag: string, descriptor: Descriptor): Promise<void> {
  const existing = await copier.destination.headManifest(copier.destinationRepository, tag);
  if (existing?.digest === descriptor.digest) return;
  const manifest = await copier.source.getManifest(copier.sourceRepository, descriptor.digest);
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
  const { destination, destinationRepository } = copier;
  const atDestination = await destination.referrers(destinationRepository, subject);
  const present = new Set((atDestination ?? []).map((d) => d.digest));
  await Promise.all(listed.filter((d) => !present.has(d.digest)).map((d) => copier.copyManifestByDigest(d)));
  if (atDestination !== undefined) return;

  const tag = fallbackTag(subject);
  const current = (await destination.headManifest(destinationRepository, tag))
    ? await destination.getManifest(destinationRepository, tag)
    : undefined;
  const merged = mergeFallbackIndex(current, listed);
  if (merged) await destination.putManifest(destinationRepository, tag, merged);
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
