import { setMaxListeners } from 'node:events';
import type { Descriptor } from '../core/descriptor';
import { blobsToCopy, MAX_INDEX_DEPTH, type Manifest } from '../core/manifest';
import { describeError, MirrorError, throwIfAborted } from '../errors';
import { RegistryError } from '../registry/errors';
import type { PutBlobResult, PutManifestResult, RegistryClient } from '../registry/registry';
import { DEFAULT_RETRY, type RetryPolicy, withRetry } from '../registry/retry';
import { createLimiter } from '../util/limit';
import { BlobLedger, type BlobOutcome, type MountSource } from './blob-ledger';
import type { CopyEvent } from './events';

/** Blobs in flight at once; chosen by `npm run bench` (see README, "Benchmark"). */
export const DEFAULT_BLOB_CONCURRENCY = 6;

export interface CopierOptions {
  /** Blobs in flight at once for this copy (ignored when `limit` is given). */
  concurrency?: number;
  /** Blob transfers in flight, shared with other copies (a `sync` run bounds them all together). */
  limit?: <T>(task: () => Promise<T>) => Promise<T>;
  /**
   * What this runtime knows of blobs at destinations, shared by its copies: a blob moves once per
   * destination repository, and is mounted from another repository of the registry where it can be.
   * Without it the copy keeps a ledger of its own.
   */
  blobs?: BlobLedger;
  /**
   * Every tag of the source repository, when the caller has just listed them (`sync`): referrer tags
   * (`sha256-<hex>`, `.sig`, `.att`, `.sbom`) not among them are not looked for.
   */
  sourceTags?: ReadonlySet<string>;
  /** Retries of a whole blob transfer (a fresh download and upload session each time). */
  retry?: RetryPolicy;
  onEvent?: (event: CopyEvent) => void;
  /** Cancels the copy: in-flight requests are aborted, queued transfers never start. */
  signal?: AbortSignal;
}

/**
 * One copy run between a source and a destination repository. It remembers what it has moved, so a
 * blob or manifest shared by several manifests moves once per run. The first failure of any part
 * stops all the others (as errgroup does with a context): in-flight requests are aborted and queued
 * transfers never start.
 */
export class Copier {
  readonly stats = {
    manifestsCopied: 0,
    manifestsSkipped: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    blobsSkipped: 0,
    bytes: 0,
  };
  private readonly blobs = new Map<string, Promise<void>>();
  private readonly ledger: BlobLedger;
  /** Blobs taken as present on the ledger's word (no request): stale knowledge is looked at again. */
  private trusted = 0;
  private readonly manifests = new Map<string, Promise<void>>();
  private readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  private readonly retry: RetryPolicy;
  private readonly stop = new AbortController();
  /** See CopierOptions.sourceTags. */
  readonly sourceTags: ReadonlySet<string> | undefined;
  /** Aborted by the caller's signal or by the first failure: every request of the copy takes it. */
  readonly signal: AbortSignal;
  private failed: { error: unknown } | undefined;

  constructor(
    readonly source: RegistryClient,
    readonly sourceRepository: string,
    readonly destination: RegistryClient,
    readonly destinationRepository: string,
    private readonly options: CopierOptions = {},
  ) {
    this.limit = options.limit ?? createLimiter(options.concurrency ?? DEFAULT_BLOB_CONCURRENCY);
    this.ledger = options.blobs ?? new BlobLedger();
    this.sourceTags = options.sourceTags;
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.signal = options.signal ? AbortSignal.any([options.signal, this.stop.signal]) : this.stop.signal;
    // Every request in flight listens to it: dozens at a time are expected, not a leak.
    setMaxListeners(0, this.signal);
  }

  /** The first failure of a part of this copy, which stopped the others; undefined while none failed. */
  get failure(): unknown {
    return this.failed?.error;
  }

  /** Records the first failure and stops every other part of the copy. */
  fail(err: unknown): void {
    if (this.failed) return;
    this.failed = { error: err };
    this.stop.abort(new MirrorError('CANCELLED', 'another part of this copy failed', { cause: err }));
  }

  /** Runs a part of the copy: its failure, if it is the first, stops the others. */
  async guard<T>(task: () => Promise<T>): Promise<T> {
    try {
      return await task();
    } catch (err) {
      this.fail(err);
      throw err;
    }
  }

  emit(event: CopyEvent): void {
    this.options.onEvent?.(event);
  }

  /**
   * Copies what `manifest` references (blobs, or child manifests and theirs), then puts the manifest
   * itself under `reference`: a tag only ever points at content that is complete at the destination.
   */
  async copyManifest(manifest: Manifest, reference: string, depth = 0): Promise<PutManifestResult> {
    await this.copyContent(manifest, depth);
    return this.putManifest(manifest, reference);
  }

  /** Puts a manifest whose content is already in place (see copyContent). */
  async putManifest(manifest: Manifest, reference: string): Promise<PutManifestResult> {
    throwIfAborted(this.signal, `PUT manifest ${this.destinationRepository}:${reference}`);
    const put = () =>
      this.destination.putManifest(this.destinationRepository, reference, manifest, { signal: this.signal });
    let result: PutManifestResult;
    try {
      result = await put();
    } catch (err) {
      if (this.trusted === 0 || !(err instanceof MirrorError) || err.code !== 'NOT_FOUND') throw err;
      // Content this runtime knew to be there is not (the repository was deleted and made again, say):
      // forget what we knew of the repository, and look again blob by blob.
      this.ledger.forgetRepository(this.destination.host, this.destinationRepository);
      this.trusted = 0;
      this.blobs.clear();
      await this.copyContent(manifest);
      result = await put();
    }
    this.ledger.committed(
      this.destination.host,
      this.destinationRepository,
      blobsToCopy(manifest).map((b) => b.digest),
    );
    this.stats.manifestsCopied++;
    this.emit({ type: 'manifest-done', digest: manifest.digest, reference, skipped: false });
    return result;
  }

  /**
   * Copies a manifest by digest unless the destination has it; once per run. `depth`: how many
   * indexes hold it, down from the top manifest; past MAX_INDEX_DEPTH the copy fails.
   */
  copyManifestByDigest(descriptor: Descriptor, depth = 0): Promise<void> {
    let task = this.manifests.get(descriptor.digest);
    if (!task) {
      task = this.guard(async () => {
        if (depth > MAX_INDEX_DEPTH) {
          throw new MirrorError(
            'LIMIT_EXCEEDED',
            `manifest ${descriptor.digest} is nested more than ${MAX_INDEX_DEPTH} levels deep in indexes`,
          );
        }
        const { signal } = this;
        const existing = await this.destination.headManifest(this.destinationRepository, descriptor.digest, {
          signal,
        });
        if (existing) {
          this.stats.manifestsSkipped++;
          this.emit({
            type: 'manifest-done',
            digest: descriptor.digest,
            reference: descriptor.digest,
            skipped: true,
          });
          return;
        }
        const manifest = await this.source.getManifest(this.sourceRepository, descriptor.digest, { signal });
        await this.copyManifest(manifest, descriptor.digest, depth);
      });
      this.manifests.set(descriptor.digest, task);
    }
    return task;
  }

  /** Copies what `manifest` references (blobs, or child manifests and theirs), not the manifest itself. */
  async copyContent(manifest: Manifest, depth = 0): Promise<void> {
    if (this.source.host === this.destination.host && this.sourceRepository !== this.destinationRepository) {
      // A copy within one registry: the source repository's image references these blobs, so the
      // registry can mount every one of them from there.
      const digests = blobsToCopy(manifest).map((b) => b.digest);
      this.ledger.committed(this.destination.host, this.sourceRepository, digests);
    }
    // Children and blobs start together; allSettled lets in-flight transfers end before we report.
    const tasks = [
      ...manifest.manifests.map((child) => this.copyManifestByDigest(child, depth + 1)),
      ...blobsToCopy(manifest).map((blob) => this.copyBlob(blob)),
    ];
    const results = await Promise.allSettled(tasks);
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw this.failed ? this.failed.error : rejected.reason;
  }

  /**
   * Copies a blob unless the destination repository has it; once per run, and once per runtime: a
   * blob another copy is moving into the same repository is waited for (outside the limiter, so no
   * slot is held while waiting), and one known to be there is not asked about again.
   */
  copyBlob(blob: Descriptor): Promise<void> {
    let task = this.blobs.get(blob.digest);
    if (!task) {
      task = this.guard(async () => {
        const { own } = await this.ledger.claim(
          this.destination.host,
          this.destinationRepository,
          blob.digest,
          () => this.limit(() => this.transferBlob(blob)),
          this.signal,
        );
        if (own) return;
        // Another copy in this runtime moved it, or it is known to be there: taken on trust.
        this.trusted++;
        this.stats.blobsSkipped++;
        this.emit({ type: 'blob-done', digest: blob.digest, size: blob.size, skipped: true });
      });
      this.blobs.set(blob.digest, task);
    }
    return task;
  }

  private async transferBlob(blob: Descriptor): Promise<BlobOutcome> {
    const { signal } = this;
    const { host } = this.destination;
    const repository = this.destinationRepository;
    const what = `blob ${blob.digest}`;
    throwIfAborted(signal, what); // queued while another part failed: never started
    // A repository that did not exist holds only what went through the ledger: nothing to ask about.
    const unseen = this.ledger.knownEmpty(host, repository);
    if (!unseen && (await this.destination.hasBlob(repository, blob.digest, { signal }))) {
      this.stats.blobsSkipped++;
      this.emit({ type: 'blob-done', digest: blob.digest, size: blob.size, skipped: true });
      return 'present';
    }
    this.emit({ type: 'blob-start', digest: blob.digest, size: blob.size });
    const onBytes = (bytes: number): void => this.emit({ type: 'blob-bytes', bytes });
    let source: MountSource | undefined;
    let raced = false;
    const result = await withRetry(
      this.retry,
      async (): Promise<PutBlobResult | 'present'> => {
        // Asked anew on each attempt: what the ledger knows, and what the registry allows, grows.
        source = this.ledger.mountSource(host, repository, blob.digest);
        try {
          return await this.destination.putBlob(
            repository,
            blob,
            () => this.source.getBlob(this.sourceRepository, blob, { signal, onBytes }),
            { signal, ...(source && { mountFrom: source.repository }) },
          );
        } catch (err) {
          if (raced || !(err instanceof RegistryError) || err.ociCode !== 'DIGEST_INVALID') throw err;
          raced = true;
          // The bytes were checked on the way, so a DIGEST_INVALID is likely another writer's upload
          // of the same blob crossing ours: look whether the blob is there now, else try once more.
          if (await this.destination.hasBlob(repository, blob.digest, { signal })) return 'present';
          throw new MirrorError('DIGEST_MISMATCH', err.message, { retryable: true, cause: err });
        }
      },
      (err, attempt, delayMs) =>
        this.emit({ type: 'retry', what, attempt, delayMs, error: describeError(err) }),
      signal,
    );
    if (result === 'present') {
      this.stats.blobsSkipped++;
      this.emit({ type: 'blob-done', digest: blob.digest, size: blob.size, skipped: true });
      return 'present';
    }
    if (source)
      this.ledger.mountAnswered(host, source, result.mounted ? 'mounted' : (result.mount ?? 'failed'));
    if (result.mounted) {
      this.stats.blobsMounted++;
      this.emit({ type: 'blob-done', digest: blob.digest, size: blob.size, skipped: false, mounted: true });
      return 'mounted';
    }
    this.stats.blobsCopied++;
    this.stats.bytes += blob.size;
    this.emit({ type: 'blob-done', digest: blob.digest, size: blob.size, skipped: false });
    return 'copied';
  }
}
