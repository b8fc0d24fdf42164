import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runChecks } from '../../src/doctor/check';
import { DoctorClients } from '../../src/doctor/clients';
import { credentialsCheck } from '../../src/doctor/source-checks';

test('a silent AWS endpoint: the check fails when its deadline fires, it does not hang', async () => {
  const server = createServer(() => undefined); // reads requests, never answers
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const saved = { ...process.env };
  process.env.AWS_ENDPOINT_URL_STS = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
  const clients = new DoctorClients({ requestTimeoutMs: 300 });
  try {
    const [result] = await runChecks([credentialsCheck(clients, { destinations: new Map() }, 'us-east-1')]);
    expect(result).toMatchObject({ id: 'aws.credentials', status: 'fail' });
    expect(result!.detail).toMatch(/requestTimeout/);
  } finally {
    clients.destroy();
    process.env = saved;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
