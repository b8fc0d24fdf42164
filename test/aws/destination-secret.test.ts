import { DescribeRepositoriesCommand, ECRClient, ECRServiceException } from '@aws-sdk/client-ecr';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { DestinationSecret, parseSecret } from '../../src/aws/destination-secret';
import { secretEcrClient } from '../../src/aws/secret-ecr-client';
import type { MirrorError } from '../../src/errors';

const ARN = 'arn:aws:secretsmanager:us-east-1:111111111111:secret:ecr-mirror/gov';
const sm = mockClient(SecretsManagerClient);
const ecr = mockClient(ECRClient);
beforeEach(() => {
  sm.reset();
  ecr.reset();
});
afterAll(() => {
  sm.restore();
  ecr.restore();
});

const keys = (id: string) => ({
  SecretString: JSON.stringify({ accessKeyId: id, secretAccessKey: `secret-of-${id}` }),
});

test('a secret holds a login or access keys; anything else is refused naming the secret, never a value', () => {
  expect(parseSecret('{"username":"u","password":"p"}', ARN)).toEqual({
    kind: 'password',
    username: 'u',
    password: 'p',
  });
  expect(parseSecret('{"accessKeyId":"A","secretAccessKey":"S"}', ARN)).toEqual({
    kind: 'access-keys',
    accessKeyId: 'A',
    secretAccessKey: 'S',
  });
  for (const [text, why] of [
    [undefined, 'binary'],
    ['hunter2-not-json', 'is not JSON'],
    ['["hunter2"]', 'not a JSON object'],
    ['{"username":"u"}', 'both username and password'],
    ['{"accessKeyId":"A","password":"hunter2"}', 'both accessKeyId and secretAccessKey'],
  ] as const) {
    let err: MirrorError | undefined;
    try {
      parseSecret(text, ARN);
    } catch (e) {
      err = e as MirrorError;
    }
    expect(err?.code).toBe('INVALID_CONFIG');
    expect(err?.message).toContain(ARN);
    expect(err?.message).toContain(why);
    expect(err?.message).not.toContain('hunter2');
  }
});

test('cached for its TTL; concurrent reads share one call; refusals that come together share one re-read', async () => {
  let now = 0;
  sm.on(GetSecretValueCommand).resolvesOnce(keys('A1')).resolves(keys('A2'));
  const secret = new DestinationSecret(new SecretsManagerClient({ region: 'us-east-1' }), ARN, {
    ttlMs: 1_000,
    now: () => now,
  });
  await Promise.all([secret.get(), secret.get(), secret.get()]);
  expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
  now = 500;
  expect(await secret.get()).toMatchObject({ accessKeyId: 'A1' });
  const [x, y] = await Promise.all([secret.refresh(), secret.refresh()]);
  expect([x, y]).toEqual([true, true]);
  expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  expect(await secret.get()).toMatchObject({ accessKeyId: 'A2' });
  // Once the shared window is over, a re-read that finds the same value says trying again cannot help.
  now = 20_000;
  expect(await secret.refresh()).toBe(false);
});

test('ECR with keys from a secret: a refused key reads the secret again and the call is retried once', async () => {
  sm.on(GetSecretValueCommand).resolvesOnce(keys('OLD')).resolves(keys('NEW'));
  const refused = new ECRServiceException({
    name: 'UnrecognizedClientException',
    $fault: 'client',
    $metadata: { httpStatusCode: 403 },
    message: 'The security token included in the request is invalid.',
  });
  const secret = new DestinationSecret(new SecretsManagerClient({ region: 'us-east-1' }), ARN);
  const client = secretEcrClient(secret, 'us-gov-west-1');
  let calls = 0;
  ecr.on(DescribeRepositoriesCommand).callsFake(async () => {
    calls++;
    if (calls === 1) throw refused;
    return { repositories: [] };
  });
  await client.send(new DescribeRepositoriesCommand({}));
  const used = await Promise.all(
    ecr.commandCalls(DescribeRepositoriesCommand).map(async (c) => {
      const self = c.thisValue as ECRClient;
      return [await self.config.region(), (await self.config.credentials()).accessKeyId];
    }),
  );
  expect(used).toEqual([
    ['us-gov-west-1', 'OLD'],
    ['us-gov-west-1', 'NEW'],
  ]);
  client.destroy();
});
