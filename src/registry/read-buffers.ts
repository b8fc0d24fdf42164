/**
 * Memory for blob downloads that is used again once its bytes have been written out.
 *
 * A socket that reads into fresh memory each time costs a 64 KiB allocation, its page faults and an
 * ArrayBuffer for the garbage collector per read; at blob rates that was more CPU than hashing
 * (bench/README.md). Downloads here read into slabs instead (`net.Socket`'s `onread`): each read
 * fills the slab from where the last one stopped, the bytes go downstream as views of it, and the
 * slab is used again only when every view has been handed back with `releaseReadBuffer`, which the
 * upload calls once the socket has taken the bytes. A view that is never handed back (a body read
 * into a string, a chunk copied elsewhere) simply keeps its slab out of the pool until the garbage
 * collector frees it: forgetting to release costs memory, never correctness.
 */

const SLAB_BYTES = 256 * 1024;
/** A slab with less room than this left is retired for the next read: no tiny reads. */
const MIN_READ_BYTES = 32 * 1024;
/** Free slabs kept for reuse (8 MiB); more than that are left to the garbage collector. */
const MAX_FREE_SLABS = 32;

interface Slab {
  memory: Buffer;
  /** Where the next read goes. */
  cursor: number;
  /** Views handed downstream and not yet released. */
  views: number;
  /** A socket may still read into it. */
  reading: boolean;
}

const slabs = new WeakMap<ArrayBufferLike, Slab>();
/** Views given out and not yet released: a second release of one is ignored, not counted. */
const outstanding = new WeakSet<Buffer>();
const free: Slab[] = [];
let poison = false;

function newSlab(): Slab {
  const slab: Slab = { memory: Buffer.allocUnsafeSlow(SLAB_BYTES), cursor: 0, views: 0, reading: false };
  slabs.set(slab.memory.buffer, slab);
  return slab;
}

function retire(slab: Slab): void {
  if (slab.reading || slab.views > 0) return;
  slab.cursor = 0;
  // Tests fill returned memory with garbage: a view still in use after its release would then
  // corrupt a blob, and the digest checks downstream would fail the copy.
  if (poison) slab.memory.fill(0xa5);
  if (free.length < MAX_FREE_SLABS) free.push(slab);
}

/** The read memory of one socket: where its next read goes, and views of what it read. */
export class ReadBuffers {
  private slab: Slab | undefined;

  /** Memory for the next read (the `onread.buffer` function of a socket). */
  next(): Buffer {
    let slab = this.slab;
    if (!slab || SLAB_BYTES - slab.cursor < MIN_READ_BYTES) {
      this.close();
      slab = free.pop() ?? newSlab();
      slab.reading = true;
      this.slab = slab;
    }
    return slab.memory.subarray(slab.cursor);
  }

  /** Records that `n` bytes were read into the memory `next()` gave; returns them. */
  filled(n: number): Buffer {
    const slab = this.slab!;
    const bytes = slab.memory.subarray(slab.cursor, slab.cursor + n);
    slab.cursor += n;
    return bytes;
  }

  /** Marks a view as handed downstream: its slab stays out of the pool until it is released. */
  retain(view: Buffer): Buffer {
    const slab = slabs.get(view.buffer);
    if (slab && !outstanding.has(view)) {
      outstanding.add(view);
      slab.views++;
    }
    return view;
  }

  /** The socket is done reading: its last slab goes back once its views are released. */
  close(): void {
    const slab = this.slab;
    if (!slab) return;
    this.slab = undefined;
    slab.reading = false;
    retire(slab);
  }
}

/**
 * Hands back a view that `ReadBuffers.retain` gave out, once nothing will read it again (the upload
 * calls it when the socket has taken the bytes). Any other buffer is ignored.
 */
export function releaseReadBuffer(view: Buffer): void {
  if (!outstanding.delete(view)) return;
  const slab = slabs.get(view.buffer)!;
  slab.views--;
  retire(slab);
}

/** For tests: fill released memory with garbage, so that a use after release shows as corruption. */
export function poisonReleasedReadBuffers(on: boolean): void {
  poison = on;
}

/** For tests: slabs waiting in the pool. */
export function freeReadBufferCount(): number {
  return free.length;
}
