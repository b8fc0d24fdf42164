import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { closeIdleDownloads, pooledGet } from '../../src/registry/pooled-get';
import { releaseReadBuffer } from '../../src/registry/read-buffers';
import { transportError } from '../../src/registry/transport';

const TIMEOUTS = { connectMs: 2_000, headersMs: 5_000, bodyMs: 5_000 };
const FIXTURES = join(__dirname, '../fixtures/tls');

const servers: { close(): void }[] = [];
afterEach(() => {
  closeIdleDownloads();
  for (const s of servers.splice(0)) s.close();
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A server that answers every connection with `script`: raw bytes, written piece by piece. */
async function rawServer(script: (socket: Socket, request: Promise<string>) => void): Promise<number> {
  const server = createServer((socket) => {
    const request = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (text.includes('\r\n\r\n')) resolve(text);
      });
    });
    socket.on('error', () => undefined);
    script(socket, request);
  });
  return listen(server);
}

/** Writes `parts` one by one with a pause between, so each likely arrives in a read of its own. */
async function trickle(socket: Socket, parts: (string | Buffer)[]): Promise<void> {
  socket.setNoDelay(true);
  for (const part of parts) {
    socket.write(part);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Reads the whole body the way the upload does: each view released once used. */
async function collect(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of body) {
    parts.push(Buffer.from(part));
    releaseReadBuffer(part);
  }
  return Buffer.concat(parts);
}

const get = (port: number, path = '/blob', headers: Record<string, string> = {}) =>
  pooledGet(new URL(`http://127.0.0.1:${port}${path}`), { headers, timeouts: TIMEOUTS });

test('a Content-Length body of many reads arrives whole, with the request as sent', async () => {
  const blob = randomBytes(3 * 1024 * 1024 + 17);
  let seen = '';
  const server = createHttpServer((req, res) => {
    seen = `${req.method} ${req.url} ${req.headers.host} ${req.headers.authorization}`;
    res.setHeader('content-length', blob.length);
    res.setHeader('docker-content-digest', 'sha256:x');
    res.end(blob);
  });
  const port = await listen(server as unknown as Server);
  const res = await get(port, '/v2/a/blobs/sha256:1?x=1', { authorization: 'Basic abc' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-length']).toBe(String(blob.length));
  expect(res.headers['docker-content-digest']).toBe('sha256:x');
  const got = await collect(res.body);
  expect(createHash('sha256').update(got).digest('hex')).toBe(
    createHash('sha256').update(blob).digest('hex'),
  );
  expect(seen).toBe(`GET /v2/a/blobs/sha256:1?x=1 127.0.0.1:${port} Basic abc`);
});

test('a chunked body is decoded across reads, with extensions and trailers', async () => {
  const port = await rawServer((socket) => {
    void trickle(socket, [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n',
      '5;ext=1\r\nhel',
      'lo\r',
      '\n1',
      '0\r\n0123456789abcdef\r\n',
      '0\r\nX-Trailer: yes\r\n',
      '\r\n',
    ]);
  });
  const res = await get(port);
  expect(res.headers['transfer-encoding']).toBe('chunked');
  expect((await collect(res.body)).toString()).toBe('hello0123456789abcdef');
});

test('a body without framing ends with the connection; 1xx answers are skipped', async () => {
  const port = await rawServer((socket) => {
    void trickle(socket, [
      'HTTP/1.1 100 Continue\r\n\r\n',
      'HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.0 200 OK\r\nX-A: 1\r\nX-A: 2\r\n\r\nsome ',
      'bytes',
    ]).then(() => socket.end());
  });
  const res = await get(port);
  expect(res.statusCode).toBe(200);
  expect(res.headers['x-a']).toBe('1, 2');
  expect((await collect(res.body)).toString()).toBe('some bytes');
});

test('redirect and error answers come back with their headers and a readable body', async () => {
  const port = await rawServer((socket) => {
    socket.end(
      'HTTP/1.1 307 Temporary Redirect\r\nLocation: https://s3.example/x\r\nContent-Length: 0\r\n\r\n',
    );
  });
  const res = await get(port);
  expect(res.statusCode).toBe(307);
  expect(res.headers.location).toBe('https://s3.example/x');
  await res.body.dump();

  const port2 = await rawServer((socket) => {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 28\r\n\r\n{"errors":[{"code":"BLOB"}]}');
  });
  const res2 = await get(port2);
  expect(res2.statusCode).toBe(404);
  expect(await res2.body.text()).toBe('{"errors":[{"code":"BLOB"}]}');
});

test('a body cut short fails as a retryable network error', async () => {
  const port = await rawServer((socket) => {
    void trickle(socket, ['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', 'only part']).then(() =>
      socket.destroy(),
    );
  });
  const res = await get(port);
  const err = await collect(res.body).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect((err as { code?: string }).code).toBe('ECONNRESET');
  expect(transportError('GET blob', err)).toMatchObject({ code: 'NETWORK', retryable: true });
});

test('a connection closed before any answer rejects', async () => {
  const port = await rawServer((socket) => {
    socket.destroy();
  });
  await expect(get(port)).rejects.toMatchObject({ code: expect.stringMatching(/ECONNRESET|EPIPE/) });
});

test.each([
  ['a status line that is not HTTP/1.x', 'HTTP/2 200\r\n\r\n'],
  ['a header line without a colon', 'HTTP/1.1 200 OK\r\nbroken\r\n\r\n'],
  ['a bad Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n'],
  ['headers over 16 KiB', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(20_000)}`],
])('%s is refused as a malformed response', async (_name, answer) => {
  const port = await rawServer((socket) => {
    socket.end(answer);
  });
  await expect(get(port)).rejects.toMatchObject({ code: 'HPE_INVALID_RESPONSE' });
});

test('a bad chunk size fails the body', async () => {
  const port = await rawServer((socket) => {
    socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n');
  });
  const res = await get(port);
  await expect(collect(res.body)).rejects.toMatchObject({ code: 'HPE_INVALID_RESPONSE' });
});

test('a header value with a line break is refused before anything is sent', async () => {
  let connections = 0;
  const port = await rawServer((socket) => {
    connections++;
    socket.destroy();
  });
  await expect(get(port, '/blob', { authorization: 'Basic a\r\nX-Evil: 1' })).rejects.toMatchObject({
    code: 'ERR_INVALID_CHAR',
  });
  expect(connections).toBe(0);
});

test('silence before the headers, and then in the body, times out', async () => {
  const quiet = await rawServer(() => undefined);
  const fast = { connectMs: 2_000, headersMs: 200, bodyMs: 5_000 };
  await expect(
    pooledGet(new URL(`http://127.0.0.1:${quiet}/`), { headers: {}, timeouts: fast }),
  ).rejects.toMatchObject({ code: 'HEADERS_TIMEOUT' });

  const stall = await rawServer((socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
  });
  const res = await pooledGet(new URL(`http://127.0.0.1:${stall}/`), {
    headers: {},
    timeouts: { connectMs: 2_000, headersMs: 5_000, bodyMs: 200 },
  });
  await expect(collect(res.body)).rejects.toMatchObject({ code: 'BODY_TIMEOUT' });
});

test('an https:// URL goes over TLS, with the certificate checked', async () => {
  const server = createTlsServer(
    {
      key: readFileSync(join(FIXTURES, 'localhost.key')),
      cert: readFileSync(join(FIXTURES, 'localhost.crt')),
    },
    (socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
  );
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  // A self-signed certificate is refused: TLS ran, and it verifies (test/cli/copy.test.ts copies
  // over TLS with the certificate trusted).
  await expect(
    pooledGet(new URL(`https://127.0.0.1:${port}/`), { headers: {}, timeouts: TIMEOUTS }),
  ).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
});

test('a reset ends a body framed by the connection with an error, not a clean end', async () => {
  const port = await rawServer((socket) => {
    void trickle(socket, ['HTTP/1.0 200 OK\r\n\r\n', 'partial']).then(() => socket.resetAndDestroy());
  });
  const res = await get(port);
  await expect(collect(res.body)).rejects.toMatchObject({ code: 'ECONNRESET' });
});

describe('kept connections', () => {
  /** A keep-alive HTTP server that counts connections and serves `size` random bytes per GET. */
  async function countingServer(size: number, options: { close?: boolean } = {}) {
    const state = { connections: 0, requests: 0 };
    const server = createHttpServer((_req, res) => {
      state.requests++;
      res.setHeader('content-length', size);
      if (options.close) res.setHeader('connection', 'close');
      res.end(randomBytes(size));
    });
    server.on('connection', () => state.connections++);
    const port = await listen(server as unknown as Server);
    return { port, state };
  }

  test('downloads one after the other share a connection', async () => {
    const { port, state } = await countingServer(300_000);
    for (let i = 0; i < 3; i++) {
      const res = await get(port);
      expect((await collect(res.body)).length).toBe(300_000);
    }
    expect(state).toEqual({ connections: 1, requests: 3 });
  });

  test('downloads at the same time get a connection each, and all are kept', async () => {
    const { port, state } = await countingServer(100_000);
    const first = await Promise.all([get(port), get(port), get(port)]);
    await Promise.all(first.map((r) => collect(r.body)));
    const second = await Promise.all([get(port), get(port), get(port)]);
    await Promise.all(second.map((r) => collect(r.body)));
    expect(state).toEqual({ connections: 3, requests: 6 });
  });

  test('not kept: Connection: close, HTTP/1.0, or a body left unread', async () => {
    const closing = await countingServer(1000, { close: true });
    for (let i = 0; i < 2; i++) await collect((await get(closing.port)).body);
    expect(closing.state.connections).toBe(2);

    let http10Connections = 0;
    const http10 = await rawServer((socket) => {
      http10Connections++;
      socket.write('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    await collect((await get(http10)).body);
    await collect((await get(http10)).body);
    expect(http10Connections).toBe(2);

    const big = await countingServer(2_000_000);
    const res = await get(big.port);
    res.body.destroy(); // e.g. a size mismatch: the rest of the body is never read
    await collect((await get(big.port)).body);
    expect(big.state.connections).toBe(2);
  });

  test('a kept connection the server closed in the meantime is replaced, and the GET succeeds', async () => {
    // Answers the first request on each connection, then drops the connection at the next one:
    // what a server does when its idle timeout and our next request cross.
    let connections = 0;
    const port = await rawServer((socket, _request) => {
      connections++;
      let requests = 0;
      socket.on('data', (d: Buffer) => {
        if (!d.toString('latin1').includes('\r\n\r\n')) return;
        requests++;
        if (requests === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
        else socket.destroy();
      });
    });
    expect((await collect((await get(port)).body)).toString()).toBe('hello');
    expect((await collect((await get(port)).body)).toString()).toBe('hello');
    expect(connections).toBe(2);
  });

  test('bytes after the end of a response, in the same read, keep the connection from reuse', async () => {
    let connections = 0;
    const port = await rawServer((socket) => {
      connections++;
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA');
    });
    expect((await collect((await get(port)).body)).toString()).toBe('ok');
    expect((await collect((await get(port)).body)).toString()).toBe('ok');
    expect(connections).toBe(2);
  });

  test('bytes on an idle connection close it', async () => {
    let connections = 0;
    const port = await rawServer((socket) => {
      connections++;
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      setTimeout(() => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad'), 20);
    });
    await collect((await get(port)).body);
    await new Promise((r) => setTimeout(r, 60));
    expect((await collect((await get(port)).body)).toString()).toBe('ok');
    expect(connections).toBe(2);
  });
});
