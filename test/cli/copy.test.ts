import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type AddressInfo, connect } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { getManifest, pushImage } from '../support/content';
import { startEcrApi } from '../support/ecr-api';
import { ociError, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_PASSWORD, TEST_USER, type TestRegistry } from '../support/registry';
import { ensureBuilt, ROOT, runBuilt } from '../support/run-built';

const CREDS = `${TEST_USER}:${TEST_PASSWORD}`;

const run = (args: string[], env: Record<string, string> = {}) => runBuilt('dist/cli.js', args, env);

let a: TestRegistry;
let b: TestRegistry;
beforeAll(async () => {
  ensureBuilt('dist/cli.js');
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

test('--help lists the copy verb', async () => {
  const r = await run(['--help']);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('copy [options] <SRC> <DST>');
});

test('copy prints a summary, then --json on the up-to-date re-run', async () => {
  const img = await pushImage(a, 'cli/app', '1.0', { layers: [20_000, 30_000] });
  const src = `${a.host}/cli/app:1.0`;
  const dst = `${b.host}/mirrored/app`;
  const first = await run(['copy', '--insecure', '--src-creds', CREDS, '--dest-creds', CREDS, src, dst]);
  expect(first.stderr).toBe('');
  expect(first.code).toBe(0);
  expect(first.stdout).toMatch(/blobs: +3 copied, 0 already present/);
  expect((await getManifest(b, 'mirrored/app', '1.0')).digest).toBe(img.manifest.digest);

  // Credentials from the environment keep them out of the process list.
  const again = await run(['copy', '--insecure', '--json', src, dst], {
    ECR_MIRROR_SRC_CREDS: CREDS,
    ECR_MIRROR_DEST_CREDS: CREDS,
  });
  expect(again.code).toBe(0);
  const summary = JSON.parse(again.stdout);
  expect(summary).toMatchObject({ digest: img.manifest.digest, upToDate: true, blobs: { copied: 0 } });
  expect(summary.requests.destination).toBe(1);
});

test('an ECR source logs in with GetAuthorizationToken (the SDK chunk loads on demand)', async () => {
  const ecrApi = await startEcrApi();
  try {
    const img = await pushImage(a, 'team/api', 'v2', { layers: [10_000] });
    // The source is a real registry behind an ECR hostname; its login goes through the SDK.
    const ecrHost = '111111111111.dkr.ecr.us-east-1.amazonaws.com';
    const r = await run(
      [
        'copy',
        '--json',
        '--dest-creds',
        CREDS,
        '--insecure',
        `${ecrHost}/team/api:v2`,
        `${b.host}/from-ecr/api`,
      ],
      {
        REGISTRY_ENDPOINTS: JSON.stringify({ [ecrHost]: a.url }),
        AWS_ENDPOINT_URL_ECR: ecrApi.url,
        AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'secret-example',
        AWS_REGION: 'us-east-1',
      },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ digest: img.manifest.digest, blobs: { copied: 2 } });
    expect(ecrApi.calls).toEqual(['AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken']);
    expect((await getManifest(b, 'from-ecr/api', 'v2')).digest).toBe(img.manifest.digest);
  } finally {
    await ecrApi.stop();
  }
});

test.each([
  [['copy', 'Bad/Ref:1', 'x/y:1'], 2, /INVALID_REFERENCE: invalid image reference "Bad\/Ref:1"/],
  [['copy', '--src-creds', 'nocolon', 'h.io/a:1', 'h.io/b:1'], 2, /--src-creds must be USER:PASSWORD/],
  [['copy', 'h.io/a:1'], 2, /missing required argument 'DST'/],
])('usage errors exit 2 with one line: %j', async (args, code, message) => {
  const r = await run(args);
  expect(r.code).toBe(code);
  expect(r.stderr).toMatch(message);
});

test('a failed copy exits 1 with a one-line reason and no credential', async () => {
  const r = await run([
    'copy',
    '--insecure',
    '--src-creds',
    CREDS,
    '--dest-creds',
    CREDS,
    `${a.host}/missing:1`,
    `${b.host}/x:1`,
  ]);
  expect(r.code).toBe(1);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/^ecr-mirror: NOT_FOUND: source image .*missing:1 does not exist/);
  const wrong = await run([
    'copy',
    '--insecure',
    '--src-creds',
    'mirror:wrong-password',
    `${a.host}/cli/app:1.0`,
    `${b.host}/x:1`,
  ]);
  expect(wrong.code).toBe(1);
  expect(wrong.stderr).toMatch(/UNAUTHORIZED/);
  expect(wrong.stderr).not.toContain('wrong-password');
});

test('a registry error with line breaks and escape sequences prints as one escaped line (defect 3)', async () => {
  await pushImage(a, 'cli/hostile', 'v1', { layers: [1000] });
  const proxy = await startFaultProxy(a);
  try {
    proxy.fault({
      method: 'GET',
      path: /\/manifests\//,
      action: {
        type: 'status',
        status: 403,
        body: ociError('DENIED', 'no\necr-mirror: copied fine\x1b[2J\x1b]0;owned\x07\u202eevil'),
      },
    });
    const r = await run([
      'copy',
      '--insecure',
      '--src-creds',
      CREDS,
      '--dest-creds',
      CREDS,
      `${proxy.host}/cli/hostile:v1`,
      `${b.host}/cli/hostile:v1`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr.endsWith('\n')).toBe(true);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    for (const c of ['\x07', '\x1b', '\u202e']) expect(r.stderr).not.toContain(c);
    expect(r.stderr).toMatch(
      /^ecr-mirror: DENIED: .*HTTP 403 DENIED \(no\\necr-mirror: copied fine\\x1b\[2J/,
    );
  } finally {
    await proxy.close();
  }
});

test('copies from a registry over TLS (manifests on node:https, blobs read into pooled memory)', async () => {
  // A TLS front for registry A with the fixture certificate, which the CLI trusts through
  // NODE_EXTRA_CA_CERTS: the downloads go through TLS and its certificate check for real.
  const tlsDir = join(__dirname, '../fixtures/tls');
  const front = createTlsServer(
    { key: readFileSync(join(tlsDir, 'localhost.key')), cert: readFileSync(join(tlsDir, 'localhost.crt')) },
    (client) => {
      const upstream = connect(a.port, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    },
  );
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  try {
    // Layers of several MiB: many TLS records per slab, and slabs used again along the way.
    const img = await pushImage(a, 'tls/app', 'v1', { layers: [5 * 1024 * 1024 + 3, 1_500_000, 700] });
    const port = (front.address() as AddressInfo).port;
    const r = await run(
      [
        'copy',
        '--json',
        '--src-creds',
        CREDS,
        '--dest-creds',
        CREDS,
        `127.0.0.1:${port}/tls/app:v1`,
        `${b.host}/tls/app`,
      ],
      {
        NODE_EXTRA_CA_CERTS: join(tlsDir, 'localhost.crt'),
        // No --insecure: the source goes over https://; the destination is mapped to plain HTTP.
        REGISTRY_ENDPOINTS: JSON.stringify({ [b.host]: b.url }),
      },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ digest: img.manifest.digest, blobs: { copied: 4 } });
    expect((await getManifest(b, 'tls/app', 'v1')).digest).toBe(img.manifest.digest);
  } finally {
    front.close();
  }
});

test('an https registry whose token realm is plain http gets no credentials sent there', async () => {
  await pushImage(a, 'cli/realm', 'v1', { layers: [1000] });
  const proxy = await startFaultProxy(a);
  const tlsDir = join(__dirname, '../fixtures/tls');
  // The registry over TLS (a TLS front for the proxy); its Bearer realm in clear text, on the proxy.
  const front = createTlsServer(
    { key: readFileSync(join(tlsDir, 'localhost.key')), cert: readFileSync(join(tlsDir, 'localhost.crt')) },
    (conn) => {
      const upstream = connect(Number(proxy.host.split(':')[1]), '127.0.0.1');
      conn.pipe(upstream).pipe(conn);
      conn.on('error', () => upstream.destroy());
      upstream.on('error', () => conn.destroy());
    },
  );
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  try {
    proxy.fault({
      method: 'GET',
      path: /\/manifests\//,
      action: {
        type: 'status',
        status: 401,
        headers: { 'www-authenticate': `Bearer realm="${proxy.url}/token",service="registry"` },
      },
    });
    proxy.fault({
      method: 'GET',
      path: /^\/token/,
      action: { type: 'status', status: 200, body: { token: 't' } },
    });
    const port = (front.address() as AddressInfo).port;
    const r = await run(
      [
        'copy',
        '--src-creds',
        CREDS,
        '--dest-creds',
        CREDS,
        `127.0.0.1:${port}/cli/realm:v1`,
        `${b.host}/cli/realm`,
      ],
      {
        NODE_EXTRA_CA_CERTS: join(tlsDir, 'localhost.crt'),
        REGISTRY_ENDPOINTS: JSON.stringify({ [b.host]: b.url }),
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ecr-mirror: UNAUTHORIZED: .*plain http: refusing to send credentials there/);
    expect(proxy.seen('GET', /^\/token/)).toEqual([]);
  } finally {
    front.close();
    await proxy.close();
  }
});

describe('--timeout and Ctrl-C', () => {
  /** A proxy whose layer GET runs at 20 KB/s (20 s in all), and a wait for that GET to end. */
  const slowSource = async (repo: string) => {
    const img = await pushImage(a, repo, 'v1', { layers: [400_000] });
    const proxy = await startFaultProxy(a);
    const layer = new RegExp(`^/v2/${repo}/blobs/${img.layers[0]!.digest}`);
    proxy.fault({ method: 'GET', path: layer, action: { type: 'throttle', bytesPerSecond: 20_000 } });
    const layerGet = async () => {
      const gets = proxy.seen('GET', layer);
      await proxy.ended(gets);
      return gets;
    };
    return { proxy, layer, layerGet };
  };
  const args = (src: string, dst: string, ...extra: string[]) => [
    'copy',
    '--insecure',
    '--src-creds',
    CREDS,
    '--dest-creds',
    CREDS,
    ...extra,
    src,
    dst,
  ];

  test('--timeout: the copy stops at the deadline with one TIMEOUT line, exit 1, no tag', async () => {
    const { proxy, layerGet } = await slowSource('cli/slow');
    try {
      const r = await run(args(`${proxy.host}/cli/slow:v1`, `${b.host}/cli/slow:v1`, '--timeout', '2s'));
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^ecr-mirror: TIMEOUT: .*the --timeout of 2s passed/);
      const gets = await layerGet();
      expect(gets).toHaveLength(1);
      expect(gets[0]!.aborted).toBe(true);
      expect((await getManifest(b, 'cli/slow', 'v1')).status).toBe(404);
    } finally {
      await proxy.close();
    }
  });

  test('--timeout must be a duration', async () => {
    const r = await run(['copy', '--timeout', 'soon', 'h.io/a:1', 'h.io/b:1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--timeout must be a duration/);
  });

  test('Ctrl-C cancels cleanly: requests aborted, one CANCELLED line, exit 130, no tag', async () => {
    const { proxy, layer, layerGet } = await slowSource('cli/interrupted');
    try {
      const child = spawn(
        process.execPath,
        [`${ROOT}/dist/cli.js`, ...args(`${proxy.host}/cli/interrupted:v1`, `${b.host}/cli/interrupted:v1`)],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d;
      });
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      for (let i = 0; i < 200 && proxy.seen('GET', layer).length === 0; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toMatch(/^ecr-mirror: CANCELLED: .*interrupted \(Ctrl-C\)/);
      const gets = await layerGet();
      expect(gets).toHaveLength(1);
      expect(gets[0]!.aborted).toBe(true);
      expect((await getManifest(b, 'cli/interrupted', 'v1')).status).toBe(404);
    } finally {
      await proxy.close();
    }
  });
});
