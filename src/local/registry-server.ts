import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MirrorError } from '../errors';

/** The local registries' user; the hash below is its bcrypt for htpasswd (password `mirror-secret`). */
export const LOCAL_USER = 'mirror';
export const LOCAL_PASSWORD = 'mirror-secret';
export const LOCAL_HTPASSWD = 'mirror:$2y$05$wJ0ujSpcFVLjYf3nrd2Pc.XVbaRhgruFbuJxikn0Pi2JO../ibkJ6\n';

export const REGISTRY_BINARY = process.env.DOCKER_REGISTRY_BIN ?? '/usr/bin/docker-registry';

/** A real CNCF distribution registry (Debian's `docker-registry`) on loopback, Basic auth. */
export interface RegistryServer {
  /** `127.0.0.1:<port>`, as used in image references. */
  host: string;
  /** `http://127.0.0.1:<port>`. */
  url: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

export interface RegistryServerOptions {
  /** YAML for the `auth:` block; htpasswd Basic auth with LOCAL_HTPASSWD by default. */
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

/** The registry's config.yml: loopback only, deletes allowed, uploads never purged mid-test. */
export function registryConfig(o: {
  dataDir: string;
  port: number;
  authYaml: string;
  accessLog?: boolean;
}): string {
  return `version: 0.1
log:
  level: error
  accesslog:
    disabled: ${o.accessLog ? 'false' : 'true'}
storage:
  filesystem:
    rootdirectory: ${o.dataDir}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${o.port}
  secret: ecr-mirror-local-secret
auth:
${o.authYaml}`;
}

export const htpasswdAuth = (path: string): string =>
  `  htpasswd:\n    realm: ecr-mirror-local\n    path: ${path}\n`;

/** Waits until the registry answers `/v2/` (401 or 200), or fails with what it printed. */
export async function waitUntilServing(
  url: string,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new MirrorError('REGISTRY_ERROR', `docker-registry exited: ${stderr().slice(-2000)}`);
    }
    try {
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      if (res.status === 401 || res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new MirrorError('TIMEOUT', `docker-registry did not start at ${url}: ${stderr().slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function registryInstalled(): boolean {
  return spawnSync(REGISTRY_BINARY, ['--version']).status === 0;
}

export async function startRegistryServer(options: RegistryServerOptions = {}): Promise<RegistryServer> {
  if (!registryInstalled()) {
    throw new MirrorError(
      'INVALID_CONFIG',
      `${REGISTRY_BINARY} not found: install Debian's docker-registry (sudo apt-get install docker-registry)`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'ecr-mirror-registry-'));
  const port = await freePort();
  let auth = options.authYaml;
  if (auth === undefined) {
    await writeFile(join(dir, 'htpasswd'), LOCAL_HTPASSWD);
    auth = htpasswdAuth(join(dir, 'htpasswd'));
  }
  const config = registryConfig({ dataDir: join(dir, 'data'), port, authYaml: auth });
  await writeFile(join(dir, 'config.yml'), config);
  const child: ChildProcess = spawn(REGISTRY_BINARY, ['serve', join(dir, 'config.yml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000).unref())]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilServing(url, child, () => stderr);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host: `127.0.0.1:${port}`, url, port, dir, stop };
}
