import type { Descriptor } from '../core/descriptor';
import { type Manifest, parseManifest } from '../core/manifest';
import { MediaType } from '../core/media-types';
import { cosignTags, fallbackTag, REFERRER_LIMITS } from '../core/referrers';
import { MirrorError } from '../errors';
import type { Copier } from './copier';

/** What refers to one manifest at the source: the referrers API's list and the referrer tags. */
export interface FoundReferrers {
  subject: string;
  /** From the OCI 1.1 referrers API, distinct by digest; empty when the source has none or lacks the API. */
  listed: Descriptor[];
  /** The fallback index `sha256-<hex>` and cosign's `.sig`, `.att` and `.sbom` tags that exist. */
  tags: { tag: string; descriptor: Descriptor }[];
}

/**
 * The referrers of one copy: OCI 1.1 referrers (through the API where the source has it), the
 * tag-schema fallback index `sha256-<hex>`, and cosign's `.sig`, `.att` and `.sbom` tags; then,
 * through the API only, what refers to those, level by level.
 *
 * Bounded whatever the source answers: each subject is looked up once per copy (lookups are cached,
 * and those of the image start early, while its blobs move), each referrer is copied once, the count
 * is of distinct referrers, and REFERRER_LIMITS (depth, referrers per subject and per copy; pages in
 * the registry client) fail the copy with LIMIT_EXCEEDED rather than let it run on.
 */
export class ReferrerWalk {
  private readonly lookups = new Map<string, Promise<FoundReferrers>>();
  /** Subjects whose referrers this walk has taken on (copied, or is copying). */
  private readonly walked = new Set<string>();
  /** Referrer digests met, all levels: the count in the summary, and the per-copy cap. */
  private readonly distinct = new Set<string>();
  private readonly sourceManifests = new Map<string, Promise<Manifest>>();

  constructor(private readonly copier: Copier) {}

  /** Starts the lookups of the image's subjects (its referrer tags too), to be copied later by copy(). */
  find(subjects: readonly string[]): Promise<FoundReferrers[]> {
    return Promise.all(subjects.map((subject) => this.lookup(subject, true)));
  }

  /** Copies what refers to `subjects`, then what refers to that, and so on; returns how many distinct. */
  async copy(subjects: readonly string[]): Promise<number> {
    let level = [...new Set(subjects)].filter((s) => !this.walked.has(s));
    for (let depth = 1; level.length > 0; depth++) {
      for (const subject of level) this.walked.add(subject);
      // Referrers of referrers (a signed SBOM) are followed through the API only, to bound the requests.
      const found = await Promise.all(level.map((subject) => this.lookup(subject, depth === 1)));
      const next = new Set<string>();
      for (const f of found) {
        this.count(f, depth);
        for (const d of f.listed) if (!this.walked.has(d.digest)) next.add(d.digest);
      }
      await Promise.all(found.map((f) => this.copier.guard(() => this.copyFound(f))));
      level = [...next];
    }
    return this.distinct.size;
  }

  private lookup(subject: string, withTags: boolean): Promise<FoundReferrers> {
    let found = this.lookups.get(subject);
    if (!found) {
      found = this.copier.guard(() => this.lookupAtSource(subject, withTags));
      found.catch(() => undefined); // its failure stops the copy through the guard; awaited later
      this.lookups.set(subject, found);
    }
    return found;
  }

  private async lookupAtSource(subject: string, withTags: boolean): Promise<FoundReferrers> {
    const { source, sourceRepository, signal } = this.copier;
    const known = this.copier.sourceTags;
    // A caller that listed the source's tags (sync) saves a HEAD for each referrer tag not among them.
    const tagNames = withTags
      ? [fallbackTag(subject), ...cosignTags(subject)].filter((t) => known === undefined || known.has(t))
      : [];
    const [fromApi, ...tagged] = await Promise.all([
      source.referrers(sourceRepository, subject, { signal }),
      ...tagNames.map(async (tag) => {
        const found = await source.headManifest(sourceRepository, tag, { signal });
        return found ? { tag, descriptor: found } : undefined;
      }),
    ]);
    const tags = tagged.filter((t): t is { tag: string; descriptor: Descriptor } => t !== undefined);
    return { subject, listed: distinctByDigest(fromApi ?? []), tags };
  }

  /** Counts what `f` found (referrers at level `depth`) against the caps. */
  private count(f: FoundReferrers, depth: number): void {
    const met = new Set([...f.listed, ...f.tags.map((t) => t.descriptor)].map((d) => d.digest));
    if (met.size === 0) return;
    if (depth > REFERRER_LIMITS.depth) {
      throw new MirrorError(
        'LIMIT_EXCEEDED',
        `referrers nested more than ${REFERRER_LIMITS.depth} levels deep (${f.subject} has referrers at level ${depth})`,
      );
    }
    if (met.size > REFERRER_LIMITS.perSubject) {
      throw new MirrorError(
        'LIMIT_EXCEEDED',
        `${f.subject} has more than ${REFERRER_LIMITS.perSubject} referrers at the source`,
      );
    }
    for (const digest of met) this.distinct.add(digest);
    if (this.distinct.size > REFERRER_LIMITS.perCopy) {
      throw new MirrorError(
        'LIMIT_EXCEEDED',
        `more than ${REFERRER_LIMITS.perCopy} referrers in one copy (signatures, SBOMs, attestations and theirs)`,
      );
    }
  }

  private async copyFound({ subject, listed, tags }: FoundReferrers): Promise<void> {
    // Tags first, byte for byte (the fallback index among them), so the API merge below sees them.
    for (const { tag, descriptor } of tags) await this.copyTag(tag, descriptor);
    if (listed.length > 0) await this.copyListed(subject, listed);
  }

  private async copyTag(tag: string, descriptor: Descriptor): Promise<void> {
    const { copier } = this;
    const existing = await copier.destination.headManifest(copier.destinationRepository, tag, {
      signal: copier.signal,
    });
    if (existing?.digest === descriptor.digest) return;
    await copier.copyManifest(await this.sourceManifest(descriptor.digest), tag);
  }

  /** A referrer manifest from the source, fetched once however many tags name it. */
  private sourceManifest(digest: string): Promise<Manifest> {
    let manifest = this.sourceManifests.get(digest);
    if (!manifest) {
      const { source, sourceRepository, signal } = this.copier;
      manifest = source.getManifest(sourceRepository, digest, { signal });
      this.sourceManifests.set(digest, manifest);
    }
    return manifest;
  }

  /**
   * Referrers the source listed through its API. Where the destination has the API too, pushing each
   * manifest is enough (it indexes the subject); otherwise we keep its fallback index up to date, as
   * the OCI distribution spec asks of clients.
   */
  private async copyListed(subject: string, listed: readonly Descriptor[]): Promise<void> {
    const { copier } = this;
    const { destination, destinationRepository, signal } = copier;
    const atDestination = await destination.referrers(destinationRepository, subject, { signal });
    const present = new Set((atDestination ?? []).map((d) => d.digest));
    await Promise.all(
      listed.filter((d) => !present.has(d.digest)).map((d) => copier.copyManifestByDigest(d)),
    );
    if (atDestination !== undefined) return;

    const tag = fallbackTag(subject);
    const current = (await destination.headManifest(destinationRepository, tag, { signal }))
      ? await destination.getManifest(destinationRepository, tag, { signal })
      : undefined;
    const merged = mergeFallbackIndex(current, listed);
    if (merged) await destination.putManifest(destinationRepository, tag, merged, { signal });
  }
}

/** The fallback index with `listed` added, distinct by digest, or undefined when it lists them all. */
export function mergeFallbackIndex(
  current: Manifest | undefined,
  listed: readonly Descriptor[],
): Manifest | undefined {
  const manifests: Descriptor[] = [...(current?.manifests ?? [])];
  const known = new Set(manifests.map((d) => d.digest));
  const missing = distinctByDigest(listed).filter((d) => !known.has(d.digest));
  if (current && missing.length === 0) return undefined;
  // Rewritten anyway: duplicates an earlier writer left go too.
  const body = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: distinctByDigest([...manifests, ...missing]),
  };
  return parseManifest(Buffer.from(JSON.stringify(body)), MediaType.OciIndex);
}

/** The first descriptor of each digest, in order. */
function distinctByDigest(descriptors: readonly Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return descriptors.filter((d) => !seen.has(d.digest) && seen.add(d.digest));
}
