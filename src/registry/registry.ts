import type { Readable } from 'node:stream';
import type { Descriptor } from '../core/descriptor';
import type { Manifest } from '../core/manifest';
import type { RequestKind } from './transport';

/** Opens the bytes of a blob anew; an upload may need them more than once (retry, chunked fallback). */
export type BlobSource = () => Promise<Readable>;

/**
 * What every RegistryClient call takes last. The signal aborts every in-flight HTTP request of the
 * call (the socket is destroyed) and the waits between its retries; the call then rejects with a
 * MirrorError, TIMEOUT for a deadline's reason, else CANCELLED (see abortError in src/errors.ts).
 */
export interface CallOptions {
  signal?: AbortSignal;
}

export interface GetBlobOptions extends CallOptions {
  /** Hears of the blob's bytes as they pass (progress). */
  onBytes?: (n: number) => void;
}

export interface PutBlobOptions extends CallOptions {
  /**
   * Another repository of the same registry that holds the blob: the registry is asked to mount it
   * from there (`POST …/blobs/uploads/?mount=<digest>&from=<repository>`) before any byte is sent.
   */
  mountFrom?: string;
}

/** How a blob got into the repository, and what a mount attempt was answered, when one was made. */
export interface PutBlobResult {
  mounted: boolean;
  /** `refused`: 202, the registry wanted the bytes (uploaded into that session); `failed`: an error. */
  mount?: 'refused' | 'failed';
}

export interface PutManifestResult {
  digest: string;
  /** Set when the registry indexed the manifest's subject itself (OCI 1.1 `OCI-Subject`). */
  subject?: string;
}

/**
 * The few operations a copy needs from a registry (after regclient's scheme interface). The copy
 * engine is written against this alone, never against HTTP.
 */
export interface RegistryClient {
  readonly host: string;
  /** Requests sent so far, by kind. */
  readonly counts: Readonly<Record<RequestKind, number>>;
  /** The manifest's descriptor, or undefined when the registry has no such tag or digest. */
  headManifest(repository: string, reference: string, options?: CallOptions): Promise<Descriptor | undefined>;
  /** The exact bytes, checked against the digest asked for and the one the registry announced. */
  getManifest(repository: string, reference: string, options?: CallOptions): Promise<Manifest>;
  putManifest(
    repository: string,
    reference: string,
    manifest: Manifest,
    options?: CallOptions,
  ): Promise<PutManifestResult>;
  deleteManifest(repository: string, digest: string, options?: CallOptions): Promise<void>;
  hasBlob(repository: string, digest: string, options?: CallOptions): Promise<boolean>;
  /**
   * A stream of the blob that fails if its bytes do not match the descriptor's size and digest. Not
   * retried here: the caller retries the whole transfer (a break mid-body needs a fresh start anyway).
   * The signal aborts the stream too, while it is being read.
   */
  getBlob(repository: string, blob: Descriptor, options?: GetBlobOptions): Promise<Readable>;
  /**
   * Uploads a blob, or mounts it from `options.mountFrom` when the registry agrees; a refused or failed
   * mount falls back to the upload. An aborted upload cancels its session at the registry, best effort.
   */
  putBlob(
    repository: string,
    blob: Descriptor,
    open: BlobSource,
    options?: PutBlobOptions,
  ): Promise<PutBlobResult>;
  /** The OCI 1.1 referrers of a manifest; undefined when the registry has no referrers API. */
  referrers(repository: string, digest: string, options?: CallOptions): Promise<Descriptor[] | undefined>;
  /** Tags of a repository, every page followed. */
  listTags(repository: string, options?: CallOptions): Promise<string[]>;
}
