import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** Test credentials; test/fixtures/htpasswd holds their bcrypt hash. */
export const TEST_USER = 'mirror';
export const TEST_PASSWORD = 'mirror-secret';
export const TEST_CREDS = { username: TEST_USER, password: TEST_PASSWORD };
const HTPASSWD = resolve(__dirname, '../fixtures/htpasswd');
const BINARY = process.env.DOCKER_REGISTRY_BIN ?? '/usr/bin/docker-registry';

/** A real CNCF distribution registry (Debian's docker-registry) on loopback, with Basic auth. */
export interface TestRegistry {
  /** `127.0.0.1:<port>`, as used in image references. */
  host: string;
  /** `http://127.0.0.1:<port>`. */
  url: string;
  port: number;
  dir: string;
  /** Basic authorization header value for direct requests from tests. */
  authorization: string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Extra YAML under `auth:` replaces htpasswd (the Bearer token test uses it). */
  authYaml?: string;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export function registryAvailable(): boolean {
  return spawnSync(BINARY, ['--version']).status === 0;
}

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'ecr-mirror-registry-'));
  const port = await freePort();
  const auth = options.authYaml ?? `  htpasswd:\n    realm: ecr-mirror-test\n    path: ${HTPASSWD}\n`;
  const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'data')}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: ecr-mirror-test-secret
auth:
${auth}`;
  await writeFile(join(dir, 'config.yml'), config);
  const child: ChildProcess = spawn(BINARY, ['serve', join(dir, 'config.yml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr.slice(-2000)}`);
    try {
      const res = await fetch(`${url}/v2/`);
      if (res.status === 401 || res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not start on ${port}: ${stderr.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    url,
    port,
    dir,
    authorization: `Basic ${Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64')}`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000).unref())]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
