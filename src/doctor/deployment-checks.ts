import {
  DescribeRuleCommand,
  type DescribeRuleCommandOutput,
  ListRuleNamesByTargetCommand,
  TestEventPatternCommand,
} from '@aws-sdk/client-eventbridge';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { DynamoDbStatusStore } from '../aws/dynamodb-status-store';
import type { MirrorRecord } from '../status/schema';
import { type Check, fail, notApplicable, ok, warn } from './check';
import type { DoctorContext, DoctorState } from './context';
import { partitionOf } from './denied';
import { denialIn, errorName, errorText, identityFix, policyHome, statement } from './fixes';

const DAY_MS = 86_400_000;

/** The deployment's region: the function's, else the queue URL's, else the source's (as the runtime's table). */
function regionOf(ctx: DoctorContext): string {
  if (ctx.deploymentRegion) return ctx.deploymentRegion;
  const url = ctx.mirror?.mirrorQueueUrl;
  return (url && /^https:\/\/sqs[.-]([a-z0-9-]+)\.amazonaws\.com/.exec(url)?.[1]) || ctx.source.sourceRegion;
}

const NOT_DEPLOYED =
  'not deployed: MIRROR_QUEUE_URL is not set (use --function NAME to check a deployed mirror)';

async function queueAttributes(
  ctx: DoctorContext,
  url: string,
  names: ('QueueArn' | 'ApproximateNumberOfMessages')[],
): Promise<Record<string, string>> {
  const out = await ctx.clients
    .sqs(regionOf(ctx))
    .send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: names }));
  return out.Attributes ?? {};
}

function refused(state: DoctorState, action: string, resource: string, err: unknown) {
  if (!denialIn(err)) return fail(`${action} on ${resource} failed: ${errorName(err)}: ${errorText(err)}`);
  return fail(
    `${action} on ${resource} refused for ${state.caller!.arn}`,
    identityFix(policyHome(state.caller!.arn), statement([action], [resource])),
  );
}

/** An ECR push event as EventBridge delivers it, for TestEventPattern. */
export function samplePushEvent(
  account: string,
  region: string,
  repository: string,
  tag: string | undefined,
  now: number,
): string {
  return JSON.stringify({
    version: '0',
    id: '00000000-0000-0000-0000-000000000000',
    'detail-type': 'ECR Image Action',
    source: 'aws.ecr',
    account,
    time: new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region,
    resources: [],
    detail: {
      result: 'SUCCESS',
      'repository-name': repository,
      'image-digest': `sha256:${'0'.repeat(64)}`,
      'action-type': 'PUSH',
      'image-tag': tag && !tag.startsWith('sha256:') ? tag : '',
    },
  });
}

/** `deployment.rule`: the rule exists, is enabled, targets the queue, and its pattern takes the repository. */
export function ruleCheck(ctx: DoctorContext, state: DoctorState): Check {
  return {
    id: 'deployment.rule',
    needs: ['aws.credentials'],
    run: async () => {
      const queueUrl = ctx.mirror?.mirrorQueueUrl;
      if (!queueUrl) return notApplicable(NOT_DEPLOYED);
      const region = regionOf(ctx);
      const hint = ` --region ${region}`;
      let queueArn: string;
      try {
        queueArn = (await queueAttributes(ctx, queueUrl, ['QueueArn'])).QueueArn ?? '';
      } catch (err) {
        return refused(state, 'sqs:GetQueueAttributes', queueUrl, err);
      }
      const events = ctx.clients.events(region);
      let names: string[];
      try {
        names =
          (await events.send(new ListRuleNamesByTargetCommand({ TargetArn: queueArn }))).RuleNames ?? [];
      } catch (err) {
        return refused(state, 'events:ListRuleNamesByTarget', queueArn, err);
      }
      if (names.length === 0) {
        return fail(
          `no EventBridge rule sends to ${queueArn}: pushes never reach the mirror`,
          'deploy the stack again (npm run deploy -- --stage STAGE --region REGION): it defines the rule (MirrorRule in serverless.yml)',
        );
      }
      const rules: DescribeRuleCommandOutput[] = [];
      for (const name of names) {
        try {
          rules.push(await events.send(new DescribeRuleCommand({ Name: name })));
        } catch (err) {
          return refused(state, 'events:DescribeRule', name, err);
        }
      }
      const enabled = rules.filter((r) => r.State === 'ENABLED');
      if (enabled.length === 0) {
        const name = rules[0]!.Name ?? names[0]!;
        return fail(
          `rule ${name} sends to the mirror queue but is ${rules[0]!.State ?? 'not enabled'}: pushes are not forwarded`,
          `aws events enable-rule --name ${name}${hint}`,
        );
      }
      const queueName = queueArn.split(':').pop();
      if (!state.sample) {
        return ok(
          `rule ${enabled[0]!.Name} is enabled and targets ${queueName} (no repository to test its pattern with)`,
        );
      }
      const { repository, reference } = state.sample;
      const event = samplePushEvent(
        ctx.source.sourceAccountId,
        ctx.source.sourceRegion,
        repository,
        reference,
        ctx.now?.() ?? Date.now(),
      );
      for (const rule of enabled) {
        try {
          const out = await events.send(
            new TestEventPatternCommand({ EventPattern: rule.EventPattern ?? '{}', Event: event }),
          );
          if (out.Result) {
            return ok(
              `rule ${rule.Name} is enabled, targets ${queueName}, and takes pushes to ${repository}`,
            );
          }
        } catch (err) {
          return refused(state, 'events:TestEventPattern', '*', err);
        }
      }
      const rule = enabled[0]!;
      return fail(
        `rule ${rule.Name} does not take a push to ${repository} in ${ctx.source.sourceAccountId} (${ctx.source.sourceRegion}); its pattern: ${rule.EventPattern ?? '{}'}`,
        'the rule takes the repositories of the repositoryPrefixes param, in the source account and region: add the prefix (or empty it for all) and deploy again',
      );
    },
  };
}

/** `deployment.queue`: the dead-letter queue's depth; messages there are a warning with the redrive command. */
export function queueCheck(ctx: DoctorContext, state: DoctorState): Check {
  return {
    id: 'deployment.queue',
    needs: ['aws.credentials'],
    run: async () => {
      const queueUrl = ctx.mirror?.mirrorQueueUrl;
      const dlqUrl = ctx.mirror?.deadLetterQueueUrl;
      if (!queueUrl) return notApplicable(NOT_DEPLOYED);
      if (!dlqUrl) return notApplicable('no dead-letter queue configured (DEAD_LETTER_QUEUE_URL)');
      let dlq: Record<string, string>;
      let queue: Record<string, string>;
      try {
        dlq = await queueAttributes(ctx, dlqUrl, ['QueueArn', 'ApproximateNumberOfMessages']);
      } catch (err) {
        return refused(state, 'sqs:GetQueueAttributes', dlqUrl, err);
      }
      try {
        queue = await queueAttributes(ctx, queueUrl, ['QueueArn', 'ApproximateNumberOfMessages']);
      } catch (err) {
        return refused(state, 'sqs:GetQueueAttributes', queueUrl, err);
      }
      const dead = Number(dlq.ApproximateNumberOfMessages ?? 0);
      const waiting = Number(queue.ApproximateNumberOfMessages ?? 0);
      const plural = (n: number) => `${n} message${n === 1 ? '' : 's'}`;
      if (dead === 0) return ok(`dead-letter queue empty; ${plural(waiting)} waiting in the mirror queue`);
      const region = regionOf(ctx);
      const hint = ` --region ${region}`;
      return warn(
        `${plural(dead)} in the dead-letter queue: images that were not mirrored (${plural(waiting)} waiting in the mirror queue)`,
        `read why (each message carries errorCode and reason attributes):\n` +
          `  aws sqs receive-message --queue-url ${dlqUrl} --message-attribute-names All --max-number-of-messages 10 --visibility-timeout 0${hint}\n` +
          'once the cause is fixed, move them back to the mirror queue:\n' +
          `  aws sqs start-message-move-task --source-arn ${dlq.QueueArn} --destination-arn ${queue.QueueArn}${hint}`,
      );
    },
  };
}

/** `status.recent`: failures and conflicts of the last 24 hours in the status table, by error code. */
export function recentStatusCheck(ctx: DoctorContext, state: DoctorState): Check {
  return {
    id: 'status.recent',
    needs: ['aws.credentials'],
    run: async () => {
      const mirror = ctx.mirror;
      if (!mirror) return notApplicable('no mirror configured (STATUS_TABLE)');
      const region = regionOf(ctx);
      const store = new DynamoDbStatusStore(
        mirror.statusTable,
        mirror.historyTtlDays,
        ctx.clients.dynamodb(region),
      );
      const since = new Date((ctx.now?.() ?? Date.now()) - DAY_MS);
      let records: MirrorRecord[];
      try {
        const [failed, conflicts] = await Promise.all([
          store.queryByStatus('failed', { since, limit: 1000 }),
          store.queryByStatus('conflict', { since, limit: 1000 }),
        ]);
        records = [...failed, ...conflicts];
      } catch (err) {
        const cause = (err as { cause?: unknown }).cause;
        if (errorName(cause) === 'ResourceNotFoundException') {
          return fail(
            `the status table ${mirror.statusTable} does not exist in ${region}`,
            'set STATUS_TABLE to the StatusTableName output of the stack (and AWS_REGION to its region), or use --function NAME',
          );
        }
        if (denialIn(cause ?? err)) {
          return fail(
            `dynamodb:Query on table ${mirror.statusTable} refused for ${state.caller!.arn}`,
            identityFix(
              policyHome(state.caller!.arn),
              statement(
                ['dynamodb:Query'],
                [
                  `arn:${partitionOf(region)}:dynamodb:${region}:*:table/${mirror.statusTable}/index/byStatus`,
                ],
              ),
            ),
          );
        }
        return fail(`reading the status table ${mirror.statusTable} failed: ${errorText(err)}`);
      }
      if (records.length === 0)
        return ok(`no failures or conflicts in the last 24 h (table ${mirror.statusTable})`);
      const byCode = new Map<string, number>();
      for (const r of records) {
        const code = r.lastErrorCode ?? (r.status === 'conflict' ? 'CONFLICT' : 'FAILED');
        byCode.set(code, (byCode.get(code) ?? 0) + 1);
      }
      const groups = [...byCode.entries()].sort((x, y) => y[1] - x[1]).map(([code, n]) => `${code} ×${n}`);
      const failed = records.filter((r) => r.status === 'failed').length;
      const conflicts = records.length - failed;
      const newestDenied = records
        .filter((r) => r.lastErrorCode === 'DENIED')
        .sort((x, y) => y.updatedAt.localeCompare(x.updatedAt))[0];
      const regionFlag = ` --region ${region}`;
      return warn(
        `${failed} failed, ${conflicts} conflict${conflicts === 1 ? '' : 's'} in the last 24 h: ${groups.join(', ')}`,
        `see them: ecr-mirror status --failed --since 24h --table ${mirror.statusTable}${regionFlag}` +
          (newestDenied
            ? `\nthe newest DENIED (${newestDenied.sourceRepository}:${newestDenied.reference} to ${newestDenied.destinationId}): ${newestDenied.lastErrorMessage ?? ''}`
            : ''),
      );
    },
  };
}
