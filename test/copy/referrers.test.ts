import { createHash } from 'node:crypto';
import { copyImage } from '../../src/copy/copy-image';
import { mergeFallbackIndex } from '../../src/copy/referrers';
import type { Descriptor } from '../../src/core/descriptor';
import { parseManifest } from '../../src/core/manifest';
import { MediaType } from '../../src/core/media-types';
import { parseReference } from '../../src/core/reference';
import { fallbackTag, REFERRER_LIMITS } from '../../src/core/referrers';
import { openRegistry } from '../../src/registry/open';
import type { RegistryClient } from '../../src/registry/registry';
import type { RetryPolicy } from '../../src/registry/retry';
import { type BuiltImage, getManifest, pushImage, pushIndex } from '../support/content';
import { failure } from '../support/failure';
import { type Answer, type FaultProxy, type SeenRequest, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';

/**
 * A source whose OCI 1.1 referrers API is hostile: every subject lists the same referrers, pages link
 * to themselves or run on, referrers nest without end. The walk must stay bounded and honest (defect 2).
 */

const FAST_RETRY: RetryPolicy = { attempts: 2, baseDelayMs: 10, maxDelayMs: 50, maxElapsedMs: 5_000 };

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

const client = (host: string): RegistryClient =>
  openRegistry(host, { insecure: true, credentials: TEST_CREDS, retry: FAST_RETRY });

const copy = (from: { host: string }, repo: string) =>
  copyImage(
    client(from.host),
    parseReference(`${from.host}/${repo}:v1`),
    client(b.host),
    parseReference(`${b.host}/${repo}:v1`),
    { retry: FAST_RETRY },
  );

const REFERRERS = /\/referrers\/(sha256:[0-9a-f]{64})/;
const subjectOf = (req: SeenRequest): string => REFERRERS.exec(req.path)![1]!;

/** An OCI 1.1 referrers answer: an index of `manifests`, with a next-page link when given. */
const referrersPage = (manifests: Descriptor[], next?: string): Answer => ({
  status: 200,
  headers: {
    'content-type': MediaType.OciIndex,
    ...(next !== undefined && { link: `<${next}>; rel="next"` }),
  },
  body: { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests },
});

/** The source behind a proxy whose referrers API answers `answer` for every subject. */
async function sourceWithReferrers(answer: (req: SeenRequest) => Answer): Promise<FaultProxy> {
  const proxy = await startFaultProxy(a);
  proxies.push(proxy);
  proxy.fault({ method: 'GET', path: REFERRERS, action: { type: 'answer', answer } });
  return proxy;
}

/** `count` signatures of `subject`, pushed by digest as an OCI 1.1 client would. */
async function pushReferrers(repo: string, subject: Descriptor, count: number): Promise<BuiltImage[]> {
  const out: BuiltImage[] = [];
  for (let i = 0; i < count; i++) {
    out.push(
      await pushImage(a, repo, undefined, {
        layers: [100 + i],
        configMediaType: MediaType.OciEmpty,
        artifactType: 'application/vnd.dev.sigstore.bundle+json',
        subject,
      }),
    );
  }
  return out;
}

const fakeDescriptor = (n: number): Descriptor => ({
  mediaType: MediaType.OciManifest,
  digest: `sha256:${createHash('sha256').update(`fake ${n}`).digest('hex')}`,
  size: 500,
});

test('every subject listing the same referrers, twice over: each is listed once and copied once', async () => {
  const repo = 'referrers/same-everywhere';
  const img = await pushImage(a, repo, 'v1', { layers: [1000] });
  const K = 12;
  const signatures = (await pushReferrers(repo, img.manifest, K)).map((s) => ({
    ...s.manifest,
    artifactType: 'application/vnd.dev.sigstore.bundle+json',
  }));
  // Whatever the subject, the API lists all K, each twice: a hostile (or very confused) registry.
  const proxy = await sourceWithReferrers(() => referrersPage([...signatures, ...signatures]));

  const summary = await copy(proxy, repo);

  expect(summary.referrers).toBe(K);
  // Each subject listed once: the image, then each signature (whose listing names nothing new).
  const listings = proxy.seen('GET', REFERRERS).map(subjectOf);
  expect(listings.sort()).toEqual([img.manifest.digest, ...signatures.map((s) => s.digest)].sort());
  // Each signature fetched once from the source.
  for (const s of signatures)
    expect(proxy.seen('GET', new RegExp(`/manifests/${s.digest}$`))).toHaveLength(1);
  // At the destination (no referrers API) the image's fallback index lists each signature once.
  const index = await getManifest(b, repo, fallbackTag(img.manifest.digest));
  const listed = (JSON.parse(index.bytes.toString()) as { manifests: Descriptor[] }).manifests;
  expect(listed.map((d) => d.digest).sort()).toEqual(signatures.map((s) => s.digest).sort());
  expect(summary.requests.source).toBeLessThan(6 * K);
  expect(summary.requests.destination).toBeLessThan(12 * K);
});

test.each([
  ['to itself', 1],
  ['back to the first page', 2],
])('a next-page link %s: fails with the loop named, reading no page twice', async (_name, pagesRead) => {
  const repo = `referrers/loop-${pagesRead}`;
  await pushImage(a, repo, 'v1', { layers: [1000] });
  const proxy = await sourceWithReferrers((req) => {
    const first = req.path.replace(/\?.*$/, '');
    const next = pagesRead === 1 || req.path.includes('?') ? first : `${first}?page=2`;
    return referrersPage([fakeDescriptor(1)], next);
  });

  const err = await failure(copy(proxy, repo));

  expect(err.code).toBe('REGISTRY_ERROR');
  expect(err.message).toMatch(/next page link repeats a page already read/);
  expect(proxy.seen('GET', REFERRERS)).toHaveLength(pagesRead);
});

test('pages that run on: LIMIT_EXCEEDED at the page cap', async () => {
  const repo = 'referrers/pages';
  await pushImage(a, repo, 'v1', { layers: [1000] });
  let page = 0;
  const proxy = await sourceWithReferrers((req) => {
    page++;
    return referrersPage([fakeDescriptor(page)], `/v2/${repo}/referrers/${subjectOf(req)}?page=${page}`);
  });

  const err = await failure(copy(proxy, repo));

  expect(err.code).toBe('LIMIT_EXCEEDED');
  expect(err.message).toContain(`more than ${REFERRER_LIMITS.pages} pages`);
  expect(proxy.seen('GET', REFERRERS)).toHaveLength(REFERRER_LIMITS.pages);
});

test('more referrers of one subject than the cap: LIMIT_EXCEEDED before any is copied', async () => {
  const repo = 'referrers/many';
  await pushImage(a, repo, 'v1', { layers: [1000] });
  const many = Array.from({ length: REFERRER_LIMITS.perSubject + 1 }, (_, i) => fakeDescriptor(i));
  const proxy = await sourceWithReferrers(() => referrersPage(many));

  const err = await failure(copy(proxy, repo));

  expect(err.code).toBe('LIMIT_EXCEEDED');
  expect(err.message).toContain(`more than ${REFERRER_LIMITS.perSubject} referrers`);
  expect(proxy.seen('GET', /\/manifests\/sha256:/).filter((r) => !r.path.includes('-'))).toHaveLength(0);
});

test('more distinct referrers in one copy than the cap: LIMIT_EXCEEDED', async () => {
  const repo = 'referrers/per-copy';
  const amd = await pushImage(a, repo, undefined, { layers: [1000] });
  const arm = await pushImage(a, repo, undefined, { layers: [1100] });
  await pushIndex(a, repo, 'v1', [{ descriptor: amd.manifest }, { descriptor: arm.manifest }]);
  // Three subjects (the index and its two children), each under the per-subject cap, over the total.
  const each = Math.floor(REFERRER_LIMITS.perCopy / 3) + 1;
  let subjects = 0;
  const bySubject = new Map<string, Descriptor[]>();
  const proxy = await sourceWithReferrers((req) => {
    const subject = subjectOf(req);
    if (!bySubject.has(subject)) {
      const base = subjects++ * each;
      bySubject.set(
        subject,
        Array.from({ length: each }, (_, i) => fakeDescriptor(base + i)),
      );
    }
    return referrersPage(bySubject.get(subject)!);
  });

  const err = await failure(copy(proxy, repo));

  expect(err.code).toBe('LIMIT_EXCEEDED');
  expect(err.message).toContain(`more than ${REFERRER_LIMITS.perCopy} referrers in one copy`);
});

test(`referrers nested ${REFERRER_LIMITS.depth} deep are copied; one level more is LIMIT_EXCEEDED`, async () => {
  const repo = 'referrers/deep';
  const img = await pushImage(a, repo, 'v1', { layers: [1000] });
  // A chain: a signature of the image, a signature of that, and so on.
  const chain: Descriptor[] = [];
  let subject = img.manifest;
  for (let level = 1; level <= REFERRER_LIMITS.depth + 1; level++) {
    const [next] = await pushReferrers(repo, subject, 1);
    chain.push(next!.manifest);
    subject = next!.manifest;
  }
  const answerChain = (length: number) => (req: SeenRequest) => {
    const at = [img.manifest, ...chain.slice(0, length)].findIndex((d) => d.digest === subjectOf(req));
    return referrersPage(at >= 0 && at < length ? [chain[at]!] : []);
  };

  const ok = await copy(await sourceWithReferrers(answerChain(REFERRER_LIMITS.depth)), repo);
  expect(ok.referrers).toBe(REFERRER_LIMITS.depth);
  for (const d of chain.slice(0, REFERRER_LIMITS.depth)) {
    expect((await getManifest(b, repo, d.digest)).status).toBe(200);
  }

  const err = await failure(copy(await sourceWithReferrers(answerChain(REFERRER_LIMITS.depth + 1)), repo));
  expect(err.code).toBe('LIMIT_EXCEEDED');
  expect(err.message).toContain(`nested more than ${REFERRER_LIMITS.depth} levels deep`);
});

test('mergeFallbackIndex: distinct descriptors, whatever the listing or an earlier writer repeated', () => {
  const [x, y, z] = [fakeDescriptor(1), fakeDescriptor(2), fakeDescriptor(3)];
  const index = (manifests: Descriptor[]) =>
    parseManifest(
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests })),
    );
  expect(mergeFallbackIndex(undefined, [x!, x!, y!, x!])?.manifests).toEqual([x, y]);
  expect(mergeFallbackIndex(index([x!, x!]), [y!, y!, z!])?.manifests).toEqual([x, y, z]);
  expect(mergeFallbackIndex(index([x!, y!]), [y!, x!, y!])).toBeUndefined();
});
