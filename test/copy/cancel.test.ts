import { type CopyImageOptions, copyImage } from '../../src/copy/copy-image';
import { parseReference } from '../../src/core/reference';
import { openRegistry } from '../../src/registry/open';
import type { RegistryClient } from '../../src/registry/registry';
import type { RetryPolicy } from '../../src/registry/retry';
import { blobStatus, getManifest, pushImage } from '../support/content';
import { failure } from '../support/failure';
import { type FaultProxy, ociError, type SeenRequest, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';

/**
 * Cancellation: a deadline or a failed part stops the whole copy. Every in-flight request is aborted
 * (the server sees its connection close), nothing new is sent, and no tag is written.
 */

const FAST_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 20, maxDelayMs: 200, maxElapsedMs: 20_000 };
const KB = 1000;

let a: TestRegistry;
let b: TestRegistry;
const proxies: FaultProxy[] = [];
beforeAll(async () => {
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

async function proxyFor(reg: TestRegistry): Promise<FaultProxy> {
  const proxy = await startFaultProxy(reg);
  proxies.push(proxy);
  return proxy;
}

const client = (host: string): RegistryClient =>
  openRegistry(host, { insecure: true, credentials: TEST_CREDS, retry: FAST_RETRY });

/** Copies `repo:v1` from one registry (or proxy) to the same name at another. */
const copy = (from: { host: string }, to: { host: string }, repo: string, options: CopyImageOptions) =>
  copyImage(
    client(from.host),
    parseReference(`${from.host}/${repo}:v1`),
    client(to.host),
    parseReference(`${to.host}/${repo}:v1`),
    options,
  );

const blobGet = (repo: string): RegExp => new RegExp(`^/v2/${repo}/blobs/sha256:`);
const uploads = (repo: string): RegExp => new RegExp(`^/v2/${repo}/blobs/uploads/`);

/** Requests that arrived later than `at` (plus a little for ones already on their way), but DELETEs. */
const sentAfter = (proxy: FaultProxy, at: number): SeenRequest[] =>
  proxy.requests.filter((r) => r.at > at + 100 && r.method !== 'DELETE');

test('a deadline mid-blob aborts every request, sends nothing more, and writes no tag', async () => {
  const repo = 'cancel/deadline';
  const img = await pushImage(a, repo, 'v1', { layers: [200 * KB, 150 * KB, 100 * KB] });
  const source = await proxyFor(a);
  const destination = await proxyFor(b);
  // At 20 KB/s every layer takes seconds: the deadline fires with all of them on their way.
  source.fault({ method: 'GET', path: blobGet(repo), action: { type: 'throttle', bytesPerSecond: 20 * KB } });

  const signal = AbortSignal.timeout(3_000);
  let abortedAt = 0;
  signal.addEventListener('abort', () => {
    abortedAt = Date.now();
  });
  const err = await failure(copy(source, destination, repo, { signal, retry: FAST_RETRY }));

  expect(err.code).toBe('TIMEOUT');
  expect(err.retryable).toBe(true);
  expect(abortedAt).toBeGreaterThan(0);
  const gets = source.seen('GET', blobGet(repo));
  expect(gets).toHaveLength(4); // three layers and the config, all started at once
  const throttled = gets.filter((r) => r.fault === 'throttle' && r.path.includes(img.layers[0]!.digest));
  expect(throttled).toHaveLength(1);
  await source.ended(gets);
  // The layers were cut off: the source saw their connections close before the bodies were sent.
  for (const layer of img.layers) {
    const get = gets.find((r) => r.path.endsWith(layer.digest))!;
    expect(get.aborted).toBe(true);
    expect(get.endedAt).toBeGreaterThanOrEqual(abortedAt);
  }
  // The uploads they fed never completed, and their sessions were cancelled (only the config's went).
  const puts = destination.seen('PUT', uploads(repo));
  await destination.ended(puts);
  expect(puts.filter((r) => r.status === 201)).toHaveLength(1);
  // 404: the registry dropped a session whose upload broke off before our DELETE came.
  const deletes = destination.seen('DELETE', uploads(repo));
  expect(deletes).toHaveLength(3);
  for (const r of deletes) expect([204, 404]).toContain(r.status);

  // Nothing new after the abort: no retry, no manifest, no tag.
  await new Promise((r) => setTimeout(r, 500));
  expect(sentAfter(source, abortedAt)).toEqual([]);
  expect(sentAfter(destination, abortedAt)).toEqual([]);
  expect(destination.seen('PUT', /\/manifests\//)).toEqual([]);
  expect((await getManifest(b, repo, 'v1')).status).toBe(404);
  for (const layer of img.layers) expect(await blobStatus(b, repo, layer.digest)).toBe(404);
});

test('a deadline while uploads stream: the destination sees them cut off and their sessions cancelled', async () => {
  const repo = 'cancel/uploads';
  const img = await pushImage(a, repo, 'v1', { layers: [1_500 * KB, 1_200 * KB] });
  const source = await proxyFor(a);
  const destination = await proxyFor(b);
  source.fault({
    method: 'GET',
    path: blobGet(repo),
    action: { type: 'throttle', bytesPerSecond: 300 * KB },
  });

  // The deadline fires once both layer uploads are streaming (their PUTs have arrived), whenever that is.
  const controller = new AbortController();
  const layerPuts = (): SeenRequest[] =>
    destination
      .seen('PUT', uploads(repo))
      .filter((r) => r.headers['content-length'] !== String(img.config.size));
  const watch = setInterval(() => {
    if (layerPuts().length < 2) return;
    clearInterval(watch);
    controller.abort(new DOMException('the deadline passed', 'TimeoutError'));
  }, 20);
  const err = await failure(
    copy(source, destination, repo, { signal: controller.signal, retry: FAST_RETRY }),
  ).finally(() => clearInterval(watch));

  expect(err.code).toBe('TIMEOUT');
  expect(err.message).toMatch(/the deadline passed/);
  const puts = layerPuts();
  expect(puts).toHaveLength(2);
  await destination.ended(puts);
  for (const put of puts) expect(put.aborted).toBe(true);
  const sessions = puts.map((r) => new URL(r.path, 'http://x').pathname).sort();
  const deleted = destination.seen('DELETE', uploads(repo)).map((r) => new URL(r.path, 'http://x').pathname);
  expect(deleted.sort()).toEqual(sessions);
  for (const layer of img.layers) expect(await blobStatus(b, repo, layer.digest)).toBe(404);
  expect((await getManifest(b, repo, 'v1')).status).toBe(404);
});

test('a blob that fails stops its siblings: in-flight ones aborted, queued ones never started', async () => {
  const repo = 'cancel/sibling';
  // Largest first, two at a time: the slow layer and the failing one start; the rest wait.
  const img = await pushImage(a, repo, 'v1', { layers: [300 * KB, 200 * KB, 100 * KB, 50 * KB] });
  const [slow, failing, queued1, queued2] = img.layers as [
    (typeof img.layers)[0],
    (typeof img.layers)[0],
    (typeof img.layers)[0],
    (typeof img.layers)[0],
  ];
  const source = await proxyFor(a);
  source.fault({
    method: 'GET',
    path: new RegExp(`/blobs/${slow.digest}$`),
    action: { type: 'throttle', bytesPerSecond: 20 * KB },
  });
  source.fault({
    method: 'GET',
    path: new RegExp(`/blobs/${failing.digest}$`),
    action: { type: 'status', status: 403, body: ociError('DENIED', 'not for you') },
  });
  // The referrer lookups that run beside the blobs hang: the failure must stop them too.
  const stalled = source.fault({ method: 'HEAD', path: /\/manifests\/sha256-/, action: { type: 'stall' } });

  const err = await failure(copy(source, b, repo, { concurrency: 2, retry: FAST_RETRY }));

  expect(err.code).toBe('DENIED'); // the first failure, not the cancellations it caused
  const gets = source.seen('GET', blobGet(repo));
  expect(gets.map((r) => r.path.split('/').pop()).sort()).toEqual([slow.digest, failing.digest].sort());
  for (const digest of [queued1.digest, queued2.digest, img.config.digest]) {
    expect(source.requests.some((r) => r.path.includes(digest))).toBe(false);
  }
  const lookups = source.seen('HEAD', /\/manifests\/sha256-/);
  expect(stalled.fired).toBeGreaterThan(0);
  await source.ended([...gets, ...lookups]);
  expect(gets.find((r) => r.path.endsWith(slow.digest))?.aborted).toBe(true);
  for (const lookup of lookups) expect(lookup.aborted).toBe(true);
  expect((await getManifest(b, repo, 'v1')).status).toBe(404);
});

test('a signal aborted before the copy starts sends nothing', async () => {
  const source = await proxyFor(a);
  const controller = new AbortController();
  controller.abort();
  const err = await failure(copy(source, b, 'cancel/none', { signal: controller.signal }));
  expect(err.code).toBe('CANCELLED');
  expect(err.retryable).toBe(false);
  expect(source.requests).toEqual([]);
});
