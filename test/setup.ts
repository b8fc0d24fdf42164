import { poisonReleasedReadBuffers } from '../src/registry/read-buffers';
import { closeConnections } from '../src/registry/transport';

// Download memory handed back too early would then corrupt blobs, and digest checks fail the tests.
poisonReleasedReadBuffers(true);

// Pooled keep-alive connections would hold each test worker open after its suites.
afterAll(async () => {
  await closeConnections();
});
