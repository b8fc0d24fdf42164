import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Context } from 'aws-lambda';
import { createStatusTable } from '../src/aws/status-table';
import { loadConfig } from '../src/config/config';
import type { Descriptor } from '../src/core/descriptor';
import { ecrHost } from '../src/core/ecr-host';
import { MediaType } from '../src/core/media-types';
import { createMirrorHandler } from '../src/mirror/handler';
import { createLocalRun, sqsRecord } from '../src/wiring/local';
import { pushBlob, pushManifest } from '../test/support/content';
import { parseLog } from './fleet';
import type { BenchRegistry } from './registry';
import { pushRandomLayer } from './seed';

const MiB = 1024 * 1024;
const SOURCE_ACCOUNT = '111111111111';
const DESTINATION_ACCOUNT = '222222222222';
const TABLE = 'ecr-mirror-bench-status';

export interface MultiArchResult {
  distinctBlobs: number;
  /** Completed blob uploads at B with the runtime's shared BlobLedger, and with one per record. */
  shared: { uploads: number; seconds: number };
  perRecord: { uploads: number; seconds: number };
}

const context = {
  functionName: 'ecr-mirror-bench-mirror',
  awsRequestId: 'bench',
  invokedFunctionArn: `arn:aws:lambda:us-east-1:${SOURCE_ACCOUNT}:function:ecr-mirror-bench-mirror`,
  getRemainingTimeInMillis: () => 600_000,
} as unknown as Context;

/** A two-platform image in A: both platforms on one OS and one runtime layer, each with its own. */
async function seed(
  a: BenchRegistry,
  repo: string,
): Promise<{ index: Descriptor; children: Descriptor[]; distinct: number }> {
  const os = await pushRandomLayer(a, repo, 8 * MiB);
  const runtime = await pushRandomLayer(a, repo, 4 * MiB);
  const blobs = new Set([os.digest, runtime.digest]);
  const children: Descriptor[] = [];
  for (const architecture of ['amd64', 'arm64']) {
    const app = await pushRandomLayer(a, repo, 2 * MiB);
    const config = await pushBlob(
      a,
      repo,
      Buffer.from(JSON.stringify({ architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })),
      'application/vnd.oci.image.config.v1+json',
    );
    for (const d of [app, config]) blobs.add(d.digest);
    const body = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [os, runtime, app] };
    const bytes = Buffer.from(JSON.stringify(body));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    children.push({
      ...(await pushManifest(a, repo, digest, bytes, MediaType.OciManifest)),
      platform: { architecture, os: 'linux' },
    } as Descriptor);
  }
  const index = await pushManifest(
    a,
    repo,
    'v1',
    { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: children },
    MediaType.OciIndex,
  );
  return { index, children, distinct: blobs.size };
}

/** An ECR push event as the rule delivers it: a child with `"image-tag": ""`, the index with its tag. */
function push(repository: string, digest: string, tag?: string): string {
  return JSON.stringify({
    version: '0',
    id: `bench-${Math.random().toString(36).slice(2)}`,
    'detail-type': 'ECR Image Action',
    source: 'aws.ecr',
    account: SOURCE_ACCOUNT,
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [],
    detail: {
      result: 'SUCCESS',
      'repository-name': repository,
      'image-digest': digest,
      'action-type': 'PUSH',
      'image-tag': tag ?? '',
    },
  });
}

/**
 * A multi-arch push handled by the mirror Lambda's handler as it arrives: the index and its children
 * in one SQS batch. Blob uploads at B are counted from its access log, once with the runtime's shared
 * BlobLedger (as deployed) and once with a ledger per record (as before it).
 */
export async function multiArchBatch(a: BenchRegistry, b: BenchRegistry): Promise<MultiArchResult> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const dynalite = require('dynalite') as (o: { createTableMs: number }) => Server;
  const server = dynalite({ createTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dynamodb = new DynamoDBClient({
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    await createStatusTable(dynamodb, TABLE);
    const config = loadConfig({
      SOURCE_ACCOUNT_ID: SOURCE_ACCOUNT,
      SOURCE_REGION: 'us-east-1',
      DESTINATIONS: JSON.stringify([
        {
          id: 'b',
          accountId: DESTINATION_ACCOUNT,
          region: 'eu-west-1',
          roleArn: `arn:aws:iam::${DESTINATION_ACCOUNT}:role/ecr-mirror-destination`,
          externalId: 'bench',
        },
      ]),
      STATUS_TABLE: TABLE,
      PUBLISH_EVENTS: 'false',
      REGISTRY_ENDPOINTS: JSON.stringify({
        [ecrHost(SOURCE_ACCOUNT, 'us-east-1')]: a.url,
        [ecrHost(DESTINATION_ACCOUNT, 'eu-west-1')]: b.url,
      }),
    });
    const repo = 'bench/multi';
    const image = await seed(a, repo);
    const run = async (shared: boolean): Promise<{ uploads: number; seconds: number }> => {
      await b.empty();
      const local = createLocalRun(config, dynamodb);
      if (!shared) delete local.runtime.blobs;
      const records = [
        ...image.children.map((c, i) => sqsRecord(`child-${i}`, push(repo, c.digest))),
        sqsRecord('index', push(repo, image.index.digest, 'v1')),
      ];
      const mark = b.mark();
      const started = performance.now();
      const res = await createMirrorHandler(local.runtime)({ Records: records }, context);
      const seconds = (performance.now() - started) / 1000;
      if (res.batchItemFailures.length > 0) throw new Error(`multi-arch batch: ${JSON.stringify(res)}`);
      await new Promise((r) => setTimeout(r, 150));
      const uploads = parseLog(b.requestsSince(mark).lines).filter(
        (r) => r.method === 'PUT' && r.status === 201 && /\/blobs\/uploads\/.*[?&]digest=/.test(r.path),
      ).length;
      return { uploads, seconds };
    };
    const perRecord = await run(false);
    const shared = await run(true);
    return { distinctBlobs: image.distinct, shared, perRecord };
  } finally {
    dynamodb.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
