import { inspect } from 'node:util';
import { copyImage } from '../../src/copy/copy-image';
import { MAX_INDEX_DEPTH } from '../../src/core/manifest';
import { MediaType } from '../../src/core/media-types';
import { parseReference } from '../../src/core/reference';
import type { MirrorError } from '../../src/errors';
import { openRegistry } from '../../src/registry/open';
import type { RegistryClient } from '../../src/registry/registry';
import type { RetryPolicy } from '../../src/registry/retry';
import type { Timeouts } from '../../src/registry/transport';
import { getManifest, pushImage, pushIndex } from '../support/content';
import { failure } from '../support/failure';
import { type FaultProxy, type FaultRule, ociError, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_CREDS, TEST_PASSWORD, type TestRegistry } from '../support/registry';

/**
 * Registries that misbehave on purpose (issue 10): answers that never end, that trickle, that stall.
 * Each must fail fast and clearly, or work.
 */

const FAST_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 20, maxDelayMs: 200, maxElapsedMs: 20_000 };

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

async function proxyFor(reg: TestRegistry, ...rules: FaultRule[]): Promise<FaultProxy> {
  const proxy = await startFaultProxy(reg);
  proxies.push(proxy);
  for (const rule of rules) proxy.fault(rule);
  return proxy;
}

function client(host: string, timeouts: Partial<Timeouts> = {}): RegistryClient {
  return openRegistry(host, { insecure: true, credentials: TEST_CREDS, retry: FAST_RETRY, timeouts });
}

/** Copies `repo:v1` between two hosts. */
const copy = (from: RegistryClient, to: RegistryClient, repo: string) =>
  copyImage(from, parseReference(`${from.host}/${repo}:v1`), to, parseReference(`${to.host}/${repo}:v1`), {
    retry: FAST_RETRY,
  });

/** `promise`, which must settle within `ms`: a hang fails the test at once rather than at jest's limit. */
async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

const noCredential = (err: MirrorError): void => {
  expect(inspect(err, { depth: 5 })).not.toContain(TEST_PASSWORD);
};

describe('answers whose body never ends (defect 1)', () => {
  test.each([500, 403])('%i on the manifest GET: fails within seconds with the status', async (status) => {
    const repo = `endless/error-${status}`;
    await pushImage(a, repo, 'v1', { layers: [1000] });
    const proxy = await proxyFor(a, {
      method: 'GET',
      path: /\/manifests\//,
      action: { type: 'endless', status },
    });

    const err = await within(15_000, failure(copy(client(proxy.host), client(b.host), repo)));

    expect(err.code).toBe(status === 500 ? 'REGISTRY_ERROR' : 'DENIED');
    expect(err.message).toContain(`HTTP ${status}`);
    noCredential(err);
    // Each attempt's connection was dropped at the limit rather than read to its (non-existent) end.
    const gets = proxy.seen('GET', /\/manifests\//);
    await proxy.ended(gets);
    expect(gets.length).toBe(status === 500 ? FAST_RETRY.attempts : 1);
    for (const get of gets) expect(get.aborted).toBe(true);
  });

  test('401 with a Basic challenge and an endless body: fails within seconds as UNAUTHORIZED', async () => {
    const repo = 'endless/unauthorized';
    await pushImage(a, repo, 'v1', { layers: [1000] });
    const proxy = await proxyFor(a, {
      method: 'GET',
      path: /\/manifests\//,
      action: { type: 'endless', status: 401, headers: { 'www-authenticate': 'Basic realm="r"' } },
    });
    // No credentials given: the first answer is the 401, dumped before the Basic retry.
    const anonymous = openRegistry(proxy.host, { insecure: true, retry: FAST_RETRY });

    const err = await within(15_000, failure(anonymous.getManifest(repo, 'v1')));

    expect(err.code).toBe('UNAUTHORIZED');
  });

  test('a token answer that never ends: fails within seconds, naming the token request', async () => {
    const repo = 'endless/token';
    await pushImage(a, repo, 'v1', { layers: [1000] });
    const proxy = await proxyFor(a);
    proxy.fault({
      method: 'GET',
      path: /\/manifests\//,
      times: 1,
      action: {
        type: 'status',
        status: 401,
        headers: { 'www-authenticate': `Bearer realm="${proxy.url}/token",service="test"` },
      },
    });
    proxy.fault({ method: 'GET', path: /^\/token/, action: { type: 'endless', status: 200 } });

    const err = await within(15_000, failure(client(proxy.host).getManifest(repo, 'v1')));

    expect(err.code).toBe('UNAUTHORIZED');
    expect(err.message).toMatch(/token request .* over \d+ bytes/);
    noCredential(err);
    const tokenGets = proxy.seen('GET', /^\/token/);
    await proxy.ended(tokenGets);
    for (const get of tokenGets) expect(get.aborted).toBe(true);
  });

  test('a tag list that never ends: fails within seconds with LIMIT_EXCEEDED', async () => {
    const repo = 'endless/tags';
    await pushImage(a, repo, 'v1', { layers: [1000] });
    const proxy = await proxyFor(a, {
      method: 'GET',
      path: /\/tags\/list/,
      action: { type: 'endless', status: 200 },
    });

    const err = await within(15_000, failure(client(proxy.host).listTags(repo)));

    expect(err.code).toBe('LIMIT_EXCEEDED');
    expect(err.message).toBe('GET tags endless/tags: over the 4194304-byte limit');
  });

  test('an endless body on a redirect is not read to its end', async () => {
    const repo = 'endless/redirect';
    const img = await pushImage(a, repo, 'v1', { layers: [1000] });
    const proxy = await proxyFor(a, {
      method: 'GET',
      path: /\/manifests\//,
      times: 1,
      action: { type: 'endless', status: 307, headers: { location: `/v2/${repo}/manifests/v1` } },
    });

    const manifest = await within(15_000, client(proxy.host).getManifest(repo, 'v1'));

    expect(manifest.digest).toBe(img.manifest.digest);
    expect((await getManifest(a, repo, 'v1')).digest).toBe(img.manifest.digest);
  });
});

describe('references are checked before any request (defect 6)', () => {
  test.each([
    ['a source without tag or digest', 'refs/app', 'refs/app'],
    ['a source without tag or digest, a destination with one', 'refs/app', 'refs/app:v1'],
    ['a source tag that is not a tag', 'refs/app:-bad', 'refs/app:v1'],
    ['a destination repository that is not one', 'refs/app:v1', 'Refs/App:v1'],
  ])('%s: INVALID_REFERENCE, and neither registry hears of it', async (_name, src, dst) => {
    const source = await proxyFor(a);
    const destination = await proxyFor(b);
    const [srcRepo, srcTag] = src.split(':');
    const [dstRepo, dstTag] = dst.split(':');
    const ref = (host: string, repository: string, tag: string | undefined) => ({
      registry: host,
      repository: repository!,
      ...(tag !== undefined && { tag }),
    });

    const err = await failure(
      copyImage(
        client(source.host),
        ref(source.host, srcRepo!, srcTag),
        client(destination.host),
        ref(destination.host, dstRepo!, dstTag),
      ),
    );

    expect(err.code).toBe('INVALID_REFERENCE');
    await new Promise((r) => setTimeout(r, 300)); // a request already on its way would arrive by now
    expect(source.requests).toEqual([]);
    expect(destination.requests).toEqual([]);
  });
});

describe('every request has a deadline as well as idle timers (defect 5)', () => {
  // 10 bytes a second, in pieces a tenth of a second apart: the idle timers never fire.
  const trickle = { type: 'throttle', bytesPerSecond: 10 } as const;

  test('a manifest served at 10 bytes a second: TIMEOUT once its deadline passes, each attempt cut off', async () => {
    const repo = 'deadline/manifest';
    await pushImage(a, repo, 'v1', { layers: [1000] });
    const proxy = await proxyFor(a, { method: 'GET', path: /\/manifests\//, action: trickle });

    const slowly = client(proxy.host, { bodyMs: 1_000, requestMs: 1_500 });
    const err = await within(20_000, failure(slowly.getManifest(repo, 'v1')));

    expect(err.code).toBe('TIMEOUT');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(
      /^GET manifest deadline\/manifest:v1 \(http:.*\): no complete answer within 1\.5 s$/,
    );
    const gets = proxy.seen('GET', /\/manifests\//);
    expect(gets).toHaveLength(FAST_RETRY.attempts);
    await proxy.ended(gets);
    for (const get of gets) expect(get.aborted).toBe(true);
  });

  test('a token answer at 10 bytes a second: TIMEOUT while authenticating, the token request cut off', async () => {
    const repo = 'deadline/token';
    await pushImage(a, repo, 'v1', { layers: [1000] });
    const proxy = await proxyFor(a);
    proxy.fault({
      method: 'GET',
      path: /\/manifests\//,
      action: {
        type: 'status',
        status: 401,
        headers: { 'www-authenticate': `Bearer realm="${proxy.url}/token",service="test"` },
      },
    });
    proxy.fault({
      method: 'GET',
      path: /^\/token/,
      action: { type: 'endless', status: 200, bytesPerSecond: 10 },
    });

    const slowly = client(proxy.host, { bodyMs: 1_000, requestMs: 1_000 });
    const err = await within(20_000, failure(slowly.getManifest(repo, 'v1')));

    expect(err.code).toBe('TIMEOUT');
    // The request's deadline covers its token too, and passes first; the token request has its own.
    expect(err.message).toBe('GET manifest deadline/token:v1: authenticating: no complete answer within 1 s');
    const tokenGets = proxy.seen('GET', /^\/token/);
    expect(tokenGets.length).toBeGreaterThan(0);
    await proxy.ended(tokenGets);
    for (const get of tokenGets) expect(get.aborted).toBe(true);
  });

  test('a blob served at 10 bytes a second: its deadline (grace plus size at the floor rate) cuts it off', async () => {
    const repo = 'deadline/blob';
    const img = await pushImage(a, repo, 'v1', { layers: [2000] });
    const proxy = await proxyFor(a, {
      method: 'GET',
      path: new RegExp(`/blobs/${img.layers[0]!.digest}`),
      action: trickle,
    });

    const slowly = client(proxy.host, { bodyMs: 1_000, blobBaseMs: 1_000, blobMinBytesPerSecond: 2_000 });
    const err = await within(20_000, failure(copy(slowly, client(b.host), repo)));

    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toMatch(
      /GET blob deadline\/blob@sha256:\w+ \(http:.*\): no complete answer within 2 s/,
    );
    expect((await getManifest(b, repo, 'v1')).status).toBe(404);
  });
});

describe('idle timers judge the side that is idle (defect 4)', () => {
  test('a source slow but steady (3 KB/s) is copied, the upload not blamed for its pauses', async () => {
    const repo = 'idle/slow-source';
    const img = await pushImage(a, repo, 'v1', { layers: [12_000] });
    const proxy = await proxyFor(a, {
      method: 'GET',
      path: new RegExp(`/blobs/${img.layers[0]!.digest}`),
      action: { type: 'throttle', bytesPerSecond: 3_000 },
    });

    // One second of silence fails a side; the source never pauses that long, the upload's wait does.
    const summary = await within(
      30_000,
      copy(client(proxy.host, { bodyMs: 1_000 }), client(b.host, { bodyMs: 1_000 }), repo),
    );

    expect(summary.blobs.copied).toBe(2);
    expect((await getManifest(b, repo, 'v1')).digest).toBe(img.manifest.digest);
  });

  test('a destination slow to take the upload (4 MB/s) does not get the source blamed', async () => {
    const repo = 'idle/slow-destination';
    const img = await pushImage(a, repo, 'v1', { layers: [24_000_000] });
    const destination = await proxyFor(b, {
      method: 'PUT',
      path: /\/blobs\/uploads\//,
      action: { type: 'throttleUpload', bytesPerSecond: 4_000_000 },
    });

    // The download waits on the upload for seconds at a time, its socket silent meanwhile.
    const summary = await within(
      40_000,
      copy(client(a.host, { bodyMs: 1_000 }), client(destination.host, { bodyMs: 1_000 }), repo),
    );

    expect(summary.blobs.copied).toBe(2);
    expect((await getManifest(b, repo, 'v1')).digest).toBe(img.manifest.digest);
  });

  test('a source that stalls mid-blob fails as TIMEOUT naming the source, not the upload', async () => {
    const repo = 'idle/stalled-source';
    const img = await pushImage(a, repo, 'v1', { layers: [100_000] });
    const source = await proxyFor(a, {
      method: 'GET',
      path: new RegExp(`/blobs/${img.layers[0]!.digest}`),
      action: { type: 'stallBody', afterBytes: 1_000 },
    });

    const err = await within(
      30_000,
      failure(copy(client(source.host, { bodyMs: 1_000 }), client(b.host, { bodyMs: 1_000 }), repo)),
    );

    expect(err.code).toBe('TIMEOUT');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`GET blob ${repo}@${img.layers[0]!.digest} (http://${source.host}/`);
    expect(err.message).toContain('BODY_TIMEOUT');
    expect(err.message).not.toMatch(/upload/);
    expect(source.seen('GET', /\/blobs\/sha256:/).filter((r) => r.fault === 'stallBody')).toHaveLength(
      FAST_RETRY.attempts,
    );
  });
});

describe('questionable behaviour, settled', () => {
  test(`indexes nested more than ${MAX_INDEX_DEPTH} levels: LIMIT_EXCEEDED, nothing tagged; ${MAX_INDEX_DEPTH} are copied`, async () => {
    const repo = 'settled/nested';
    const image = await pushImage(a, repo, undefined, { layers: [1000] });
    // index(1) → index(2) → … each holding the one below; the image at the bottom.
    let below = image.manifest;
    for (let level = 1; level <= MAX_INDEX_DEPTH + 1; level++) {
      below = (await pushIndex(a, repo, `level-${level}`, [{ descriptor: below }])).descriptor;
    }
    const proxy = await proxyFor(b);
    const copyTag = (tag: string) =>
      copyImage(
        client(a.host),
        parseReference(`${a.host}/${repo}:${tag}`),
        client(proxy.host),
        parseReference(`${proxy.host}/${repo}:${tag}`),
        { retry: FAST_RETRY },
      );

    // The image one level too deep: refused before any request for it, and nothing tagged.
    const err = await failure(copyTag(`level-${MAX_INDEX_DEPTH + 1}`));
    expect(err.code).toBe('LIMIT_EXCEEDED');
    expect(err.message).toContain(`nested more than ${MAX_INDEX_DEPTH} levels`);
    expect(proxy.requests.some((r) => r.path.includes(image.manifest.digest))).toBe(false);
    expect((await getManifest(b, repo, `level-${MAX_INDEX_DEPTH + 1}`)).status).toBe(404);

    // The image MAX_INDEX_DEPTH levels below the top index: copied.
    const ok = await copyTag(`level-${MAX_INDEX_DEPTH}`);
    expect(ok.manifests.copied).toBeGreaterThanOrEqual(1);
    expect((await getManifest(b, repo, image.manifest.digest)).status).toBe(200);
  });

  test('a manifest without mediaType served as an index although it is an image: refused, nothing pushed', async () => {
    const repo = 'settled/ambiguous';
    const img = await pushImage(a, repo, 'v1', { layers: [1000] });
    const body = JSON.parse(img.bytes.toString()) as Record<string, unknown>;
    delete body.mediaType;
    const bytes = Buffer.from(JSON.stringify(body));
    const proxy = await proxyFor(a, {
      method: 'GET',
      path: /\/manifests\/v1$/,
      action: {
        type: 'answer',
        answer: () => ({
          status: 200,
          headers: { 'content-type': MediaType.OciIndex },
          body: bytes.toString(),
        }),
      },
    });
    const destination = await proxyFor(b);

    const err = await failure(copy(client(proxy.host), client(destination.host), repo));

    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toMatch(/ambiguous/);
    expect(destination.requests.filter((r) => r.method === 'PUT')).toEqual([]);
  });

  test('a redirect to another scheme (gopher://) is refused, not followed as HTTP', async () => {
    const repo = 'settled/gopher';
    const img = await pushImage(a, repo, 'v1', { layers: [1000] });
    const target = await proxyFor(a);
    const proxy = await proxyFor(a, {
      method: 'GET',
      path: new RegExp(`/blobs/${img.layers[0]!.digest}$`),
      action: {
        type: 'status',
        status: 307,
        headers: { location: `gopher://${target.host}/v2/${repo}/blobs/${img.layers[0]!.digest}` },
      },
    });

    const err = await failure(copy(client(proxy.host), client(b.host), repo));

    expect(err.code).toBe('REGISTRY_ERROR');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('redirect to gopher:');
    expect(target.requests).toEqual([]);
  });

  test('a redirect to a Location that is not a URL: REGISTRY_ERROR, not a bare TypeError', async () => {
    const repo = 'settled/bad-location';
    await pushImage(a, repo, 'v1', { layers: [1000] });
    const proxy = await proxyFor(a, {
      method: 'GET',
      path: /\/manifests\/v1$/,
      action: { type: 'status', status: 307, headers: { location: 'http://[::1' } },
    });

    const err = await failure(client(proxy.host).getManifest(repo, 'v1'));

    expect(err.code).toBe('REGISTRY_ERROR');
    expect(err.message).toContain('redirect to a Location that is not a URL');
  });

  test('DIGEST_INVALID from the destination (another writer racing): checked, then tried once more', async () => {
    const repo = 'settled/digest-invalid';
    const img = await pushImage(a, repo, 'v1', { layers: [50_000] });
    const layer = img.layers[0]!;
    const destination = await proxyFor(b, {
      method: 'PUT',
      path: new RegExp(`/blobs/uploads/.*digest=${layer.digest.replace(':', '(:|%3A)')}`),
      times: 1,
      action: {
        type: 'status',
        status: 400,
        body: ociError('DIGEST_INVALID', 'provided digest did not match'),
      },
    });

    const summary = await copy(client(a.host), client(destination.host), repo);

    expect(summary.blobs.copied).toBe(2);
    expect(destination.seen('HEAD', new RegExp(`/blobs/${layer.digest}$`))).toHaveLength(2);
    expect((await getManifest(b, repo, 'v1')).digest).toBe(img.manifest.digest);
  });

  test('DIGEST_INVALID for a blob another writer completed meanwhile: found present, not sent again', async () => {
    const repo = 'settled/digest-present';
    const img = await pushImage(a, repo, 'v1', { layers: [50_000] });
    const layer = img.layers[0]!;
    // The registry stores the blob, but answers as if the upload had lost a race.
    const destination = await proxyFor(b, {
      method: 'PUT',
      path: new RegExp(`/blobs/uploads/.*digest=${layer.digest.replace(':', '(:|%3A)')}`),
      times: 1,
      action: {
        type: 'rewriteStatus',
        from: 201,
        to: 400,
        body: ociError('DIGEST_INVALID', 'digest mismatch'),
      },
    });

    const summary = await copy(client(a.host), client(destination.host), repo);

    expect(summary.blobs).toMatchObject({ copied: 1, skipped: 1 });
    expect(
      destination.seen('PUT', new RegExp(`digest=${layer.digest.replace(':', '(:|%3A)')}`)),
    ).toHaveLength(1);
    expect((await getManifest(b, repo, 'v1')).digest).toBe(img.manifest.digest);
  });

  test.each([false, true])(
    'a tag HEAD announcing a digest that is not served (referrers: %s): says so',
    async (referrers) => {
      const repo = `settled/lying-head-${referrers}`;
      const img = await pushImage(a, repo, 'v1', { layers: [1000] });
      const lie = `sha256:${'0'.repeat(64)}`;
      const proxy = await proxyFor(a, {
        method: 'HEAD',
        path: /\/manifests\/v1$/,
        action: {
          type: 'answer',
          answer: () => ({
            status: 200,
            headers: {
              'content-type': MediaType.OciManifest,
              'docker-content-digest': lie,
              'content-length': String(img.bytes.length),
            },
          }),
        },
      });

      const err = await failure(
        copyImage(
          client(proxy.host),
          parseReference(`${proxy.host}/${repo}:v1`),
          client(b.host),
          parseReference(`${b.host}/${repo}:v1`),
          { retry: FAST_RETRY, referrers },
        ),
      );

      expect(err.code).toBe('REGISTRY_ERROR');
      expect(err.message).toContain(`announced ${lie} for ${repo}:v1`);
      expect(err.message).toContain('serves no manifest under that digest');
    },
  );
});
