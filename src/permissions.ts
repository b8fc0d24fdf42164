/**
 * Every AWS action each Lambda function's code performs, who performs it, and why: the source of
 * truth for the roles in serverless.yml (one per function) and infra/destination-role.yml.
 * test/deploy/permissions.test.ts holds the three together: the SDK commands each handler's code can
 * send (found in the source files its bundle is built from) against the `sdk` entries, and the roles
 * of the packaged template and of the destination template against the whole list. A new SDK call
 * fails that test until it is listed here and granted there; a grant nothing calls fails it too.
 */

export type FunctionName = 'mirror' | 'resync';

/**
 * `function`: the function's own role, in the source account. `destination`: the role it assumes in
 * each destination account (infra/destination-role.yml).
 */
export type Caller = 'function' | 'destination';

/**
 * How the action comes about. `sdk`: an AWS SDK command in our code. `registry`: a request to the
 * OCI registry API, which ECR authorizes as this action. `lambda`: the Lambda service, with the
 * function's role (the SQS event source, the function's logs). `ecr`: ECR on the caller's behalf
 * during a call we make (CreateRepository with tags or a KMS key). `secretsmanager`: Secrets Manager
 * decrypts a secret with the caller's permission during GetSecretValue.
 */
export type Channel = 'sdk' | 'registry' | 'lambda' | 'ecr' | 'secretsmanager';

/** A destination grant that the destination stack makes only when its parameter allows it. */
export type DestinationOption = 'CreateRepositories' | 'Deletes' | 'HasKmsKey';

/**
 * A function grant that serverless.yml makes only when the destinations need it (a condition of the
 * template, computed by infra/serverless-params.cjs): roles to assume, secrets to read, their keys.
 */
export type FunctionOption = 'HasDestinationRoles' | 'HasDestinationSecrets' | 'HasSecretKmsKeys';

export interface Permission {
  action: string;
  caller: Caller;
  via: Channel;
  why: string;
  /**
   * The condition that grants it: for destination grants, of infra/destination-role.yml; for the
   * functions' own, of serverless.yml.
   */
  when?: DestinationOption | FunctionOption;
}

const LOGS: Permission[] = [
  { action: 'logs:CreateLogStream', caller: 'function', via: 'lambda', why: 'its log streams' },
  {
    action: 'logs:PutLogEvents',
    caller: 'function',
    via: 'lambda',
    why: 'its log lines and embedded metrics',
  },
];

/** What both functions need to reach the destinations: roles to assume, or secrets to read. */
const DESTINATION_ACCESS: Permission[] = [
  {
    action: 'sts:AssumeRole',
    caller: 'function',
    via: 'sdk',
    why: 'the destination roles',
    when: 'HasDestinationRoles',
  },
  {
    action: 'secretsmanager:GetSecretValue',
    caller: 'function',
    via: 'sdk',
    why: 'credentials of destinations named by their registry (src/aws/destination-secret.ts)',
    when: 'HasDestinationSecrets',
  },
  {
    action: 'kms:Decrypt',
    caller: 'function',
    via: 'secretsmanager',
    why: 'Secrets Manager decrypts a secret under a customer managed key with the reader’s permission',
    when: 'HasSecretKmsKeys',
  },
];

/** Reads of the destination that both functions make through the destination role. */
const DESTINATION_READS: Permission[] = [
  {
    action: 'ecr:GetAuthorizationToken',
    caller: 'destination',
    via: 'sdk',
    why: 'the destination registry token (src/aws/ecr-auth.ts)',
  },
  {
    action: 'ecr:BatchGetImage',
    caller: 'destination',
    via: 'registry',
    why: 'HEAD and GET of manifests: the digest a tag holds, the referrers API, the fallback tag index',
  },
];

export const PERMISSIONS: Record<FunctionName, readonly Permission[]> = {
  mirror: [
    ...LOGS,
    {
      action: 'sqs:ReceiveMessage',
      caller: 'function',
      via: 'lambda',
      why: 'the SQS event source polls the mirror queue',
    },
    {
      action: 'sqs:DeleteMessage',
      caller: 'function',
      via: 'lambda',
      why: 'the event source deletes the messages a batch finished',
    },
    {
      action: 'sqs:GetQueueAttributes',
      caller: 'function',
      via: 'lambda',
      why: 'the event source reads the queue settings',
    },
    {
      action: 'ecr:GetAuthorizationToken',
      caller: 'function',
      via: 'sdk',
      why: 'the source registry token (src/aws/ecr-auth.ts)',
    },
    {
      action: 'ecr:BatchGetImage',
      caller: 'function',
      via: 'registry',
      why: 'source manifests: HEAD and GET, the referrers API, fallback and cosign tags',
    },
    {
      action: 'ecr:GetDownloadUrlForLayer',
      caller: 'function',
      via: 'registry',
      why: 'source blob downloads',
    },
    ...DESTINATION_ACCESS,
    {
      action: 'dynamodb:UpdateItem',
      caller: 'function',
      via: 'sdk',
      why: 'status: the current item, written conditionally (begin, finish)',
    },
    {
      action: 'dynamodb:PutItem',
      caller: 'function',
      via: 'sdk',
      why: 'status: one history item per attempt',
    },
    {
      action: 'dynamodb:GetItem',
      caller: 'function',
      via: 'sdk',
      why: 'status: the standing item, read back when a result loses to a newer one (to check it against the destination)',
    },
    { action: 'events:PutEvents', caller: 'function', via: 'sdk', why: 'Image Mirrored / Failed events' },
    {
      action: 'sqs:SendMessage',
      caller: 'function',
      via: 'sdk',
      why: 'a message retrying cannot help goes to the dead-letter queue with its reason',
    },
    {
      action: 'sqs:ChangeMessageVisibility',
      caller: 'function',
      via: 'sdk',
      why: 'a retried message comes back after a backoff, not the visibility timeout (src/aws/redelivery.ts)',
    },
    ...DESTINATION_READS,
    {
      action: 'ecr:BatchCheckLayerAvailability',
      caller: 'destination',
      via: 'registry',
      why: 'HEAD of a blob: blobs already there are skipped',
    },
    {
      action: 'ecr:InitiateLayerUpload',
      caller: 'destination',
      via: 'registry',
      why: 'POST: an upload session',
    },
    {
      action: 'ecr:GetDownloadUrlForLayer',
      caller: 'destination',
      via: 'registry',
      why: 'POST ?mount=&from=: ECR mounts a layer from another mirrored repository only for a caller that may download it there (blob mounting)',
    },
    {
      action: 'ecr:UploadLayerPart',
      caller: 'destination',
      via: 'registry',
      why: 'the bytes of a blob: one streamed PUT, or PATCH chunks',
    },
    {
      action: 'ecr:CompleteLayerUpload',
      caller: 'destination',
      via: 'registry',
      why: 'PUT ?digest= ends it',
    },
    {
      action: 'ecr:PutImage',
      caller: 'destination',
      via: 'registry',
      why: 'PUT of manifests: children, index, tag, referrers',
    },
    {
      action: 'ecr:DescribeRepositories',
      caller: 'destination',
      via: 'sdk',
      why: 'does the destination repository exist (src/aws/ecr-repositories.ts)',
    },
    {
      action: 'ecr:CreateRepository',
      caller: 'destination',
      via: 'sdk',
      why: 'a missing destination repository, with the configured settings',
      when: 'CreateRepositories',
    },
    {
      action: 'ecr:TagResource',
      caller: 'destination',
      via: 'ecr',
      why: 'CreateRepository with tags is authorized for TagResource too',
      when: 'CreateRepositories',
    },
    {
      action: 'ecr:BatchDeleteImage',
      caller: 'destination',
      via: 'sdk',
      why: 'deletion sync (SYNC_DELETES)',
      when: 'Deletes',
    },
    {
      action: 'kms:CreateGrant',
      caller: 'destination',
      via: 'ecr',
      why: 'CreateRepository with a KMS key: ECR makes a grant for itself',
      when: 'HasKmsKey',
    },
    {
      action: 'kms:DescribeKey',
      caller: 'destination',
      via: 'ecr',
      why: 'CreateRepository with a KMS key: ECR checks the key (granted outside ECR too, for `ecr-mirror doctor`; key metadata only)',
      when: 'HasKmsKey',
    },
    {
      action: 'kms:RetireGrant',
      caller: 'destination',
      via: 'ecr',
      why: "ECR retires its grant when the repository is deleted (ECR's documented KMS permissions)",
      when: 'HasKmsKey',
    },
  ],
  resync: [
    ...LOGS,
    {
      action: 'ecr:DescribeRepositories',
      caller: 'function',
      via: 'sdk',
      why: 'source repositories, page by page (src/aws/ecr-inventory.ts)',
    },
    {
      action: 'ecr:DescribeImages',
      caller: 'function',
      via: 'sdk',
      why: 'tagged source images and their digests, page by page',
    },
    ...DESTINATION_ACCESS,
    {
      action: 'dynamodb:PutItem',
      caller: 'function',
      via: 'sdk',
      why: "the run's summary (src/aws/resync-log.ts)",
    },
    {
      action: 'dynamodb:GetItem',
      caller: 'function',
      via: 'sdk',
      why: "a paused run's summary, read back by the invocation that continues it",
    },
    {
      action: 'sqs:SendMessage',
      caller: 'function',
      via: 'sdk',
      why: 'jobs on the mirror queue (SendMessageBatch is authorized as SendMessage)',
    },
    {
      action: 'lambda:InvokeFunction',
      caller: 'function',
      via: 'sdk',
      why: 'continues in a new invocation of itself before its timeout',
    },
    ...DESTINATION_READS,
    {
      action: 'ecr:ListImages',
      caller: 'destination',
      via: 'registry',
      why: 'GET tags/list: the tags a destination repository has',
    },
  ],
};

/**
 * SDK commands whose code is in a function's bundle but which that function never sends, so its role
 * does not grant them. The check reads whole source files: a module shared with the CLI or the other
 * function brings along methods this function does not call. Each entry says whose call it is.
 */
export const NOT_SENT: Record<FunctionName, readonly { action: string; why: string }[]> = {
  mirror: [
    {
      action: 'dynamodb:Query',
      why: 'DynamoDbStatusStore queries: `ecr-mirror status`, with the user’s credentials',
    },
  ],
  resync: [
    {
      action: 'ecr:CreateRepository',
      why: 'destination repositories, built with the destinations the resync reads: the mirror creates them',
    },
    {
      action: 'ecr:BatchDeleteImage',
      why: 'destination repositories, built with the destinations the resync reads: the mirror deletes',
    },
  ],
};

/** The actions of the permissions that match, each once, sorted. */
function actionsWhere(match: (p: Permission) => boolean, functions: readonly FunctionName[]): string[] {
  return [
    ...new Set(
      functions
        .flatMap((f) => PERMISSIONS[f])
        .filter(match)
        .map((p) => p.action),
    ),
  ].sort();
}

/** Source actions not on a repository: the token (`*`) and listing repositories (the whole account). */
const NOT_ON_A_SOURCE_REPOSITORY = new Set(['ecr:GetAuthorizationToken', 'ecr:DescribeRepositories']);

/** What the deployment does in a source repository: the mirror's pulls and the resync's image lists. */
export const SOURCE_REPOSITORY_ACTIONS: readonly string[] = actionsWhere(
  (p) => p.caller === 'function' && p.action.startsWith('ecr:') && !NOT_ON_A_SOURCE_REPOSITORY.has(p.action),
  ['mirror', 'resync'],
);

/** What the mirror does over the registry API in a destination repository: its reads and its push. */
export const DESTINATION_PUSH_ACTIONS: readonly string[] = actionsWhere(
  (p) => p.caller === 'destination' && p.via === 'registry',
  ['mirror'],
);

/** The destination grants a parameter of infra/destination-role.yml adds. */
export function destinationActionsWhen(option: DestinationOption): string[] {
  return actionsWhere((p) => p.caller === 'destination' && p.when === option, ['mirror', 'resync']);
}

/**
 * The session policy a function passes when it assumes a destination role: only the actions it
 * performs there. The resync shares the mirror's destination role; with this its session can read
 * tags and digests but not push or delete, whatever the role allows (a session policy only narrows).
 */
export function destinationSessionPolicy(name: FunctionName): string {
  const actions = actionsWhere((p) => p.caller === 'destination', [name]);
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Action: actions, Resource: '*' }],
  });
}
