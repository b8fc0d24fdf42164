/**
 * Runs at most `concurrency` tasks at a time, in order of arrival. Tasks must not wait on other
 * tasks of the same limiter, or a full limiter deadlocks: use one limiter per level.
 */
export function createLimiter(concurrency: number): <T>(task: () => Promise<T>) => Promise<T> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }
  let active = 0;
  const queue: (() => void)[] = [];
  const next = (): void => {
    active--;
    queue.shift()?.();
  };
  return <T>(task: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const run = (): void => {
        active++;
        // A task that throws before returning its promise still gives its slot back.
        let started: Promise<T>;
        try {
          started = task();
        } catch (err) {
          started = Promise.reject(err);
        }
        started.then(resolve, reject).finally(next);
      };
      if (active < concurrency) run();
      else queue.push(run);
    });
}
