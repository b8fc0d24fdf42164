import type { Readable } from 'node:stream';
import type { Descriptor } from '../core/descriptor';
import { MirrorError } from '../errors';
import { RegistryError } from './errors';
import { releaseReadBuffer } from './read-buffers';
import type { BlobSource, PutBlobResult } from './registry';
import { header, type Transport } from './transport';

/** ECR refuses chunks under 5 MiB (`LayerPartTooSmallException`) but for the last. */
export const MIN_CHUNK_BYTES = 5 * 1024 * 1024;
export const DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024;

export type UploadMode = 'auto' | 'monolithic' | 'chunked';

/**
 * An abandoned upload session is cancelled with this much time of its own: the copy's signal is
 * usually the reason it was abandoned, aborted already.
 */
const CANCEL_TIMEOUT_MS = 5_000;

/** Statuses with which a registry says it will not take a blob in one PUT. */
const REFUSALS = new Set([405, 411, 413, 415, 501]);

export function isMonolithicRefusal(err: unknown): boolean {
  return err instanceof RegistryError && err.status !== undefined && REFUSALS.has(err.status);
}

/**
 * Blob uploads. The default is one streamed PUT (POST, then PUT `?digest=` with the body), which
 * regclient also chose because ECR's chunked protocol departs from the spec; registries that refuse
 * it get chunked PATCHes of at least 5 MiB with offsets we track ourselves, 201 or 202 accepted.
 */
export class BlobUploader {
  private monolithicRefused = false;

  constructor(
    private readonly transport: Transport,
    private readonly mode: UploadMode = 'auto',
    private readonly chunkBytes = DEFAULT_CHUNK_BYTES,
  ) {
    if (chunkBytes < MIN_CHUNK_BYTES) {
      throw new MirrorError('INVALID_ARGUMENT', `chunk size must be at least ${MIN_CHUNK_BYTES} bytes`);
    }
  }

  /**
   * Uploads the blob; with `mountFrom`, first asks the registry to mount it from that repository of
   * its own. A 202 to the mount is an ordinary upload session, which the bytes then go into; a failed
   * mount falls back to a fresh upload.
   */
  async upload(
    repository: string,
    blob: Descriptor,
    open: BlobSource,
    signal?: AbortSignal,
    mountFrom?: string,
  ): Promise<PutBlobResult> {
    try {
      if (mountFrom === undefined) {
        await this.transfer(repository, blob, open, signal);
        return { mounted: false };
      }
      const tried = await this.mount(repository, blob, mountFrom, signal);
      if (tried.mounted) return { mounted: true };
      await this.transfer(repository, blob, open, signal, tried.session);
      return { mounted: false, mount: tried.answer };
    } catch (err) {
      throw asUploadRefused(err);
    }
  }

  private async mount(
    repository: string,
    blob: Descriptor,
    from: string,
    signal: AbortSignal | undefined,
  ): Promise<{ mounted: true } | { mounted: false; answer: 'refused' | 'failed'; session?: URL }> {
    const query = new URLSearchParams({ mount: blob.digest, from });
    let res: Awaited<ReturnType<Transport['send']>>;
    try {
      res = await this.transport.send({
        ...(signal && { signal }),
        method: 'POST',
        url: `/v2/${repository}/blobs/uploads/?${query}`,
        repository,
        scopes: [`repository:${from}:pull`],
        push: true,
        expect: [201, 202],
        kind: 'upload',
        what: `mount of ${blob.digest} from ${from} into ${repository}`,
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      return { mounted: false, answer: 'failed' }; // not worth failing the copy for: upload instead
    }
    const location = header(res, 'location');
    const digest = header(res, 'docker-content-digest');
    await res.body.dump();
    if (res.status === 201 && (digest === undefined || digest === blob.digest)) return { mounted: true };
    if (res.status === 202 && location)
      return { mounted: false, answer: 'refused', session: new URL(location, res.url) };
    return { mounted: false, answer: 'failed' };
  }

  private async transfer(
    repository: string,
    blob: Descriptor,
    open: BlobSource,
    signal: AbortSignal | undefined,
    session?: URL,
  ): Promise<void> {
    if (this.mode === 'chunked' || (this.mode === 'auto' && this.monolithicRefused)) {
      return this.chunked(repository, blob, open, signal, session);
    }
    try {
      await this.monolithic(repository, blob, open, signal, session);
    } catch (err) {
      if (this.mode !== 'auto' || !isMonolithicRefusal(err)) throw err;
      this.monolithicRefused = true;
      await this.chunked(repository, blob, open, signal);
    }
  }

  private async start(repository: string, blob: Descriptor, signal: AbortSignal | undefined): Promise<URL> {
    const res = await this.transport.send({
      ...(signal && { signal }),
      method: 'POST',
      url: `/v2/${repository}/blobs/uploads/`,
      repository,
      push: true,
      expect: [202],
      kind: 'upload',
      what: `start upload of ${blob.digest} to ${repository}`,
    });
    const location = header(res, 'location');
    await res.body.dump();
    if (!location) {
      throw new RegistryError('REGISTRY_ERROR', `start upload to ${repository}: no Location in the answer`, {
        status: res.status,
      });
    }
    return new URL(location, res.url);
  }

  private async monolithic(
    repository: string,
    blob: Descriptor,
    open: BlobSource,
    signal: AbortSignal | undefined,
    started?: URL,
  ): Promise<void> {
    // The upload session and the download start together: one round trip less on every blob. Until
    // the PUT reads the download, an error on it (a reset) is held here rather than thrown unheard.
    let early: unknown;
    const held = (body: Readable): Readable => body.once('error', (err) => (early ??= err));
    const [session, source] = await Promise.allSettled([
      started ?? this.start(repository, blob, signal),
      open().then(held),
    ]);
    if (session.status === 'rejected') {
      if (source.status === 'fulfilled') source.value.destroy();
      throw session.reason;
    }
    const location = session.value;
    if (source.status === 'rejected' || early !== undefined) {
      if (source.status === 'fulfilled') source.value.destroy();
      await this.cancel(repository, location);
      throw source.status === 'rejected' ? source.reason : early;
    }
    const body = source.value;
    try {
      const res = await this.transport.send({
        ...(signal && { signal }),
        method: 'PUT',
        url: withDigestParam(location, blob.digest),
        repository,
        push: true,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
        body,
        size: blob.size,
        expect: [201],
        kind: 'upload',
        what: `upload of ${blob.digest} to ${repository}`,
      });
      await res.body.dump();
    } catch (err) {
      body.destroy();
      await this.cancel(repository, location);
      throw err;
    }
  }

  private async chunked(
    repository: string,
    blob: Descriptor,
    open: BlobSource,
    signal: AbortSignal | undefined,
    started?: URL,
  ): Promise<void> {
    let location = started ?? (await this.start(repository, blob, signal));
    let source: Readable | undefined;
    try {
      source = await open();
      let offset = 0;
      for await (const chunk of chunks(source, this.chunkBytes)) {
        const res = await this.transport.send({
          ...(signal && { signal }),
          method: 'PATCH',
          url: location.href,
          repository,
          push: true,
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(chunk.length),
            'content-range': `${offset}-${offset + chunk.length - 1}`,
          },
          body: chunk,
          size: chunk.length,
          once: true,
          // The spec says 202; ECR answers some intermediate chunks with 201.
          expect: [201, 202, 204],
          kind: 'upload',
          what: `upload chunk at ${offset} of ${blob.digest} to ${repository}`,
        });
        const next = header(res, 'location');
        await res.body.dump();
        if (next) location = new URL(next, location);
        offset += chunk.length;
      }
      const res = await this.transport.send({
        ...(signal && { signal }),
        method: 'PUT',
        url: withDigestParam(location, blob.digest),
        repository,
        push: true,
        headers: { 'content-type': 'application/octet-stream', 'content-length': '0' },
        expect: [201],
        kind: 'upload',
        what: `complete upload of ${blob.digest} to ${repository}`,
      });
      await res.body.dump();
    } catch (err) {
      source?.destroy();
      await this.cancel(repository, location);
      throw err;
    }
  }

  /** Best effort: an abandoned session would otherwise linger until the registry purges it. */
  private async cancel(repository: string, location: URL): Promise<void> {
    try {
      const res = await this.transport.send({
        signal: AbortSignal.timeout(CANCEL_TIMEOUT_MS),
        method: 'DELETE',
        url: location.href,
        repository,
        push: true,
        once: true,
        expect: [200, 202, 204, 404],
        kind: 'upload',
        what: `cancel upload to ${repository}`,
      });
      await res.body.dump();
    } catch {
      // The upload already failed; that error is the one worth reporting.
    }
  }
}

/** errorFromResponse reads a 413 as a manifest over the limit; during a blob upload it is a refusal. */
function asUploadRefused(err: unknown): unknown {
  if (!(err instanceof RegistryError) || !isMonolithicRefusal(err)) return err;
  return new RegistryError('UPLOAD_REFUSED', err.message, {
    cause: err,
    ...(err.status !== undefined && { status: err.status }),
    ...(err.ociCode !== undefined && { ociCode: err.ociCode }),
  });
}

function withDigestParam(location: URL, digest: string): string {
  const url = new URL(location.href);
  url.searchParams.set('digest', digest);
  return url.href;
}

/** Regroups a stream into chunks of at least `size` bytes (the last may be smaller). */
export async function* chunks(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let length = 0;
  for await (const part of source) {
    parts.push(part);
    length += part.length;
    if (length >= size) {
      yield gather(parts, length);
      parts = [];
      length = 0;
    }
  }
  if (length > 0) yield gather(parts, length);
}

/** One buffer of the parts; they are copied, so download memory among them can go back at once. */
function gather(parts: Buffer[], length: number): Buffer {
  const chunk = Buffer.concat(parts, length);
  for (const part of parts) releaseReadBuffer(part);
  return chunk;
}
