/** What serverless.yml names for the default stage (`ecr-mirror-<stage>-status`, `…-resync`). */
export const DEFAULT_TABLE = 'ecr-mirror-dev-status';
export const DEFAULT_RESYNC_FUNCTION = 'ecr-mirror-dev-resync';
