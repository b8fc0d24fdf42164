import { formatReference, manifestReference, type Reference, withDigest, withTag } from '../core/reference';
import { MirrorError, SourceNotFoundError } from '../errors';
import type { RegistryClient } from '../registry/registry';
import { Copier, type CopierOptions } from './copier';
import type { CopySummary } from './events';
import { copyReferrers } from './referrers';

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
 */
export async function copyImage(
  source: RegistryClient,
  sourceRef: Reference,
  destination: RegistryClient,
  destinationRef: Reference,
  options: CopyImageOptions = {},
): Promise<CopySummary> {
  const started = performance.now();
  const sourceBefore = total(source.counts);
  const destinationBefore = total(destination.counts);

  // Resolve the source once; from here on everything is by digest, so a tag moving mid-copy changes nothing.
  let digest = sourceRef.digest;
  let mediaType: string | undefined;
  if (digest === undefined) {
    const head = await source.headManifest(sourceRef.repository, manifestReference(sourceRef));
    if (!head) {
      throw new SourceNotFoundError(formatReference(sourceRef));
    }
    digest = head.digest;
    mediaType = head.mediaType;
  }
  if (destinationRef.digest !== undefined && destinationRef.digest !== digest) {
    throw new MirrorError(
      'INVALID_ARGUMENT',
      `destination names digest ${destinationRef.digest} but the source is ${digest}`,
    );
  }
  // A destination without tag or digest takes the source's tag.
  const tag = destinationRef.tag ?? (destinationRef.digest === undefined ? sourceRef.tag : undefined);
  const target = tag ?? digest;

  const copier = new Copier(source, sourceRef.repository, destination, destinationRef.repository, options);
  // With referrers on, the source manifest is needed either way (its children's referrers): ask for it
  // while the destination is asked whether it is already up to date, saving a round trip.
  const [existing, early] = await Promise.all([
    destination.headManifest(destinationRef.repository, target),
    options.referrers !== false ? source.getManifest(sourceRef.repository, digest) : undefined,
  ]);
  const upToDate = existing?.digest === digest;

  let childDigests: string[] = [];
  const manifest = early ?? (upToDate ? undefined : await source.getManifest(sourceRef.repository, digest));
  if (manifest) {
    mediaType = manifest.mediaType;
    childDigests = manifest.manifests.map((d) => d.digest);
    if (!upToDate) await copier.copyManifest(manifest, target);
  }

  const referrers = options.referrers === false ? 0 : await copyReferrers(copier, [digest, ...childDigests]);

  const s = copier.stats;
  return {
    source: formatReference(withDigest(sourceRef, digest)),
    destination: formatReference(withDigest(withTag(destinationRef, tag), digest)),
    digest,
    mediaType: mediaType ?? existing?.mediaType ?? 'unknown',
    upToDate,
    manifests: { copied: s.manifestsCopied, skipped: s.manifestsSkipped + (upToDate ? 1 : 0) },
    blobs: { copied: s.blobsCopied, skipped: s.blobsSkipped },
    bytes: s.bytes,
    referrers,
    seconds: Math.round(performance.now() - started) / 1000,
    requests: {
      source: total(source.counts) - sourceBefore,
      destination: total(destination.counts) - destinationBefore,
    },
  };
}
