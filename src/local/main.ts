import './quiet';
import { spawn } from 'node:child_process';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createStatusTable } from '../aws/status-table';
import { renderTable, summaryLine } from '../cli/status-table';
import { loadConfig } from '../config/config';
import { ecrHost } from '../core/ecr-host';
import { describeError } from '../errors';
import { createMirrorHandler } from '../mirror/handler';
import { closeConnections } from '../registry/transport';
import { createResyncHandler } from '../resync/handler';
import type { ResyncResult } from '../resync/wire';
import { createLocalRun, sqsRecord } from '../wiring/local';
import { LOCAL, startLocalDeployment } from './local-deployment';
import { startRegistryServer } from './registry-server';
import { pushSampleImages } from './sample-image';

const SOURCE_ACCOUNT = LOCAL.sourceAccount;
const DESTINATION_ACCOUNT = LOCAL.destinationAccount;
const TABLE = 'ecr-mirror-local-status';

/** A Lambda context for local invocations: 15 minutes, as deployed. */
function lambdaContext(name: string) {
  const deadline = Date.now() + 900_000;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: `ecr-mirror-local-${name}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:${SOURCE_ACCOUNT}:function:ecr-mirror-local-${name}`,
    memoryLimitInMB: '2048',
    awsRequestId: `local-${Date.now()}`,
    logGroupName: `/aws/lambda/ecr-mirror-local-${name}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => deadline - Date.now(),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** Runs the built CLI as a user would, with the given environment on top of this one's (AWS profile left out). */
function runDoctorProcess(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const base = { ...process.env };
  for (const name of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_DEFAULT_PROFILE']) delete base[name];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(__dirname, 'cli.js'), ...args], {
      env: { ...base, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/**
 * `npm start`: the whole mirror on this machine. Two real registries stand for Account A and B behind
 * their ECR hostnames, dynalite holds the status table, a sample push goes through the mirror Lambda's
 * middy chain, a resync heals what existed before, and the status table is printed. Cleans up.
 */
async function main(): Promise<number> {
  const cleanup: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    cleanup.length = 0;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void stop().then(() => process.exit(130));
    });
  }
  try {
    const [a, b] = await Promise.all([startRegistryServer(), startRegistryServer()]);
    cleanup.push(a.stop, b.stop);
    // dynalite is a development dependency: the local run is for a checkout, not for Lambda.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const dynalite = require('dynalite') as (o: { createTableMs: number }) => Server;
    const server = dynalite({ createTableMs: 0 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const dynamodb = new DynamoDBClient({
      endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`, // the doctor's too, below
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    cleanup.push(async () => dynamodb.destroy());
    await createStatusTable(dynamodb, TABLE);

    const dynamoEndpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const deployment = await startLocalDeployment({ source: a.url, destination: b.url });
    cleanup.push(deployment.standIn.stop);

    const sourceHost = ecrHost(SOURCE_ACCOUNT, LOCAL.sourceRegion);
    const destinationHost = ecrHost(DESTINATION_ACCOUNT, LOCAL.destinationRegion);
    // The mirror function's environment, as serverless.yml sets it (the queues are the stand-in's).
    const environment = deployment.mirrorEnvironment({ destinationId: 'account-b', statusTable: TABLE });
    deployment.deployFunction(environment);
    const registryEndpoints = JSON.stringify({ [sourceHost]: a.url, [destinationHost]: b.url });
    const config = loadConfig({ ...environment, REGISTRY_ENDPOINTS: registryEndpoints });
    const local = createLocalRun(config, dynamodb);

    out('ecr-mirror, running locally: the mirror and resync Lambdas on two real registries');
    out(`  Account A  ${sourceHost}  -> docker-registry at ${a.url}`);
    out(`  Account B  ${destinationHost}  -> docker-registry at ${b.url}`);
    out(`  status     DynamoDB table ${TABLE} (dynalite, in-process)`);
    out();

    const sample = await pushSampleImages(local.runtime.source);
    out(
      `1. Pushed into A: ${sample.repository}:${sample.old.tag} (a two-platform index, from before the mirror existed)`,
    );
    out(`   and ${sample.repository}:${sample.current.tag} with an SPDX SBOM attached as a referrer.`);

    const mirror = createMirrorHandler(local.runtime);
    const push = {
      version: '0',
      id: `local-push-${Date.now()}`,
      'detail-type': 'ECR Image Action',
      source: 'aws.ecr',
      account: SOURCE_ACCOUNT,
      time: new Date().toISOString(),
      region: 'us-east-1',
      resources: [],
      detail: {
        result: 'SUCCESS',
        'repository-name': sample.repository,
        'image-digest': sample.current.digest,
        'action-type': 'PUSH',
        'image-tag': sample.current.tag,
        'manifest-media-type': 'application/vnd.oci.image.manifest.v1+json',
      },
    };
    const pushed = await mirror(
      { Records: [sqsRecord('local-push', JSON.stringify(push))] },
      lambdaContext('mirror'),
    );
    const first = local.published.at(-1);
    out(
      `2. Mirror Lambda on the push event of ${sample.repository}:${sample.current.tag}: ${first?.status ?? 'no result'}` +
        ` (${first?.blobsCopied ?? 0} blobs, ${first?.bytes ?? 0} bytes, ${first?.durationMs ?? 0} ms)` +
        `${pushed.batchItemFailures.length > 0 ? ' -- reported for retry' : ''}`,
    );

    const resync = createResyncHandler(local.resync);
    const result = (await resync({}, lambdaContext('resync'))) as ResyncResult;
    const s = result.summary;
    out(
      `3. Resync: ${s.checked} tags checked, ${s.inSync} in sync, ${plural(s.enqueued, 'job')} enqueued for what was missing.`,
    );
    const jobs = local.queue.splice(0);
    if (jobs.length > 0) {
      const healed = await mirror({ Records: jobs }, lambdaContext('mirror'));
      out(
        `   Mirror Lambda on the ${plural(jobs.length, 'resync job')}: ${jobs.length - healed.batchItemFailures.length} done.`,
      );
    }

    out('4. Status table:');
    const records = await local.runtime.store.queryRepository(sample.repository);
    for (const line of renderTable(records, process.stdout.isTTY === true).split('\n')) out(`   ${line}`);
    out(`   ${summaryLine(records)}`);

    // The proof: every tag of A resolves to the same digest in B.
    const destination = local.runtime.destination(config.destinations[0]!).registry;
    const tags = await local.runtime.source.listTags(sample.repository);
    const mismatched: string[] = [];
    for (const tag of tags) {
      const [src, dst] = await Promise.all([
        local.runtime.source.headManifest(sample.repository, tag),
        destination.headManifest(sample.repository, tag),
      ]);
      if (!src || src.digest !== dst?.digest) mismatched.push(tag);
    }
    out();
    if (mismatched.length > 0 || local.deadLetters.length > 0) {
      out(
        `FAILED: ${mismatched.length} tag(s) differ in B (${mismatched.join(', ')}); ${local.deadLetters.length} dead letter(s)`,
      );
      for (const letter of local.deadLetters) out(`  ${letter.code}: ${letter.reason}`);
      return 1;
    }
    out(
      `OK: all ${tags.length} tags of ${sample.repository} in A have the same digests in B (SBOM and its fallback index included).`,
    );

    out();
    out(`5. ecr-mirror doctor --function ${LOCAL.functionName}`);
    out(
      '   (STS, ECR, KMS, EventBridge, SQS and Lambda answered by a local stand-in; registries and table real)',
    );
    const doctor = await runDoctorProcess(
      ['doctor', '--function', LOCAL.functionName],
      deployment.doctorEnv({
        AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
        REGISTRY_ENDPOINTS: registryEndpoints,
      }),
    );
    for (const line of doctor.stdout.trimEnd().split('\n')) out(`   ${line}`);
    if (doctor.code !== 0) {
      out(
        `FAILED: the doctor found a problem (exit code ${doctor.code})${doctor.stderr ? `: ${doctor.stderr.trim()}` : ''}`,
      );
      return 1;
    }
    out();
    out(
      'Deploy it for real: see "Deploy" in README.md. Check a deployment: ecr-mirror doctor --function NAME.',
    );
    out('Tests: npm test.');
    return 0;
  } catch (err) {
    process.stderr.write(`ecr-mirror local run: ${describeError(err)}\n`);
    return 1;
  } finally {
    await stop();
    await closeConnections();
  }
}

void main().then((code) => {
  process.exitCode = code;
});
