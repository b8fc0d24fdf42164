import { openRegistry } from '../../src/registry/open';
import { registryInventory } from '../../src/sync/inventory';
import { parseLocation } from '../../src/sync/location';
import { runSync } from '../../src/sync/sync';
import { getManifest, pushImage } from '../support/content';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';
import { startTokenServer, type TokenServer } from '../support/token-server';

/**
 * `ecr-mirror sync` from a registry with Bearer token auth (distribution with `auth: token`, as Harbor
 * and GitLab run it): its catalog answers only a token that grants `registry:catalog:*`, so the
 * listing must ask for that scope rather than a repository's.
 */

let tokens: TokenServer;
let bearer: TestRegistry;
let plain: TestRegistry;
beforeAll(async () => {
  tokens = await startTokenServer();
  [bearer, plain] = await Promise.all([startRegistry({ authYaml: tokens.authYaml }), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([bearer?.stop(), plain?.stop()]);
  await tokens?.stop();
});

test('a token-auth source is listed with a catalog token, and its images copied', async () => {
  const token = tokens.mint([{ type: 'repository', name: 'tok-fleet/app', actions: ['pull', 'push'] }]);
  const img = await pushImage({ ...bearer, authorization: `Bearer ${token}` }, 'tok-fleet/app', 'v1', {
    layers: [3_000],
  });
  const source = openRegistry(bearer.host, { insecure: true, credentials: TEST_CREDS });
  const s = await runSync(
    {
      source: parseLocation(`${bearer.host}/tok-fleet`, 'SRC'),
      destination: parseLocation(`${plain.host}/copies`, 'DST'),
      repositories: { include: [], exclude: [] },
      tags: { include: [], exclude: [] },
      dryRun: false,
      images: 2,
      concurrency: 4,
      referrers: true,
    },
    {
      source,
      destination: openRegistry(plain.host, { insecure: true, credentials: TEST_CREDS }),
      inventory: registryInventory(source),
    },
  );
  expect(s.failures).toEqual([]);
  expect(s.images).toMatchObject({ total: 1, copied: 1 });
  expect((await getManifest(plain, 'copies/app', 'v1')).digest).toBe(img.manifest.digest);
  expect(tokens.requests.some((r) => r.scopes.includes('registry:catalog:*'))).toBe(true);
});
