import { copyImage } from '../../src/copy/copy-image';
import { parseReference } from '../../src/core/reference';
import { openRegistry } from '../../src/registry/open';
import { getManifest, pushImage } from '../support/content';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';

let a: TestRegistry;
let b: TestRegistry;
beforeAll(async () => {
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

test('smoke', async () => {
  const img = await pushImage(a, 'app', 'v1', { layers: [1000, 2000] });
  const src = openRegistry(a.host, { insecure: true, credentials: TEST_CREDS });
  const dst = openRegistry(b.host, { insecure: true, credentials: TEST_CREDS });
  const s = await copyImage(src, parseReference(`${a.host}/app:v1`), dst, parseReference(`${b.host}/app:v1`));
  console.log(s);
  const got = await getManifest(b, 'app', 'v1');
  expect(got.digest).toBe(img.manifest.digest);
});
