import { abortError, isRetryable, MirrorError, throwIfAborted } from '../errors';
import { RegistryError } from './errors';

export interface RetryPolicy {
  /** Total attempts, the first included. */
  attempts: number;
  /** First backoff; each later one doubles, jittered between half and all of it ("equal jitter"). */
  baseDelayMs: number;
  maxDelayMs: number;
  /** No new attempt starts once this much time has passed since the first. */
  maxElapsedMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 20_000,
  maxElapsedMs: 120_000,
};

/** Waits `ms`; an abort of `signal` ends the wait at once with abortError. */
export function sleep(ms: number, signal?: AbortSignal, what = 'waiting to retry'): Promise<void> {
  if (!signal) return new Promise((resolve) => setTimeout(resolve, ms));
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError(signal, what));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal, what));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The wait before attempt `attempt + 1`: the registry's Retry-After when it gave one, else jittered backoff. */
export function backoffDelay(
  policy: RetryPolicy,
  attempt: number,
  err: unknown,
  random = Math.random,
): number {
  if (err instanceof RegistryError && err.retryAfterMs !== undefined) {
    return Math.min(err.retryAfterMs, policy.maxDelayMs);
  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * Retries in this process so far, all registries together, and how many of them followed a throttling
 * answer (429, TOOMANYREQUESTS): the functions report the growth per invocation as metrics.
 */
export const retryCounts = { retries: 0, throttled: 0 };

/**
 * Runs `fn` until it succeeds, throws something not retryable, or the policy's attempts or time run out.
 * `onRetry` hears of each failed attempt that will be tried again. Once `signal` is aborted no attempt
 * starts, the wait between attempts ends, and the failure is abortError (a TIMEOUT the caller's
 * deadline caused is not retried here, whatever its `retryable` says to the caller's caller).
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  fn: (attempt: number) => Promise<T>,
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void,
  signal?: AbortSignal,
): Promise<T> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(signal, 'retrying');
    try {
      return await fn(attempt);
    } catch (err) {
      if (signal?.aborted) throw isAbort(err) ? err : abortError(signal, 'retrying');
      const delay = backoffDelay(policy, attempt, err);
      const outOfTime = Date.now() - started + delay > policy.maxElapsedMs;
      if (!isRetryable(err) || attempt >= policy.attempts || outOfTime) throw err;
      retryCounts.retries++;
      if ((err as { code?: string }).code === 'TOO_MANY_REQUESTS') retryCounts.throttled++;
      onRetry?.(err, attempt, delay);
      await sleep(delay, signal);
    }
  }
}

const isAbort = (err: unknown): boolean =>
  err instanceof MirrorError && (err.code === 'TIMEOUT' || err.code === 'CANCELLED');
