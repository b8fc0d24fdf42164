import { BlobLedger } from '../../src/copy/blob-ledger';
import { copyImage } from '../../src/copy/copy-image';
import { parseReference } from '../../src/core/reference';
import { openRegistry } from '../../src/registry/open';
import { getBlob, pushBlob, pushImage, sha256 } from '../support/content';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';
import { startTokenServer, type TokenServer } from '../support/token-server';

/**
 * A mount at a registry with Bearer token auth: the token must grant pull on the repository the blob
 * is mounted from as well, so the mount asks for both scopes (one `scope` parameter each).
 */

let tokens: TokenServer;
let bearer: TestRegistry;
let source: TestRegistry;
beforeAll(async () => {
  tokens = await startTokenServer();
  [bearer, source] = await Promise.all([startRegistry({ authYaml: tokens.authYaml }), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([bearer?.stop(), source?.stop()]);
  await tokens?.stop();
});

test('a blob in another repository of a token-auth registry is mounted, with a token for both', async () => {
  const layer = Buffer.alloc(90_000, 9);
  for (const repo of ['tok/one', 'tok/two'])
    await pushBlob(source, repo, layer, 'application/vnd.oci.image.layer.v1.tar');
  const base = {
    mediaType: 'application/vnd.oci.image.layer.v1.tar',
    digest: sha256(layer),
    size: layer.length,
  };
  await pushImage(source, 'tok/one', 'v1', { layers: [base] });
  await pushImage(source, 'tok/two', 'v1', { layers: [base] });
  const open = (reg: TestRegistry) => openRegistry(reg.host, { insecure: true, credentials: TEST_CREDS });
  const blobs = new BlobLedger();
  const to = open(bearer);
  const copy = (repo: string) =>
    copyImage(
      open(source),
      parseReference(`${source.host}/${repo}:v1`),
      to,
      parseReference(`${bearer.host}/${repo}:v1`),
      {
        blobs,
      },
    );
  await copy('tok/one');
  const second = await copy('tok/two');
  expect(second.blobs).toEqual({ copied: 1, mounted: 1, skipped: 0 });
  expect(
    tokens.requests.some(
      (r) =>
        r.scopes.includes('repository:tok/two:pull,push') && r.scopes.includes('repository:tok/one:pull'),
    ),
  ).toBe(true);
  const token = tokens.mint([{ type: 'repository', name: 'tok/two', actions: ['pull'] }]);
  expect(sha256(await getBlob({ ...bearer, authorization: `Bearer ${token}` }, 'tok/two', base.digest))).toBe(
    base.digest,
  );
});
