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
  // It ends with the doctor against the local deployment: every check passes.
  const doctor = stdout.slice(stdout.indexOf('5. ecr-mirror doctor --function ecr-mirror-local-mirror'));
  const checks = [...doctor.matchAll(/^ {3}([✓✗!-]) (\S+)/gm)].map((m) => `${m[1]} ${m[2]}`);
  expect(checks).toEqual(
    [
      'aws.credentials',
      'source.login',
      'source.read',
      'destination.account-b.assume-role',
      'destination.account-b.login',
      'destination.account-b.repository',
      'destination.account-b.push',
      'destination.account-b.kms',
      'deployment.rule',
      'deployment.queue',
      'status.recent',
    ].map((id) => `✓ ${id}`),
  );
  expect(doctor).toContain('11 checks: 11 ok, 0 failed, 0 warnings, 0 skipped');
  // Both registries are gone: nothing answers on their ports any more.
  const urls = [...stdout.matchAll(/docker-registry at (http:\/\/127\.0\.0\.1:\d+)/g)].map((m) => m[1]!);
  expect(urls).toHaveLength(2);
  for (const url of urls) await expect(fetch(`${url}/v2/`)).rejects.toThrow();
});
