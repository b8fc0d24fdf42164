import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';

/**
 * Structured JSON logs and CloudWatch embedded-format metrics (Powertools for AWS Lambda): logs and
 * metrics land in CloudWatch without extra API calls from the function.
 */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'ecr-mirror' });
export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'EcrMirror',
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'ecr-mirror',
});
