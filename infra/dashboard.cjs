'use strict';

/**
 * The CloudWatch dashboard of serverless.yml, built while it packages:
 * `DashboardBody: ${file(./infra/dashboard.cjs):body}`. Metrics in `EcrMirror` are the ones the code
 * emits (src/metrics.ts; test/deploy/serverless.test.ts checks every name here against it), with the
 * `service` dimension the functions set (POWERTOOLS_SERVICE_NAME). The body is a CloudFormation
 * Fn::Sub of JSON, so the queues and alarms are named by reference.
 */

const NAMESPACE = 'EcrMirror';
/** A reference for the body's Fn::Sub: `${Name}` or `${Name.Attribute}`. */
const ref = (name) => `\${${name}}`;
const PERIOD = 300;

async function names(resolveVariable) {
  const service = await resolveVariable('self:service');
  const stage = await resolveVariable('sls:stage');
  return { service: `${service}-${stage}`, fn: (name) => `${service}-${stage}-${name}` };
}

/** A metric line: [namespace, name, dimension, value, ..., options]. */
const metric = (namespace, name, dimensions, options) => [
  namespace,
  name,
  ...Object.entries(dimensions).flat(),
  ...(options ? [options] : []),
];

function widget(x, y, width, title, properties) {
  return {
    type: 'metric',
    x,
    y,
    width,
    height: 6,
    properties: { title, region: ref('AWS::Region'), period: PERIOD, view: 'timeSeries', ...properties },
  };
}

/** The latency alarm's threshold in milliseconds, from the latencyAlarmMinutes param. */
async function latencyThresholdMs(resolveVariable) {
  const minutes = Number(await resolveVariable('param:latencyAlarmMinutes'));
  if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) {
    throw new Error('param "latencyAlarmMinutes": must be a number of minutes from 1 to 1440');
  }
  return Math.round(minutes * 60_000);
}

async function body({ resolveVariable }) {
  const { service, fn } = await names(resolveVariable);
  const own = { service };
  const count = (name, label) => metric(NAMESPACE, name, own, { stat: 'Sum', label });
  const threshold = await latencyThresholdMs(resolveVariable);
  const lambda = (name, stat) => [
    metric('AWS/Lambda', name, { FunctionName: fn('mirror') }, { stat, label: `mirror ${stat}` }),
    metric('AWS/Lambda', name, { FunctionName: fn('resync') }, { stat, label: `resync ${stat}` }),
  ];
  const dlq = { QueueName: ref('MirrorDeadLetterQueue.QueueName') };

  const widgets = [
    {
      type: 'text',
      x: 0,
      y: 0,
      width: 24,
      height: 2,
      properties: {
        markdown: `## ecr-mirror (${service})\nEvery push in the source account, copied to each destination. Latency runs from the push to the image in place; failed images are in the dead-letter queue with their reason (\`ecr-mirror status --failed\`).`,
      },
    },
    widget(0, 2, 12, 'Mirror latency, push to done (p50, p90, p99)', {
      metrics: ['p50', 'p90', 'p99'].map((stat) =>
        metric(NAMESPACE, 'MirrorLatency', own, { stat, label: stat }),
      ),
      yAxis: { left: { label: 'ms', min: 0 } },
      annotations: { horizontal: [{ label: 'latency alarm (p99)', value: threshold }] },
    }),
    widget(12, 2, 12, 'Images mirrored, skipped, failed', {
      metrics: [
        count('ImagesMirrored', 'mirrored'),
        count('ImagesSkipped', 'already there'),
        count('ImagesFailed', 'failed'),
      ],
      stacked: true,
    }),
    widget(0, 8, 8, 'Bytes copied', {
      metrics: [count('BytesCopied', 'bytes')],
    }),
    widget(8, 8, 8, 'Throttles and retries', {
      metrics: [
        count('RegistryThrottles', 'throttled by a registry (429)'),
        count('RegistryRetries', 'registry requests retried'),
        count('MessagesRetried', 'messages back to the queue'),
      ],
    }),
    widget(16, 8, 8, 'Dead-letter queue: depth and age of the oldest message', {
      metrics: [
        metric('AWS/SQS', 'ApproximateNumberOfMessagesVisible', dlq, { stat: 'Maximum', label: 'messages' }),
        metric('AWS/SQS', 'ApproximateAgeOfOldestMessage', dlq, {
          stat: 'Maximum',
          label: 'oldest (s)',
          yAxis: 'right',
        }),
        count('MessagesDeadLettered', 'dead-lettered by the mirror'),
      ],
    }),
    widget(0, 14, 8, 'Resync runs and what they enqueued', {
      metrics: [
        count('ResyncRuns', 'runs finished'),
        count('ResyncEnqueued', 'jobs enqueued'),
        count('ResyncErrors', 'comparisons failed'),
        metric(NAMESPACE, 'ResyncChecked', own, { stat: 'Sum', label: 'tags checked', yAxis: 'right' }),
      ],
    }),
    widget(8, 14, 8, 'Lambda errors and throttles', {
      metrics: [...lambda('Errors', 'Sum'), ...lambda('Throttles', 'Sum')],
    }),
    widget(16, 14, 8, 'Lambda duration and concurrency', {
      metrics: [
        ...lambda('Duration', 'p99'),
        ...lambda('ConcurrentExecutions', 'Maximum').map((m) => {
          m[m.length - 1] = { ...m[m.length - 1], yAxis: 'right' };
          return m;
        }),
      ],
    }),
    {
      type: 'alarm',
      x: 0,
      y: 20,
      width: 24,
      height: 2,
      properties: {
        title: 'Alarms',
        alarms: [ref('MirrorLatencyAlarm.Arn'), ref('MirrorDeadLetterAlarm.Arn')],
      },
    },
  ];
  return { 'Fn::Sub': JSON.stringify({ widgets }) };
}

module.exports = {
  body,
  /** The DashboardEnabled condition's operand: the dashboard param, checked, as "true" or "false". */
  enabled: async ({ resolveVariable }) => {
    const value = String(await resolveVariable('param:dashboard'))
      .trim()
      .toLowerCase();
    if (value !== 'true' && value !== 'false') {
      throw new Error(`param "dashboard": must be true or false, got "${value}"`);
    }
    return value;
  },
  /** The p99 latency above which MirrorLatencyAlarm fires, in ms. */
  latencyThresholdMs: async ({ resolveVariable }) => latencyThresholdMs(resolveVariable),
  /** POWERTOOLS_SERVICE_NAME: the `service` dimension of every metric, one per stage. */
  serviceName: async ({ resolveVariable }) => (await names(resolveVariable)).service,
};
