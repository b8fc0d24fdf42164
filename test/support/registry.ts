import {
  freePort,
  LOCAL_PASSWORD,
  LOCAL_USER,
  type RegistryServer,
  startRegistryServer,
} from '../../src/local/registry-server';

/** Test credentials: the local registries' htpasswd user (src/local/registry-server.ts). */
export const TEST_USER = LOCAL_USER;
export const TEST_PASSWORD = LOCAL_PASSWORD;
export const TEST_CREDS = { username: TEST_USER, password: TEST_PASSWORD };
/** `user:password` in base64: a Basic header's value, and what an ECR authorization token looks like. */
export const TEST_TOKEN = Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64');

/** A real CNCF distribution registry (Debian's docker-registry) on loopback, with Basic auth. */
export interface TestRegistry extends RegistryServer {
  /** Basic authorization header value for direct requests from tests. */
  authorization: string;
}

export interface RegistryOptions {
  /** YAML under `auth:` replaces htpasswd (the Bearer token test uses it). */
  authYaml?: string;
}

export { freePort };

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const server = await startRegistryServer(options);
  return {
    ...server,
    authorization: `Basic ${TEST_TOKEN}`,
  };
}
