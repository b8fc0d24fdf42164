import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { MirrorError } from '../../src/errors';
import { openRegistry } from '../../src/registry/open';
import { closeIdleDownloads, pooledGet } from '../../src/registry/pooled-get';
import { withRetry } from '../../src/registry/retry';
import { failure } from '../support/failure';

/** The RegistryClient's signal: requests aborted with their sockets, waits between retries cut short. */

const servers: Server[] = [];
afterEach(() => {
  closeIdleDownloads();
  for (const s of servers.splice(0)) s.close();
});

/** A server that reads requests and answers with `reply` (nothing when absent); it logs closes. */
async function server(reply?: (socket: Socket) => void) {
  const state = { connections: 0, closed: 0 };
  const srv = createServer((socket) => {
    state.connections++;
    socket.on('error', () => undefined);
    socket.on('close', () => state.closed++);
    socket.once('data', () => reply?.(socket));
  });
  servers.push(srv);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return { host: `127.0.0.1:${(srv.address() as AddressInfo).port}`, state };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  expect(check()).toBe(true);
}

test('withRetry: an abort ends the wait between attempts at once, and no attempt follows', async () => {
  const controller = new AbortController();
  let calls = 0;
  const policy = { attempts: 5, baseDelayMs: 60_000, maxDelayMs: 60_000, maxElapsedMs: 600_000 };
  const run = withRetry(
    policy,
    async () => {
      calls++;
      throw new MirrorError('NETWORK', 'down', { retryable: true });
    },
    () => setTimeout(() => controller.abort(), 10),
    controller.signal,
  );
  const err = await failure(run);
  expect(err.code).toBe('CANCELLED');
  expect(calls).toBe(1);
});

test('a deadline reason makes TIMEOUT (retryable); anything else CANCELLED', async () => {
  const quiet = await server();
  const registry = openRegistry(quiet.host, { insecure: true });
  const timeout = await failure(registry.getManifest('team/app', 'v1', { signal: AbortSignal.timeout(100) }));
  expect(timeout).toMatchObject({ code: 'TIMEOUT', retryable: true });
  expect(timeout.message).toContain('GET manifest team/app:v1');
  await until(() => quiet.state.closed === quiet.state.connections && quiet.state.connections > 0);

  const controller = new AbortController();
  const pending = registry.headManifest('team/app', 'v1', { signal: controller.signal });
  await until(() => quiet.state.connections === 2);
  controller.abort();
  expect(await failure(pending)).toMatchObject({ code: 'CANCELLED', retryable: false });
  await until(() => quiet.state.closed === 2);
});

test('an abort mid-body destroys a blob download and its connection', async () => {
  const slow = await server((socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n');
    socket.write(Buffer.alloc(1000, 1));
  });
  const controller = new AbortController();
  const res = await pooledGet(new URL(`http://${slow.host}/blob`), {
    headers: {},
    timeouts: { connectMs: 2_000, headersMs: 5_000, bodyMs: 5_000 },
    signal: controller.signal,
    label: 'GET blob x',
  });
  const reading = (async () => {
    for await (const _ of res.body) controller.abort();
  })();
  const err = await failure(reading);
  expect(err).toMatchObject({ code: 'CANCELLED' });
  expect(err.message).toContain('GET blob x');
  await until(() => slow.state.closed === 1);
});
