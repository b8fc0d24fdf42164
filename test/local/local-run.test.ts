import { ensureBuilt, runBuilt } from '../support/run-built';

beforeAll(() => {
  ensureBuilt('dist/local.js');
});

test('npm start: the mirror and resync on two local registries, end to end, cleaned up after', async () => {
  const { code, stdout, stderr } = await runBuilt('dist/local.js', [], { ECR_MIRROR_VERBOSE: '' });
  expect(stderr).toBe('');
  expect(code).toBe(0);
  expect(stdout).toMatch(/2\. Mirror Lambda on the push event of demo\/hello:1\.0: succeeded \(4 blobs/);
  expect(stdout).toMatch(/3\. Resync: 3 tags checked, 2 in sync, 1 job enqueued/);
  expect(stdout).toMatch(/demo\/hello +0\.9 +account-b/);
  expect(stdout).toContain('2 records: 2 succeeded');
  expect(stdout).toMatch(/OK: all 3 tags of demo\/hello in A have the same digests in B/);
  // Both registries are gone: nothing answers on their ports any more.
  const urls = [...stdout.matchAll(/docker-registry at (http:\/\/127\.0\.0\.1:\d+)/g)].map((m) => m[1]!);
  expect(urls).toHaveLength(2);
  for (const url of urls) await expect(fetch(`${url}/v2/`)).rejects.toThrow();
});
