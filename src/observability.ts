import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRIC_NAMESPACE, METRICS, type MetricName } from './metrics';
import { retryCounts } from './registry/retry';

/**
 * Structured JSON logs and CloudWatch embedded-format metrics (Powertools for AWS Lambda): logs and
 * metrics land in CloudWatch without extra API calls from the function.
 */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'ecr-mirror' });
export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRIC_NAMESPACE,
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'ecr-mirror',
});

/** Adds one of the metrics of src/metrics.ts, in its unit. */
export function emit(name: MetricName, value: number): void {
  metrics.addMetric(name, MetricUnit[METRICS[name].unit], value);
}

/**
 * Starts counting registry retries and throttles; the function returned emits what happened since.
 * One invocation runs at a time in a Lambda container, so the difference is this invocation's.
 */
export function countRetries(): () => void {
  const start = { ...retryCounts };
  return () => {
    emit('RegistryRetries', retryCounts.retries - start.retries);
    emit('RegistryThrottles', retryCounts.throttled - start.throttled);
  };
}
