import { createMirrorHandler } from '../mirror/handler';
import { mirrorRuntime } from '../wiring/mirror';
import { initialise } from './init';

/**
 * The mirror Lambda's entry. Configuration is read and validated here, at init (see initialise);
 * the handler itself is src/mirror/handler.ts, the per-message work src/mirror/message.ts.
 */
export const handler = createMirrorHandler(
  initialise((config) =>
    mirrorRuntime(config, {
      sessionName: `ecr-mirror-${process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'local'}`,
    }),
  ),
);
