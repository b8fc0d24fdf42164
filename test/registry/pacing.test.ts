import { copyImage } from '../../src/copy/copy-image';
import { parseReference } from '../../src/core/reference';
import { openRegistry } from '../../src/registry/open';
import { ActionPace, actionClass, Pacing } from '../../src/registry/pacing';
import { pushImage } from '../support/content';
import { ociError, type SeenRequest, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';

/**
 * Adaptive pacing (AIMD on each host's and action class's request rate): unit tests on a fake clock,
 * then a real copy through a proxy that throttles upload starts above a rate.
 */

describe('ActionPace', () => {
  let now = 0;
  const pace = () => new ActionPace({ now: () => now });
  beforeEach(() => {
    now = 1_000_000;
  });

  /** `n` requests answered `status`, one every `everyMs`, each sent when the pace allowed. */
  async function run(p: ActionPace, n: number, everyMs: number, status = 200): Promise<number[]> {
    const sent: number[] = [];
    for (let i = 0; i < n; i++) {
      const at = await p.acquire();
      sent.push(at);
      now = Math.max(now, at) + everyMs;
      p.settle(at, status);
    }
    return sent;
  }

  test('unpaced until the registry throttles', async () => {
    const p = pace();
    expect(p.rate()).toBe(Number.POSITIVE_INFINITY);
    const sent = await run(p, 50, 1);
    expect(sent[49]! - sent[0]!).toBe(49);
  });

  test('a throttle sets the rate to 0.7 of what the registry let through in the last second, then it grows', async () => {
    const p = pace();
    await run(p, 30, 50); // 20 a second
    const at = await p.acquire();
    p.settle(at, 429);
    const floor = p.rate();
    expect(floor).toBeGreaterThanOrEqual(0.6 * 20);
    expect(floor).toBeLessThanOrEqual(0.7 * 20);
    // The next requests are spaced 1/rate apart (not sleeping: the fake clock moves past each turn).
    const first = await p.acquire();
    now = first;
    const second = await p.acquire();
    expect(second - first).toBeCloseTo(1000 / floor, -1);
    // Additive increase: about 5 % of the rate it came down from, each second.
    now += 10_000;
    expect(p.rate()).toBeGreaterThan(floor + 8);
    expect(p.rate()).toBeLessThan(floor + 11);
    // A minute without a throttle: unpaced again.
    now += 60_000;
    expect(p.rate()).toBe(Number.POSITIVE_INFINITY);
  });

  test('throttles of requests sent before the decrease do not decrease it again', async () => {
    const p = pace();
    await run(p, 30, 30);
    const inFlight = [await p.acquire(), await p.acquire(), await p.acquire()];
    p.settle(inFlight[0]!, 429);
    const after = p.rate();
    p.settle(inFlight[1]!, 429);
    p.settle(inFlight[2]!, 503);
    expect(p.rate()).toBe(after);
    expect(p.throttled).toBe(3);
    // One sent after the decrease and throttled again: down once more.
    now += 100;
    const later = await p.acquire();
    now = later + 5;
    p.settle(later, 429);
    expect(p.rate()).toBeLessThan(after);
  });

  test('Retry-After holds every request of the class until then', async () => {
    const p = pace();
    const at = await p.acquire();
    p.settle(at, 429, 2_000);
    jest.useFakeTimers({ now });
    try {
      let done = false;
      const next = p.acquire().then((t) => {
        done = true;
        return t;
      });
      await jest.advanceTimersByTimeAsync(1_900);
      expect(done).toBe(false);
      await jest.advanceTimersByTimeAsync(200);
      expect(await next).toBeGreaterThanOrEqual(now + 2_000);
    } finally {
      jest.useRealTimers();
    }
  });

  test('never below the minimum rate', () => {
    const p = pace();
    for (let i = 0; i < 20; i++) {
      now += 10;
      p.settle(now, 429);
    }
    expect(p.rate()).toBe(2);
  });
});

test('action classes: manifest writes, upload starts, blob transfers, reads', () => {
  expect(actionClass('PUT', 'manifest')).toBe('manifest-write');
  expect(actionClass('DELETE', 'manifest')).toBe('manifest-write');
  expect(actionClass('HEAD', 'manifest')).toBe('read');
  expect(actionClass('POST', 'upload')).toBe('upload-start');
  expect(actionClass('PUT', 'upload')).toBe('blob-transfer');
  expect(actionClass('PATCH', 'upload')).toBe('blob-transfer');
  expect(actionClass('GET', 'blob')).toBe('blob-transfer');
  expect(actionClass('HEAD', 'blob')).toBe('read');
  expect(actionClass('GET', 'other')).toBe('read');
});

test('paces per host and class: a throttled class leaves the others alone', async () => {
  const pacing = new Pacing();
  const writes = pacing.pace('r.example', 'manifest-write');
  for (let i = 0; i < 5; i++) writes.settle(await writes.acquire(), 200);
  writes.settle(await writes.acquire(), 429);
  expect(pacing.pace('r.example', 'manifest-write').rate()).toBeLessThan(Number.POSITIVE_INFINITY);
  expect(pacing.pace('r.example', 'read').rate()).toBe(Number.POSITIVE_INFINITY);
  expect(pacing.pace('other.example', 'manifest-write').rate()).toBe(Number.POSITIVE_INFINITY);
  expect(pacing.stats('r.example')).toMatchObject({ throttled: 1 });
  expect(pacing.stats('r.example').rates['manifest-write']).toBeLessThan(Number.POSITIVE_INFINITY);
});

describe('against a registry that throttles above a rate', () => {
  let a: TestRegistry;
  let b: TestRegistry;
  beforeAll(async () => {
    [a, b] = await Promise.all([startRegistry(), startRegistry()]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  test('the copy completes near the allowed rate with few 429s', async () => {
    const LIMIT = 10; // upload starts per second, as a token bucket holding 2
    await pushImage(a, 'paced/app', 'v1', { layers: Array.from({ length: 40 }, () => 300) });
    const proxy = await startFaultProxy(b);
    let tokens = 2;
    let last = Date.now();
    const overLimit = (): boolean => {
      const now = Date.now();
      tokens = Math.min(2, tokens + ((now - last) / 1000) * LIMIT);
      last = now;
      if (tokens >= 1) {
        tokens -= 1;
        return false;
      }
      return true;
    };
    proxy.fault({
      method: 'POST',
      path: /^\/v2\/paced\/app\/blobs\/uploads\/$/,
      when: overLimit,
      action: { type: 'status', status: 429, body: ociError('TOOMANYREQUESTS', 'rate exceeded') },
    });
    try {
      const pacing = new Pacing();
      const open = (host: string) => openRegistry(host, { insecure: true, credentials: TEST_CREDS, pacing });
      const summary = await copyImage(
        open(a.host),
        parseReference(`${a.host}/paced/app:v1`),
        open(proxy.host),
        parseReference(`${proxy.host}/paced/app:v1`),
      );
      expect(summary.blobs.copied).toBe(41);

      const starts = proxy.seen('POST', /^\/v2\/paced\/app\/blobs\/uploads\/$/);
      const refused = starts.filter((r) => r.status === 429);
      const accepted = starts.filter((r) => r.status === 202);
      expect(accepted).toHaveLength(41);
      // Few refusals: the first ones teach the pace, then it stays under the limit.
      expect(refused.length).toBeLessThanOrEqual(12);
      // Near the allowed rate: over the accepted ones' span, at least 60 % of the limit.
      const span = (accepted.at(-1)!.at - accepted[0]!.at) / 1000;
      expect((accepted.length - 1) / span).toBeGreaterThanOrEqual(0.6 * LIMIT);
      expect(pacing.stats(proxy.host).throttled).toBe(refused.length);
      expect(reads(starts)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});

/** Requests that were never answered (there should be none). */
const reads = (requests: SeenRequest[]): SeenRequest[] => requests.filter((r) => r.status === undefined);
