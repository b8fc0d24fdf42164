import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { Descriptor } from '../core/descriptor';
import { parseDigest } from '../core/digest';
import { abortError, MirrorError } from '../errors';

/** Bytes gathered before they are passed on together (see `pump` in http.ts). */
const BATCH_BYTES = 256 * 1024;
/**
 * Nor are bytes held longer than this for a batch: a slow source still feeds the upload steadily,
 * so the destination (or a load balancer before it) never sees a silent upload for long.
 */
const MAX_HOLD_MS = 500;

/**
 * Passes a blob's bytes through while hashing them, and fails the stream when they do not match the
 * descriptor. The last chunk is held back until the check passes, so an upload fed by this stream
 * never receives a complete body with the wrong bytes.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private readonly expected: string;
  private received = 0;
  /** Bytes not yet passed on: network reads are passed on in batches, for fewer and larger writes. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** When the oldest byte in `pending` arrived (performance.now()). */
  private heldSince = 0;

  constructor(
    private readonly blob: Descriptor,
    private readonly onBytes?: (n: number) => void,
    signal?: AbortSignal,
  ) {
    super();
    const { algorithm, hex } = parseDigest(blob.digest);
    this.hash = createHash(algorithm);
    this.expected = hex;
    if (signal) {
      const onAbort = (): void => void this.destroy(abortError(signal, `blob ${blob.digest}`));
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.blob.size) {
      done(
        new MirrorError(
          'SIZE_MISMATCH',
          `blob ${this.blob.digest}: received more than the ${this.blob.size} bytes its descriptor declares`,
        ),
      );
      return;
    }
    this.hash.update(chunk);
    this.onBytes?.(chunk.length);
    // Pass bytes on in batches of at least BATCH_BYTES (or what arrived in MAX_HOLD_MS), pushed in
    // one go (not copied together: the upload writes a batch with one writev), always keeping the
    // latest chunk back: the end of the blob leaves only after the digest has been checked.
    const now = performance.now();
    if (this.pending.length === 0) this.heldSince = now;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (
      this.pendingBytes >= 2 * BATCH_BYTES ||
      (this.pending.length > 1 && now - this.heldSince >= MAX_HOLD_MS)
    ) {
      const last = this.pending.pop()!;
      for (const part of this.pending) this.push(part);
      this.pending = [last];
      this.pendingBytes = last.length;
      this.heldSince = now;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.received !== this.blob.size) {
      // A body that broke off early: a fresh download can succeed.
      done(
        new MirrorError(
          'SIZE_MISMATCH',
          `blob ${this.blob.digest}: received ${this.received} of ${this.blob.size} bytes`,
          { retryable: true },
        ),
      );
      return;
    }
    const actual = this.hash.digest('hex');
    if (actual !== this.expected) {
      done(
        new MirrorError(
          'DIGEST_MISMATCH',
          `blob ${this.blob.digest}: the bytes received hash to ${this.blob.digest.split(':')[0]}:${actual}`,
        ),
      );
      return;
    }
    // Passed on as they are, not copied together: each goes back to its read pool once written.
    for (const part of this.pending) this.push(part);
    this.pending = [];
    done();
  }
}
