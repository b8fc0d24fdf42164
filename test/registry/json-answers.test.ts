import { openRegistry } from '../../src/registry/open';
import { failure } from '../support/failure';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy';
import { startRegistry, TEST_CREDS, type TestRegistry } from '../support/registry';

let reg: TestRegistry;
let proxy: FaultProxy;
beforeAll(async () => {
  reg = await startRegistry();
  proxy = await startFaultProxy(reg);
});
afterAll(async () => {
  await proxy?.close();
  await reg?.stop();
});

test('a JSON answer that is not JSON fails with the request it answered, not a bare SyntaxError', async () => {
  proxy.fault({
    method: 'GET',
    path: /\/tags\/list/,
    action: {
      type: 'status',
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: '<html>maintenance</html>',
    },
  });
  const client = openRegistry(proxy.host, { insecure: true, credentials: TEST_CREDS });
  const err = await failure(client.listTags('team/app'));
  expect(err.code).toBe('REGISTRY_ERROR');
  expect(err.message).toMatch(/team\/app.*: the answer is not JSON: "<html>maintenance<\/html>"/);
});
