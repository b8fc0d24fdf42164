import { createLimiter } from '../../src/util/limit';

test('a task that throws synchronously rejects and gives its slot back', async () => {
  const limit = createLimiter(1);
  await expect(
    limit(() => {
      throw new Error('thrown before any promise');
    }),
  ).rejects.toThrow('thrown before any promise');
  // With the slot leaked, this one would wait forever.
  await expect(limit(async () => 'ran')).resolves.toBe('ran');
});

test('at most `concurrency` tasks run at once, in order of arrival', async () => {
  const limit = createLimiter(2);
  let running = 0;
  let most = 0;
  const order: number[] = [];
  await Promise.all(
    [1, 2, 3, 4, 5].map((n) =>
      limit(async () => {
        running++;
        most = Math.max(most, running);
        order.push(n);
        await new Promise((r) => setTimeout(r, 5));
        running--;
      }),
    ),
  );
  expect(most).toBe(2);
  expect(order).toEqual([1, 2, 3, 4, 5]);
});
