/** What a copy reports as it goes: enough for a progress line and for structured logs. */
export type CopyEvent =
  | { type: 'blob-start'; digest: string; size: number }
  | { type: 'blob-bytes'; bytes: number }
  /** `mounted`: the registry linked it from another of its repositories; no byte was sent. */
  | { type: 'blob-done'; digest: string; size: number; skipped: boolean; mounted?: boolean }
  | { type: 'manifest-done'; digest: string; reference: string; skipped: boolean }
  | { type: 'retry'; what: string; attempt: number; delayMs: number; error: string };

export interface CopySummary {
  source: string;
  destination: string;
  /** Digest of the image (or index) copied. */
  digest: string;
  mediaType: string;
  /** The destination already held this digest under the tag: nothing was sent. */
  upToDate: boolean;
  manifests: { copied: number; skipped: number };
  /** Blobs uploaded, mounted from another repository of the destination registry, already there. */
  blobs: { copied: number; mounted: number; skipped: number };
  /** Blob bytes sent to the destination. */
  bytes: number;
  /**
   * Distinct referrer manifests (by digest) found at the source, all levels: signatures, SBOMs,
   * attestations, the fallback indexes that list them, and what refers to those.
   */
  referrers: number;
  seconds: number;
  requests: { source: number; destination: number };
}
