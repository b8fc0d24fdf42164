import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { anonymous } from '../../src/registry/auth';
import { closePools, httpRequest } from '../../src/registry/http';
import { BLOB_HTTP_ENV, Transport } from '../../src/registry/transport';

const TIMEOUTS = { connectMs: 2_000, headersMs: 5_000, bodyMs: 5_000 };
const FIXTURES = join(__dirname, '../fixtures/tls');

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Answers with the sha256 and length of the request body, reading it slowly when asked to. */
function hashingHandler(slow: boolean) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
      if (slow) {
        req.pause();
        setTimeout(() => req.resume(), 1);
      }
    });
    req.on('end', () => res.end(JSON.stringify({ sha256: hash.digest('hex'), length })));
  };
}

afterEach(() => closePools());

test.each([false, true])('a streamed body arrives whole (server reading slowly: %s)', async (slow) => {
  const server = createHttpServer(hashingHandler(slow));
  const host = await listen(server);
  try {
    // Many chunks in bursts, as the verifying stream hands them on: batched writes, backpressure.
    const parts = Array.from({ length: 200 }, (_, i) => randomBytes(1000 + ((i * 7919) % 60_000)));
    const body = Readable.from(parts);
    const expected = createHash('sha256');
    for (const p of parts) expected.update(p);
    const size = parts.reduce((n, p) => n + p.length, 0);

    const res = await httpRequest(new URL(`http://${host}/upload`), {
      method: 'PUT',
      headers: { 'content-length': String(size) },
      body,
      timeouts: TIMEOUTS,
    });

    expect(res.statusCode).toBe(200);
    expect(JSON.parse(await res.body.text())).toEqual({ sha256: expected.digest('hex'), length: size });
  } finally {
    server.close();
  }
});

test('an https:// URL goes over TLS, with the certificate checked', async () => {
  const server = createHttpsServer(
    {
      key: readFileSync(join(FIXTURES, 'localhost.key')),
      cert: readFileSync(join(FIXTURES, 'localhost.crt')),
    },
    (_req, res) => res.end('ok'),
  );
  const host = await listen(server as unknown as Server);
  try {
    const err = await httpRequest(new URL(`https://${host}/v2/`), {
      method: 'GET',
      headers: {},
      timeouts: TIMEOUTS,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // A self-signed certificate is refused: proof that TLS ran, and that it verifies.
    expect((err as { code?: string }).code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
  } finally {
    server.close();
  }
});

test('ECR_MIRROR_BLOB_HTTP is pooled or node; anything else is refused, naming the setting', () => {
  const open = () => new Transport({ baseUrl: 'http://127.0.0.1:1', credentials: anonymous });
  const saved = process.env[BLOB_HTTP_ENV];
  try {
    for (const value of ['pooled', 'node']) {
      process.env[BLOB_HTTP_ENV] = value;
      expect(open).not.toThrow();
    }
    process.env[BLOB_HTTP_ENV] = 'undici';
    expect(open).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining(BLOB_HTTP_ENV) }),
    );
  } finally {
    if (saved === undefined) delete process.env[BLOB_HTTP_ENV];
    else process.env[BLOB_HTTP_ENV] = saved;
  }
});
