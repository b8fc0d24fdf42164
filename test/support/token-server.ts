import { execFile } from 'node:child_process';
import { createPrivateKey, type KeyObject, randomUUID, sign, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TEST_PASSWORD, TEST_USER } from './registry';

/**
 * A test double of a Docker token auth server (the `realm` of a `Bearer` challenge), for a real
 * distribution registry configured with `auth: token:`. It checks Basic credentials (TEST_USER may
 * pull, push and delete, READER only pull, PUSHER pull and push) and answers JWTs
 * signed RS256 by a key whose self-signed certificate travels in the `x5c` header; the registry
 * trusts that certificate through `rootcertbundle`. Every token request is recorded for assertions.
 */
export interface TokenServer {
  /** `http://127.0.0.1:<port>/token`, the realm the registry announces. */
  realm: string;
  service: string;
  issuer: string;
  /** The PEM certificate the registry trusts (`rootcertbundle`). */
  certPath: string;
  /** The `auth:` block for startRegistry({ authYaml }). */
  authYaml: string;
  /** `expires_in` of the tokens issued from now on, in seconds (default 300). */
  expiresInSeconds: number;
  /** Token requests in order of arrival. */
  readonly requests: TokenRequestRecord[];
  /** A token minted in-process (not recorded), for raw reads and writes by the tests themselves. */
  mint(access: ResourceAccess[], subject?: string): string;
  stop(): Promise<void>;
}

export interface TokenRequestRecord {
  /** Each `scope` parameter, as sent (`repository:team/app:pull,push`). */
  scopes: string[];
  service: string | undefined;
  /** Whether the request carried Basic credentials at all. */
  basic: boolean;
  /** 200 with a token, or 401 for refused credentials. */
  status: number;
  /** What the token granted (empty for anonymous requests). */
  granted: ResourceAccess[];
}

export interface ResourceAccess {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenServerOptions {
  /** `expires_in` of the answers, in seconds (default 300). */
  expiresInSeconds?: number;
}

const run = promisify(execFile);

/** The auth server's users: the registry tests' own, one that may only pull, one that may not delete. */
export const READER = { username: 'reader', password: 'reader-secret' };
export const PUSHER = { username: 'pusher', password: 'pusher-secret' };
const USERS: Record<string, { password: string; actions: string[]; catalog: boolean }> = {
  // TEST_USER is the registry's administrator too: it may list the catalog (`registry:catalog:*`).
  [TEST_USER]: { password: TEST_PASSWORD, actions: ['pull', 'push', 'delete'], catalog: true },
  [READER.username]: { password: READER.password, actions: ['pull'], catalog: false },
  [PUSHER.username]: { password: PUSHER.password, actions: ['pull', 'push'], catalog: false },
};

/** `repository:team/app:pull,push` → access; the name is everything between the first and last colon. */
export function parseScope(scope: string): ResourceAccess | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last <= first) return undefined;
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((a) => a !== '');
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions };
}

function basicCredentials(req: IncomingMessage): { user: string; password: string } | undefined {
  const value = req.headers.authorization ?? '';
  const m = /^Basic\s+(\S+)$/i.exec(value);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0
    ? { user: decoded, password: '' }
    : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export async function startTokenServer(options: TokenServerOptions = {}): Promise<TokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'ecr-mirror-token-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  // A self-signed certificate is its own chain: the registry finds the x5c leaf among its roots.
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-sha256',
    '-days',
    '2',
    '-subj',
    '/CN=ecr-mirror test token issuer',
    '-keyout',
    keyPath,
    '-out',
    certPath,
  ]);
  const key: KeyObject = createPrivateKey(await readFile(keyPath));
  const certDer = new X509Certificate(await readFile(certPath)).raw.toString('base64');
  const service = 'ecr-mirror-test-registry';
  const issuer = 'ecr-mirror-test-issuer';
  const requests: TokenRequestRecord[] = [];

  const mint = (access: ResourceAccess[], subject = TEST_USER): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer] };
    const claims = {
      iss: issuer,
      sub: subject,
      aud: service,
      exp: now + api.expiresInSeconds,
      nbf: now - 1,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(
      JSON.stringify(claims),
    ).toString('base64url')}`;
    // RS256 = RSASSA-PKCS1-v1_5 with SHA-256, node's default padding for an RSA key.
    return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    if (req.method !== 'GET' || url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    const scopes = url.searchParams.getAll('scope');
    const creds = basicCredentials(req);
    const record: TokenRequestRecord = {
      scopes,
      service: url.searchParams.get('service') ?? undefined,
      basic: creds !== undefined,
      status: 200,
      granted: [],
    };
    requests.push(record);
    const user = creds && Object.hasOwn(USERS, creds.user) ? USERS[creds.user] : undefined;
    if (creds && user?.password !== creds.password) {
      // Docker Hub's auth server answers refused credentials like this.
      record.status = 401;
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ details: 'incorrect username or password' }));
      return;
    }
    // Valid credentials get what each scope asks for, within the user's rights (as Docker Hub's auth
    // server does: a 200 with less access, not a refusal); anonymous requests get a token that grants nothing.
    if (user) {
      for (const scope of scopes.flatMap((s) => s.split(' '))) {
        const access = parseScope(scope);
        const catalog = access?.type === 'registry' && access.name === 'catalog';
        const actions = catalog
          ? user.catalog
            ? access.actions
            : []
          : (access?.actions.filter((a) => user.actions.includes(a)) ?? []);
        if (access && actions.length > 0) record.granted.push({ ...access, actions });
      }
    }
    const token = mint(record.granted, creds?.user ?? '');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: api.expiresInSeconds,
        issued_at: new Date().toISOString(),
      }),
    );
  };

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  const realm = `http://127.0.0.1:${port}/token`;
  const api: TokenServer = {
    realm,
    service,
    issuer,
    certPath,
    authYaml: tokenAuthYaml({ realm, service, issuer, rootCertBundle: certPath }),
    expiresInSeconds: options.expiresInSeconds ?? 300,
    requests,
    mint,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return api;
}

/** The registry's `auth: token:` block (indented to sit under `auth:`). */
export function tokenAuthYaml(o: {
  realm: string;
  service: string;
  issuer: string;
  rootCertBundle: string;
}): string {
  return `  token:
    realm: ${o.realm}
    service: ${o.service}
    issuer: ${o.issuer}
    rootcertbundle: ${o.rootCertBundle}
`;
}
