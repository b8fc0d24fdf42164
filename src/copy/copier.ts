import type { Descriptor } from '../core/descriptor';
import { blobsToCopy, type Manifest } from '../core/manifest';
import { describeError, MirrorError } from '../errors';
import type { PutManifestResult, RegistryClient } from '../registry/registry';
import { DEFAULT_RETRY, type RetryPolicy, withRetry } from '../registry/retry';
import { createLimiter } from '../util/limit';
import type { CopyEvent } from './events';

/** Blobs in flight at once; chosen by `npm run bench` (see README, "Benchmark"). */
export const DEFAULT_BLOB_CONCURRENCY = 6;

export interface CopierOptions {
  concurrency?: number;
  /** Retries of a whole blob transfer (a fresh download and upload session each time). */
  retry?: RetryPolicy;
  onEvent?: (event: CopyEvent) => void;
}

/**
 * One copy run between a source and a destination repository. It remembers what it has moved, so a
 * blob or manifest shared by several manifests moves once per run, and it stops starting new
 * transfers once one has failed.
 */
export class Copier {
  readonly stats = { manifestsCopied: 0, manifestsSkipped: 0, blobsCopied: 0, blobsSkipped: 0, bytes: 0 };
  private readonly blobs = new Map<string, Promise<void>>();
  private readonly manifests = new Map<string, Promise<void>>();
  private readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  private readonly retry: RetryPolicy;
  private failure: unknown;

  constructor(
    readonly source: RegistryClient,
    readonly sourceRepository: string,
    readonly destination: RegistryClient,
    readonly destinationRepository: string,
    private readonly options: CopierOptions = {},
  ) {
    this.limit = createLimiter(options.concurrency ?? DEFAULT_BLOB_CONCURRENCY);
    this.retry = options.retry ?? DEFAULT_RETRY;
  }

  emit(event: CopyEvent): void {
    this.options.onEvent?.(event);
  }

  /**
   * Copies what `manifest` references (blobs, or child manifests and theirs), then puts the manifest
   * itself under `reference`: a tag only ever points at content that is complete at the destination.
   */
  async copyManifest(manifest: Manifest, reference: string): Promise<PutManifestResult> {
    await this.copyContent(manifest);
    this.checkFailed();
    const result = await this.destination.putManifest(this.destinationRepository, reference, manifest);
    this.stats.manifestsCopied++;
    this.emit({ type: 'manifest-done', digest: manifest.digest, reference, skipped: false });
    return result;
  }

  /** Copies a manifest by digest unless the destination has it; once per run. */
  copyManifestByDigest(descriptor: Descriptor): Promise<void> {
    let task = this.manifests.get(descriptor.digest);
    if (!task) {
      task = this.guard(async () => {
        const existing = await this.destination.headManifest(this.destinationRepository, descriptor.digest);
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
        const manifest = await this.source.getManifest(this.sourceRepository, descriptor.digest);
        await this.copyManifest(manifest, descriptor.digest);
      });
      this.manifests.set(descriptor.digest, task);
    }
    return task;
  }

  private async copyContent(manifest: Manifest): Promise<void> {
    // Children and blobs start together; allSettled lets in-flight transfers end before we report.
    const tasks = [
      ...manifest.manifests.map((child) => this.copyManifestByDigest(child)),
      ...blobsToCopy(manifest).map((blob) => this.copyBlob(blob)),
    ];
    const results = await Promise.allSettled(tasks);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw this.failure ?? failed.reason;
  }

  copyBlob(blob: Descriptor): Promise<void> {
    let task = this.blobs.get(blob.digest);
    if (!task) {
      task = this.guard(() => this.limit(() => this.transferBlob(blob)));
      this.blobs.set(blob.digest, task);
    }
    return task;
  }

  private async transferBlob(blob: Descriptor): Promise<void> {
    this.checkFailed();
    if (await this.destination.hasBlob(this.destinationRepository, blob.digest)) {
      this.stats.blobsSkipped++;
      this.emit({ type: 'blob-done', digest: blob.digest, size: blob.size, skipped: true });
      return;
    }
    this.emit({ type: 'blob-start', digest: blob.digest, size: blob.size });
    const onBytes = (bytes: number): void => this.emit({ type: 'blob-bytes', bytes });
    await withRetry(
      this.retry,
      async () => {
        this.checkFailed();
        await this.destination.putBlob(this.destinationRepository, blob, () =>
          this.source.getBlob(this.sourceRepository, blob, onBytes),
        );
      },
      (err, attempt, delayMs) =>
        this.emit({
          type: 'retry',
          what: `blob ${blob.digest}`,
          attempt,
          delayMs,
          error: describeError(err),
        }),
    );
    this.stats.blobsCopied++;
    this.stats.bytes += blob.size;
    this.emit({ type: 'blob-done', digest: blob.digest, size: blob.size, skipped: false });
  }

  /** Records the first failure so queued work is not started after it. */
  private async guard<T>(task: () => Promise<T>): Promise<T> {
    try {
      return await task();
    } catch (err) {
      this.failure ??= err;
      throw err;
    }
  }

  private checkFailed(): void {
    if (this.failure !== undefined) {
      throw new MirrorError('CANCELLED', 'another part of this copy failed', {
        cause: this.failure,
      });
    }
  }
}
