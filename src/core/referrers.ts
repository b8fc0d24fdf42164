import { parseDigest } from './digest';

/**
 * Where signatures, SBOMs and attestations hide when a registry has no referrers API:
 * the OCI 1.1 tag-schema fallback (`sha256-<hex>`, an index of referrers) and cosign's own tags.
 */
export const COSIGN_SUFFIXES = ['sig', 'att', 'sbom'] as const;

/** `sha256:abc…` becomes `sha256-abc…`, truncated to a valid tag length as the OCI spec asks. */
export function fallbackTag(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `${algorithm}-${hex}`.slice(0, 128);
}

export function cosignTags(digest: string): string[] {
  const base = fallbackTag(digest);
  return COSIGN_SUFFIXES.map((suffix) => `${base}.${suffix}`);
}

/** Every tag a referrer of `digest` may be stored under, fallback index first. */
export function referrerTags(digest: string): string[] {
  return [fallbackTag(digest), ...cosignTags(digest)];
}

/**
 * Caps on the work a source's referrers can make one copy do. Past any of them the copy fails with
 * LIMIT_EXCEEDED rather than run on: a registry could otherwise list referrers without end.
 */
export const REFERRER_LIMITS = {
  /** Levels of referrers followed: signatures (1), signatures of SBOMs (2), one more (3). */
  depth: 3,
  /** Pages of one referrers listing. */
  pages: 10,
  /** Distinct referrers of one subject. */
  perSubject: 1000,
  /** Distinct referrers in one copy, all subjects and levels together. */
  perCopy: 2000,
} as const;
