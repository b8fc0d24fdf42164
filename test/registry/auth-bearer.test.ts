import { copyImage } from '../../src/copy/copy-image';
import { parseReference } from '../../src/core/reference';
import { openRegistry } from '../../src/registry/open';
import type { RegistryClient } from '../../src/registry/registry';
import type { RetryPolicy } from '../../src/registry/retry';
import { type BuiltImage, getBlob, getManifest, pushImage, pushIndex, sha256 } from '../support/content';
import { failure } from '../support/failure';
import {
  freePort,
  startRegistry,
  TEST_CREDS,
  TEST_PASSWORD,
  TEST_USER,
  type TestRegistry,
} from '../support/registry';
import { READER, startTokenServer, type TokenServer, tokenAuthYaml } from '../support/token-server';

/**
 * The Bearer token handshake against a real distribution registry (`auth: token:`) whose realm is
 * our token server, copying to and from a Basic-auth registry.
 */

const FAST_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5, maxElapsedMs: 10_000 };

const FIXTURE = 'team/fixture';

let tokens: TokenServer;
let bearer: TestRegistry;
let basic: TestRegistry;

beforeAll(async () => {
  tokens = await startTokenServer();
  [bearer, basic] = await Promise.all([startRegistry({ authYaml: tokens.authYaml }), startRegistry()]);
  // An image each test may read, so that no test depends on another's.
  await pushImage(withToken(bearer, FIXTURE), FIXTURE, 'v1', { layers: [1000] });
});
afterAll(async () => {
  await Promise.all([bearer?.stop(), basic?.stop()]);
  await tokens?.stop();
});

/** The token registry as seen by the raw helpers: a token we minted ourselves for `repository`. */
function withToken(reg: TestRegistry, repository: string, actions = ['pull', 'push']): TestRegistry {
  const token = tokens.mint([{ type: 'repository', name: repository, actions }]);
  return { ...reg, authorization: `Bearer ${token}` };
}

const open = (reg: TestRegistry, options: Parameters<typeof openRegistry>[1] = {}): RegistryClient =>
  openRegistry(reg.host, { insecure: true, credentials: TEST_CREDS, ...options });

const registryRequests = (client: RegistryClient): number =>
  Object.entries(client.counts).reduce((n, [kind, count]) => (kind === 'token' ? n : n + count), 0);

/** Reads an image back with plain fetch and checks every byte against what was pushed. */
async function expectSameImage(
  reg: TestRegistry,
  repo: string,
  tag: string,
  images: BuiltImage[],
  top: Buffer,
) {
  const manifest = await getManifest(reg, repo, tag);
  expect(manifest.status).toBe(200);
  expect(manifest.bytes.equals(top)).toBe(true);
  for (const image of images) {
    const child = await getManifest(reg, repo, image.manifest.digest);
    expect(child.bytes.equals(image.bytes)).toBe(true);
    for (const blob of [image.config, ...image.layers]) {
      const bytes = await getBlob(reg, repo, blob.digest);
      expect(bytes.length).toBe(blob.size);
      expect(sha256(bytes)).toBe(blob.digest);
    }
  }
}

test('the token registry is honest: it refuses no token, a token for another repository, and a forged one', async () => {
  const none = await fetch(`${bearer.url}/v2/honesty/tags/list`);
  expect(none.status).toBe(401);
  expect(none.headers.get('www-authenticate')).toContain(`realm="${tokens.realm}"`);

  const other = withToken(bearer, 'someone-else');
  const wrongRepo = await fetch(`${bearer.url}/v2/honesty/tags/list`, {
    headers: { authorization: other.authorization },
  });
  expect(wrongRepo.status).toBe(401);

  const [head, , sig] = withToken(bearer, 'honesty').authorization.slice('Bearer '.length).split('.');
  const claims = Buffer.from(
    JSON.stringify({
      iss: tokens.issuer,
      aud: tokens.service,
      access: [{ type: 'repository', name: 'honesty', actions: ['pull'] }],
    }),
  ).toString('base64url');
  const forged = await fetch(`${bearer.url}/v2/honesty/tags/list`, {
    headers: { authorization: `Bearer ${head}.${claims}.${sig}` },
  });
  expect(forged.status).toBe(401);

  const good = await fetch(`${bearer.url}/v2/honesty/tags/list`, {
    headers: { authorization: withToken(bearer, 'honesty').authorization },
  });
  expect(good.status).toBe(404); // authorized; the repository simply does not exist
});

test('copies an index from the Bearer registry to a Basic one, byte-identical, with one pull token', async () => {
  const repo = 'team/bearer-src';
  const raw = withToken(bearer, repo);
  const amd = await pushImage(raw, repo, undefined, { layers: [3000, 70_000] });
  const arm = await pushImage(raw, repo, undefined, {
    layers: [5000],
    platform: { architecture: 'arm64', os: 'linux' },
  });
  const index = await pushIndex(raw, repo, 'v1', [
    { descriptor: amd.manifest, platform: { architecture: 'amd64', os: 'linux' } },
    { descriptor: arm.manifest, platform: { architecture: 'arm64', os: 'linux' } },
  ]);
  const seenBefore = tokens.requests.length;

  const src = open(bearer);
  const dst = open(basic);
  const summary = await copyImage(
    src,
    parseReference(`${bearer.host}/${repo}:v1`),
    dst,
    parseReference(`${basic.host}/mirror/from-bearer:v1`),
  );

  expect(summary.digest).toBe(index.descriptor.digest);
  expect(summary.blobs.copied).toBe(5);
  await expectSameImage(basic, 'mirror/from-bearer', 'v1', [amd, arm], index.bytes);

  const seen = tokens.requests.slice(seenBefore);
  expect(seen.map((r) => r.scopes)).toEqual([[`repository:${repo}:pull`]]);
  expect(seen.every((r) => r.basic && r.status === 200 && r.service === tokens.service)).toBe(true);
  // One token served every request of the copy.
  expect(src.counts.token).toBe(1);
  expect(registryRequests(src)).toBeGreaterThanOrEqual(10);
});

test('copies from a Basic registry to the Bearer one, asking for pull, then pull,push, once each', async () => {
  const repo = 'mirror/to-bearer';
  const img = await pushImage(basic, 'team/app', 'v2', { layers: [4000, 90_000, 1234] });
  const seenBefore = tokens.requests.length;

  const src = open(basic);
  const dst = open(bearer);
  const summary = await copyImage(
    src,
    parseReference(`${basic.host}/team/app:v2`),
    dst,
    parseReference(`${bearer.host}/${repo}:v2`),
  );
  expect(summary.digest).toBe(img.manifest.digest);
  expect(summary.blobs.copied).toBe(4);
  await expectSameImage(withToken(bearer, repo, ['pull']), repo, 'v2', [img], img.bytes);

  const seen = tokens.requests.slice(seenBefore);
  expect(seen.map((r) => r.scopes).sort()).toEqual([
    [`repository:${repo}:pull`],
    [`repository:${repo}:pull,push`],
  ]);
  expect(seen.every((r) => r.basic && r.status === 200)).toBe(true);
  expect(seen.find((r) => r.scopes[0]!.endsWith(':pull,push'))!.granted).toEqual([
    { type: 'repository', name: repo, actions: ['pull', 'push'] },
  ]);
  expect(dst.counts.token).toBe(seen.length);
  // Four blob checks, four uploads of two requests each, the manifest: far more than the two tokens.
  expect(registryRequests(dst)).toBeGreaterThanOrEqual(14);

  // A second image through the same client: the cached tokens still serve.
  const again = await pushImage(basic, 'team/app', 'v3', { layers: [img.layers[0]!, 2222] });
  await copyImage(
    src,
    parseReference(`${basic.host}/team/app:v3`),
    dst,
    parseReference(`${bearer.host}/${repo}:v3`),
  );
  expect(tokens.requests.length).toBe(seenBefore + 2);
  expect((await getManifest(withToken(bearer, repo, ['pull']), repo, 'v3')).bytes.equals(again.bytes)).toBe(
    true,
  );
});

test('a token close to expiry is replaced before use, without a 401 round trip', async () => {
  const repo = FIXTURE;
  const client = open(bearer);
  tokens.expiresInSeconds = 60;
  const now = Date.now;
  try {
    expect(await client.listTags(repo)).toEqual(['v1']);
    expect(client.counts.token).toBe(1);
    expect(await client.listTags(repo)).toEqual(['v1']);
    expect(client.counts.token).toBe(1);
    const requests = client.counts.other;
    // 46 s later the token has 14 s left, under the client's 15 s margin: it is replaced first.
    jest.spyOn(Date, 'now').mockImplementation(() => now() + 46_000);
    expect(await client.listTags(repo)).toEqual(['v1']);
    expect(client.counts.token).toBe(2);
    expect(client.counts.other).toBe(requests + 1);
  } finally {
    jest.restoreAllMocks();
    tokens.expiresInSeconds = 300;
  }
});

test('a token said to live 2 s is kept for the 60 s floor, not fetched again for every request', async () => {
  const repo = FIXTURE;
  const client = open(bearer);
  // The JWT itself lives 2 s here (the registry checks it): four requests fit in that.
  tokens.expiresInSeconds = 2;
  try {
    for (let i = 0; i < 4; i++) expect(await client.listTags(repo)).toEqual(['v1']);
    expect(client.counts.token).toBe(1);
  } finally {
    tokens.expiresInSeconds = 300;
  }
});

test('wrong credentials fail with UNAUTHORIZED, say so, and never show the password', async () => {
  const password = 'not-the:password-Zq9';
  const client = open(bearer, { credentials: { username: TEST_USER, password }, retry: FAST_RETRY });
  const seenBefore = tokens.requests.length;

  const err = await failure(client.headManifest(FIXTURE, 'v1'));
  expect(err.code).toBe('UNAUTHORIZED');
  expect(err.retryable).toBe(false);
  // Says where and as whom it was refused, and the auth server's own reason.
  expect(err.message).toContain(
    `token request for repository:${FIXTURE}:pull at ${tokens.realm} as ${TEST_USER}`,
  );
  expect(err.message).toContain('HTTP 401');
  expect(err.message).toContain('incorrect username or password');
  for (const secret of [
    password,
    Buffer.from(`${TEST_USER}:${password}`).toString('base64'),
    TEST_PASSWORD,
  ]) {
    expect(err.message).not.toContain(secret);
    expect(JSON.stringify(err)).not.toContain(secret);
  }
  // Refused credentials are not retried.
  const seen = tokens.requests.slice(seenBefore);
  expect(seen).toHaveLength(1);
  expect(seen[0]).toMatchObject({ basic: true, status: 401, scopes: [`repository:${FIXTURE}:pull`] });
});

test('a user who may only pull can read but not push: UNAUTHORIZED after one renewed token, no loop', async () => {
  await pushImage(basic, 'team/app', 'reader', { layers: [3333] });
  const repo = 'mirror/reader-target';
  const src = open(basic);
  const dst = open(bearer, { credentials: READER, retry: FAST_RETRY });
  expect(await dst.listTags(FIXTURE)).toEqual(['v1']);
  const seenBefore = tokens.requests.length;

  // One blob at a time, so that the count of token requests below does not depend on a race.
  const err = await failure(
    copyImage(
      src,
      parseReference(`${basic.host}/team/app:reader`),
      dst,
      parseReference(`${bearer.host}/${repo}:r`),
      {
        concurrency: 1,
      },
    ),
  );
  expect(err.code).toBe('UNAUTHORIZED');
  expect(err.retryable).toBe(false);
  expect(err.message).toContain(repo);
  expect(err.message).not.toContain(READER.password);
  const pushRequests = tokens.requests
    .slice(seenBefore)
    .filter((r) => r.scopes[0] === `repository:${repo}:pull,push`);
  // The auth server granted pull only; the refused token was renewed once (it might have been stale), no more.
  expect(pushRequests).toHaveLength(2);
  expect(pushRequests[0]!.granted).toEqual([{ type: 'repository', name: repo, actions: ['pull'] }]);
  expect((await getManifest(withToken(bearer, repo, ['pull']), repo, 'r')).status).toBe(404);
});

test('anonymous access gets a token that grants nothing, and fails with UNAUTHORIZED', async () => {
  const client = openRegistry(bearer.host, { insecure: true, retry: FAST_RETRY });
  const seenBefore = tokens.requests.length;
  const err = await failure(client.getManifest(FIXTURE, 'v1'));
  expect(err.code).toBe('UNAUTHORIZED');
  expect(err.message).toContain(`GET manifest ${FIXTURE}:v1: HTTP 401`);
  const seen = tokens.requests.slice(seenBefore);
  expect(seen).toHaveLength(1);
  expect(seen[0]).toMatchObject({ basic: false, status: 200, granted: [] });
  // The registry was asked twice: once to learn the challenge, once with the (useless) token.
  expect(client.counts.manifest).toBe(2);
});

test('a realm that is down fails cleanly: NETWORK, retried as the policy says, realm named without query', async () => {
  const deadPort = await freePort();
  const realm = `http://127.0.0.1:${deadPort}/token`;
  const orphan = await startRegistry({
    authYaml: tokenAuthYaml({
      realm,
      service: tokens.service,
      issuer: tokens.issuer,
      rootCertBundle: tokens.certPath,
    }),
  });
  try {
    const client = open(orphan, { retry: FAST_RETRY });
    const started = Date.now();
    const err = await failure(client.headManifest('team/app', 'v1'));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(err.code).toBe('NETWORK');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('token request');
    expect(err.message).toContain(`127.0.0.1:${deadPort}/token`);
    expect(err.message).not.toContain('scope=');
    expect(err.message).not.toContain(TEST_PASSWORD);
    // Three attempts in all, as the policy says: not three token fetches for each of three requests.
    expect(client.counts.token).toBe(FAST_RETRY.attempts);
    expect(client.counts.manifest).toBe(1);
  } finally {
    await orphan.stop();
  }
});
