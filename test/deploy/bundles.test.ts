import { ensureBuilt } from '../support/run-built';

/**
 * The Lambda bundles as the runtime loads them. Node.js 24 on Lambda (nodejs24.x) runs async
 * handlers only: a handler that takes a third parameter (a callback) fails to initialise there.
 */

type Handler = (event: unknown, context: unknown) => unknown;

describe.each(['mirror', 'resync'])('dist/lambda/%s.js', (name) => {
  let handler: Handler;
  const saved = { ...process.env };

  beforeAll(() => {
    const file = ensureBuilt(`dist/lambda/${name}.js`);
    handler = (require(file) as { handler: Handler }).handler;
  });
  afterEach(() => {
    process.env = { ...saved };
  });

  it('exports an async handler without a callback parameter', () => {
    expect(typeof handler).toBe('function');
    expect(handler.length).toBeLessThanOrEqual(2);
  });

  it('answers with a promise, also when the configuration is missing', async () => {
    for (const key of ['SOURCE_ACCOUNT_ID', 'DESTINATIONS', 'STATUS_TABLE']) delete process.env[key];
    const context = {
      functionName: `ecr-mirror-test-${name}`,
      awsRequestId: 'request-1',
      invokedFunctionArn: `arn:aws:lambda:us-east-1:111111111111:function:ecr-mirror-test-${name}`,
      getRemainingTimeInMillis: () => 60_000,
    };
    const out = handler(name === 'mirror' ? { Records: [] } : {}, context);
    expect(out).toBeInstanceOf(Promise);
    await expect(out).rejects.toThrow(/INVALID_CONFIG|SOURCE_ACCOUNT_ID|DESTINATIONS|STATUS_TABLE/);
  });
});
