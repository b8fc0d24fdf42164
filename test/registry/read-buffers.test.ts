import {
  freeReadBufferCount,
  poisonReleasedReadBuffers,
  ReadBuffers,
  releaseReadBuffer,
} from '../../src/registry/read-buffers';

/** Simulates one socket read of `bytes` into the memory `next()` offers. */
function read(reader: ReadBuffers, bytes: string): Buffer {
  const target = reader.next();
  target.write(bytes, 'latin1');
  return reader.filled(bytes.length);
}

test('reads fill one slab one after the other, as views of it', () => {
  const reader = new ReadBuffers();
  const first = read(reader, 'abc');
  const second = read(reader, 'defg');
  expect(first.buffer).toBe(second.buffer);
  expect(second.byteOffset).toBe(first.byteOffset + 3);
  expect(first.toString()).toBe('abc');
  expect(second.toString()).toBe('defg');
  reader.close();
});

test('a slab is used again only when its reader is done and every retained view is released', () => {
  const reader = new ReadBuffers();
  const a = reader.retain(read(reader, 'aaaa'));
  const b = reader.retain(read(reader, 'bbbb'));
  const before = freeReadBufferCount();

  releaseReadBuffer(a);
  reader.close();
  // b is still out: the slab must not come back, or the next download would overwrite it.
  expect(freeReadBufferCount()).toBe(before);
  expect(b.toString()).toBe('bbbb');

  releaseReadBuffer(b);
  expect(freeReadBufferCount()).toBe(before + 1);

  // The next reader takes the returned slab and starts at its beginning.
  const next = new ReadBuffers();
  const c = read(next, 'cc');
  expect(c.buffer).toBe(a.buffer);
  expect(c.byteOffset).toBe(0);
  next.close();
});

test('releasing twice, or a buffer from elsewhere, changes nothing', () => {
  const reader = new ReadBuffers();
  const a = reader.retain(read(reader, 'aaaa'));
  const b = reader.retain(read(reader, 'bbbb'));
  reader.close();
  const before = freeReadBufferCount();
  releaseReadBuffer(Buffer.from('not pooled'));
  releaseReadBuffer(a);
  releaseReadBuffer(a); // must not count for b
  expect(freeReadBufferCount()).toBe(before);
  expect(b.toString()).toBe('bbbb');
  releaseReadBuffer(b);
  expect(freeReadBufferCount()).toBe(before + 1);
});

test('a slab nearly full is retired, and a new one takes the next read', () => {
  const reader = new ReadBuffers();
  const big = 'x'.repeat(240 * 1024);
  const first = reader.retain(read(reader, big));
  const second = read(reader, 'y');
  expect(second.buffer).not.toBe(first.buffer);
  expect(first.toString('latin1')).toBe(big);
  reader.close();
  releaseReadBuffer(first);
});

test('with poisoning on (as in all tests), released memory is overwritten', () => {
  poisonReleasedReadBuffers(true);
  const reader = new ReadBuffers();
  const view = reader.retain(read(reader, 'secret'));
  const alias = Buffer.from(view.buffer, view.byteOffset, view.length);
  reader.close();
  releaseReadBuffer(view);
  expect(alias.toString('latin1')).not.toBe('secret');
  expect(alias[0]).toBe(0xa5);
});
