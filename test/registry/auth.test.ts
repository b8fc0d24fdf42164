import { MirrorError } from '../../src/errors';
import { basicAuthorization, parseChallenges, parseCredentials } from '../../src/registry/auth';
import { errorFromResponse, parseRetryAfter, RegistryError, redactUrl } from '../../src/registry/errors';
import { backoffDelay, type RetryPolicy, withRetry } from '../../src/registry/retry';

describe('parseChallenges', () => {
  test('Bearer with realm, service and a quoted scope holding commas and colons', () => {
    expect(
      parseChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:samalba/my-app:pull,push',
        },
      },
    ]);
  });

  test('several scopes in one quoted value, and the error distribution adds', () => {
    const [c] = parseChallenges(
      'Bearer realm="http://127.0.0.1:5001/token",service="reg",scope="repository:a:pull repository:b/c:pull,push",error="insufficient_scope"',
    );
    expect(c?.params.scope).toBe('repository:a:pull repository:b/c:pull,push');
    expect(c?.params.error).toBe('insufficient_scope');
  });

  test('Basic with realm, as ECR answers', () => {
    expect(
      parseChallenges(
        'Basic realm="https://123456789012.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com"',
      ),
    ).toEqual([
      {
        scheme: 'basic',
        params: {
          realm: 'https://123456789012.dkr.ecr.us-east-1.amazonaws.com/',
          service: 'ecr.amazonaws.com',
        },
      },
    ]);
  });

  test('several challenges in one header, in order', () => {
    const got = parseChallenges(
      'Basic realm="basic, realm", Bearer realm="https://auth.example/token",service="svc"',
    );
    expect(got).toEqual([
      { scheme: 'basic', params: { realm: 'basic, realm' } },
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'svc' } },
    ]);
  });

  test('escaped quotes and backslashes inside quoted values', () => {
    const [c] = parseChallenges(
      'Bearer realm="https://a/token",error_description="the \\"push\\" action, for \\\\share"',
    );
    expect(c?.params.error_description).toBe('the "push" action, for \\share');
    expect(c?.params.realm).toBe('https://a/token');
  });

  test('scheme and parameter names are case-insensitive; unquoted values and spaces around = and , are fine', () => {
    expect(parseChallenges('BEARER Realm=https://a/token , Service = "svc"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://a/token', service: 'svc' } },
    ]);
  });

  test('a scheme without parameters, alone or before another challenge', () => {
    expect(parseChallenges('Basic')).toEqual([{ scheme: 'basic', params: {} }]);
    expect(parseChallenges('Negotiate, Basic realm="r"')).toEqual([
      { scheme: 'negotiate', params: {} },
      { scheme: 'basic', params: { realm: 'r' } },
    ]);
  });

  test('nothing to parse gives no challenge', () => {
    expect(parseChallenges('')).toEqual([]);
    expect(parseChallenges('   ')).toEqual([]);
  });
});

describe('credentials', () => {
  test('USER:PASS splits on the first colon', () => {
    expect(parseCredentials('AWS:pa:ss:word', '--src-creds')).toEqual({
      username: 'AWS',
      password: 'pa:ss:word',
    });
    expect(parseCredentials('user:', '--src-creds')).toEqual({ username: 'user', password: '' });
  });

  test('without a colon, or without a user, the error names the setting and not the value', () => {
    for (const value of ['just-a-secret-token', ':only-a-password']) {
      let caught: unknown;
      try {
        parseCredentials(value, '--dst-creds');
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(MirrorError);
      expect((caught as MirrorError).code).toBe('INVALID_ARGUMENT');
      expect((caught as MirrorError).message).toContain('--dst-creds');
      expect((caught as MirrorError).message).not.toContain(value);
    }
  });

  test('basicAuthorization encodes user:password', () => {
    expect(basicAuthorization({ username: 'AWS', password: 'p:w' })).toBe(
      `Basic ${Buffer.from('AWS:p:w').toString('base64')}`,
    );
  });
});

describe('redactUrl', () => {
  test('drops user info, query and fragment', () => {
    expect(
      redactUrl(
        'https://user:secret@bucket.s3.amazonaws.com:443/layer/sha256:abc?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA#frag',
      ),
    ).toBe('https://bucket.s3.amazonaws.com/layer/sha256:abc');
    expect(redactUrl(new URL('http://127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=opaque'))).toBe(
      'http://127.0.0.1:5000/v2/a/blobs/uploads/uuid',
    );
  });

  test('something that is not a URL is not echoed', () => {
    expect(redactUrl('not a url with secret')).toBe('<invalid url>');
  });
});

const oci = (code: string, message: string): string =>
  JSON.stringify({ errors: [{ code, message, detail: {} }] });

describe('errorFromResponse', () => {
  afterEach(() => jest.restoreAllMocks());

  test('401 is UNAUTHORIZED, not retryable, with the OCI code and reason in the message', () => {
    const err = errorFromResponse(
      'GET manifest a:1',
      401,
      oci('UNAUTHORIZED', 'authentication required'),
      undefined,
    );
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({
      code: 'UNAUTHORIZED',
      status: 401,
      ociCode: 'UNAUTHORIZED',
      retryable: false,
    });
    expect(err.message).toBe('GET manifest a:1: HTTP 401 UNAUTHORIZED (authentication required)');
  });

  test('403, or the DENIED code under another status, is DENIED', () => {
    expect(errorFromResponse('x', 403, '', undefined).code).toBe('DENIED');
    expect(
      errorFromResponse('x', 400, oci('DENIED', 'requested access to the resource is denied'), undefined)
        .code,
    ).toBe('DENIED');
  });

  test('404 MANIFEST_UNKNOWN, or any *_UNKNOWN code, is NOT_FOUND; so is a bodiless 404 (HEAD)', () => {
    const err = errorFromResponse(
      'GET manifest a:1',
      404,
      oci('MANIFEST_UNKNOWN', 'manifest unknown'),
      undefined,
    );
    expect(err).toMatchObject({ code: 'NOT_FOUND', ociCode: 'MANIFEST_UNKNOWN', retryable: false });
    expect(errorFromResponse('HEAD', 404, '', undefined).code).toBe('NOT_FOUND');
    expect(errorFromResponse('x', 400, oci('BLOB_UNKNOWN', 'blob unknown'), undefined).code).toBe(
      'NOT_FOUND',
    );
  });

  test('429 TOOMANYREQUESTS is retryable and keeps Retry-After in seconds', () => {
    const err = errorFromResponse('PUT manifest', 429, oci('TOOMANYREQUESTS', 'Rate exceeded'), '7');
    expect(err).toMatchObject({ code: 'TOO_MANY_REQUESTS', retryable: true, retryAfterMs: 7000 });
    // The OCI code alone, under another status, means the same.
    expect(errorFromResponse('x', 400, oci('TOOMANYREQUESTS', 'slow down'), undefined)).toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      retryable: true,
    });
  });

  test('Retry-After as an HTTP date counts from now; a past date means at once', () => {
    const now = Date.parse('2025-06-01T12:00:00Z');
    jest.spyOn(Date, 'now').mockReturnValue(now);
    const err = errorFromResponse('x', 429, '', new Date(now + 30_000).toUTCString());
    expect(err.retryAfterMs).toBe(30_000);
    expect(errorFromResponse('x', 503, '', 'Sun, 01 Jun 2025 11:00:00 GMT').retryAfterMs).toBe(0);
    expect(errorFromResponse('x', 503, '', 'soon, maybe').retryAfterMs).toBeUndefined();
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  test("400 TAG_INVALID for an immutable tag is TAG_IMMUTABLE (ECR's wording); other TAG_INVALID is not", () => {
    const ecr =
      "The image tag 'v1' already exists in the 'team/app' repository and cannot be overwritten because the tag is immutable.";
    expect(
      errorFromResponse('PUT manifest team/app:v1', 400, oci('TAG_INVALID', ecr), undefined),
    ).toMatchObject({
      code: 'TAG_IMMUTABLE',
      retryable: false,
      ociCode: 'TAG_INVALID',
    });
    expect(
      errorFromResponse('x', 400, oci('TAG_INVALID', 'manifest tag did not match URI'), undefined).code,
    ).toBe('REGISTRY_ERROR');
  });

  test('500, 502, 503, 504 and 408 are retryable; 501 is not', () => {
    for (const status of [500, 502, 503, 504, 408]) {
      expect(errorFromResponse('x', status, '', undefined).retryable).toBe(true);
    }
    const notImplemented = errorFromResponse('x', 501, '', undefined);
    expect(notImplemented.retryable).toBe(false);
    expect(notImplemented.code).toBe('REGISTRY_ERROR');
  });

  test('413 is MANIFEST_TOO_LARGE, DIGEST_INVALID is DIGEST_MISMATCH', () => {
    expect(errorFromResponse('x', 413, '', undefined).code).toBe('MANIFEST_TOO_LARGE');
    expect(errorFromResponse('x', 400, oci('DIGEST_INVALID', 'digest did not match'), undefined).code).toBe(
      'DIGEST_MISMATCH',
    );
  });

  test('a body that is not OCI JSON becomes a short one-line reason', () => {
    const html = `<html>\n  <body>\n    <h1>502 Bad Gateway</h1>${' x'.repeat(500)}\n</body></html>`;
    const err = errorFromResponse('GET blob', 502, html, undefined);
    expect(err.message.startsWith('GET blob: HTTP 502 (<html> <body> <h1>502 Bad Gateway</h1>')).toBe(true);
    expect(err.message).not.toContain('\n');
    expect(err.message.length).toBeLessThan(260);
    // An auth server's own JSON keeps its text too.
    expect(
      errorFromResponse('token request', 401, '{"details":"incorrect username or password"}', undefined)
        .message,
    ).toBe('token request: HTTP 401 ({"details":"incorrect username or password"})');
  });
});

describe('backoffDelay', () => {
  const policy: RetryPolicy = { attempts: 5, baseDelayMs: 100, maxDelayMs: 1000, maxElapsedMs: 60_000 };
  const throttled = (retryAfterMs: number) =>
    new RegistryError('TOO_MANY_REQUESTS', 'x', { retryable: true, status: 429, retryAfterMs });

  test("the registry's Retry-After wins, capped at the policy's longest delay", () => {
    expect(backoffDelay(policy, 1, throttled(300), () => 0)).toBe(300);
    expect(backoffDelay(policy, 4, throttled(0), () => 0.9)).toBe(0);
    expect(backoffDelay(policy, 1, throttled(3_600_000), () => 0)).toBe(1000);
  });

  test('otherwise exponential, between half and all of the doubling ceiling, capped', () => {
    const network = new MirrorError('NETWORK', 'x', { retryable: true });
    const ceilings = [100, 200, 400, 800, 1000, 1000];
    ceilings.forEach((ceiling, i) => {
      expect(backoffDelay(policy, i + 1, network, () => 0)).toBe(ceiling / 2);
      expect(backoffDelay(policy, i + 1, network, () => 0.5)).toBe((ceiling * 3) / 4);
      expect(backoffDelay(policy, i + 1, network, () => 0.999_999)).toBe(ceiling);
    });
    expect(backoffDelay(policy, 1000, network, () => 0.999_999)).toBe(1000);
  });

  test('jitter stays within bounds for any random draw', () => {
    // A small deterministic generator (LCG) in place of Math.random.
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const seen = new Set<number>();
    for (let attempt = 1; attempt <= 8; attempt++) {
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      for (let i = 0; i < 200; i++) {
        const delay = backoffDelay(policy, attempt, new Error('x'), random);
        expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
        expect(delay).toBeLessThanOrEqual(ceiling);
        seen.add(delay);
      }
    }
    expect(seen.size).toBeGreaterThan(100); // it does jitter
  });
});

describe('withRetry', () => {
  const quick: RetryPolicy = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2, maxElapsedMs: 10_000 };

  test('tries as many times as the policy says, then throws the last error', async () => {
    let calls = 0;
    const err = new MirrorError('NETWORK', 'down', { retryable: true });
    await expect(
      withRetry(quick, async () => {
        calls++;
        throw err;
      }),
    ).rejects.toBe(err);
    expect(calls).toBe(3);
  });

  test('does not retry what is not retryable', async () => {
    let calls = 0;
    await expect(
      withRetry(quick, async () => {
        calls++;
        throw new RegistryError('UNAUTHORIZED', 'no', { status: 401 });
      }),
    ).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    expect(calls).toBe(1);
  });
});
