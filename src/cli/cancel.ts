import { MirrorError } from '../errors';

let interrupted = false;

/** True once Ctrl-C (SIGINT) has cancelled a command: it then exits 130, as shells expect. */
export function wasInterrupted(): boolean {
  return interrupted;
}

/**
 * The signal a command passes down to everything it does: Ctrl-C aborts it (CANCELLED), and so does
 * `--timeout` when given (a TimeoutError reason: TIMEOUT). A second Ctrl-C exits at once, for when
 * cleaning up takes too long. `dispose` removes the handler and the timer.
 */
export function commandSignal(timeout?: { ms: number; text: string }): {
  signal: AbortSignal;
  dispose(): void;
} {
  const controller = new AbortController();
  const onInterrupt = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    controller.abort(new MirrorError('CANCELLED', 'interrupted (Ctrl-C)'));
  };
  process.on('SIGINT', onInterrupt);
  const timer =
    timeout &&
    setTimeout(
      () => controller.abort(new DOMException(`the --timeout of ${timeout.text} passed`, 'TimeoutError')),
      timeout.ms,
    );
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', onInterrupt);
      clearTimeout(timer);
    },
  };
}
