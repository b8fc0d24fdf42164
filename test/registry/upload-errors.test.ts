import { Readable } from 'node:stream';
import { MirrorError } from '../../src/errors';
import { HttpRegistry } from '../../src/registry/http-registry';
import { failure } from '../support/failure';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startRegistry();
});
afterAll(async () => {
  await reg?.stop();
});

test('a download that fails while the upload is being set up fails the upload with its own cause, at once', async () => {
  // Every request waits for its credentials a while (a token being fetched): the download breaks in
  // the gap after the upload session opened and before the PUT takes its body.
  const slowCredentials = async () => {
    await new Promise((r) => setTimeout(r, 200));
    return TEST_CREDS;
  };
  const registry = new HttpRegistry({
    host: reg.host,
    baseUrl: reg.url,
    credentials: slowCredentials,
    preemptiveBasic: true,
    timeouts: { connectMs: 1_000, headersMs: 10_000, bodyMs: 10_000 },
    retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1, maxElapsedMs: 100 },
  });
  const broken = new MirrorError('NETWORK', 'GET blob from the source: connection reset', {
    retryable: true,
  });
  const open = async () => {
    const body = new Readable({ read() {} });
    setTimeout(() => body.destroy(broken), 300);
    return body;
  };
  const started = Date.now();
  const err = await failure(
    registry.putBlob(
      'team/app',
      { mediaType: 'application/octet-stream', digest: `sha256:${'a'.repeat(64)}`, size: 10 },
      open,
    ),
  );
  // The real cause, not a BODY_TIMEOUT ten seconds later.
  expect(err.message).toContain('connection reset');
  expect(Date.now() - started).toBeLessThan(3_000);
});
