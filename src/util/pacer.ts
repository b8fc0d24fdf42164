/**
 * Spaces calls at least `1000 / perSecond` ms apart: ECR's per-region API quotas are shared with
 * everything else in the account, so a resync of thousands of images must not stampede them.
 */
export function createPacer(perSecond: number, now = Date.now): () => Promise<void> {
  const interval = 1000 / perSecond;
  let next = 0;
  return async () => {
    const at = Math.max(now(), next);
    next = at + interval;
    const wait = at - now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  };
}
