import { inspect } from 'node:util';
import { copyImage } from '../../src/copy/copy-image';
import { parseReference } from '../../src/core/reference';
import { MirrorError } from '../../src/errors';
import { openRegistry } from '../../src/registry/open';
import type { RegistryClient } from '../../src/registry/registry';
import type { RetryPolicy } from '../../src/registry/retry';
import type { Timeouts } from '../../src/registry/transport';
import type { UploadMode } from '../../src/registry/upload';
import {
  type BuiltImage,
  blobStatus,
  getBlob,
  getManifest,
  pushImage,
  pushManifest,
  sha256,
} from '../support/content';
import { type FaultProxy, ociError, type SeenRequest, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_CREDS, TEST_PASSWORD, TEST_USER, type TestRegistry } from '../support/registry';

/**
 * Fault injection: a proxy in front of a real registry breaks requests the way registries and networks
 * do, and the copy must either get through with the same bytes or fail with the right typed error.
 */

const FAST_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 20, maxDelayMs: 2_000, maxElapsedMs: 20_000 };
const TIMEOUTS: Partial<Timeouts> = { connectMs: 2_000, headersMs: 10_000, bodyMs: 10_000 };
const MiB = 1024 * 1024;
const BASIC = Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64');

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

interface ClientOptions {
  retry?: RetryPolicy;
  timeouts?: Partial<Timeouts>;
  uploadMode?: UploadMode;
  chunkBytes?: number;
}

function client(host: string, options: ClientOptions = {}): RegistryClient {
  return openRegistry(host, {
    insecure: true,
    credentials: TEST_CREDS,
    retry: options.retry ?? FAST_RETRY,
    timeouts: { ...TIMEOUTS, ...options.timeouts },
    ...(options.uploadMode && { uploadMode: options.uploadMode }),
    ...(options.chunkBytes && { chunkBytes: options.chunkBytes }),
  });
}

/** Copies `repo:tag` from one host to another (to `to.repo:to.tag`, by default the same) through the clients. */
function copy(
  src: RegistryClient,
  dst: RegistryClient,
  repo: string,
  tag = 'v1',
  to: { repo?: string; tag?: string } = {},
) {
  return copyImage(
    src,
    parseReference(`${src.host}/${repo}:${tag}`),
    dst,
    parseReference(`${dst.host}/${to.repo ?? repo}:${to.tag ?? tag}`),
    { retry: FAST_RETRY },
  );
}

/**
 * B holds the image under `repo:tag`: the manifest's exact bytes, and every blob hashing to its digest
 * (the digest of bytes pushed to A, so the same bytes).
 */
async function expectIdentical(img: BuiltImage, repo: string, tag = 'v1'): Promise<void> {
  const got = await getManifest(b, repo, tag);
  expect(got.status).toBe(200);
  expect(got.bytes.equals(img.bytes)).toBe(true);
  for (const blob of [img.config, ...img.layers]) {
    const bytes = await getBlob(b, repo, blob.digest);
    expect(bytes.length).toBe(blob.size);
    expect(sha256(bytes)).toBe(blob.digest);
  }
}

async function copyError(run: Promise<unknown>): Promise<MirrorError> {
  const err = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MirrorError);
  expectNoCredential(err);
  return err as MirrorError;
}

/** Neither the password nor the Basic header value shows in any rendering of the error or its causes. */
function expectNoCredential(err: unknown): void {
  const renderings = [
    (err as Error).message,
    String(err),
    JSON.stringify(err),
    inspect(err, { depth: 10, showHidden: true }),
  ];
  for (const text of renderings) {
    expect(text).not.toContain(TEST_PASSWORD);
    expect(text).not.toContain(BASIC);
  }
}

const blobPath = (repo: string, digest: string): RegExp => new RegExp(`^/v2/${repo}/blobs/${digest}$`);
const manifestPath = (repo: string): RegExp => new RegExp(`^/v2/${repo}/manifests/`);
const uploadsPath = (repo: string): RegExp => new RegExp(`^/v2/${repo}/blobs/uploads/`);

/** Milliseconds between the first two requests in `seen`. */
function gap(seen: SeenRequest[]): number {
  expect(seen.length).toBeGreaterThanOrEqual(2);
  return seen[1]!.at - seen[0]!.at;
}

describe('throttling and server errors', () => {
  test('429 with Retry-After on a manifest GET: waits, retries, copies', async () => {
    const repo = 'throttle-manifest';
    const img = await pushImage(a, repo, 'v1', { layers: [2000] });
    const proxy = await proxyFor(a);
    const fault = proxy.fault({
      method: 'GET',
      path: manifestPath(repo),
      times: 1,
      action: {
        type: 'status',
        status: 429,
        headers: { 'retry-after': '1' },
        body: ociError('TOOMANYREQUESTS', 'slow down'),
      },
    });

    await copy(client(proxy.host), client(b.host), repo);

    expect(fault.fired).toBe(1);
    const gets = proxy.seen('GET', manifestPath(repo));
    expect(gets[0]!.status).toBe(429);
    expect(gets[1]!.path).toBe(gets[0]!.path);
    expect(gets[1]!.status).toBe(200);
    expect(gap(gets)).toBeGreaterThanOrEqual(900);
    await expectIdentical(img, repo);
  });

  test('429 with Retry-After on a blob GET: waits, retries, copies', async () => {
    const repo = 'throttle-blob';
    const img = await pushImage(a, repo, 'v1', { layers: [3000] });
    const layer = img.layers[0]!;
    const proxy = await proxyFor(a);
    const fault = proxy.fault({
      method: 'GET',
      path: blobPath(repo, layer.digest),
      times: 1,
      action: {
        type: 'status',
        status: 429,
        headers: { 'retry-after': '1' },
        body: ociError('TOOMANYREQUESTS', 'slow down'),
      },
    });

    await copy(client(proxy.host), client(b.host), repo);

    expect(fault.fired).toBe(1);
    const gets = proxy.seen('GET', blobPath(repo, layer.digest));
    expect(gets.map((r) => r.status)).toEqual([429, 200]);
    expect(gap(gets)).toBeGreaterThanOrEqual(900);
    await expectIdentical(img, repo);
  });

  test.each([500, 503])(
    '%i on a blob HEAD and an upload POST at the destination: retried, copied',
    async (status) => {
      const repo = `server-error-${status}`;
      const img = await pushImage(a, repo, 'v1', { layers: [1500, 2500] });
      const proxy = await proxyFor(b);
      const head = proxy.fault({
        method: 'HEAD',
        path: new RegExp(`^/v2/${repo}/blobs/sha256:`),
        times: 1,
        action: { type: 'status', status },
      });
      const post = proxy.fault({
        method: 'POST',
        path: uploadsPath(repo),
        times: 1,
        action: { type: 'status', status, body: ociError('UNAVAILABLE', 'try later') },
      });

      const summary = await copy(client(a.host), client(proxy.host), repo);

      expect([head.fired, post.fired]).toEqual([1, 1]);
      expect(summary.blobs.copied).toBe(3);
      const heads = proxy.seen('HEAD', new RegExp(`^/v2/${repo}/blobs/`));
      const failed = heads.find((r) => r.status === status)!;
      expect(heads.filter((r) => r.path === failed.path && r.status === 404)).toHaveLength(1);
      // One POST per blob, plus the one that failed.
      const posts = proxy.seen('POST', uploadsPath(repo)).map((r) => r.status);
      expect(posts.sort()).toEqual([202, 202, 202, status]);
      await expectIdentical(img, repo);
    },
  );
});

describe('broken bodies', () => {
  test('the source blob breaks while the destination is still opening the upload: retried, copied', async () => {
    const repo = 'broken-early';
    const img = await pushImage(a, repo, 'v1', { layers: [1 * MiB] });
    const layer = img.layers[0]!;
    const source = await proxyFor(a);
    const destination = await proxyFor(b);
    source.fault({
      method: 'GET',
      path: blobPath(repo, layer.digest),
      times: 1,
      action: { type: 'reset', afterBytes: 1000 },
    });
    // The download starts with the upload session, so the break arrives before anything reads it.
    destination.fault({ method: 'POST', path: uploadsPath(repo), action: { type: 'delay', ms: 300 } });

    await copy(client(source.host), client(destination.host), repo);

    const gets = source.seen('GET', blobPath(repo, layer.digest));
    expect(gets.map((r) => r.status)).toEqual([200, 200]);
    const firstPost = destination.seen('POST', uploadsPath(repo))[0]!;
    expect(gets[0]!.at - firstPost.at).toBeLessThan(300);
    await expectIdentical(img, repo);
  });

  test.each([
    ['reset', 'connection reset mid-blob'],
    ['truncate', 'body truncated before its Content-Length'],
  ] as const)('%s: %s on the source blob GET is retried, bytes identical', async (type, _what) => {
    const repo = `broken-${type}`;
    const img = await pushImage(a, repo, 'v1', { layers: [1 * MiB] });
    const layer = img.layers[0]!;
    const proxy = await proxyFor(a);
    const fault = proxy.fault({
      method: 'GET',
      path: blobPath(repo, layer.digest),
      times: 1,
      action: { type, afterBytes: 300_000 },
    });

    await copy(client(proxy.host), client(b.host), repo);

    expect(fault.fired).toBe(1);
    expect(proxy.seen('GET', blobPath(repo, layer.digest)).map((r) => r.fault)).toEqual([type, undefined]);
    await expectIdentical(img, repo);
  });

  test.each(['reset', 'truncate'] as const)(
    '%s mid-manifest on the source manifest GET is retried',
    async (type) => {
      const repo = `broken-manifest-${type}`;
      const img = await pushImage(a, repo, 'v1', { layers: [1000] });
      const proxy = await proxyFor(a);
      const fault = proxy.fault({
        method: 'GET',
        path: manifestPath(repo),
        times: 1,
        action: { type, afterBytes: 100 },
      });

      await copy(client(proxy.host), client(b.host), repo);

      expect(fault.fired).toBe(1);
      expect(proxy.seen('GET', manifestPath(repo)).map((r) => r.fault)).toEqual([type, undefined]);
      await expectIdentical(img, repo);
    },
  );

  test('truncated tag list: listTags retries and returns every tag', async () => {
    const repo = 'broken-tags';
    const img = await pushImage(a, repo, 'v1', { layers: [1000] });
    await pushManifest(a, repo, 'v2', img.bytes, img.manifest.mediaType);
    const proxy = await proxyFor(a);
    const fault = proxy.fault({
      method: 'GET',
      path: new RegExp(`^/v2/${repo}/tags/list`),
      times: 1,
      action: { type: 'truncate', afterBytes: 10 },
    });

    const tags = await client(proxy.host).listTags(repo);

    expect(fault.fired).toBe(1);
    expect(tags.sort()).toEqual(['v1', 'v2']);
  });

  test('corrupted bytes on every source blob GET: DIGEST_MISMATCH, nothing tagged or stored', async () => {
    const repo = 'corrupt';
    const img = await pushImage(a, repo, 'v1', { layers: [200_000] });
    const layer = img.layers[0]!;
    const proxy = await proxyFor(a);
    const fault = proxy.fault({
      method: 'GET',
      path: blobPath(repo, layer.digest),
      action: { type: 'corrupt' },
    });

    const err = await copyError(copy(client(proxy.host), client(b.host), repo));

    expect(err.code).toBe('DIGEST_MISMATCH');
    expect(err.retryable).toBe(false);
    expect(fault.fired).toBeGreaterThanOrEqual(1);
    expect((await getManifest(b, repo, 'v1')).status).toBe(404);
    expect((await getManifest(b, repo, img.manifest.digest)).status).toBe(404);
    expect(await blobStatus(b, repo, layer.digest)).toBe(404);
  });
});

test('redirected blob GET: followed, and the other host gets no Authorization', async () => {
  const repo = 'redirect';
  const img = await pushImage(a, repo, 'v1', { layers: [50_000, 70_000] });
  const proxy = await proxyFor(a);
  proxy.fault({
    method: 'GET',
    path: new RegExp(`^/v2/${repo}/blobs/sha256:`),
    action: { type: 'redirect' },
  });

  await copy(client(proxy.host), client(b.host), repo);

  const original = proxy.seen('GET', new RegExp(`^/v2/${repo}/blobs/`));
  expect(original).toHaveLength(3);
  // The registry itself did get credentials, so the check below is not vacuous.
  for (const r of original) expect(r.headers.authorization).toBe(`Basic ${BASIC}`);
  expect(proxy.redirected.map((r) => new URL(r.path, 'http://x').pathname).sort()).toEqual(
    original.map((r) => r.path).sort(),
  );
  for (const r of proxy.redirected) {
    expect(r.headers.authorization).toBeUndefined();
    expect(r.status).toBe(200);
  }
  await expectIdentical(img, repo);
});

describe('stalled responses', () => {
  test.each([
    ['manifest', (repo: string) => manifestPath(repo)],
    ['blob', (repo: string) => new RegExp(`^/v2/${repo}/blobs/sha256:`)],
  ] as const)('the first %s request never answers: timed out, retried, copied', async (kind, path) => {
    const repo = `stall-${kind}`;
    const img = await pushImage(a, repo, 'v1', { layers: [4000] });
    const proxy = await proxyFor(a);
    const fault = proxy.fault({
      method: kind === 'blob' ? 'GET' : 'HEAD',
      path: path(repo),
      times: 1,
      action: { type: 'stall' },
    });

    // undici checks headers timeouts on a ~0.5 s tick, so this one fires after about a second.
    await copy(client(proxy.host, { timeouts: { headersMs: 400 } }), client(b.host), repo);

    expect(fault.fired).toBe(1);
    const stalled = proxy.requests.find((r) => r.fault === 'stall')!;
    expect(stalled.status).toBeUndefined();
    const again = proxy.requests.filter((r) => r.method === stalled.method && r.path === stalled.path);
    expect(again.length).toBeGreaterThanOrEqual(2);
    expect(again[1]!.at - stalled.at).toBeGreaterThanOrEqual(350);
    await expectIdentical(img, repo);
  });
});

describe('chunked upload fallback', () => {
  interface Range {
    start: number;
    end: number;
    length: number;
  }

  /** PATCHes of the upload session that ended in the PUT `?digest=` of `digest`, in order. */
  function patchesFor(proxy: FaultProxy, repo: string, digest: string): Range[] {
    const finish = proxy
      .seen('PUT', uploadsPath(repo))
      .find((r) => r.status === 201 && new URL(r.path, 'http://x').searchParams.get('digest') === digest);
    expect(finish).toBeDefined();
    expect(finish!.headers['content-length']).toBe('0');
    const session = new URL(finish!.path, 'http://x').pathname;
    return proxy
      .seen('PATCH', uploadsPath(repo))
      .filter((r) => new URL(r.path, 'http://x').pathname === session)
      .map((r) => {
        const m = /^(\d+)-(\d+)$/.exec(String(r.headers['content-range']));
        expect(m).not.toBeNull();
        return { start: Number(m![1]), end: Number(m![2]), length: Number(r.headers['content-length']) };
      });
  }

  function expectContiguous(ranges: Range[], size: number, chunkBytes: number): void {
    expect(ranges[0]?.start).toBe(0);
    ranges.forEach((r, i) => {
      expect(r.length).toBe(r.end - r.start + 1);
      if (i > 0) expect(r.start).toBe(ranges[i - 1]!.end + 1);
      if (i < ranges.length - 1) expect(r.length).toBeGreaterThanOrEqual(chunkBytes);
    });
    expect(ranges.at(-1)?.end).toBe(size - 1);
  }

  const chunkBytes = 5 * MiB;
  const size = 12 * MiB + 12345;
  let img: BuiltImage;
  beforeAll(async () => {
    img = await pushImage(a, 'chunked', 'v1', { layers: [size] });
  });

  test.each([
    ['PUT with a body refused (413)', 'auto', 202],
    ['PUT refused and PATCH answered 201, as ECR does', 'auto', 201],
    ['chunked upload forced', 'chunked', 202],
  ] as const)('%s: contiguous >= 5 MiB chunks, identical image', async (_name, uploadMode, patchStatus) => {
    const repo = `chunked-${uploadMode}-${patchStatus}`;
    const layer = img.layers[0]!;
    const proxy = await proxyFor(b);
    const refusal = proxy.fault({
      method: 'PUT',
      path: uploadsPath(repo),
      when: (r) => Number(r.headers['content-length'] ?? 0) > 0,
      action: { type: 'status', status: 413, body: ociError('SIZE_INVALID', 'use chunks') },
    });
    if (patchStatus === 201) {
      proxy.fault({
        method: 'PATCH',
        path: uploadsPath(repo),
        action: { type: 'rewriteStatus', from: 202, to: 201 },
      });
    }

    await copy(client(a.host), client(proxy.host, { uploadMode, chunkBytes }), 'chunked', 'v1', { repo });

    const ranges = patchesFor(proxy, repo, layer.digest);
    expect(ranges.length).toBe(3);
    expectContiguous(ranges, size, chunkBytes);
    expectContiguous(patchesFor(proxy, repo, img.config.digest), img.config.size, chunkBytes);
    const patches = proxy.seen('PATCH', uploadsPath(repo));
    expect(patches).toHaveLength(4);
    for (const r of patches) expect(r.status).toBe(patchStatus);
    if (uploadMode === 'chunked') expect(refusal.fired).toBe(0);
    else expect(refusal.fired).toBeGreaterThanOrEqual(1);
    await expectIdentical(img, repo);
  });
});

describe('refused pushes', () => {
  test('immutable tag: an identical re-run is a no-op, a different image fails with TAG_IMMUTABLE', async () => {
    const repo = 'immutable';
    const first = await pushImage(a, repo, 'v1', { layers: [1000] });
    const other = await pushImage(a, repo, 'v2', { layers: [1200] });
    await copy(client(a.host), client(b.host), repo);
    await expectIdentical(first, repo);

    const proxy = await proxyFor(b);
    const refusal = proxy.fault({
      method: 'PUT',
      path: new RegExp(`^/v2/${repo}/manifests/(?!sha256:)[^/]+$`),
      action: {
        type: 'status',
        status: 400,
        body: ociError(
          'TAG_INVALID',
          "The image tag 'v1' already exists in the 'immutable' repository and cannot be overwritten because the tag is immutable.",
        ),
      },
    });

    const again = await copy(client(a.host), client(proxy.host), repo);
    expect(again.upToDate).toBe(true);
    expect(again.digest).toBe(first.manifest.digest);
    expect(proxy.requests.length).toBeGreaterThan(0);
    expect(proxy.requests.filter((r) => r.method === 'PUT')).toEqual([]);
    expect(proxy.requests.filter((r) => r.path.includes('/blobs/'))).toEqual([]);

    const err = await copyError(copy(client(a.host), client(proxy.host), repo, 'v2', { tag: 'v1' }));
    expect(err.code).toBe('TAG_IMMUTABLE');
    expect(err.retryable).toBe(false);
    expect(refusal.fired).toBe(1);
    expect((await getManifest(b, repo, 'v1')).digest).toBe(first.manifest.digest);
    expect((await getManifest(b, repo, other.manifest.digest)).status).toBe(404);
  });

  test('413 on both the blob PUT and the PATCH chunks: UPLOAD_REFUSED (not a manifest too large)', async () => {
    const repo = 'upload-refused';
    const img = await pushImage(a, repo, 'v1', { layers: [6 * MiB] });
    const proxy = await proxyFor(b);
    const tooLarge = {
      type: 'status',
      status: 413,
      body: ociError('SIZE_INVALID', 'body too large'),
    } as const;
    proxy.fault({
      method: 'PUT',
      path: uploadsPath(repo),
      when: (r) => Number(r.headers['content-length'] ?? 0) > 0,
      action: tooLarge,
    });
    const patch = proxy.fault({ method: 'PATCH', path: uploadsPath(repo), action: tooLarge });

    const err = await copyError(copy(client(a.host), client(proxy.host, { chunkBytes: 5 * MiB }), repo));

    expect(err.code).toBe('UPLOAD_REFUSED');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/HTTP 413/);
    expect(patch.fired).toBeGreaterThanOrEqual(1);
    expect((await getManifest(b, repo, 'v1')).status).toBe(404);
    expect(await blobStatus(b, repo, img.layers[0]!.digest)).toBe(404);
  });

  test('403 DENIED on the manifest PUT: DENIED, not retryable, nothing tagged', async () => {
    const repo = 'denied';
    const img = await pushImage(a, repo, 'v1', { layers: [1000] });
    const proxy = await proxyFor(b);
    const refusal = proxy.fault({
      method: 'PUT',
      path: manifestPath(repo),
      action: {
        type: 'status',
        status: 403,
        body: ociError('DENIED', 'requested access to the resource is denied'),
      },
    });

    const err = await copyError(copy(client(a.host), client(proxy.host), repo));

    expect(err.code).toBe('DENIED');
    expect(err.retryable).toBe(false);
    expect(refusal.fired).toBe(1);
    expect((await getManifest(b, repo, 'v1')).status).toBe(404);
    expect((await getManifest(b, repo, img.manifest.digest)).status).toBe(404);
  });
});

describe('faults that outlast the retries', () => {
  test('503 on every blob GET: fails retryable after the policy attempts, no credential shown', async () => {
    const repo = 'always-503';
    const img = await pushImage(a, repo, 'v1', { layers: [1000] });
    const layer = img.layers[0]!;
    const proxy = await proxyFor(a);
    proxy.fault({
      method: 'GET',
      path: blobPath(repo, layer.digest),
      action: { type: 'status', status: 503 },
    });

    const err = await copyError(copy(client(proxy.host), client(b.host), repo));

    expect(err.code).toBe('REGISTRY_ERROR');
    expect(err.retryable).toBe(true);
    expect((await getManifest(b, repo, 'v1')).status).toBe(404);
  });

  test('every manifest request stalls: TIMEOUT, no credential shown', async () => {
    const repo = 'always-stall';
    await pushImage(a, repo, 'v1', { layers: [1000] });
    const proxy = await proxyFor(a);
    for (const method of ['HEAD', 'GET']) {
      proxy.fault({ method, path: manifestPath(repo), action: { type: 'stall' } });
    }

    const retry = { ...FAST_RETRY, attempts: 2 };
    const source = client(proxy.host, { retry, timeouts: { headersMs: 200 } });
    const err = await copyError(copy(source, client(b.host), repo));

    expect(err.code).toBe('TIMEOUT');
    expect(err.retryable).toBe(true);
    // The copy resolves the tag with one GET (referrers need the manifest anyway), tried twice.
    expect(proxy.seen('GET', manifestPath(repo))).toHaveLength(retry.attempts);
    expect(proxy.seen('HEAD', manifestPath(repo))).toHaveLength(0);
  });

  test('every blob GET resets mid-body: NETWORK error, no credential shown, nothing tagged', async () => {
    const repo = 'always-reset';
    const img = await pushImage(a, repo, 'v1', { layers: [500_000] });
    const layer = img.layers[0]!;
    const proxy = await proxyFor(a);
    proxy.fault({
      method: 'GET',
      path: blobPath(repo, layer.digest),
      action: { type: 'reset', afterBytes: 100_000 },
    });

    const err = await copyError(copy(client(proxy.host), client(b.host), repo));

    expect(err.code).toBe('NETWORK');
    expect(err.retryable).toBe(true);
    expect((await getManifest(b, repo, 'v1')).status).toBe(404);
    expect(await blobStatus(b, repo, layer.digest)).toBe(404);
  });
});
