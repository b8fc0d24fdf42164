import { ECRClient, ECRServiceException, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { mockClient } from 'aws-sdk-client-mock';
import { ecrCredentials } from '../../src/aws/ecr-auth';
import { denialOf, deniedRecordMessage } from '../../src/doctor/denied';
import { MirrorError } from '../../src/errors';
import { staticCredentials } from '../../src/registry/auth';
import { HttpRegistry } from '../../src/registry/http-registry';
import { openAwsRegistry } from '../../src/wiring/registries';
import { getManifest, pushImage } from '../support/content';
import { failure } from '../support/failure';
import { startRegistry, TEST_CREDS, TEST_PASSWORD, TEST_USER, type TestRegistry } from '../support/registry';

const HOST = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
const HOUR = 3600_000;
const T0 = Date.parse('2025-03-01T00:00:00Z');

const ecr = mockClient(ECRClient);
beforeEach(() => ecr.reset());
afterAll(() => ecr.restore());

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function answer(decoded: string, expiresAt: number) {
  return {
    authorizationData: [
      {
        authorizationToken: b64(decoded),
        expiresAt: new Date(expiresAt),
        proxyEndpoint: `https://${HOST}`,
      },
    ],
    $metadata: {},
  };
}

function awsError(name: string, fault: 'client' | 'server', message: string): ECRServiceException {
  return new ECRServiceException({ name, $fault: fault, $metadata: { httpStatusCode: 400 }, message });
}

describe('ecrCredentials', () => {
  test('decodes AWS:<password> on the first colon, asking ECR in the host region', async () => {
    ecr.on(GetAuthorizationTokenCommand).resolves(answer('AWS:pa:ss:wo=rd', T0 + 12 * HOUR));
    const creds = await ecrCredentials(HOST, { now: () => T0 })();
    expect(creds).toEqual({ username: 'AWS', password: 'pa:ss:wo=rd' });
    const calls = ecr.commandCalls(GetAuthorizationTokenCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({});
    expect(await (calls[0]!.thisValue as ECRClient).config.region()).toBe('eu-west-1');
  });

  test('FIPS and China hosts get their endpoint and region', async () => {
    ecr.on(GetAuthorizationTokenCommand).resolves(answer('AWS:x', T0 + 12 * HOUR));
    await ecrCredentials('123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com')();
    await ecrCredentials('123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn')();
    const [fips, china] = ecr.commandCalls(GetAuthorizationTokenCommand).map((c) => c.thisValue as ECRClient);
    expect(await fips!.config.region()).toBe('us-gov-west-1');
    expect(await fips!.config.useFipsEndpoint()).toBe(true);
    expect(await china!.config.region()).toBe('cn-north-1');
  });

  test('many concurrent callers share one GetAuthorizationToken call, and later ones the cache', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    ecr.on(GetAuthorizationTokenCommand).callsFake(async () => {
      await gate;
      return answer('AWS:secret-1', T0 + 12 * HOUR);
    });
    const provider = ecrCredentials(HOST, { now: () => T0 });
    const all = Promise.all(Array.from({ length: 25 }, () => provider()));
    release();
    const results = await all;
    expect(new Set(results.map((c) => c?.password))).toEqual(new Set(['secret-1']));
    for (let i = 0; i < 10; i++) await provider();
    expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(1);
  });

  test('refreshes once half the validity window has passed', async () => {
    let clock = T0;
    ecr
      .on(GetAuthorizationTokenCommand)
      .resolvesOnce(answer('AWS:first', T0 + 12 * HOUR))
      .resolvesOnce(answer('AWS:second', T0 + 18 * HOUR));
    const provider = ecrCredentials(HOST, { now: () => clock });

    expect((await provider())?.password).toBe('first');
    clock = T0 + 6 * HOUR - 1;
    expect((await provider())?.password).toBe('first');
    expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(1);

    clock = T0 + 6 * HOUR;
    expect((await provider())?.password).toBe('second');
    expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(2);
    // The second token, issued at 6 h and valid until 18 h, is good until 12 h.
    clock = T0 + 12 * HOUR - 1;
    expect((await provider())?.password).toBe('second');
    expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(2);
  });

  test('a failed refresh falls back to the current token while it is still valid', async () => {
    let clock = T0;
    ecr
      .on(GetAuthorizationTokenCommand)
      .resolvesOnce(answer('AWS:first', T0 + 12 * HOUR))
      .rejects(awsError('ThrottlingException', 'client', 'Rate exceeded'));
    const provider = ecrCredentials(HOST, { now: () => clock });
    expect((await provider())?.password).toBe('first');
    clock = T0 + 7 * HOUR;
    expect((await provider())?.password).toBe('first');
    // It waits a minute before asking again rather than calling on every request.
    expect((await provider())?.password).toBe('first');
    expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(2);
    clock = T0 + 12 * HOUR - 60_000;
    expect((await failure(provider())).retryable).toBe(true);
  });

  test('a token got with assumed-role credentials is refreshed before those expire', async () => {
    let clock = T0;
    ecr
      .on(GetAuthorizationTokenCommand)
      .resolvesOnce(answer('AWS:first', T0 + 12 * HOUR))
      .resolvesOnce(answer('AWS:second', T0 + 13 * HOUR));
    const awsCredentials = async () => ({
      accessKeyId: 'ASIA',
      secretAccessKey: 's',
      expiration: new Date(T0 + HOUR),
    });
    const provider = ecrCredentials(HOST, { now: () => clock, awsCredentials });
    expect((await provider())?.password).toBe('first');
    clock = T0 + 30 * 60_000;
    expect((await provider())?.password).toBe('second');
  });

  test('ThrottlingException becomes a retryable AWS_ERROR, and the next call asks again', async () => {
    ecr
      .on(GetAuthorizationTokenCommand)
      .rejectsOnce(awsError('ThrottlingException', 'client', 'Rate exceeded'))
      .resolvesOnce(answer('AWS:after-throttle', T0 + 12 * HOUR));
    const provider = ecrCredentials(HOST, { now: () => T0 });
    const err = await failure(provider());
    expect(err.code).toBe('AWS_ERROR');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('ThrottlingException');
    expect(err.message).toContain('eu-west-1');
    expect((await provider())?.password).toBe('after-throttle');
  });

  test("ECR's ServerException is retryable too", async () => {
    ecr.on(GetAuthorizationTokenCommand).rejects(awsError('ServerException', 'server', 'internal failure'));
    const err = await failure(ecrCredentials(HOST)());
    expect(err.code).toBe('AWS_ERROR');
    expect(err.retryable).toBe(true);
  });

  test('AccessDeniedException becomes DENIED, not retryable, naming the action and the resource', async () => {
    const refusal =
      'User: arn:aws:sts::123456789012:assumed-role/mirror/x is not authorized to perform: ecr:GetAuthorizationToken';
    ecr.on(GetAuthorizationTokenCommand).rejects(awsError('AccessDeniedException', 'client', refusal));
    const err = await failure(ecrCredentials(HOST)());
    expect(err.code).toBe('DENIED');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('AccessDeniedException');
    // The status record's explanation (src/doctor/denied.ts) reads the action, resource and principal.
    const sides = {
      source: { accountId: '111111111111', region: 'us-east-1', repository: 'app' },
      destination: { accountId: '123456789012', region: 'eu-west-1', repository: 'app' },
    };
    expect(denialOf(err.message, sides)).toEqual({
      action: 'ecr:GetAuthorizationToken',
      resource: '*',
      principal: 'arn:aws:sts::123456789012:assumed-role/mirror/x',
    });
    expect(deniedRecordMessage(err.message, sides)).toMatch(
      /^ecr:GetAuthorizationToken on \* refused for arn:aws:sts::123456789012:assumed-role\/mirror\/x; run `ecr-mirror doctor`/,
    );
    // Without AWS's sentence, the action and resource are still named.
    ecr.reset();
    ecr
      .on(GetAuthorizationTokenCommand)
      .rejects(awsError('AccessDeniedException', 'client', 'Access denied'));
    const bare = await failure(ecrCredentials(HOST)());
    expect(bare.code).toBe('DENIED');
    expect(deniedRecordMessage(bare.message, sides)).toMatch(/^ecr:GetAuthorizationToken on \* refused; run/);
  });

  test('a token without a colon is refused without showing it', async () => {
    const secret = 'AWSno-colon-secret-9f8e';
    ecr.on(GetAuthorizationTokenCommand).resolves(answer(secret, T0 + 12 * HOUR));
    const err = await failure(ecrCredentials(HOST)());
    expect(err.code).toBe('AWS_ERROR');
    expect(err.message).not.toContain('no-colon-secret');
    expect(err.message).not.toContain(b64(secret));
  });

  test('an empty answer is an AWS_ERROR', async () => {
    ecr.on(GetAuthorizationTokenCommand).resolves({ authorizationData: [], $metadata: {} });
    const err = await failure(ecrCredentials(HOST)());
    expect(err.code).toBe('AWS_ERROR');
    expect(err.message).toMatch(/no usable token/);
  });

  test('a host that is not ECR is refused before anything is asked', () => {
    for (const host of [
      'ghcr.io',
      '123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example',
      '127.0.0.1:5000',
    ]) {
      let caught: unknown;
      try {
        ecrCredentials(host);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(MirrorError);
      expect((caught as MirrorError).code).toBe('INVALID_ARGUMENT');
      expect((caught as MirrorError).message).toContain(host);
    }
    expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(0);
  });
});

describe('an ECR host opened through openAwsRegistry, mapped to a local registry', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => {
    await reg?.stop();
  });

  test('sends the GetAuthorizationToken credentials as Basic on the first request', async () => {
    const img = await pushImage(reg, 'team/app', 'v1', { layers: [1500] });
    // The htpasswd registry knows mirror:mirror-secret; the mocked ECR hands out exactly that.
    ecr
      .on(GetAuthorizationTokenCommand)
      .resolves(answer(`${TEST_USER}:${TEST_PASSWORD}`, Date.now() + 12 * HOUR));

    const client = openAwsRegistry(HOST, { endpoints: { [HOST]: reg.url } });
    const head = await client.headManifest('team/app', 'v1');
    expect(head?.digest).toBe(img.manifest.digest);
    // One request, answered 200: no 401 round trip to learn the scheme.
    expect(client.counts.manifest).toBe(1);

    // Without preemptive Basic the same request costs a 401 round trip: what the above saves.
    const plain = new HttpRegistry({
      host: reg.host,
      baseUrl: reg.url,
      credentials: staticCredentials(TEST_CREDS),
    });
    await plain.headManifest('team/app', 'v1');
    expect(plain.counts.manifest).toBe(2);

    // Many requests more, through the same client: still one GetAuthorizationToken.
    const manifest = await client.getManifest('team/app', img.manifest.digest);
    expect(Buffer.from(manifest.bytes).equals(img.bytes)).toBe(true);
    expect(await client.hasBlob('team/app', img.layers[0]!.digest)).toBe(true);
    expect(await client.listTags('team/app')).toEqual(['v1']);
    expect(client.counts.manifest + client.counts.blob + client.counts.other).toBe(4);
    expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(1);
    expect(await (ecr.call(0).thisValue as ECRClient).config.region()).toBe('eu-west-1');
    expect((await getManifest(reg, 'team/app', 'v1')).digest).toBe(img.manifest.digest);
  });

  test('credentials the registry refuses fail at once with UNAUTHORIZED, without the password', async () => {
    const password = 'stale-ecr-password-77';
    ecr.on(GetAuthorizationTokenCommand).resolves(answer(`AWS:${password}`, Date.now() + 12 * HOUR));
    const client = openAwsRegistry(HOST, { endpoints: { [HOST]: reg.url } });
    const err = await failure(client.headManifest('team/app', 'v1'));
    expect(err.code).toBe('UNAUTHORIZED');
    expect(err.retryable).toBe(false);
    expect(err.message).not.toContain(password);
    expect(err.message).not.toContain(b64(`AWS:${password}`));
    expect(client.counts.manifest).toBe(1);
  });
});
