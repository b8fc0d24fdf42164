import { MirrorError } from '../../src/errors';

/** Awaits what must fail, checks it failed with a MirrorError, and returns that error for assertions. */
export async function failure(promise: Promise<unknown>): Promise<MirrorError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(MirrorError);
    return err as MirrorError;
  }
  throw new Error('expected a failure');
}
