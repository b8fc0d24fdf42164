/**
 * The CloudWatch metrics the functions emit (namespace `EcrMirror`, dimension `service`), named
 * once: the handlers emit them through `emit` in observability.ts, which takes only these names, and
 * test/deploy/serverless.test.ts checks that every metric on the dashboard is one of them.
 */

export const METRIC_NAMESPACE = 'EcrMirror';

export type MetricUnitName = 'Count' | 'Bytes' | 'Milliseconds';

export const METRICS = {
  MirrorLatency: {
    unit: 'Milliseconds',
    what: 'From the push (the event time) to the image in place at a destination, per destination: mirrored, or found there already',
  },
  ImagesMirrored: { unit: 'Count', what: 'Images copied to a destination' },
  ImagesSkipped: { unit: 'Count', what: 'Images a destination already had with the same digest' },
  ImagesFailed: { unit: 'Count', what: 'Images not mirrored to a destination (failed, or a conflict)' },
  BytesCopied: { unit: 'Bytes', what: 'Blob bytes copied to destinations' },
  EventsIgnored: {
    unit: 'Count',
    what: 'Events that are not to be mirrored: other action types, filtered repositories or tags',
  },
  EventsMalformed: { unit: 'Count', what: 'Messages that are not an ECR image event (dead-lettered)' },
  OwnOutputIgnored: {
    unit: 'Count',
    what: 'Pushes into what the mirror itself writes in the source registry, not mirrored again',
  },
  MessagesRetried: { unit: 'Count', what: 'Messages handed back to the queue to be received again' },
  MessagesDeadLettered: { unit: 'Count', what: 'Messages sent to the dead-letter queue with their reason' },
  RegistryRetries: { unit: 'Count', what: 'Registry requests and blob transfers tried again' },
  RegistryThrottles: {
    unit: 'Count',
    what: 'Of those, the ones a registry throttled (HTTP 429, TOOMANYREQUESTS)',
  },
  ResyncRuns: { unit: 'Count', what: 'Resync runs that finished (a run may span several invocations)' },
  ResyncChecked: { unit: 'Count', what: 'Source tags a resync compared with the destinations' },
  ResyncEnqueued: { unit: 'Count', what: 'Mirror jobs a resync put on the mirror queue' },
  ResyncErrors: { unit: 'Count', what: 'Repositories and destinations a resync could not compare' },
} as const satisfies Record<string, { unit: MetricUnitName; what: string }>;

export type MetricName = keyof typeof METRICS;

export const METRIC_NAMES = Object.keys(METRICS) as MetricName[];
