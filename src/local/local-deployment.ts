import { type AwsStandIn, emptyState, type StandInState, startAwsStandIn } from './aws-stand-in';
import { LOCAL_PASSWORD, LOCAL_USER } from './registry-server';

/**
 * The local mirror "deployed" on the AWS stand-in, as serverless.yml and infra/destination-role.yml
 * would deploy it: the mirror function with its environment and role, the destination role trusting
 * it with the ExternalId, the rule sending pushes to the mirror queue, the dead-letter queue, and a
 * KMS key in the destination region. `ecr-mirror doctor --function` then checks it like a real one.
 */
export const LOCAL = {
  sourceAccount: '111111111111',
  sourceRegion: 'us-east-1',
  destinationAccount: '222222222222',
  destinationRegion: 'eu-west-1',
  functionName: 'ecr-mirror-local-mirror',
  mirrorRole: 'arn:aws:iam::111111111111:role/ecr-mirror-local-us-east-1',
  destinationRole: 'arn:aws:iam::222222222222:role/ecr-mirror-destination',
  externalId: 'local-run',
  kmsKey: 'arn:aws:kms:eu-west-1:222222222222:key/0b8c61b2-6a1f-4b7e-9d2c-5e1f7a3c9d40',
  /** Whoever runs the doctor: an operator role the destination role trusts too. */
  operatorRole: 'arn:aws:iam::111111111111:role/ecr-mirror-local-operator',
  operatorKey: 'AKIALOCALOPERATOR',
} as const;

interface ServerlessParams {
  eventDetail(o: { resolveVariable: (name: string) => Promise<unknown> }): Promise<unknown>;
}

/** The rule's pattern as serverless.yml builds it for these params. */
export async function rulePattern(sourceAccount: string, repositoryPrefixes = ''): Promise<unknown> {
  // The same code the deployment packages with: the local rule cannot drift from the real one.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const params = require('../../infra/serverless-params.cjs') as ServerlessParams;
  const values: Record<string, unknown> = {
    'param:syncDeletes': false,
    'param:repositoryPrefixes': repositoryPrefixes,
  };
  const detail = await params.eventDetail({ resolveVariable: async (name) => values[name] });
  return { source: ['aws.ecr'], 'detail-type': ['ECR Image Action'], account: [sourceAccount], detail };
}

export interface LocalDeployment {
  standIn: AwsStandIn;
  mirrorQueueUrl: string;
  deadLetterQueueUrl: string;
  /**
   * The mirror function's environment as serverless.yml would set it: one destination (B, with the
   * local KMS key), the status table, the stand-in's queues. Without REGISTRY_ENDPOINTS, as deployed.
   */
  mirrorEnvironment(options: { destinationId: string; statusTable: string }): Record<string, string>;
  /** Registers the mirror function with this environment. */
  deployFunction(environment: Record<string, string>): void;
  /** The environment a doctor run needs: endpoints, the operator's credentials, a region. */
  doctorEnv(extra?: Record<string, string>): Record<string, string>;
}

export async function startLocalDeployment(registries: {
  source: string;
  destination: string;
}): Promise<LocalDeployment> {
  const state: StandInState = emptyState();
  const standIn = await startAwsStandIn(state);
  const creds = { username: LOCAL_USER, password: LOCAL_PASSWORD };
  state.registries.set(`${LOCAL.sourceAccount}/${LOCAL.sourceRegion}`, {
    url: registries.source,
    credentials: creds,
  });
  state.registries.set(`${LOCAL.destinationAccount}/${LOCAL.destinationRegion}`, {
    url: registries.destination,
    credentials: creds,
  });
  state.identities.set(LOCAL.operatorKey, {
    arn: `arn:aws:sts::${LOCAL.sourceAccount}:assumed-role/ecr-mirror-local-operator/doctor`,
    account: LOCAL.sourceAccount,
  });
  state.roles.set(LOCAL.destinationRole, {
    externalId: LOCAL.externalId,
    trusted: [LOCAL.mirrorRole, LOCAL.operatorRole],
  });
  state.keys.set(LOCAL.kmsKey, { state: 'Enabled' });
  const queueArn = `arn:aws:sqs:${LOCAL.sourceRegion}:${LOCAL.sourceAccount}:ecr-mirror-local-mirror`;
  const mirrorQueueUrl = `${standIn.url}/${LOCAL.sourceAccount}/ecr-mirror-local-mirror`;
  const deadLetterQueueUrl = `${standIn.url}/${LOCAL.sourceAccount}/ecr-mirror-local-mirror-dlq`;
  state.queues.set(mirrorQueueUrl, { arn: queueArn, messages: 0 });
  state.queues.set(deadLetterQueueUrl, { arn: `${queueArn}-dlq`, messages: 0 });
  state.rules.push({
    name: 'ecr-mirror-local-MirrorRule',
    state: 'ENABLED',
    pattern: await rulePattern(LOCAL.sourceAccount),
    targets: [queueArn],
  });
  return {
    standIn,
    mirrorQueueUrl,
    deadLetterQueueUrl,
    mirrorEnvironment({ destinationId, statusTable }) {
      return {
        SOURCE_ACCOUNT_ID: LOCAL.sourceAccount,
        SOURCE_REGION: LOCAL.sourceRegion,
        DESTINATIONS: JSON.stringify([
          {
            id: destinationId,
            accountId: LOCAL.destinationAccount,
            region: LOCAL.destinationRegion,
            roleArn: LOCAL.destinationRole,
            externalId: LOCAL.externalId,
            repositorySettings: { encryption: { type: 'KMS', kmsKey: LOCAL.kmsKey } },
          },
        ]),
        STATUS_TABLE: statusTable,
        MIRROR_QUEUE_URL: mirrorQueueUrl,
        DEAD_LETTER_QUEUE_URL: deadLetterQueueUrl,
      };
    },
    deployFunction(environment) {
      state.functions.set(LOCAL.functionName, {
        arn: `arn:aws:lambda:${LOCAL.sourceRegion}:${LOCAL.sourceAccount}:function:${LOCAL.functionName}`,
        role: LOCAL.mirrorRole,
        environment,
      });
    },
    doctorEnv(extra = {}) {
      return {
        ...standIn.env(),
        AWS_ACCESS_KEY_ID: LOCAL.operatorKey,
        AWS_SECRET_ACCESS_KEY: 'local-operator-secret',
        AWS_REGION: LOCAL.sourceRegion,
        ...extra,
      };
    },
  };
}
