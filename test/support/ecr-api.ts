import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MediaType } from '../../src/core/media-types';
import { TEST_TOKEN, type TestRegistry } from './registry';

export interface EcrApiEndpoint {
  url: string;
  /** The X-Amz-Target of every call received, in order. */
  calls: string[];
  /** The JSON input of every call received, in order. */
  inputs: Record<string, unknown>[];
  /** Repositories made with CreateRepository, as `<registryId>/<name>`. */
  created: string[];
  stop(): Promise<void>;
}

export interface EcrApiOptions {
  /**
   * Account id → the real registry standing for that account's ECR: DescribeRepositories,
   * ListImages and CreateRepository answer from it (its catalog, tag list and manifest digests).
   */
  registries?: Record<string, TestRegistry>;
  /** Whose registry a call without `registryId` means (the caller's own), by the region it is signed for. */
  callers?: Record<string, string>;
}

const TARGET = 'AmazonEC2ContainerRegistry_V20150921.';

/**
 * A local stand-in for the ECR control-plane endpoint (AWS JSON 1.1), for the built CLI, which
 * aws-sdk-client-mock cannot reach: AWS_ENDPOINT_URL_ECR points the SDK here. It answers
 * GetAuthorizationToken with the test registries' Basic credentials, and, for the registries it is
 * given, the listing calls from the registry itself. The registry itself stays real.
 */
export async function startEcrApi(options: EcrApiOptions = {}): Promise<EcrApiEndpoint> {
  const calls: string[] = [];
  const inputs: Record<string, unknown>[] = [];
  const created: string[] = [];
  const answer = async (
    target: string,
    input: Record<string, unknown>,
    region: string,
  ): Promise<[number, unknown]> => {
    const op = target.startsWith(TARGET) ? target.slice(TARGET.length) : target;
    if (op === 'GetAuthorizationToken') {
      return [
        200,
        {
          authorizationData: [
            { authorizationToken: TEST_TOKEN, expiresAt: Math.floor(Date.now() / 1000) + 12 * 3600 },
          ],
        },
      ];
    }
    const account = String(
      input.registryId ?? options.callers?.[region] ?? Object.keys(options.registries ?? {})[0] ?? '',
    );
    const reg = options.registries?.[account];
    if (!reg) return [400, { __type: 'InvalidParameterException', message: `unexpected call ${target}` }];
    const get = async (path: string, method = 'GET') =>
      fetch(`${reg.url}${path}`, {
        method,
        headers: { authorization: reg.authorization, accept: Object.values(MediaType).join(', ') },
      });
    const catalog = async (): Promise<string[]> => {
      const body = (await (await get('/v2/_catalog?n=1000')).json()) as { repositories?: string[] };
      const names = new Set(body.repositories ?? []);
      for (const c of created) if (c.startsWith(`${account}/`)) names.add(c.slice(account.length + 1));
      return [...names].sort();
    };
    const notFound = (name: string): [number, unknown] => [
      400,
      { __type: 'RepositoryNotFoundException', message: `The repository with name '${name}' does not exist` },
    ];
    if (op === 'DescribeRepositories') {
      const all = await catalog();
      const wanted = input.repositoryNames as string[] | undefined;
      const missing = wanted?.find((w) => !all.includes(w));
      if (missing) return notFound(missing);
      return [
        200,
        { repositories: (wanted ?? all).map((repositoryName) => ({ repositoryName, registryId: account })) },
      ];
    }
    if (op === 'CreateRepository') {
      const name = String(input.repositoryName);
      if ((await catalog()).includes(name)) {
        return [400, { __type: 'RepositoryAlreadyExistsException', message: `${name} exists` }];
      }
      created.push(`${account}/${name}`);
      return [200, { repository: { repositoryName: name, registryId: account } }];
    }
    if (op === 'ListImages') {
      const name = String(input.repositoryName);
      if (!(await catalog()).includes(name)) return notFound(name);
      const tags =
        ((await (await get(`/v2/${name}/tags/list`)).json()) as { tags?: string[] | null }).tags ?? [];
      const imageIds: { imageTag: string; imageDigest: string }[] = [];
      for (const tag of tags) {
        const head = await get(`/v2/${name}/manifests/${tag}`, 'HEAD');
        const digest = head.headers.get('docker-content-digest');
        if (head.status === 200 && digest) imageIds.push({ imageTag: tag, imageDigest: digest });
      }
      return [200, { imageIds }];
    }
    return [400, { __type: 'InvalidParameterException', message: `unexpected call ${target}` }];
  };
  const server: Server = createServer((req, res) => {
    const target = String(req.headers['x-amz-target'] ?? '');
    calls.push(target);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/x-amz-json-1.1');
      if (!req.headers.authorization?.startsWith('AWS4-')) {
        res.statusCode = 403;
        res.end(JSON.stringify({ __type: 'UnrecognizedClientException', message: 'not signed' }));
        return;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      const input = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      inputs.push(input);
      const region = /Credential=[^/]+\/\d{8}\/([^/]+)\//.exec(req.headers.authorization)?.[1] ?? '';
      answer(target, input, region).then(
        ([status, body]) => {
          res.statusCode = status;
          res.end(JSON.stringify(body));
        },
        (err: unknown) => {
          res.statusCode = 500;
          res.end(JSON.stringify({ __type: 'ServerException', message: String(err) }));
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    inputs,
    created,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
