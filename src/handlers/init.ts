import { loadConfig, type MirrorConfig } from '../config/config';
import { ConfigError, describeError } from '../errors';
import { logger } from '../observability';

/**
 * A Lambda's start: reads and validates the configuration once, at init, and builds what the
 * function talks to. A bad setting is logged once, loudly, naming it, and fails the init: Lambda
 * reports an init error and no batch is received (the messages wait in the queue for the fix), rather
 * than every batch being rejected with the same stack trace.
 */
export function initialise<T>(build: (config: MirrorConfig) => T, env: NodeJS.ProcessEnv = process.env): T {
  try {
    return build(loadConfig(env));
  } catch (err) {
    logger.critical('ecr-mirror cannot start: its configuration is invalid', {
      ...(err instanceof ConfigError && { setting: err.setting }),
      error: describeError(err),
    });
    throw err;
  }
}
