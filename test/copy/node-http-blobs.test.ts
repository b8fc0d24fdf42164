import { closeIdleDownloads } from '../../src/registry/pooled-get';
import { freeReadBufferCount } from '../../src/registry/read-buffers';
import { BLOB_HTTP_ENV } from '../../src/registry/transport';

/**
 * The copy suites once more with blob GETs on node:http (ECR_MIRROR_BLOB_HTTP=node), the documented
 * way back from the hand-written HTTP/1.1 reader: the same copies, faults and cancellations must hold.
 */

process.env[BLOB_HTTP_ENV] = 'node';

describe('copy suite', () => {
  require('./copy-image.test');
});
describe('fault suite', () => {
  require('../registry/faults.test');
});
describe('cancellation suite', () => {
  require('./cancel.test');
});

test('no blob went through the pooled reader: it never took read memory', () => {
  // A pooled download's memory goes back to the pool when its connection closes.
  closeIdleDownloads();
  expect(freeReadBufferCount()).toBe(0);
});

afterAll(() => {
  delete process.env[BLOB_HTTP_ENV];
});
