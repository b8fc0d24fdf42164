import { ensureBuilt } from '../support/run-built';

/**
 * The Lambda bundles as the runtime loads them. Node.js 24 on Lambda (nodejs24.x) runs async
 * handlers only: a handler that takes a third parameter (a callback) fails to initialise there.
 * The configuration is validated when the bundle loads (the function's init): a bad one fails the
 * init, naming the setting, instead of every invocation.
 */

type Handler = (event: unknown, context: unknown) => unknown;

const CONFIG = {
  SOURCE_ACCOUNT_ID: '111111111111',
  SOURCE_REGION: 'us-east-1',
  STATUS_TABLE: 'ecr-mirror-test-status',
  DESTINATIONS: JSON.stringify([
    {
      accountId: '222222222222',
      region: 'eu-west-1',
      roleArn: 'arn:aws:iam::222222222222:role/ecr-mirror-destination',
      externalId: 'external-id',
    },
  ]),
};

describe.each(['mirror', 'resync'])('dist/lambda/%s.js', (name) => {
  const saved = { ...process.env };
  let file: string;

  /** Loads the bundle afresh, as a cold start does, with this environment. */
  const load = (env: Record<string, string | undefined>): Handler => {
    process.env = { ...saved, ...env };
    let handler: Handler | undefined;
    jest.isolateModules(() => {
      handler = (require(file) as { handler: Handler }).handler;
    });
    return handler!;
  };

  beforeAll(() => {
    file = ensureBuilt(`dist/lambda/${name}.js`);
  });
  afterEach(() => {
    process.env = { ...saved };
  });

  it('exports an async handler without a callback parameter', async () => {
    const handler = load(CONFIG);
    expect(typeof handler).toBe('function');
    expect(handler.length).toBeLessThanOrEqual(2);
    const context = {
      functionName: `ecr-mirror-test-${name}`,
      awsRequestId: 'request-1',
      invokedFunctionArn: `arn:aws:lambda:us-east-1:111111111111:function:ecr-mirror-test-${name}`,
      getRemainingTimeInMillis: () => 60_000,
    };
    // Inputs that need no AWS: an empty batch, and a resync input it refuses.
    const out = handler(name === 'mirror' ? { Records: [] } : { dryRun: 'yes' }, context);
    expect(out).toBeInstanceOf(Promise);
    if (name === 'mirror') await expect(out).resolves.toEqual({ batchItemFailures: [] });
    else await expect(out).rejects.toThrow(/resync input dryRun/);
  });

  it('fails its init when the configuration is missing, naming the setting', () => {
    expect(() =>
      load({ SOURCE_ACCOUNT_ID: undefined, DESTINATIONS: undefined, STATUS_TABLE: undefined }),
    ).toThrow(/^SOURCE_ACCOUNT_ID: is required/);
  });
});
