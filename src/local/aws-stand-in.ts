import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Credentials } from '../registry/auth';
import { openRegistry } from '../registry/open';
import { matchesPattern } from './event-pattern';

/**
 * A small local stand-in for the AWS control plane the doctor and `grant` talk to (STS, ECR, KMS,
 * EventBridge, SQS, Lambda), for `npm start` and the spawned-CLI tests: the SDK reaches it through
 * `AWS_ENDPOINT_URL_<SERVICE>`. Registries stay real: ECR's DescribeRepositories and DescribeImages
 * answer from the docker-registry behind each account. Identities come from the access key of the
 * request's signature; refusals use AWS's own sentence.
 */

export interface Identity {
  arn: string;
  account: string;
}

export interface StandInRole {
  externalId: string;
  /** Principals (role or user ARNs) the trust policy names. */
  trusted: string[];
}

export interface StandInRegistry {
  url: string;
  credentials: Credentials;
}

export interface StandInState {
  /** Access key id → who signs with it. */
  identities: Map<string, Identity>;
  roles: Map<string, StandInRole>;
  /** `<account>/<region>` → the real registry standing for that account's ECR. */
  registries: Map<string, StandInRegistry>;
  /** Key ARN → its state. */
  keys: Map<string, { state: string }>;
  rules: { name: string; state: 'ENABLED' | 'DISABLED'; pattern: unknown; targets: string[] }[];
  /** Queue URL → its ARN and depth. */
  queues: Map<string, { arn: string; messages: number }>;
  functions: Map<string, { arn: string; role: string; environment: Record<string, string> }>;
  /** Repository policies, `<account>/<region>/<repository>` → policy text. */
  policies: Map<string, string>;
  /** Repositories made with CreateRepository (a registry makes them on the first push). */
  created: Set<string>;
  /** Actions refused whoever asks (`kms:DescribeKey`), to show a refusal. */
  denied: Set<string>;
  /** `<Service>.<Operation>` of every call, in order. */
  calls: string[];
}

export interface AwsStandIn {
  url: string;
  state: StandInState;
  /** `AWS_ENDPOINT_URL_*` for every service the stand-in answers. */
  env(): Record<string, string>;
  stop(): Promise<void>;
}

export function emptyState(): StandInState {
  return {
    identities: new Map(),
    roles: new Map(),
    registries: new Map(),
    keys: new Map(),
    rules: [],
    queues: new Map(),
    functions: new Map(),
    policies: new Map(),
    created: new Set(),
    denied: new Set(),
    calls: [],
  };
}

class AwsFault extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

interface Call {
  identity: Identity;
  region: string;
  input: Record<string, unknown>;
}

const SERVICES = ['STS', 'ECR', 'KMS', 'EVENTBRIDGE', 'SQS', 'LAMBDA'];
const SHORT_NAMES: Record<string, string> = {
  AmazonEC2ContainerRegistry_V20150921: 'ECR',
  TrentService: 'KMS',
  AWSEvents: 'EventBridge',
  AmazonSQS: 'SQS',
};

export async function startAwsStandIn(state: StandInState = emptyState()): Promise<AwsStandIn> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      handle(state, req, Buffer.concat(chunks).toString('utf8'), res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(JSON.stringify({ __type: 'InternalFailure', message: String(err) }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    state,
    env: () => Object.fromEntries(SERVICES.map((s) => [`AWS_ENDPOINT_URL_${s}`, url])),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The access key and region of a SigV4 `Authorization` header. */
function signer(req: IncomingMessage): { keyId: string; region: string } {
  const m = /Credential=([^/]+)\/\d{8}\/([^/]+)\//.exec(String(req.headers.authorization ?? ''));
  return { keyId: m?.[1] ?? '', region: m?.[2] ?? 'us-east-1' };
}

async function handle(state: StandInState, req: IncomingMessage, body: string, res: ServerResponse) {
  const { keyId, region } = signer(req);
  const identity = state.identities.get(keyId);
  const target = String(req.headers['x-amz-target'] ?? '');
  const lambda = /^\/2015-03-31\/functions\/([^/]+)\/configuration/.exec(req.url ?? '');
  const service = target ? target.split('.')[0]! : lambda ? 'Lambda' : 'STS';

  if (service === 'STS') {
    const params = new URLSearchParams(body);
    const action = params.get('Action') ?? '';
    state.calls.push(`STS.${action}`);
    if (!identity)
      return stsError(res, 'InvalidClientTokenId', 'The security token included in the request is invalid.');
    return sts(state, identity, action, params, res);
  }
  const operation = lambda ? 'GetFunctionConfiguration' : (target.split('.')[1] ?? '');
  state.calls.push(`${SHORT_NAMES[service] ?? service}.${operation}`);
  try {
    if (!identity)
      throw new AwsFault(
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
        403,
      );
    if (lambda) return send(res, 200, lambdaConfiguration(state, decodeURIComponent(lambda[1]!)));
    const call: Call = { identity, region, input: body ? (JSON.parse(body) as Record<string, unknown>) : {} };
    const handlers: Record<string, (c: Call, op: string) => Promise<unknown> | unknown> = {
      AmazonEC2ContainerRegistry_V20150921: (c, op) => ecr(state, c, op),
      TrentService: (c, op) => kms(state, c, op),
      AWSEvents: (c, op) => events(state, c, op),
      AmazonSQS: (c, op) => sqs(state, c, op),
    };
    const h = handlers[service];
    if (!h) throw new AwsFault('UnknownOperationException', `no ${target} here`);
    send(res, 200, await h(call, operation));
  } catch (err) {
    if (!(err instanceof AwsFault)) throw err;
    if (lambda) res.setHeader('x-amzn-errortype', err.type);
    send(res, err.status, { __type: err.type, message: err.message, Message: err.message });
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/x-amz-json-1.1');
  res.end(JSON.stringify(body ?? {}));
}

function denyUnless(state: StandInState, call: Call, action: string, resource: string): void {
  if (state.denied.has(action)) {
    // A key is refused by its key policy; everything else by the caller's own policies.
    const policy = action.startsWith('kms:') ? 'resource-based' : 'identity-based';
    throw new AwsFault(
      'AccessDeniedException',
      `User: ${call.identity.arn} is not authorized to perform: ${action} on resource: ${resource} because no ${policy} policy allows the ${action} action`,
    );
  }
}

// ----- STS (query protocol, XML) -----------------------------------------------------------------

const STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/';

function stsError(res: ServerResponse, code: string, message: string): void {
  res.statusCode = 403;
  res.setHeader('content-type', 'text/xml');
  res.end(
    `<ErrorResponse xmlns="${STS_NS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xml(message)}</Message></Error><RequestId>local</RequestId></ErrorResponse>`,
  );
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function sts(
  state: StandInState,
  identity: Identity,
  action: string,
  params: URLSearchParams,
  res: ServerResponse,
) {
  res.setHeader('content-type', 'text/xml');
  if (action === 'GetCallerIdentity') {
    res.end(
      `<GetCallerIdentityResponse xmlns="${STS_NS}"><GetCallerIdentityResult><Arn>${identity.arn}</Arn><UserId>LOCAL</UserId><Account>${identity.account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>local</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
    );
    return;
  }
  if (action === 'AssumeRole') {
    const roleArn = params.get('RoleArn') ?? '';
    const role = state.roles.get(roleArn);
    const caller = identity.arn.replace(
      /^arn:([\w-]+):sts::(\d+):assumed-role\/([^/]+)\/.*$/,
      'arn:$1:iam::$2:role/$3',
    );
    if (!role?.trusted.includes(caller) || role.externalId !== params.get('ExternalId')) {
      stsError(
        res,
        'AccessDenied',
        `User: ${identity.arn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`,
      );
      return;
    }
    const account = /:iam::(\d{12}):/.exec(roleArn)?.[1] ?? '';
    const session = params.get('RoleSessionName') ?? 'session';
    const assumed = {
      arn: `arn:aws:sts::${account}:assumed-role/${roleArn.split('/').pop()}/${session}`,
      account,
    };
    const keyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
    state.identities.set(keyId, assumed);
    const expiration = new Date(Date.now() + 3600_000).toISOString();
    res.end(
      `<AssumeRoleResponse xmlns="${STS_NS}"><AssumeRoleResult><Credentials><AccessKeyId>${keyId}</AccessKeyId><SecretAccessKey>${randomBytes(20).toString('hex')}</SecretAccessKey><SessionToken>${randomBytes(32).toString('hex')}</SessionToken><Expiration>${expiration}</Expiration></Credentials><AssumedRoleUser><Arn>${assumed.arn}</Arn><AssumedRoleId>AROALOCAL:${session}</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>local</RequestId></ResponseMetadata></AssumeRoleResponse>`,
    );
    return;
  }
  stsError(res, 'InvalidAction', `no ${action} here`);
}

// ----- ECR -----------------------------------------------------------------------------------------

async function ecr(state: StandInState, call: Call, op: string): Promise<unknown> {
  const account = String(call.input.registryId ?? call.identity.account);
  const key = `${account}/${call.region}`;
  const registry = state.registries.get(key);
  const name = call.input.repositoryName as string | undefined;
  const arn = (repo: string) => `arn:aws:ecr:${call.region}:${account}:repository/${repo}`;
  denyUnless(state, call, `ecr:${op}`, op === 'GetAuthorizationToken' ? '*' : arn(name ?? '*'));
  if (op === 'GetAuthorizationToken') {
    // One user for every local registry: the token any account gets is that user's.
    const creds = [...state.registries.values()][0]?.credentials ?? { username: 'AWS', password: 'local' };
    return {
      authorizationData: [
        {
          authorizationToken: Buffer.from(`${creds.username}:${creds.password}`).toString('base64'),
          expiresAt: Math.floor(Date.now() / 1000) + 12 * 3600,
          proxyEndpoint: `https://${call.identity.account}.dkr.ecr.${call.region}.amazonaws.com`,
        },
      ],
    };
  }
  if (!registry) throw new AwsFault('RepositoryNotFoundException', `no registry ${key} here`);
  const client = openRegistry(new URL(registry.url).host, {
    insecure: true,
    credentials: registry.credentials,
  });
  const existing = async (): Promise<string[]> => {
    const names = new Set<string>();
    for (const r of state.created) if (r.startsWith(`${key}/`)) names.add(r.slice(key.length + 1));
    let next: string | undefined;
    do {
      const page = await client.catalogPage(next);
      for (const n of page.repositories) names.add(n);
      next = page.nextToken;
    } while (next);
    return [...names].sort();
  };
  const repository = (repo: string) => ({
    repositoryName: repo,
    repositoryArn: arn(repo),
    registryId: account,
    repositoryUri: `${account}.dkr.ecr.${call.region}.amazonaws.com/${repo}`,
    imageTagMutability: 'MUTABLE',
    encryptionConfiguration: { encryptionType: 'AES256' },
  });
  const notFound = (repo: string) =>
    new AwsFault(
      'RepositoryNotFoundException',
      `The repository with name '${repo}' does not exist in the registry with id '${account}'`,
    );

  switch (op) {
    case 'DescribeRepositories': {
      const all = await existing();
      const wanted = call.input.repositoryNames as string[] | undefined;
      if (wanted) {
        const missing = wanted.find((w) => !all.includes(w));
        if (missing) throw notFound(missing);
        return { repositories: wanted.map(repository) };
      }
      return { repositories: all.map(repository) };
    }
    case 'CreateRepository': {
      if ((await existing()).includes(name!))
        throw new AwsFault('RepositoryAlreadyExistsException', `${name} exists`);
      state.created.add(`${key}/${name}`);
      return { repository: repository(name!) };
    }
    case 'DescribeImages': {
      if (!(await existing()).includes(name!)) throw notFound(name!);
      const byDigest = new Map<string, string[]>();
      for (const tag of await client.listTags(name!).catch(() => [] as string[])) {
        const head = await client.headManifest(name!, tag);
        if (head) byDigest.set(head.digest, [...(byDigest.get(head.digest) ?? []), tag]);
      }
      let details = [...byDigest].map(([digest, tags]) => ({
        registryId: account,
        repositoryName: name,
        imageDigest: digest,
        imageTags: tags,
        imagePushedAt: Math.floor(Date.now() / 1000),
      }));
      const ids = call.input.imageIds as { imageTag?: string; imageDigest?: string }[] | undefined;
      if (ids) {
        details = details.filter((d) =>
          ids.some((id) =>
            id.imageTag ? d.imageTags.includes(id.imageTag) : d.imageDigest === id.imageDigest,
          ),
        );
        if (details.length === 0)
          throw new AwsFault('ImageNotFoundException', `The image requested does not exist in ${name}`);
      }
      return { imageDetails: details };
    }
    case 'GetRepositoryPolicy': {
      if (!(await existing()).includes(name!)) throw notFound(name!);
      const policy = state.policies.get(`${key}/${name}`);
      if (!policy)
        throw new AwsFault(
          'RepositoryPolicyNotFoundException',
          `Repository policy does not exist for ${name}`,
        );
      return { registryId: account, repositoryName: name, policyText: policy };
    }
    case 'SetRepositoryPolicy': {
      if (!(await existing()).includes(name!)) throw notFound(name!);
      state.policies.set(`${key}/${name}`, String(call.input.policyText));
      return { registryId: account, repositoryName: name, policyText: call.input.policyText };
    }
    case 'DeleteRepositoryPolicy': {
      const policy = state.policies.get(`${key}/${name}`);
      if (!policy)
        throw new AwsFault(
          'RepositoryPolicyNotFoundException',
          `Repository policy does not exist for ${name}`,
        );
      state.policies.delete(`${key}/${name}`);
      return { registryId: account, repositoryName: name, policyText: policy };
    }
  }
  throw new AwsFault('UnknownOperationException', `no ECR ${op} here`);
}

// ----- KMS, EventBridge, SQS, Lambda ---------------------------------------------------------------

function kms(state: StandInState, call: Call, op: string): unknown {
  if (op !== 'DescribeKey') throw new AwsFault('UnknownOperationException', `no KMS ${op} here`);
  const keyId = String(call.input.KeyId);
  denyUnless(state, call, 'kms:DescribeKey', keyId);
  const key = state.keys.get(keyId);
  if (!key) throw new AwsFault('NotFoundException', `Key '${keyId}' does not exist`);
  return {
    KeyMetadata: {
      KeyId: keyId.split('/').pop(),
      Arn: keyId,
      Enabled: key.state === 'Enabled',
      KeyState: key.state,
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeySpec: 'SYMMETRIC_DEFAULT',
    },
  };
}

function events(state: StandInState, call: Call, op: string): unknown {
  denyUnless(state, call, `events:${op}`, '*');
  switch (op) {
    case 'ListRuleNamesByTarget':
      return {
        RuleNames: state.rules
          .filter((r) => r.targets.includes(String(call.input.TargetArn)))
          .map((r) => r.name),
      };
    case 'DescribeRule': {
      const rule = state.rules.find((r) => r.name === call.input.Name);
      if (!rule)
        throw new AwsFault('ResourceNotFoundException', `Rule ${String(call.input.Name)} does not exist.`);
      return {
        Name: rule.name,
        Arn: `arn:aws:events:${call.region}:${call.identity.account}:rule/${rule.name}`,
        State: rule.state,
        EventPattern: JSON.stringify(rule.pattern),
        EventBusName: 'default',
      };
    }
    case 'TestEventPattern':
      return {
        Result: matchesPattern(
          JSON.parse(String(call.input.EventPattern)),
          JSON.parse(String(call.input.Event)),
        ),
      };
  }
  throw new AwsFault('UnknownOperationException', `no EventBridge ${op} here`);
}

function sqs(state: StandInState, call: Call, op: string): unknown {
  if (op !== 'GetQueueAttributes') throw new AwsFault('UnknownOperationException', `no SQS ${op} here`);
  denyUnless(state, call, 'sqs:GetQueueAttributes', String(call.input.QueueUrl));
  const queue = state.queues.get(String(call.input.QueueUrl));
  if (!queue) throw new AwsFault('QueueDoesNotExist', 'The specified queue does not exist.');
  return { Attributes: { QueueArn: queue.arn, ApproximateNumberOfMessages: String(queue.messages) } };
}

function lambdaConfiguration(state: StandInState, name: string): unknown {
  const fn = state.functions.get(name);
  if (!fn) throw new AwsFault('ResourceNotFoundException', `Function not found: ${name}`, 404);
  return {
    FunctionName: name,
    FunctionArn: fn.arn,
    Role: fn.role,
    Runtime: 'nodejs22.x',
    Environment: { Variables: fn.environment },
  };
}
