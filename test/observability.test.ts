import { MirrorError } from '../src/errors';
import { METRICS } from '../src/metrics';
import { countRetries, emit, metrics } from '../src/observability';
import { withRetry } from '../src/registry/retry';

const FAST = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2, maxElapsedMs: 1_000 };

describe('metrics', () => {
  let added: [string, string, number][];
  beforeEach(() => {
    added = [];
    jest.spyOn(metrics, 'addMetric').mockImplementation((name, unit, value) => {
      added.push([name, unit, value]);
      return metrics;
    });
  });
  afterEach(() => jest.restoreAllMocks());

  it('emits a metric of src/metrics.ts in its unit', () => {
    emit('BytesCopied', 42);
    emit('MirrorLatency', 7);
    expect(added).toEqual([
      ['BytesCopied', METRICS.BytesCopied.unit, 42],
      ['MirrorLatency', 'Milliseconds', 7],
    ]);
  });

  it('counts the registry retries and throttles made while it counted', async () => {
    const done = countRetries();
    const answers = [
      new MirrorError('TOO_MANY_REQUESTS', 'GET manifest a:1: HTTP 429', { retryable: true }),
      new MirrorError('REGISTRY_ERROR', 'GET manifest a:1: HTTP 503', { retryable: true }),
    ];
    await expect(
      withRetry(FAST, async () => {
        const next = answers.shift();
        if (next) throw next;
        return 'ok';
      }),
    ).resolves.toBe('ok');
    // Not retried: neither counts.
    await expect(
      withRetry(FAST, async () => {
        throw new MirrorError('DENIED', 'no', { retryable: false });
      }),
    ).rejects.toThrow('no');
    done();
    expect(added).toEqual([
      ['RegistryRetries', 'Count', 2],
      ['RegistryThrottles', 'Count', 1],
    ]);
  });
});
