import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config/config';
import { mirrorRuntime } from '../../src/wiring/mirror';
import { resyncServices } from '../../src/wiring/resync';

/**
 * Which region each client of the Lambdas signs for. The stack (status table, queues, bus, the
 * resync function) lives in the function's region, AWS_REGION; the source registry may be in another
 * (the sourceRegion param). A recording endpoint reads the region from each request's SigV4 scope
 * (the SQS client sends to the queue URL's host, so the queue URLs point there too).
 */

let server: Server;
let url: string;
const signed: { service: string; region: string }[] = [];
const SERVICES = ['DYNAMODB', 'SQS', 'EVENTBRIDGE', 'ECR', 'LAMBDA'];

beforeAll(async () => {
  server = createServer((req, res) => {
    const scope = /Credential=[^/]+\/\d{8}\/([a-z0-9-]+)\/([a-z0-9-]+)\//.exec(
      String(req.headers.authorization ?? ''),
    );
    if (scope) signed.push({ region: scope[1]!, service: scope[2]! });
    req.resume();
    req.on('end', () => {
      res.statusCode = 400;
      res.setHeader('content-type', 'application/x-amz-json-1.0');
      res.end(JSON.stringify({ __type: 'ValidationException', message: 'recorded' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  for (const s of SERVICES) process.env[`AWS_ENDPOINT_URL_${s}`] = url;
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
});
afterAll(async () => {
  for (const s of SERVICES) delete process.env[`AWS_ENDPOINT_URL_${s}`];
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  signed.length = 0;
});

const config = Object.assign(() => loadConfig(config.env()), {
  env: (): NodeJS.ProcessEnv => ({
    SOURCE_ACCOUNT_ID: '111111111111',
    SOURCE_REGION: 'eu-west-1',
    AWS_REGION: 'us-east-2',
    DESTINATIONS: JSON.stringify([
      {
        id: 'b',
        accountId: '222222222222',
        region: 'eu-central-1',
        roleArn: 'arn:aws:iam::222222222222:role/r',
        externalId: 'xx',
      },
    ]),
    STATUS_TABLE: 'status',
    DEAD_LETTER_QUEUE_URL: `${url}/111111111111/dlq`,
    MIRROR_QUEUE_URL: `${url}/111111111111/mirror`,
  }),
});

const regionOf = (service: string) => [
  ...new Set(signed.filter((s) => s.service === service).map((s) => s.region)),
];

test('the function region is AWS_REGION, else the source region (local runs)', () => {
  expect(config()).toMatchObject({ functionRegion: 'us-east-2', sourceRegion: 'eu-west-1' });
  const env = { ...config.env(), AWS_REGION: undefined };
  expect(loadConfig(env).functionRegion).toBe('eu-west-1');
  expect(() => loadConfig({ ...env, AWS_REGION: 'mars' })).toThrow('AWS_REGION: must be an AWS region');
});

test('the mirror writes the status table and dead letters in its own region', async () => {
  const rt = mirrorRuntime(config());
  const record = {
    sourceRepository: 'app',
    reference: 'v1',
    destinationId: 'b',
    destinationRepository: 'app',
  };
  await expect(rt.store.get(record)).rejects.toThrow('recorded');
  await expect(rt.deadLetters!.send({ body: '{}', code: 'X', reason: 'r' })).rejects.toThrow();
  expect(regionOf('dynamodb')).toEqual(['us-east-2']);
  expect(regionOf('sqs')).toEqual(['us-east-2']);
});

test('the resync lists the source in its region, and records and enqueues in its own', async () => {
  const services = resyncServices(config());
  await expect(services.inventory.repositories()).rejects.toThrow();
  await expect(services.log!.load('run', '2025-01-01T00:00:00Z')).rejects.toThrow();
  await expect(
    services.enqueue!([
      { repository: 'app', tag: 'v1', digest: `sha256:${'a'.repeat(64)}`, destinations: ['b'] },
    ]),
  ).rejects.toThrow();
  expect(regionOf('ecr')).toEqual(['eu-west-1']);
  expect(regionOf('dynamodb')).toEqual(['us-east-2']);
  expect(regionOf('sqs')).toEqual(['us-east-2']);
});
