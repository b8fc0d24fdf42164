import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TEST_TOKEN } from './registry';

export interface EcrApiEndpoint {
  url: string;
  /** The X-Amz-Target of every call received, in order. */
  calls: string[];
  stop(): Promise<void>;
}

/**
 * A local stand-in for the ECR control-plane endpoint (AWS JSON 1.1), for the built CLI, which
 * aws-sdk-client-mock cannot reach: AWS_ENDPOINT_URL_ECR points the SDK here. It answers
 * GetAuthorizationToken with the test registries' Basic credentials. The registry itself stays real.
 */
export async function startEcrApi(): Promise<EcrApiEndpoint> {
  const calls: string[] = [];
  const server: Server = createServer((req, res) => {
    const target = String(req.headers['x-amz-target'] ?? '');
    calls.push(target);
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/x-amz-json-1.1');
      if (target.endsWith('.GetAuthorizationToken') && req.headers.authorization?.startsWith('AWS4-')) {
        res.end(
          JSON.stringify({
            authorizationData: [
              {
                authorizationToken: TEST_TOKEN,
                expiresAt: Math.floor(Date.now() / 1000) + 12 * 3600,
              },
            ],
          }),
        );
        return;
      }
      res.statusCode = 400;
      res.end(JSON.stringify({ __type: 'InvalidParameterException', message: `unexpected call ${target}` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
