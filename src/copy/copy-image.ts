import type { Manifest } from '../core/manifest';
import {
  formatReference,
  manifestReference,
  type Reference,
  validateReference,
  withDigest,
  withTag,
} from '../core/reference';
import { abortError, MirrorError, SourceNotFoundError } from '../errors';
import { RegistryError } from '../registry/errors';
import type { RegistryClient } from '../registry/registry';
import { Copier, type CopierOptions } from './copier';
import type { CopySummary } from './events';
import { ReferrerWalk } from './referrers';

export interface CopyImageOptions extends CopierOptions {
  /** Copy signatures, SBOMs and attestations with the image (default true). */
  referrers?: boolean;
}

function total(counts: Readonly<Record<string, number>>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/**
 * Copies one image, index or artifact so that the destination holds the same bytes under the same
 * digests: blobs, then child manifests by digest, then the top manifest, then the tag; referrers after.
 * When the destination tag already resolves to the source digest, that one request settles it.
 *
 * `options.signal` cancels the whole copy (in-flight requests aborted, queued transfers not started,
 * no tag written after it); so does the first failure of any part. The copy then rejects with that
 * first failure: TIMEOUT or CANCELLED when it was the signal (see abortError in src/errors.ts).
 */
export async function copyImage(
  source: RegistryClient,
  sourceRef: Reference,
  destination: RegistryClient,
  destinationRef: Reference,
  options: CopyImageOptions = {},
): Promise<CopySummary> {
  // Both references are checked before any request: a source without a tag or digest used to reach
  // the destination as `HEAD …/manifests/undefined`.
  validateReference(sourceRef, true);
  validateReference(destinationRef);
  const copier = new Copier(source, sourceRef.repository, destination, destinationRef.repository, options);
  try {
    return await copyWith(copier, sourceRef, destinationRef, options);
  } catch (err) {
    const first = copier.failure ?? err;
    // The caller's deadline or Ctrl-C stopped everything at once: say so for the copy as a whole,
    // rather than blame whichever request happened to hear it first.
    if (options.signal?.aborted && isAbort(first)) {
      const what = `copy of ${formatReference(sourceRef)} to ${formatReference(destinationRef)}`;
      throw abortError(options.signal, what);
    }
    throw first;
  }
}

const isAbort = (err: unknown): boolean =>
  err instanceof MirrorError && (err.code === 'TIMEOUT' || err.code === 'CANCELLED');

async function copyWith(
  copier: Copier,
  sourceRef: Reference,
  destinationRef: Reference,
  options: CopyImageOptions,
): Promise<CopySummary> {
  const { source, destination, signal } = copier;
  const started = performance.now();
  const sourceBefore = total(source.counts);
  const destinationBefore = total(destination.counts);

  // A destination without tag or digest takes the source's tag. Every reference has a tag or a
  // digest, so what to ask the destination for is known before the source answers.
  const tag = destinationRef.tag ?? (destinationRef.digest === undefined ? sourceRef.tag : undefined);
  const target = tag ?? destinationRef.digest ?? (sourceRef.digest as string);
  const withReferrers = options.referrers !== false;

  // One round trip resolves the source and asks the destination whether it is up to date. With
  // referrers on, the source manifest is needed either way (its children's referrers), so it is
  // fetched whole at once. From here on everything goes by digest: a tag moving mid-copy changes nothing.
  const [existing, resolved] = await Promise.all([
    copier.guard(() => destination.headManifest(destinationRef.repository, target, { signal })),
    copier.guard(() => resolveSource(source, sourceRef, withReferrers, signal)),
  ]);
  const { digest } = resolved;
  if (destinationRef.digest !== undefined && destinationRef.digest !== digest) {
    throw new MirrorError(
      'INVALID_ARGUMENT',
      `destination names digest ${destinationRef.digest} but the source is ${digest}`,
    );
  }
  const upToDate = existing?.digest === digest;

  let mediaType = resolved.mediaType;
  let childDigests: string[] = [];
  const manifest =
    resolved.manifest ?? (upToDate ? undefined : await announcedManifest(copier, sourceRef, digest));
  if (manifest) {
    mediaType = manifest.mediaType;
    childDigests = manifest.manifests.map((d) => d.digest);
  }
  // Referrers are looked up while the blobs move, and copied once their subject is in place.
  const subjects = [digest, ...childDigests];
  // A failed lookup stops the blobs, and a failed blob the lookup: siblings, as anywhere in a copy.
  const walk = withReferrers ? new ReferrerWalk(copier) : undefined;
  walk?.find(subjects).catch(() => undefined); // used below; a failed image copy reports its own error first
  let written = manifest;
  if (manifest && !upToDate) {
    if (tag !== undefined && sourceRef.tag !== undefined && sourceRef.digest === undefined) {
      written = await writeTagFollowingSource(copier, sourceRef, manifest, tag);
    } else {
      await copier.copyManifest(manifest, target);
    }
  }
  // The source tag moved during the copy: what refers to the digest written is what follows it.
  const moved = written !== undefined && written.digest !== digest;
  const writtenSubjects =
    written && moved ? [written.digest, ...written.manifests.map((d) => d.digest)] : subjects;
  const referrers = walk ? await walk.copy(writtenSubjects) : 0;

  const s = copier.stats;
  const final = written?.digest ?? digest;
  return {
    source: formatReference(withDigest(sourceRef, final)),
    destination: formatReference(withDigest(withTag(destinationRef, tag), final)),
    digest: final,
    mediaType: written?.mediaType ?? mediaType ?? existing?.mediaType ?? 'unknown',
    upToDate,
    manifests: { copied: s.manifestsCopied, skipped: s.manifestsSkipped + (upToDate ? 1 : 0) },
    blobs: { copied: s.blobsCopied, mounted: s.blobsMounted, skipped: s.blobsSkipped },
    bytes: s.bytes,
    referrers,
    seconds: Math.round(performance.now() - started) / 1000,
    requests: {
      source: total(source.counts) - sourceBefore,
      destination: total(destination.counts) - destinationBefore,
    },
  };
}

/** Rounds of "the source tag moved while we wrote it" before giving the message back to the queue. */
const MAX_TAG_ROUNDS = 4;

/**
 * Writes a tag that follows a source tag, so that the destination tag is never moved back by a slow
 * copy. Why this and not a lease on the status item: a registry has no conditional manifest PUT, so
 * nothing can stop a PUT already on its way from a stalled worker; the source is the only authority on
 * what the tag should name. So every write names the source tag's digest as read just before it (its
 * content copied first, by digest), and after the write the source is read again: when it moved in
 * between, the new digest is copied and written too. Whoever writes last has checked after writing,
 * so the last write leaves the destination equal to the source. Costs two source HEADs per write.
 * Returns the manifest written last.
 */
async function writeTagFollowingSource(
  copier: Copier,
  sourceRef: Reference,
  first: Manifest,
  tag: string,
): Promise<Manifest> {
  const { source, signal } = copier;
  const current = async (): Promise<string | undefined> =>
    (await source.headManifest(sourceRef.repository, sourceRef.tag!, { signal }))?.digest;
  let manifest = first;
  for (let round = 1; ; round++) {
    await copier.copyContent(manifest);
    const before = await current();
    if (before === undefined) throw new SourceNotFoundError(formatReference(sourceRef));
    if (before === manifest.digest) {
      await copier.putManifest(manifest, tag);
      const after = await current();
      // Unchanged, or deleted since (a deletion is its own event): the write stands.
      if (after === undefined || after === manifest.digest) return manifest;
      manifest = await announcedManifest(copier, sourceRef, after);
    } else {
      manifest = await announcedManifest(copier, sourceRef, before);
    }
    if (round >= MAX_TAG_ROUNDS) {
      throw new MirrorError(
        'REGISTRY_ERROR',
        `${formatReference(sourceRef)} moved ${round} times while it was copied; trying again later`,
        { retryable: true },
      );
    }
  }
}

/**
 * The source manifest of `digest`, which a HEAD of `ref` announced. A registry that announces a
 * digest it then does not serve gets a failure that says so, rather than a bare 404 for a digest
 * the user never named. Retryable: the tag may have moved, and the old digest gone, in between.
 */
async function announcedManifest(copier: Copier, ref: Reference, digest: string): Promise<Manifest> {
  try {
    return await copier.source.getManifest(ref.repository, digest, { signal: copier.signal });
  } catch (err) {
    if (ref.digest !== undefined || !(err instanceof RegistryError) || err.status !== 404) throw err;
    throw new MirrorError(
      'REGISTRY_ERROR',
      `source ${formatReference(ref)}: the registry announced ${digest} for ${ref.repository}:${ref.tag} but serves no manifest under that digest (HTTP 404)`,
      { retryable: true, cause: err },
    );
  }
}

interface ResolvedSource {
  digest: string;
  mediaType?: string;
  /** Fetched when asked for (referrers need it whatever the destination holds). */
  manifest?: Manifest;
}

/** The source's digest, with its manifest when `fetch` is set; a missing image is SourceNotFoundError. */
async function resolveSource(
  source: RegistryClient,
  ref: Reference,
  fetch: boolean,
  signal: AbortSignal,
): Promise<ResolvedSource> {
  if (fetch) {
    let manifest: Manifest;
    try {
      manifest = await source.getManifest(ref.repository, manifestReference(ref), { signal });
    } catch (err) {
      if (err instanceof RegistryError && err.status === 404)
        throw new SourceNotFoundError(formatReference(ref));
      throw err;
    }
    return { digest: ref.digest ?? manifest.digest, mediaType: manifest.mediaType, manifest };
  }
  if (ref.digest !== undefined) return { digest: ref.digest };
  const head = await source.headManifest(ref.repository, manifestReference(ref), { signal });
  if (!head) throw new SourceNotFoundError(formatReference(ref));
  return { digest: head.digest, mediaType: head.mediaType };
}
