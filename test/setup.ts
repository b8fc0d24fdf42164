import { closeConnections } from '../src/registry/transport';

// Pooled keep-alive connections would hold each test worker open after its suites.
afterAll(async () => {
  await closeConnections();
});
