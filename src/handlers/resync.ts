import { createResyncHandler } from '../resync/handler';
import { resyncServices } from '../wiring/resync';
import { initialise } from './init';

/** The resync Lambda's entry: configuration validated at init (see initialise). */
export const handler = createResyncHandler(
  initialise((config) =>
    resyncServices(config, {
      sessionName: `ecr-mirror-resync-${process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'local'}`,
    }),
  ),
);
